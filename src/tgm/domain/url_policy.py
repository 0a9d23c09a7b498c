"""Which URLs an external-API command may call (SSRF policy), shared by the manager bot when a command is
saved (`check_url`) and by the HTTP adapter at call time (`check_url` + `check_address` on every address
the host resolves to; the adapter then connects to the address it checked, so DNS cannot swap it).

The API's answer is posted back into the chat and any manager-bot user can configure API commands, so a
URL that reaches the dispatcher's own network (loopback, private ranges, link-local incl. the cloud
metadata address 169.254.169.254, CGNAT, multicast, reserved, IPv4 hidden in IPv6) is refused.

The ranges are an explicit list (IANA's special-purpose registries), not `ipaddress.is_global`, whose answers
changed between Python patch releases; IPv6 must moreover be global unicast (2000::/3). Only the usual web ports
are allowed (`ALLOWED_PORTS`), so a public host cannot be used to probe other services.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult, urlsplit

MAX_URL_CHARS = 2048
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
# Hosts that inet_aton would read as an IPv4 address in a non-dotted-quad form: 2130706433, 0x7f000001,
# 0177.0.0.1, 127.1. Only canonical dotted quads are accepted as IP literals.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
ALLOWED_PORTS = frozenset({80, 443, 8080, 8443})

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_DENIED_V4 = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments (192.0.0.192 among them)
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
    )
)
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_DENIED_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "2001::/23",  # IETF protocol assignments (Teredo 2001::/32 is judged by its IPv4 first)
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4 (judged by its IPv4 first)
        "3fff::/20",  # documentation
    )
)


class UrlRefused(ValueError):
    """The URL or the address it resolves to is not allowed; the message is safe to show the user.

    `code` is the manager bot's reason code (InvalidSetting): url_invalid, url_unparsable, url_scheme,
    url_credentials."""

    def __init__(self, message: str, code: str = "url_invalid") -> None:
        super().__init__(message)
        self.code = code


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public_address(address: IpAddress) -> bool:
    """Publicly routable unicast only, by explicit ranges; IPv4 embedded in IPv6 (mapped, 6to4, Teredo, NAT64) is
    judged as that IPv4 address, and IPv6 outside global unicast (::/96, ::ffff:0:0/96, fec0::/10, ULA, link-local,
    multicast, 64:ff9b:1::/48…) is refused."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        inner = _embedded_v4(address)
        if inner is not None:
            return is_public_address(inner)
        return address in _GLOBAL_UNICAST_V6 and not any(address in net for net in _DENIED_V6)
    return not any(address in net for net in _DENIED_V4)


def check_address(raw: str, allow_private: bool = False) -> IpAddress:
    """The parsed address when it may be called; raises UrlRefused otherwise."""
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        raise UrlRefused("the host does not resolve to a valid address") from None
    if not allow_private and not is_public_address(address):
        raise UrlRefused("the URL points to a private or reserved address")
    return address


def check_url(
    url: str, allow_private: bool = False, allowed_ports: frozenset[int] | None = ALLOWED_PORTS
) -> SplitResult:
    """Syntax and literal-host checks (no DNS): http(s) only, a host, no credentials, no private IP literal,
    no numeric host in a non-canonical form, a port in `allowed_ports` (None: any; `allow_private` lifts it too).
    Raises UrlRefused; returns the split URL."""
    if not url or len(url) > MAX_URL_CHARS or _CONTROL_OR_SPACE.search(url):
        raise UrlRefused("the URL is empty, too long or holds spaces")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a bad port
    except ValueError:
        raise UrlRefused("the URL cannot be parsed", "url_unparsable") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UrlRefused("only http:// and https:// URLs are accepted", "url_scheme")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UrlRefused("URLs with credentials are not accepted", "url_credentials")
    if port == 0:
        raise UrlRefused("the URL's port is not valid", "url_unparsable")
    if port is not None and allowed_ports is not None and port not in allowed_ports and not allow_private:
        allowed = ", ".join(str(p) for p in sorted(allowed_ports))
        raise UrlRefused(f"only the usual web ports are accepted ({allowed})", "url_invalid")
    host = parts.hostname
    try:
        literal: IpAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        check_address(host, allow_private)
    elif _NUMERIC_HOST.match(host):
        raise UrlRefused("write an IP address as four decimal numbers (a.b.c.d)")
    return parts


def is_allowed_url(url: str, allow_private: bool = False) -> bool:
    try:
        check_url(url, allow_private)
    except UrlRefused:
        return False
    return True
