"""nertools.ports: the ports a server gets are free and, within one call, distinct."""

from __future__ import annotations

import socket

from nertools.ports import free_ports


def test_free_ports_are_distinct_and_bindable():
    for _ in range(50):  # one port at a time, the OS handed out the same port twice within five (a CI failure)
        ports = free_ports("inference", "management", "metrics", "grpc_inference", "grpc_management")
        assert len(set(ports.values())) == 5 and list(ports) == [
            "inference",
            "management",
            "metrics",
            "grpc_inference",
            "grpc_management",
        ]
    for port in ports.values():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
