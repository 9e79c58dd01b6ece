"""Which IP addresses medcrawl may connect to: public ones, and networks the user allows.

Shared by the crawl's downloader middleware and the one-off fetcher (no Scrapy, no network).
IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, NAT64) are judged
by the IPv4 address they carry, so ``2002:7f00:1::`` is as loopback as ``127.0.0.1``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

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


def _form(ip: ipaddress.IPv6Address) -> str:
    if ip.sixtofour:
        return "6to4"
    return "NAT64" if ip in NAT64 else "IPv4-compatible"
