"""Free loopback ports for servers started by the tools and the tests (which never bind 8080-8082 or 8000)."""

from __future__ import annotations

import contextlib
import socket


def free_ports(*names: str) -> dict[str, int]:
    """Distinct free ports, one per name: all bound at once before any is released (one at a time, the OS may hand
    out the same port twice, and a server given it for two of its listeners fails to start)."""
    with contextlib.ExitStack() as stack:
        sockets = {name: stack.enter_context(socket.socket()) for name in names}
        for sock in sockets.values():
            sock.bind(("127.0.0.1", 0))
        return {name: int(sock.getsockname()[1]) for name, sock in sockets.items()}


def free_port() -> int:
    """A port nothing listens on now (bind-then-release: a small race, acceptable for tests and measurements)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
