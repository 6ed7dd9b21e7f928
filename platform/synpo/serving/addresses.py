"""Which network addresses a server-side fetch may connect to: public unicast ones only.

A URL a client gives us is fetched from inside our network, so without a check it can reach what only
we can: ``169.254.169.254`` (the cloud metadata service, which hands out the node's credentials), the
Ray dashboard on loopback, pods and databases on private addresses. :func:`refused_address` says why
an address is off limits; it also looks inside IPv6 forms that carry an IPv4 address
(``::ffff:127.0.0.1``, 6to4 ``2002:7f00:1::``, NAT64 ``64:ff9b::7f00:1``), which would otherwise
smuggle a private IPv4 address past a check that only reads the IPv6 flags.

Checking a host name and then connecting by name leaves a gap: the name can resolve to a public
address for the check and to ``127.0.0.1`` a moment later for the connection (DNS rebinding).
:class:`GuardedResolver` closes it by being the resolver the HTTP client connects through, so the
addresses it checks are the addresses connected to. Hosts written as numbers never reach a resolver
(aiohttp connects to them directly), so callers check them with :func:`literal_address` first.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from synpo.errors import UserError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(UserError):
    """A host resolved to an address :func:`refused_address` refuses; the message names host, address and reason."""


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the forms that carry one."""
    if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d
        return address.ipv4_mapped
    if address.sixtofour is not None:  # 2002:AABB:CCDD::/48 routes to a.b.c.d
        return address.sixtofour
    if address in NAT64:  # a NAT64 gateway translates 64:ff9b::a.b.c.d to a.b.c.d
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(address))
    return None


def refused_address(address: Address) -> str | None:
    """Why a fetch must not connect to ``address`` (a phrase such as "a loopback address (this machine)"),
    or ``None`` for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        reason = refused_address(inner) if inner is not None else None
        if reason is not None:
            return f"{reason}, written as IPv6 {address}"
        if address.ipv4_mapped is not None:  # the system connects to the IPv4 address itself, just judged
            return None
    # In order: the first that matches names the reason (127.0.0.1 is also "private", 169.254.x.x too).
    if address.is_unspecified:
        return "the unspecified address, which reaches this machine"
    if address.is_loopback:
        return "a loopback address (this machine)"
    if address.is_link_local:
        return "a link-local address (where cloud metadata services such as 169.254.169.254 live)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private-network address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:  # e.g. 100.64.0.0/10 (carrier-grade NAT), 192.0.0.0/24
        return "not a public (globally routable) address"
    return None


def literal_address(host: str) -> Address | None:
    """The address ``host`` is, if it is written as a number in any form the C resolver accepts
    (``127.0.0.1``, ``::1``, but also ``127.1``, ``0x7f000001``, ``2130706433``, ``017700000001``);
    ``None`` for a host name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))  # the legacy spellings
        except OSError:
            return None  # a name: the resolver checks what it resolves to


def parse_host_port(entry: str) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:9000"`` for IPv6) as ``(host, port)`` with the host lower-cased."""
    host, colon, port = entry.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{entry!r} is not 'host:port' (e.g. 'minio.data.svc:9000' or '[::1]:9000')")
    return host.lower(), int(port)


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses a host if any address it resolves to is refused.

    Give it to ``aiohttp.TCPConnector(resolver=..., use_dns_cache=False)``: the connector then connects
    only to addresses this resolver has checked. ``trusted`` ``(host, port)`` pairs skip the check
    (and only that exact host and port).
    """

    def __init__(self, trusted: frozenset[tuple[str, int]] = frozenset()) -> None:
        self._resolver = ThreadedResolver()
        self._trusted = trusted

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        if (host.lower(), port) in self._trusted:
            return results
        for result in results:
            reason = refused_address(ipaddress.ip_address(result["host"]))
            if reason is not None:
                raise AddressRefused(f"host {host!r} resolves to {result['host']}, {reason}")
        return results

    async def close(self) -> None:
        await self._resolver.close()
