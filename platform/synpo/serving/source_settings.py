"""What the captioning API may fetch videos from (:class:`VideoSourceSettings`), the error every refusal is
(:class:`VideoSourceError`), and the checks every URL meets first: its scheme, and how messages show it.

The rules themselves are explained in :mod:`synpo.serving.video_source`.
"""

from __future__ import annotations

import re
from typing import Literal

import pydantic

from synpo.config.base import StrictModel
from synpo.errors import UserError
from synpo.serving.addresses import parse_host_port

MiB = 1024 * 1024


class VideoSourceError(UserError):
    """The video a request names cannot be used; ``status`` is the HTTP status for the answer (400 bad URL,
    403 refused source, 413 too big, 415 not a video, 422 no such object, 502 upstream failed, 504 too slow)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class VideoSourceSettings(StrictModel):
    """Where the captioning API may fetch videos from, and how much it fetches."""

    allowed_schemes: list[Literal["https", "http", "s3", "data"]] = pydantic.Field(
        default=["https", "s3", "data"],
        description="URL schemes a request may use (plain http is off by default)",
    )
    allowed_hosts: list[str] = pydantic.Field(
        default=[],
        description="http(s) hosts a URL (and every redirect) may name: exact names, or '*.example.com' for any "
        "subdomain of example.com (not example.com itself); empty = any host whose addresses are all public",
    )
    allowed_buckets: list[str] = pydantic.Field(
        default=[], description="S3 buckets s3:// URLs may read; empty = every s3:// URL is refused"
    )
    trusted_hosts: list[str] = pydantic.Field(
        default=[],
        description="DANGEROUS: 'host:port' entries whose addresses are not checked, e.g. an in-cluster MinIO at "
        "'minio.data.svc:9000'; whatever listens there becomes readable by every API caller. Only that exact "
        "host and port is exempt; the scheme and host rules still apply",
    )
    max_bytes: int = pydantic.Field(
        default=64 * MiB, gt=0, description="largest upload or download accepted, in bytes"
    )
    download_timeout_s: float = pydantic.Field(
        default=20.0,
        gt=0,
        description="wall-clock limit on one whole fetch (resolving, redirects, body), in seconds",
    )
    max_redirects: int = pydantic.Field(
        default=3, ge=0, description="http(s) redirects followed before giving up"
    )

    @pydantic.field_validator("trusted_hosts")
    @classmethod
    def _host_and_port(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            parse_host_port(entry)  # raises ValueError naming the entry
        return entries

    @pydantic.field_validator("allowed_hosts")
    @classmethod
    def _lower_case(cls, patterns: list[str]) -> list[str]:
        return [pattern.lower().rstrip(".") for pattern in patterns]


def shown(url: str) -> str:
    """``url`` as messages show it: no user name or password, no query string (it may hold a signature),
    and a ``data:`` URL cut short."""
    if url[:5].lower() == "data:":
        return url[:32] + "..." if len(url) > 32 else url
    without_userinfo = re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#]*@", r"\1", url)
    without_query = re.sub(r"\?[^#]*", "?<query>", without_userinfo, count=1)
    return without_query[:200] + "..." if len(without_query) > 200 else without_query


def checked_scheme(url: str, settings: VideoSourceSettings) -> str:
    """The scheme of ``url`` (lower-cased) if ``allowed_schemes`` has it."""
    scheme = url.partition(":")[0].lower() if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", url) else ""
    if scheme not in settings.allowed_schemes:
        has = f"scheme {scheme!r}" if scheme else "no scheme"
        allowed = ", ".join(settings.allowed_schemes)
        raise VideoSourceError(400, f"{shown(url)} has {has}; allowed schemes: {allowed}")
    return scheme
