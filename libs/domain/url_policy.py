"""Which URLs an external-API command may call (SSRF policy), shared by the manager bot when a command is
saved (`check_url`) and by the HTTP adapter at call time (`check_url` + `check_address` on every address
the host resolves to; the adapter then connects to the address it checked, so DNS cannot swap it).

The API's answer is posted back into the chat and any manager-bot user can configure API commands, so a
URL that reaches the dispatcher's own network (loopback, private ranges, link-local incl. the cloud
metadata address 169.254.169.254, CGNAT, multicast, reserved, IPv4 hidden in IPv6) is refused.
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

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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
    """Globally routable unicast only; IPv4 embedded in IPv6 (mapped, 6to4, Teredo, NAT64) is judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        inner = _embedded_v4(address)
        if inner is not None:
            return is_public_address(inner)
    return bool(address.is_global) and not address.is_multicast


def check_address(raw: str, allow_private: bool = False) -> IpAddress:
    """The parsed address when it may be called; raises UrlRefused otherwise."""
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        raise UrlRefused("the host does not resolve to a valid address") from None
    if not allow_private and not is_public_address(address):
        raise UrlRefused("the URL points to a private or reserved address")
    return address


def check_url(url: str, allow_private: bool = False) -> SplitResult:
    """Syntax and literal-host checks (no DNS): http(s) only, a host, no credentials, no private IP literal,
    no numeric host in a non-canonical form. Raises UrlRefused; returns the split URL."""
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
