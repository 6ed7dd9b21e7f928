"""Fetch the video a captioning request names, without letting the request reach into our network.

The captioning API takes a video as an upload (:func:`check_upload`) or as a URL (:func:`fetch_video`).
This server fetches the URL, so a careless fetch is a server-side request forgery (SSRF) hole:
``http://169.254.169.254/latest/meta-data/`` hands out the node's cloud credentials and
``http://127.0.0.1:8265/`` is the Ray dashboard, where submitting a job runs code. So a URL is fetched
only if it passes every rule of :class:`VideoSourceSettings`:

- its scheme is in ``allowed_schemes`` (``https``, ``s3`` and ``data`` by default; never ``file`` or ``ftp``);
- ``data:video/...;base64,...`` is decoded in memory; ``s3://bucket/key`` is read through
  :class:`~synpo.storage.Storage`, from ``allowed_buckets`` only;
- an ``http(s)`` host matches ``allowed_hosts`` (when set), and every address it resolves to is public
  (:mod:`synpo.serving.addresses`: numeric spellings such as ``0x7f000001`` included, and checked in
  the resolver the connection uses, so a name cannot resolve one way for the check and another for
  the connection); redirects are followed here, at most ``max_redirects``, each hop checked like the first;
- at most ``max_bytes`` arrive within ``download_timeout_s``, and they start like a video container
  (:func:`sniff_video`).

Every refusal is a :class:`VideoSourceError` whose ``status`` is the HTTP status to answer with and
whose message names the URL (without user name, password or query string) and what was wrong.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from urllib.parse import unquote

from synpo.serving.addresses import refused_address
from synpo.serving.http_download import download
from synpo.serving.source_settings import VideoSourceError, VideoSourceSettings, checked_scheme, shown
from synpo.storage import ObjectNotFound, Storage, StorageError, parse_uri

__all__ = [
    "VideoSourceError",
    "VideoSourceSettings",
    "check_upload",
    "fetch_video",
    "refused_address",
    "sniff_video",
]


def sniff_video(data: bytes, source: str = "the data") -> str:
    """The container ``data`` starts like ("mp4", "mov", "webm/matroska", "avi", "mpeg-ts", "mpeg-ps");
    :class:`VideoSourceError` (415) if it starts like none of them. Only the header is read."""
    if data[4:8] == b"ftyp":  # ISO base media: a box of any size, then 'ftyp' and the brand
        return "mov" if data[8:12] == b"qt  " else "mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":  # EBML header
        return "webm/matroska"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "avi"
    if len(data) > 188 and data[0] == data[188] == 0x47:  # two 188-byte packets, each with its sync byte
        return "mpeg-ts"
    if data[:4] == b"\x00\x00\x01\xba":  # pack header
        return "mpeg-ps"
    start = f"starts with {data[:16]!r}" if data else "is empty"
    raise VideoSourceError(415, f"{source} is not a video: it {start} (expected mp4, mkv/webm, avi or mpeg)")


def check_upload(data: bytes, settings: VideoSourceSettings) -> bytes:
    """An uploaded video, once it is within ``max_bytes`` and starts like a video container."""
    if len(data) > settings.max_bytes:
        raise VideoSourceError(413, f"the upload is {len(data)} bytes, over max_bytes = {settings.max_bytes}")
    sniff_video(data, source="the upload")
    return data


async def fetch_video(url: str, settings: VideoSourceSettings, storage: Storage | None = None) -> bytes:
    """The bytes of the video at ``url`` (``https``/``http``, ``s3`` or ``data``), fetched under every rule
    of ``settings``; :class:`VideoSourceError` says which rule a URL broke. ``storage`` reads ``s3://``
    (default: one configured from the AWS environment variables).

    On timeout an S3 read is abandoned, not stopped: its thread finishes in the background.
    """
    scheme = checked_scheme(url, settings)
    if scheme == "data":
        data = decode_data_url(url, settings)
    else:
        try:
            async with asyncio.timeout(settings.download_timeout_s):
                if scheme == "s3":
                    data = await read_s3(url, settings, storage or Storage())
                else:
                    data = await download(url, settings)
        except TimeoutError:
            limit = settings.download_timeout_s
            raise VideoSourceError(
                504, f"{shown(url)}: not fetched within download_timeout_s = {limit} s"
            ) from None
    sniff_video(data, source=shown(url))
    return data


def decode_data_url(url: str, settings: VideoSourceSettings) -> bytes:
    """The bytes of a ``data:video/...;base64,...`` URL, refused before decoding if they would pass ``max_bytes``."""
    header, comma, payload = url[len("data:") :].partition(",")
    media_type, *parameters = header.split(";")
    media_type = media_type.strip().lower()
    if not comma or "base64" not in (parameter.strip().lower() for parameter in parameters):
        raise VideoSourceError(
            400, f"{shown(url)} is not a base64 data: URL (expected data:video/mp4;base64,...)"
        )
    if not (media_type.startswith("video/") or media_type == "application/octet-stream"):
        named = repr(media_type) if media_type else "none (text/plain)"
        raise VideoSourceError(
            415, f"{shown(url)} has media type {named}; expected video/* or application/octet-stream"
        )
    if len(payload) * 3 // 4 > settings.max_bytes:
        size = len(payload) * 3 // 4
        raise VideoSourceError(
            413, f"{shown(url)} holds about {size} bytes, over max_bytes = {settings.max_bytes}"
        )
    try:
        return base64.b64decode(unquote(payload), validate=True)
    except binascii.Error as error:
        raise VideoSourceError(400, f"{shown(url)}: its data is not valid base64 ({error})") from None


async def read_s3(url: str, settings: VideoSourceSettings, storage: Storage) -> bytes:
    """The object at ``s3://bucket/key``, from a bucket in ``allowed_buckets``."""
    try:
        location = parse_uri(url)
    except StorageError as error:
        raise VideoSourceError(400, str(error)) from None
    if location.bucket not in settings.allowed_buckets:
        allowed = ", ".join(settings.allowed_buckets) or "none: allowed_buckets is empty"
        raise VideoSourceError(
            403, f"{shown(url)}: bucket {location.bucket!r} is not allowed (allowed: {allowed})"
        )
    if not location.key or location.key.endswith("/"):
        raise VideoSourceError(400, f"{shown(url)} names no object (expected s3://bucket/key)")
    try:
        # Storage has no size query, so the cap applies after the read.
        data = await asyncio.to_thread(storage.read_bytes, url)
    except ObjectNotFound as error:
        raise VideoSourceError(422, str(error)) from None
    except StorageError as error:
        raise VideoSourceError(502, str(error)) from None
    if len(data) > settings.max_bytes:
        raise VideoSourceError(
            413, f"{shown(url)} is {len(data)} bytes, over max_bytes = {settings.max_bytes}"
        )
    return data
