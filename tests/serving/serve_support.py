"""Starting the captioning app on the tests' local Ray (one Serve instance per module, on its own port)."""

from __future__ import annotations

import base64
import os
from contextlib import contextmanager

from synpo.serving.deployment import build_app
from synpo.serving.settings import ServeSettings
from synpo.testing.loopback_server import free_port

TOKEN_ENV = "SYNPO_TEST_SERVE_TOKEN"  # set in conftest before Ray starts: replicas inherit it


@contextmanager
def running_app(fields: dict, name: str = "captioner"):
    """Serve ``ServeSettings(**fields)`` (port and token variable filled in); yields (base URL, settings)."""
    from ray import serve

    port = free_port()
    settings = ServeSettings.model_validate({"port": port, "auth": {"token_env": TOKEN_ENV}, **fields})
    serve.start(http_options={"host": "127.0.0.1", "port": port, "request_timeout_s": settings.request_timeout_s})
    serve.run(build_app(settings), name=name, route_prefix="/", blocking=False)
    try:
        yield f"http://127.0.0.1:{port}", settings
    finally:
        serve.shutdown()


def auth() -> dict:
    return {"Authorization": f"Bearer {os.environ[TOKEN_ENV]}"}


def data_url(data: bytes) -> str:
    return "data:video/mp4;base64," + base64.b64encode(data).decode()


def chat_with_video(url: str, **fields) -> dict:
    return {"model": "synpo-captioner", "messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}}]}], **fields}
