"""The SSRF guard: in production, IPNs go only to globally routable addresses.

A merchant chooses where Penny POSTs (``OverrideIPNURL`` on every request), so without a
guard a caller could make Penny reach its own loopback, the private network or a cloud
metadata address (169.254.169.254). With the guard on, the host is resolved once, every
address it resolves to must be global (not loopback, private, link-local, shared, reserved,
multicast or unspecified; IPv4-mapped IPv6 checked as IPv4), and the request is sent to that
checked address (the ``Host`` header and TLS server name stay the URL's), so a DNS answer that
changes between the check and the connection cannot slip through. Redirects are never
followed, guard or not.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


class BlockedAddressError(Exception):
    """The URL's host is, or resolves to, an address the guard refuses."""


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def allowed(address: IpAddress) -> bool:
    """True for a globally routable unicast address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect: the URL to request, and the ``Host``/TLS name to present."""

    url: str
    host_header: str | None = None
    sni_hostname: str | None = None


async def pinned_target(url: str) -> Target:
    """``url`` rewritten to a checked address of its host (raises when refused).

    Raises :class:`BlockedAddressError` when any address is refused and :class:`OSError`
    when the name does not resolve (a transient failure: retried).
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        literal: IpAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        if not allowed(literal):
            raise BlockedAddressError(f"{host} is not a public address")
        return Target(url)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise OSError(f"{host} has no address")
    refused = [str(a) for a in addresses if not allowed(a)]
    if refused:
        raise BlockedAddressError(f"{host} resolves to {refused[0]}, not a public address")
    chosen = addresses[0]
    netloc = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return Target(pinned, host_header=parts.netloc.rsplit("@", 1)[-1], sni_hostname=host)
