"""Fetching the video a captioning request names: real HTTP on loopback, real S3 (moto), real video bytes.

The HTTP server below runs in a background thread on 127.0.0.1. Loopback is exactly what
:func:`fetch_video` refuses, so the tests reach it through ``trusted_hosts=["127.0.0.1:<port>"]``,
which exempts that one host and port; a second server on another port (never trusted) counts the
requests that reach it, and must see none.

The refused-URL table runs with every socket ``connect`` patched to fail and record the attempt:
each URL must be refused before any connection is tried.
"""

from __future__ import annotations

import asyncio
import base64
import io
import ipaddress
import socket
import threading
from collections import Counter

import av
import numpy as np
import pydantic
import pytest
from aiohttp import web

from broken_videos import one_frame_mp4
from synpo.serving.addresses import refused_address
from synpo.serving.http_download import host_allowed
from synpo.serving.video_source import (
    VideoSourceError,
    VideoSourceSettings,
    check_upload,
    fetch_video,
    sniff_video,
)

MAX_BYTES = 64 * 1024
TEXT = b"hello, this is a text file and not a video\n"


def answer(**response):
    """A handler that always gives this response (``web.Response`` keyword arguments)."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(**response)

    return handler


class ThreadedServer:
    """An aiohttp app served on 127.0.0.1 (a free port) from a background thread; counts requests per path."""

    def __init__(self, routes: list[web.RouteDef]) -> None:
        self.hits: Counter[str] = Counter()
        self.app = web.Application(middlewares=[self._count])
        self.app.add_routes(routes)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None)

    @web.middleware
    async def _count(self, request: web.Request, handler):
        self.hits[request.path] += 1
        return await handler(request)

    def __enter__(self) -> ThreadedServer:
        ready = threading.Event()

        async def serve() -> None:
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", 0).start()
            self.port = self._runner.addresses[0][1]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="video-source-server", daemon=True)
        self._thread.start()
        assert ready.wait(timeout=30), "the test HTTP server did not start"
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


@pytest.fixture(scope="module")
def mp4() -> bytes:
    return one_frame_mp4()


@pytest.fixture(scope="module")
def other_server(mp4):
    """A loopback server nobody trusts: a redirect that reaches it is a hole."""
    with ThreadedServer([web.get("/video.mp4", answer(body=mp4))]) as server:
        yield server


@pytest.fixture(scope="module")
def server(mp4, other_server):
    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no Content-Length to refuse it by
        await response.prepare(request)
        for _ in range(64):
            await response.write(bytes(16 * 1024))
        return response

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response(body=mp4)

    def redirect(location: str):
        return answer(status=302, headers={"Location": location})

    async def hops(request: web.Request) -> web.Response:
        left = int(request.match_info["left"])
        return web.Response(status=302, headers={"Location": f"/hops/{left - 1}" if left else "/video.mp4"})

    routes = [
        web.get("/video.mp4", answer(body=mp4)),
        web.get("/text.txt", answer(body=TEXT, content_type="text/plain")),
        web.get("/big", big),
        web.get("/big-declared", answer(body=bytes(MAX_BYTES + 1))),
        web.get("/slow", slow),
        web.get("/redirect-ok", redirect("/video.mp4")),
        web.get("/redirect-metadata", redirect("http://169.254.169.254/latest/meta-data/")),
        web.get("/redirect-loopback", redirect(f"http://127.0.0.1:{other_server.port}/video.mp4")),
        web.get("/redirect-file", redirect("file:///etc/passwd")),
        web.get("/loop", redirect("/loop")),
        web.get("/hops/{left}", hops),
        web.get("/404", answer(status=404, text="no such video")),
    ]
    with ThreadedServer(routes) as started:
        yield started


@pytest.fixture
def settings(server) -> VideoSourceSettings:
    return VideoSourceSettings(
        allowed_schemes=["http", "https", "s3", "data"],
        trusted_hosts=[f"127.0.0.1:{server.port}"],
        max_bytes=MAX_BYTES,
        download_timeout_s=2.0,
    )


def fetch(url: str, settings: VideoSourceSettings, storage=None) -> bytes:
    return asyncio.run(fetch_video(url, settings, storage))


def refused(url: str, settings: VideoSourceSettings, storage=None) -> VideoSourceError:
    with pytest.raises(VideoSourceError) as caught:
        fetch(url, settings, storage)
    return caught.value


# -- http(s) against the loopback server -------------------------------------------------------------


def test_a_trusted_server_serves_the_video(server, settings, mp4):
    assert fetch(f"http://127.0.0.1:{server.port}/video.mp4", settings) == mp4


def test_a_redirect_within_the_trusted_server_is_followed(server, settings, mp4):
    assert fetch(f"http://127.0.0.1:{server.port}/redirect-ok", settings) == mp4


def test_exactly_max_redirects_hops_are_followed(server, settings, mp4):
    assert fetch(f"http://127.0.0.1:{server.port}/hops/2", settings) == mp4  # 3 redirects: the limit
    error = refused(f"http://127.0.0.1:{server.port}/hops/3", settings)
    assert error.status == 502 and "max_redirects = 3" in str(error)


def test_a_redirect_loop_stops_at_max_redirects(server, settings):
    before = server.hits["/loop"]
    error = refused(f"http://127.0.0.1:{server.port}/loop", settings)
    assert error.status == 502 and "more than max_redirects = 3 redirects" in str(error)
    assert server.hits["/loop"] - before == 4  # the request and three redirects


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/redirect-metadata", "cloud metadata services such as 169.254.169.254"),
        ("/redirect-loopback", "loopback"),
    ],
)
def test_every_redirect_hop_is_checked(server, other_server, settings, path, words):
    error = refused(f"http://127.0.0.1:{server.port}{path}", settings)
    assert error.status == 403 and words in str(error), str(error)
    assert other_server.hits["/video.mp4"] == 0


def test_a_redirect_to_another_scheme_is_refused(server, settings):
    error = refused(f"http://127.0.0.1:{server.port}/redirect-file", settings)
    assert error.status == 400 and "'file'" in str(error)


def test_redirects_must_stay_within_allowed_hosts(server, settings):
    allowlisted = settings.model_copy(update={"allowed_hosts": ["127.0.0.1"]})
    assert fetch(f"http://127.0.0.1:{server.port}/redirect-ok", allowlisted)
    error = refused(f"http://127.0.0.1:{server.port}/redirect-metadata", allowlisted)
    assert error.status == 403 and "'169.254.169.254' is not in allowed_hosts (127.0.0.1)" in str(error)


def test_text_is_not_a_video(server, settings):
    error = refused(f"http://127.0.0.1:{server.port}/text.txt", settings)
    assert error.status == 415 and "is not a video: it starts with b'hello, this is a'" in str(error)


@pytest.mark.parametrize("path", ["/big", "/big-declared"])
def test_a_body_over_max_bytes_is_refused(server, settings, path):
    error = refused(f"http://127.0.0.1:{server.port}{path}", settings)
    assert error.status == 413 and f"max_bytes = {MAX_BYTES}" in str(error)


def test_a_slow_server_times_out(server, settings):
    quick = settings.model_copy(update={"download_timeout_s": 0.3})
    error = refused(f"http://127.0.0.1:{server.port}/slow", quick)
    assert error.status == 504 and "download_timeout_s = 0.3 s" in str(error)


def test_an_upstream_error_status_is_named(server, settings):
    error = refused(f"http://127.0.0.1:{server.port}/404", settings)
    assert error.status == 502 and "answered 404 Not Found" in str(error)


def test_nothing_listening_is_a_bad_gateway(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: connections are refused
        trusted = settings.model_copy(update={"trusted_hosts": [f"127.0.0.1:{port}"]})
        error = refused(f"http://127.0.0.1:{port}/video.mp4", trusted)
    assert error.status == 502 and "Cannot connect to host 127.0.0.1" in str(error)


def test_credentials_and_query_never_appear_in_messages(server, settings):
    error = refused(f"http://alice:s3cret@127.0.0.1:{server.port}/404?X-Amz-Signature=abc123", settings)
    assert error.status == 502
    assert "s3cret" not in str(error) and "alice" not in str(error) and "abc123" not in str(error)
    assert f"http://127.0.0.1:{server.port}/404?<query>" in str(error)


def test_trust_is_for_the_exact_host_and_port(server, other_server, settings):
    error = refused(f"http://127.0.0.1:{other_server.port}/video.mp4", settings)
    assert error.status == 403 and "loopback" in str(error)
    # A name is checked in the resolver the connection uses: 127.0.0.1 trusted does not make localhost so.
    error = refused(f"http://localhost:{server.port}/video.mp4", settings)
    assert error.status == 403 and "host 'localhost' resolves to" in str(error) and "loopback" in str(error)
    assert other_server.hits["/video.mp4"] == 0


def test_a_trusted_name_is_reached_through_the_resolver(server, mp4):
    by_name = VideoSourceSettings(allowed_schemes=["http"], trusted_hosts=[f"localhost:{server.port}"])
    assert fetch(f"http://localhost:{server.port}/video.mp4", by_name) == mp4


# -- URLs refused before any connection --------------------------------------------------------------


@pytest.fixture
def connections(monkeypatch) -> list:
    """Every socket connect attempted during the test; each one fails."""
    attempts: list = []

    def refuse(sock: socket.socket, address) -> None:
        attempts.append(address)
        raise OSError(f"test: connecting to {address} is not allowed here")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


REFUSED = [
    ("file:///etc/passwd", 400, "scheme 'file'; allowed schemes: https, http"),
    ("ftp://x", 400, "scheme 'ftp'"),
    ("gopher://127.0.0.1:70/_", 400, "scheme 'gopher'"),
    ("example.com/video.mp4", 400, "has no scheme"),
    ("http://169.254.169.254/", 403, "cloud metadata service"),
    ("http://169.254.169.254/latest/meta-data/", 403, "link-local"),
    ("http://127.0.0.1/", 403, "host '127.0.0.1' is a loopback address"),
    ("http://localhost/", 403, "host 'localhost' resolves to"),
    ("http://0x7f000001/", 403, "is 127.0.0.1, a loopback address"),
    ("http://2130706433/", 403, "is 127.0.0.1, a loopback address"),
    ("http://017700000001/", 403, "is 127.0.0.1, a loopback address"),
    ("http://127.1/", 403, "is 127.0.0.1, a loopback address"),
    ("http://[::1]/", 403, "host '::1' is a loopback address"),
    ("http://[::ffff:127.0.0.1]/", 403, "loopback address (this machine), written as IPv6"),
    ("http://10.0.0.1/", 403, "private"),
    ("http://192.168.1.1/", 403, "private"),
    ("http://224.0.0.1/", 403, "multicast"),
    ("http://0.0.0.0/", 403, "unspecified"),
    ("http://[fe80::1]/", 403, "link-local"),
    ("https://user:pw@100.64.0.1:8443/v.mp4", 403, "not a public"),
]


@pytest.mark.parametrize(("url", "status", "words"), REFUSED)
def test_refused_urls_never_connect(connections, url, status, words):
    settings = VideoSourceSettings(allowed_schemes=["https", "http"])
    error = refused(url, settings)
    assert error.status == status and words in str(error), str(error)
    assert "pw@" not in str(error)
    assert connections == []


def test_plain_http_is_off_by_default(connections):
    error = refused("http://example.com/video.mp4", VideoSourceSettings())
    assert error.status == 400 and "scheme 'http'; allowed schemes: https, s3, data" in str(error)


def test_a_host_outside_allowed_hosts_is_refused(connections):
    settings = VideoSourceSettings(allowed_hosts=["videos.example.com", "*.cdn.example.com"])
    for url in (
        "https://evil.example.org/v.mp4",
        "https://cdn.example.com/v.mp4",
        "https://xvideos.example.com/",
    ):
        error = refused(url, settings)
        assert error.status == 403 and "is not in allowed_hosts" in str(error), url
    assert connections == []


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("videos.example.com", True),
        ("VIDEOS.example.com.", True),
        ("a.cdn.example.com", True),
        ("a.b.cdn.example.com", True),
        ("cdn.example.com", False),  # '*.' is for subdomains only
        ("evilcdn.example.com", False),
        ("videos.example.com.evil.org", False),
    ],
)
def test_host_patterns(host, allowed):
    patterns = VideoSourceSettings(allowed_hosts=["videos.example.com", "*.cdn.example.com"]).allowed_hosts
    assert host_allowed(host.lower(), patterns) is allowed


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "cloud metadata"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("100.64.0.1", "not a public"),
        ("0.0.0.0", "unspecified"),
        ("255.255.255.255", "private"),
        ("::", "unspecified"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:169.254.169.254", "169.254.169.254 live), written as IPv6"),
        ("::127.0.0.1", "loopback"),  # deprecated IPv4-compatible form
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("2002:a9fe:a9fe::1", "cloud metadata"),  # 6to4 around 169.254.169.254
        ("64:ff9b::a00:1", "private"),  # NAT64 around 10.0.0.1
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("2002:808:808::1", None),  # 6to4 around a public address
    ],
)
def test_refused_address(address, words):
    reason = refused_address(ipaddress.ip_address(address))
    assert reason is None if words is None else words in reason, reason


# -- data: URLs --------------------------------------------------------------------------------------


def data_url(data: bytes, media_type: str = "video/mp4") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def test_a_data_url_is_decoded(settings, mp4, connections):
    assert fetch(data_url(mp4), settings) == mp4
    assert fetch(data_url(mp4, "application/octet-stream"), settings) == mp4
    assert fetch(data_url(mp4, "video/mp4;codecs=avc1"), settings) == mp4
    assert connections == []


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("data:video/mp4,AAAAGGZ0eXA", 400, "is not a base64 data: URL"),
        ("data:video/mp4;base64", 400, "is not a base64 data: URL"),
        ("data:video/mp4;base64,!!not base64!!", 400, "not valid base64"),
        ("data:text/plain;base64,aGVsbG8=", 415, "media type 'text/plain'"),
        ("data:;base64,aGVsbG8=", 415, "media type none (text/plain)"),
        ("data:video/mp4;base64," + "A" * (MAX_BYTES * 2), 413, "over max_bytes"),
        (data_url(TEXT), 415, "is not a video: it starts with b'hello"),
    ],
)
def test_bad_data_urls(settings, url, status, words):
    error = refused(url, settings)
    assert error.status == status and words in str(error), str(error)
    assert len(str(error)) < 300  # the payload is not echoed


# -- s3:// against moto ------------------------------------------------------------------------------


def test_s3_from_an_allowed_bucket(s3_storage, settings, mp4):
    storage, bucket = s3_storage
    storage.write_bytes(f"s3://{bucket}/videos/a.mp4", mp4)
    allowed = settings.model_copy(update={"allowed_buckets": [bucket]})
    assert fetch(f"s3://{bucket}/videos/a.mp4", allowed, storage) == mp4


def test_s3_refusals(s3_storage, settings, mp4):
    storage, bucket = s3_storage
    storage.write_bytes(f"s3://{bucket}/big.mp4", mp4 + bytes(MAX_BYTES))
    storage.write_bytes(f"s3://{bucket}/notes.txt", TEXT)
    error = refused(f"s3://{bucket}/videos/a.mp4", settings, storage)
    assert error.status == 403 and "none: allowed_buckets is empty" in str(error)
    allowed = settings.model_copy(update={"allowed_buckets": [bucket]})
    error = refused("s3://someone-elses-bucket/a.mp4", allowed, storage)
    assert error.status == 403 and f"'someone-elses-bucket' is not allowed (allowed: {bucket})" in str(error)
    cases = [
        ("missing.mp4", 422, "no object at"),
        ("big.mp4", 413, "over max_bytes"),
        ("notes.txt", 415, "not a video"),
    ]
    for key, status, words in cases:
        error = refused(f"s3://{bucket}/{key}", allowed, storage)
        assert error.status == status and words in str(error), (key, str(error))
    error = refused(f"s3://{bucket}/", allowed, storage)
    assert error.status == 400 and "names no object" in str(error)


# -- uploads and sniffing ----------------------------------------------------------------------------


def encoded(container_format: str, codec: str) -> bytes:
    """One black 32x32 frame in a real container."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("container_format", "codec", "expected"),
    [
        ("mp4", "libx264", "mp4"),
        ("mov", "libx264", "mov"),
        ("matroska", "libx264", "webm/matroska"),
        ("webm", "libvpx", "webm/matroska"),
        ("avi", "mpeg4", "avi"),
        ("mpegts", "mpeg2video", "mpeg-ts"),
        ("mpeg", "mpeg2video", "mpeg-ps"),
    ],
)
def test_sniff_real_containers(container_format, codec, expected):
    assert sniff_video(encoded(container_format, codec)) == expected


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "is empty"),
        (TEXT, "starts with b'hello"),
        (b"\x89PNG\r\n\x1a\n" + bytes(32), "starts with b'\\x89PNG"),
    ],
)
def test_sniff_refuses_what_is_not_a_video(data, words):
    with pytest.raises(VideoSourceError, match="not a video") as caught:
        sniff_video(data)
    assert caught.value.status == 415 and words in str(caught.value)


def test_check_upload(settings, mp4):
    assert check_upload(mp4, settings) == mp4
    # Only the header is sniffed: a truncated file passes here, and decoding it fails later.
    assert check_upload(mp4[:16], settings) == mp4[:16]
    for data, status, words in [
        (TEXT, 415, "the upload is not a video"),
        (bytes(MAX_BYTES + 1), 413, "over max_bytes"),
    ]:
        with pytest.raises(VideoSourceError) as caught:
            check_upload(data, settings)
        assert caught.value.status == status and words in str(caught.value)


# -- settings ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("update", "words"),
    [
        ({"trusted_hosts": ["minio.data.svc"]}, "'minio.data.svc' is not 'host:port'"),
        ({"trusted_hosts": ["minio:http"]}, "'minio:http' is not 'host:port'"),
        ({"allowed_schemes": ["file"]}, "allowed_schemes"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_redirect": 1}, "max_redirect"),
    ],
)
def test_settings_name_the_bad_value(update, words):
    with pytest.raises(pydantic.ValidationError, match=words):
        VideoSourceSettings(**update)


def test_settings_are_frozen_and_documented():
    settings = VideoSourceSettings(trusted_hosts=["[::1]:9000"], allowed_hosts=["Videos.Example.COM."])
    assert settings.allowed_hosts == ["videos.example.com"]
    with pytest.raises(pydantic.ValidationError):
        settings.max_bytes = 1
    assert all(field.description for field in VideoSourceSettings.model_fields.values())
