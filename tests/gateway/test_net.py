"""Loopback predicates: which bind addresses and Host headers name this machine."""

from __future__ import annotations

import pytest

from gateway.net import is_loopback, loopback_host


@pytest.mark.parametrize(
    "host,allowed",
    [
        ("127.0.0.1:8000", True),
        ("localhost", True),
        ("[::1]:8000", True),
        ("LOCALHOST:80", True),
        ("evil.example:8000", False),
        ("127.0.0.1.evil.example", False),
        ("", False),
    ],
)
def test_loopback_host(host, allowed):
    assert loopback_host(host) is allowed


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("gateway.example", False),  # a name may resolve anywhere
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback
