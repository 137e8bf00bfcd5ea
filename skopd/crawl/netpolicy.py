"""Where the crawler may connect: the address policy, applied on the address actually dialled.

Unless `crawler.allow_private_networks` is true, no connection goes to a loopback, private,
link-local, CGNAT, multicast, reserved or unspecified address, IPv4 or IPv6, including IPv4
addresses embedded in IPv6 ones (mapped, compatible, NAT64, 6to4, Teredo). The checks:

- `check_address` is the rule itself, usable from anywhere (the rendering proxy too);
- `socket_factory` is handed to aiohttp's connector and runs for every socket it opens,
  with the address about to be dialled: whatever aiohttp resolved, cached or parsed, this is
  what counts, so names resolving to forbidden addresses and DNS rebinding are covered;
- `resolver` drops forbidden addresses from resolutions, so a name with a public and a
  private address uses the public one and a wholly private name fails with a clear message;
- `host_problem` refuses IP literals in every spelling (decimal `2130706433`, octal
  `0177.0.0.1`, hex `0x7f.1`, short `127.1`) before any request, with a clear message.

`crawler.allowed_networks` (CIDRs) and `crawler.allowed_hosts` (names) let chosen private
destinations through.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

REFUSAL = "refused by the address policy (crawler.allow_private_networks is false)"
# Forbidden although Python's `is_global` may call them global.
_EXTRA_FORBIDDEN: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "198.18.0.0/15",
        "64:ff9b:1::/48",
        "fc00::/7",
        "fec0::/10",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
# Characters of a host that inet_aton could read as an IPv4 address in some spelling.
_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+")
_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?\.?")
_GRANTED_MAX = 1024


class BlockedAddress(OSError):
    """A connection the policy refuses; an OSError so that aiohttp reports it as a
    connection failure (with this exception as its `os_error`)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address leads to: mapped, compatible, translated, NAT64,
    6to4 and Teredo forms."""
    found: list[ipaddress.IPv4Address] = []
    if addr.ipv4_mapped is not None:
        found.append(addr.ipv4_mapped)
    low32 = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr in _COMPATIBLE or addr in _TRANSLATED or addr in _NAT64:
        found.append(low32)
    if addr.sixtofour is not None:
        found.append(addr.sixtofour)
    if addr.teredo is not None:
        found.extend(addr.teredo)
    return found


def _own_forbidden(addr: IPAddress) -> bool:
    """Forbidden by the address's own kind (not by an IPv4 address embedded in it)."""
    return (
        not addr.is_global
        or addr.is_multicast
        or addr.is_reserved
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_private
        or addr.is_unspecified
        or (isinstance(addr, ipaddress.IPv6Address) and addr.is_site_local)
        or any(addr in net for net in _EXTRA_FORBIDDEN)
    )


def is_forbidden(addr: IPAddress) -> bool:
    """Loopback, private, link-local, CGNAT, multicast, reserved or unspecified, also when
    embedded in an IPv6 address."""
    if isinstance(addr, ipaddress.IPv4Address):
        return _own_forbidden(addr)
    embedded = _embedded_ipv4(addr)
    if addr.ipv4_mapped is not None:
        return _own_forbidden(addr.ipv4_mapped)  # the same as the IPv4 address itself
    if addr in _NAT64:  # reserved by its prefix, but the address it leads to decides
        return _own_forbidden(embedded[0])
    return _own_forbidden(addr) or any(_own_forbidden(v4) for v4 in embedded)


def parse_address(text: str) -> IPAddress | None:
    """The address an IP literal (a socket address or a URL host, with or without brackets
    or a zone) stands for, in any spelling that a resolver would accept; None for a name."""
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            addr = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return None
        return addr
    host = host[:-1] if host.endswith(".") else host
    if not host or not _NUMERIC_HOST.fullmatch(host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


class AddressPolicy:
    """The rule for one daemon: open (private networks allowed), or closed with allow-lists."""

    def __init__(
        self,
        allow_private: bool,
        allowed_hosts: Iterable[str] = (),
        allowed_networks: Iterable[str] = (),
    ) -> None:
        self.open = allow_private
        self.hosts = frozenset(normalize_host(h) for h in allowed_hosts)
        self.networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in allowed_networks
        )
        # Addresses that allowed host names resolved to: the socket check lets them through.
        self._granted: OrderedDict[IPAddress, None] = OrderedDict()

    def allows(self, addr: IPAddress) -> bool:
        if self.open or not is_forbidden(addr):
            return True
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr.version == net.version and addr in net for net in self.networks)

    def check_address(self, ip: str | IPAddress, host: str | None = None) -> None:
        """Raise BlockedAddress unless a connection to `ip` is allowed."""
        addr = parse_address(ip) if isinstance(ip, str) else ip
        if addr is None:
            raise BlockedAddress(f"{ip!r} is not an IP address; {REFUSAL}")
        if not self.allows(addr):
            name = f"{host} resolves to " if host and parse_address(host) is None else ""
            raise BlockedAddress(
                f"{name}{addr} is a private, loopback, link-local or reserved address; {REFUSAL}"
            )

    def host_allowed(self, host: str) -> bool:
        return bool(self.hosts) and normalize_host(host) in self.hosts

    def host_problem(self, host: str) -> str | None:
        """Why a URL host may not be requested, known without resolving it, or None."""
        if not host:
            return "no host"
        addr = parse_address(host)
        if addr is None:
            if _HOST_NAME.fullmatch(host) or not host.isascii():
                return None  # a name (yarl encodes international ones)
            return f"{host!r} is not a valid host name"
        if self.allows(addr):
            return None
        shown = host if normalize_host(host) == str(addr) else f"{host} ({addr})"
        return f"{shown} is a private, loopback, link-local or reserved address; {REFUSAL}"

    def resolver(self, inner: AbstractResolver) -> AbstractResolver:
        return inner if self.open else GuardedResolver(inner, self)

    def socket_factory(self, addr_info: Any) -> socket.socket:
        """aiohttp's connector calls this for every socket, with the address it will dial."""
        family, type_, proto, _, address = addr_info
        addr = parse_address(str(address[0]))
        if addr not in self._granted:  # granted: what an allowed host name resolved to
            self.check_address(addr or str(address[0]))
        return socket.socket(family=family, type=type_, proto=proto)

    def grant(self, addr: IPAddress) -> None:
        self._granted[addr] = None
        self._granted.move_to_end(addr)
        while len(self._granted) > _GRANTED_MAX:
            self._granted.popitem(last=False)


class GuardedResolver(AbstractResolver):
    """Drops forbidden addresses from every resolution; none left is a refusal. Names in
    `crawler.allowed_hosts` keep their addresses, which are granted to the socket check."""

    def __init__(self, inner: AbstractResolver, policy: AddressPolicy) -> None:
        self._inner = inner
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        policy = self._policy
        literal = parse_address(host)
        if literal is not None:
            policy.check_address(literal, host)
            results = await self._inner.resolve(str(literal), port, family)
        else:
            results = await self._inner.resolve(host, port, family)
        if literal is None and policy.host_allowed(host):
            for r in results:
                addr = parse_address(r["host"])
                if addr is not None:
                    policy.grant(addr)
            return results
        allowed = []
        for r in results:
            addr = parse_address(r["host"])
            if addr is not None and policy.allows(addr):
                allowed.append(r)
        if not allowed:
            shown = results[0]["host"] if results else "no address"
            raise BlockedAddress(
                f"{host} resolves to {shown}, a private, loopback, link-local or reserved "
                f"address; {REFUSAL}"
            )
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def normalize_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def network_problem(value: str) -> str | None:
    """Why `value` is not a CIDR network (for config validation), or None."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        return str(exc)
    return None
