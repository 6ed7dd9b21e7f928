"""Helpers for the judge tests: judge configs pointed at a loopback judge server."""

from __future__ import annotations

from synpo.judging import JudgeConfig
from synpo.testing.loopback_server import LoopbackJudgeServer


def openai_config(server: LoopbackJudgeServer | str, **fields) -> JudgeConfig:
    """A judge config for ``server`` (or a base URL) with fast retries (tests only)."""
    base_url = server if isinstance(server, str) else server.base_url
    settings = {"backend": "openai", "base_url": base_url, "model": "loopback-judge", "backoff_base_s": 0.005, "backoff_max_s": 0.05}
    return JudgeConfig(**{**settings, **fields})
