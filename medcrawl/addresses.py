"""Which IP addresses medcrawl may connect to: public ones, and networks the user allows.

Shared by the crawl's downloader middleware, the browser of JavaScript pages and the one-off
fetcher (no Scrapy; names are resolved by the caller's resolver).
IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, NAT64) are judged
by the IPv4 address they carry, so ``2002:7f00:1::`` is as loopback as ``127.0.0.1``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from w3lib.url import safe_url_string

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

KINDS = ("loopback", "link_local", "multicast", "unspecified", "reserved", "private", "site_local")
# Special-purpose blocks the ipaddress module calls global: NAT64 local use (RFC 8215) and the
# IETF protocol assignments (RFC 6890), whose only global members are 192.0.0.9 and .10.
SPECIAL = tuple(ipaddress.ip_network(n) for n in ("64:ff9b:1::/48", "192.0.0.0/24"))
SPECIAL_GLOBAL = tuple(ipaddress.ip_address(a) for a in ("192.0.0.9", "192.0.0.10"))
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """CIDR strings -> networks; raises ValueError naming the bad one."""
    out = []
    for cidr in cidrs:
        try:
            out.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not a network: {cidr!r} ({exc})") from None
    return tuple(out)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, NAT64), if any."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip in NAT64 or (ip in IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(address: str | IPAddress, allowed: Iterable[Network] = ()) -> str | None:
    """Why an IP address must not be fetched (e.g. 'loopback', '6to4 private'), or None."""
    ip = ipaddress.ip_address(str(address).split("%", 1)[0])
    allowed = tuple(allowed)
    if any(ip.version == net.version and ip in net for net in allowed):
        return None
    if ip.version == 6 and (inner := embedded_ipv4(ip)) is not None:
        problem = address_problem(inner, allowed)
        return problem if problem is None or ip.ipv4_mapped else f"{_form(ip)} {problem}"
    for kind in KINDS:
        if getattr(ip, f"is_{kind}", False):
            return kind.replace("_", "-")
    if any(ip.version == net.version and ip in net for net in SPECIAL) and ip not in SPECIAL_GLOBAL:
        return "special-purpose"
    return None if ip.is_global else "non-global"


class CrawlAddressGuard:
    """A crawl's rule: the hosts the user named go anywhere, any other host only to allowed addresses.

    Named: the seeds' hosts, ``allowed_domains`` and their sub-domains, and the addresses the named
    hosts resolve to. ``resolve`` is the caller's resolver: an async ``host -> addresses`` function.
    """

    def __init__(self, seeds: Iterable[str], domains: Iterable[str], allowed: Iterable[Network],
                 resolve: Callable[[str], Awaitable[list[str]]]):
        self.domains = [d.lower() for d in domains if d]
        self.hosts = {urlsplit(safe_url_string(url)).hostname or "" for url in seeds} - {""} | set(self.domains)
        self.allowed, self.resolve = tuple(allowed), resolve
        self._named_addresses: set[str] | None = None

    @classmethod
    def of_spider(cls, spider: object, allowed: Iterable[Network],
                  resolve: Callable[[str], Awaitable[list[str]]]) -> CrawlAddressGuard:
        """The guard for what a spider was asked to crawl (its ``start_urls`` and ``allowed_domains``)."""
        return cls(getattr(spider, "start_urls", None) or [], getattr(spider, "allowed_domains", None) or [],
                   allowed, resolve)

    def is_named(self, host: str) -> bool:
        return host in self.hosts or any(host.endswith(f".{domain}") for domain in self.domains)

    def problem(self, address: str) -> str | None:
        """Why a host that is not named may not be fetched at ``address``, or None."""
        return None if address in (self._named_addresses or ()) else address_problem(address, self.allowed)

    async def refusal(self, host: str) -> tuple[str, str] | None:
        """(problem, address) when ``host`` must not be fetched; None when it may or does not resolve."""
        if self._named_addresses is None:
            self._named_addresses = set()
            for name in self.hosts:
                self._named_addresses.update(await self.resolve(name))
        if not host or self.is_named(host):
            return None
        for address in await self.resolve(host):
            if problem := self.problem(address):
                return problem, address
        return None


def _form(ip: ipaddress.IPv6Address) -> str:
    if ip.sixtofour:
        return "6to4"
    return "NAT64" if ip in NAT64 else "IPv4-compatible"
