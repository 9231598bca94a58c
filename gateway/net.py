"""Network predicates: which host names and Host headers name this machine."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP literal, IPv6 bracketed or not) is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def loopback_host(host_header: str) -> bool:
    """Whether an HTTP Host header names this machine by a loopback name (127.0.0.1, localhost, [::1]), any port."""
    try:
        host = urlsplit(f"//{host_header.strip()}").hostname  # the same parser as the WebSocket Origin check
    except ValueError:  # an unbalanced IPv6 bracket
        return False
    return host is not None and is_loopback(host)
