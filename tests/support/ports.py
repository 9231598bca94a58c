"""Free loopback ports for test servers (tests never bind 8080-8082 or 8000)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on now (bind-then-release: a small race, acceptable for tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
