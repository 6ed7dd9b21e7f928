"""Telling the Serve deployments that follow an alias that it moved (``POST /v1/admin/reload``).

A deployment serving ``models:/NAME@ALIAS`` also checks the alias by itself every ``alias_poll_s``,
so a deployment that cannot be reached now is not left behind for good: the alias has moved already
(the registry is the source of truth) and the failure is reported, not raised.
"""

from __future__ import annotations

import os

import httpx
import pydantic

from synpo.config.base import StrictModel


class ServeNotify(StrictModel):
    """Serve deployments to reload after the alias moves (promotion or rollback)."""

    urls: list[str] = pydantic.Field(default_factory=list, description="base URLs of the deployments serving the alias, e.g. http://captioner.svc:8000")
    token_env: str = pydantic.Field(default="SYNPO_SERVE_TOKEN", min_length=1, description="NAME of the environment variable holding their API token")
    timeout_s: float = pydantic.Field(default=600.0, gt=0, description="how long one reload may take (it loads the new version), seconds")


def reload_deployments(settings: ServeNotify) -> list[str]:
    """One line per deployment: the version it serves now, or why it could not be told."""
    token = os.environ.get(settings.token_env)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    lines = []
    for url in settings.urls:
        endpoint = f"{url.rstrip('/')}/v1/admin/reload"
        try:
            response = httpx.post(endpoint, headers=headers, timeout=settings.timeout_s, trust_env=False)
        except httpx.HTTPError as error:
            lines.append(f"serve {url}: not reached ({type(error).__name__}: {error}); it follows the alias at its next poll")
            continue
        if response.status_code != 200:
            lines.append(f"serve {url}: reload answered HTTP {response.status_code}: {response.text[:200]}; it follows the alias at its next poll")
            continue
        body = response.json()
        change = f"v{body['previous_version']} -> v{body['version']}" if body["reloaded"] else f"already v{body['version']}"
        lines.append(f"serve {url}: {change}")
    return lines
