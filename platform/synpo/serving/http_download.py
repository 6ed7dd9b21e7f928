"""Download an http(s) URL for :func:`synpo.serving.video_source.fetch_video`, checking every hop.

Redirects are followed here (aiohttp's own following is off), so each ``Location`` is checked like the
URL the request gave: scheme, ``allowed_hosts``, and the addresses the host resolves to. Those addresses
are checked inside the resolver the connection uses (:class:`~synpo.serving.addresses.GuardedResolver`),
and a host written as a number (which aiohttp connects to without resolving) is checked here before the
request. No proxy from the environment is used (``trust_env=False``: a proxy would make the connection for
us, to addresses we never saw) and no cookie is kept between hops.
"""

from __future__ import annotations

import aiohttp
import yarl

from synpo.serving.addresses import (
    AddressRefused,
    GuardedResolver,
    literal_address,
    parse_host_port,
    refused_address,
)
from synpo.serving.source_settings import VideoSourceError, VideoSourceSettings, checked_scheme, shown

REDIRECT_STATUSES = (301, 302, 303, 307, 308)


def checked_hop(url: str, settings: VideoSourceSettings, trusted: frozenset[tuple[str, int]]) -> yarl.URL:
    """``url`` (the request's or a redirect's) as aiohttp will fetch it, if its scheme, host and (for a host
    written as a number) address are allowed. A host name's addresses are checked as it is resolved."""
    scheme = checked_scheme(url, settings)
    if scheme not in ("http", "https"):
        raise VideoSourceError(400, f"redirect to {shown(url)} not followed: only http(s) redirects are")
    try:
        target = yarl.URL(url)
    except ValueError as error:
        raise VideoSourceError(400, f"{shown(url)} is not a valid URL ({error})") from None
    host, port = (target.raw_host or "").lower(), target.port or 0
    if not host:
        raise VideoSourceError(400, f"{shown(url)} has no host")
    if settings.allowed_hosts and not host_allowed(host, settings.allowed_hosts):
        allowed = ", ".join(settings.allowed_hosts)
        raise VideoSourceError(403, f"{shown(url)}: host {host!r} is not in allowed_hosts ({allowed})")
    address = literal_address(target.host or host)
    reason = refused_address(address) if address is not None and (host, port) not in trusted else None
    if reason is not None:
        spelled = "" if str(address) == host else f"{address}, "  # 0x7f000001 is 127.0.0.1, ...
        raise VideoSourceError(403, f"{shown(url)}: host {host!r} is {spelled}{reason}")
    return target


def host_allowed(host: str, patterns: list[str]) -> bool:
    """Whether ``host`` is one of ``patterns`` or a subdomain of a ``*.domain`` pattern."""
    host = host.rstrip(".")
    return any(
        host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])) for pattern in patterns
    )


async def download(url: str, settings: VideoSourceSettings) -> bytes:
    """The body of an http(s) URL, following redirects here so that every hop is checked."""
    trusted = frozenset(parse_host_port(entry) for entry in settings.trusted_hosts)
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(trusted), use_dns_cache=False)
    session = aiohttp.ClientSession(connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar())
    async with session:
        current = url
        for _ in range(settings.max_redirects + 1):
            target = checked_hop(current, settings, trusted)
            try:
                async with session.get(target, allow_redirects=False) as response:
                    if response.status in REDIRECT_STATUSES and "Location" in response.headers:
                        current = redirect_target(target, response.headers["Location"])
                        continue
                    if not 200 <= response.status < 300:
                        status = f"{response.status} {response.reason or ''}".strip()
                        raise VideoSourceError(502, f"{shown(current)}: the server answered {status}")
                    return await read_capped(response, shown(current), settings.max_bytes)
            except AddressRefused as error:
                raise VideoSourceError(403, f"{shown(current)}: {error}") from None
            except aiohttp.InvalidURL:
                raise VideoSourceError(400, f"{shown(current)} is not a URL that can be fetched") from None
            except aiohttp.ClientError as error:
                raise VideoSourceError(502, f"{shown(current)}: {connection_problem(error)}") from None
    raise VideoSourceError(502, f"{shown(url)}: more than max_redirects = {settings.max_redirects} redirects")


def redirect_target(source: yarl.URL, location: str) -> str:
    """Where a redirect from ``source`` with this ``Location`` header leads (it may be relative)."""
    try:
        return str(source.join(yarl.URL(location)))
    except ValueError as error:
        where = shown(str(source))
        raise VideoSourceError(
            502, f"{where} redirects to {shown(location)!r}, which is not a URL ({error})"
        ) from None


def connection_problem(error: aiohttp.ClientError) -> str:
    """What went wrong, in aiohttp's words unless they hold the URL (which can carry credentials)."""
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve host {error.host!r}"
    if isinstance(error, aiohttp.ClientResponseError | aiohttp.InvalidURL):
        return f"download failed ({type(error).__name__})"
    return f"download failed ({type(error).__name__}: {error})"


async def read_capped(response: aiohttp.ClientResponse, source: str, max_bytes: int) -> bytes:
    """The response body, stopped as soon as it passes ``max_bytes``."""
    if response.content_length is not None and response.content_length > max_bytes:
        raise VideoSourceError(
            413, f"{source} is {response.content_length} bytes, over max_bytes = {max_bytes}"
        )
    chunks, total = [], 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > max_bytes:
            raise VideoSourceError(413, f"{source} sends more than max_bytes = {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
