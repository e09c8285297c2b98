"""Which web addresses the bot may read: public ones only, so that a docs URL someone adds can't make the bot read
its own network (Redis, a cloud's metadata service at 169.254.169.254, an admin page on 127.0.0.1).

A URL is checked twice: `check_url` before each request (its scheme, no user name or password, an IP address written
in it, which aiohttp connects to without asking any resolver), and `PublicResolver` when aiohttp connects (the
addresses a host name resolves to), so that a name that resolves to a private address, a second answer that differs
from the first (DNS rebinding) and every redirect are covered. The operator may open private hosts, ports or networks
with KNOWLEDGE_ALLOW_PRIVATE_URLS (`PrivateAllowance`).
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from config.env import ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "KNOWLEDGE_ALLOW_PRIVATE_URLS"
WEB_SCHEMES = ("http", "https")
HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$")
BRACKETED_HOST_PORT = re.compile(r"^\[(?P<host>[0-9a-f:.]+)\]:(?P<port>\d+)$")
# The well-known NAT64 prefix: its addresses reach the IPv4 address in their last 32 bits.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class AddressRefused(Exception):
    """A URL the bot won't read; its text is a sentence for the person who added it."""


class PrivateAddressError(OSError):
    """Raised by `PublicResolver` when a host resolves to no public address: aiohttp wraps resolver errors in a
    `ClientConnectorDNSError`, whose `os_error` is this, carrying the `AddressRefused`."""

    def __init__(self, refused: AddressRefused) -> None:
        super().__init__(errno.EACCES, str(refused))
        self.refused = refused


@dataclass(frozen=True)
class PrivateAllowance:
    """The private hosts, host:ports and networks the operator lets the bot read (KNOWLEDGE_ALLOW_PRIVATE_URLS)."""

    hosts: frozenset[str] = frozenset()  # lower-case host names, any port
    host_ports: frozenset[tuple[str, int]] = frozenset()  # (lower-case host name or IP address, port)
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, raw: str) -> PrivateAllowance:
        hosts: set[str] = set()
        host_ports: set[tuple[str, int]] = set()
        networks: list[IPNetwork] = []
        for entry in re.split(r"[\s,]+", raw.strip()):
            if not entry:
                continue
            parsed = _parse_entry(entry)
            if isinstance(parsed, str):
                hosts.add(parsed)
            elif isinstance(parsed, tuple):
                host_ports.add(parsed)
            else:
                networks.append(parsed)
        return cls(frozenset(hosts), frozenset(host_ports), tuple(networks))

    def allows(self, host: str, port: int, address: IPAddress) -> bool:
        host = host.lower().rstrip(".")
        if host in self.hosts or (host, port) in self.host_ports or (str(address), port) in self.host_ports:
            return True
        candidates = {address, _embedded_ipv4(address) or address}
        return any(candidate in network for candidate in candidates for network in self.networks)


def _parse_entry(entry: str) -> str | tuple[str, int] | IPNetwork:
    """One entry of the setting: a host name, a (host, port), or a network (an IP address alone is one of /32)."""
    lowered = entry.lower()
    try:
        if "/" in lowered:
            return ipaddress.ip_network(lowered, strict=False)
        bracketed = BRACKETED_HOST_PORT.match(lowered)
        if bracketed:
            return str(ipaddress.IPv6Address(bracketed["host"])), _port(bracketed["port"])
        if lowered.count(":") > 1:
            return ipaddress.ip_network(lowered)  # an IPv6 address alone
        if ":" in lowered:
            host, port = lowered.split(":")
            return _host(host), _port(port)
        if _ip_address(lowered) is not None:
            return ipaddress.ip_network(lowered)
        return _host(lowered)
    except ValueError:
        raise ConfigError(
            f"{SETTING} contains {entry!r}: expected host names (intranet.local), host:port (127.0.0.1:8123, "
            "[::1]:8080) or networks (10.0.0.0/8), separated by spaces or commas"
        ) from None


def _host(text: str) -> str:
    address = _ip_address(text)
    if address is not None:
        return str(address)
    if not HOST_NAME.match(text):
        raise ValueError(text)
    return text.rstrip(".")


def _port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise ValueError(text)
    return port


def _ip_address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches (IPv4-mapped, 6to4, NAT64), if it is one of those."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Reachable on the internet: not loopback, private, link-local, shared (100.64/10), multicast, reserved…"""
    if not address.is_global or address.is_multicast:
        return False
    embedded = _embedded_ipv4(address)
    return embedded is None or is_public(embedded)


def check_url(url: URL, allowance: PrivateAllowance) -> None:
    """Raise `AddressRefused` for a URL the bot won't request; a host name's addresses are `PublicResolver`'s."""
    if url.scheme not in WEB_SCHEMES:
        raise AddressRefused(f"{url} is not a web page's address (http or https): I only read web pages.")
    if url.user is not None or url.password is not None:
        raise AddressRefused(f"{url.host}: I don't read addresses with a user name or password in them.")
    if not url.host:
        raise AddressRefused(f"{url} has no host name: I can't read it.")
    address = _ip_address(url.host)
    port = url.port or 0
    if address is not None and not is_public(address) and not allowance.allows(url.host, port, address):
        raise AddressRefused(f"{url.host} is a private address: I only read public sites.")


class PublicResolver(AbstractResolver):
    """aiohttp's default resolver, keeping only the public addresses (and those the allowance opens)."""

    def __init__(self, allowance: PrivateAllowance, resolver: AbstractResolver | None = None) -> None:
        self._allowance = allowance
        self._resolver = resolver if resolver is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        resolved = await self._resolver.resolve(host, port, family)
        kept = [result for result in resolved if self._may_reach(host, port, result["host"])]
        if not kept:
            refused = ", ".join(sorted({result["host"] for result in resolved}))
            raise PrivateAddressError(
                AddressRefused(f"{host} resolves to a private address ({refused}): I only read public sites.")
            )
        return kept

    def _may_reach(self, host: str, port: int, resolved: str) -> bool:
        address = _ip_address(resolved.partition("%")[0])  # a link-local IPv6 address may name its zone: fe80::1%eth0
        if address is None:
            return False
        return is_public(address) or self._allowance.allows(host, port, address)

    async def close(self) -> None:
        await self._resolver.close()
