"""The Ray Serve application `serve run serve/config.yaml` deploys: the captioner behind an OpenAI-compatible API.

    serve run serve/config.yaml            # Serve's own config; its application args are a synpo ServeSettings
    synpo serve --model models:/synpo-captioner@champion      # the same app and settings, started locally

Serve validates ``args`` against :class:`synpo.serving.settings.ServeSettings` (the builder's annotation)
before building, so a misspelt or bad setting stops the deploy with the field named.
"""

from ray import serve

from synpo.serving.deployment import build_app
from synpo.serving.settings import ServeSettings


def build(args: ServeSettings) -> serve.Application:
    return build_app(args)
