"""ApiKeys and token lookup: constant-time comparison, token places, precedence."""

from __future__ import annotations

import hmac

import pytest

from gateway import auth
from gateway.auth import ANONYMOUS, ApiKeys, Authenticator, find_token
from gateway.errors import GatewayError

SECRET = "0123456789abcdef-XYZ"


def test_verify_returns_the_key_id_only_for_the_right_secret():
    keys = ApiKeys({"alice": SECRET, "bob": "b" * 20})
    assert keys.verify(f"alice.{SECRET}") == "alice"
    assert keys.verify(f"bob.{'b' * 20}") == "bob"
    for token in [
        None,
        "",
        "alice",
        f"alice.{SECRET}x",
        f"bob.{SECRET}",
        f"carol.{SECRET}",
        f".{SECRET}",
        f"alice:{SECRET}",
        f"alice.{SECRET[:-1]}",
    ]:
        assert keys.verify(token) is None, token
    assert keys.key_ids == ["alice", "bob"]


def test_every_check_is_one_constant_time_comparison_of_digests(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    keys = ApiKeys({"alice": SECRET})
    for token in [f"alice.{SECRET}", "alice.wrong", "nobody.wrong", "no-dot", "alice." + "x" * 500]:
        keys.verify(token)
    # Known or unknown id, short or long secret: the same work, on 32-byte digests.
    assert calls == [(32, 32)] * 5


def test_token_places_and_precedence():
    assert find_token({"authorization": "Bearer a.b"}, {"token": "c.d"}, ["bearer.e.f"]) == "a.b"
    assert find_token({}, {"token": "c.d"}, ["ner.v1", "bearer.e.f"]) == "e.f"
    assert find_token({}, {"token": "c.d"}, ["ner.v1"]) == "c.d"
    assert find_token({"authorization": "Basic a.b"}, {"token": "c.d"}) == ""  # a wrong header is not "absent"
    assert find_token({}, {}) is None


def test_authenticator_errors_and_disabled_mode():
    authenticator = Authenticator(ApiKeys({"alice": SECRET}))
    assert authenticator.authenticate({"authorization": f"Bearer alice.{SECRET}"}, {}) == "alice"
    with pytest.raises(GatewayError, match="missing API key") as missing:
        authenticator.authenticate({}, {})
    assert missing.value.status == 401
    with pytest.raises(GatewayError, match="invalid API key"):
        authenticator.authenticate({"authorization": "Bearer alice.nope"}, {})
    assert Authenticator(None).authenticate({}, {}) == ANONYMOUS
