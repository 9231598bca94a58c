"""GatewaySettings: parsing from the environment and a file, and fail-fast validation of unsafe configuration."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gateway.settings import SettingsError, load_settings
from nerserve.protocol import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TEXT_CHARS
from tests.support.gateway_harness import SECRET
from tests.support.paths import ROOT

GOOD_SECRET = "x" * 16


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.upper().startswith("NER_GATEWAY_"):
            monkeypatch.delenv(name)


def test_defaults_with_keys_from_the_environment(monkeypatch):
    monkeypatch.setenv("NER_GATEWAY_API_KEYS", f"alice:{SECRET}, bob.{GOOD_SECRET}")
    settings = load_settings()
    assert settings.inference_url == "http://127.0.0.1:8080"
    assert settings.management_url == "http://127.0.0.1:8081"
    assert settings.model_name == "ner_model"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.auth_disabled is False
    assert (settings.max_message_bytes, settings.max_text_chars) == (DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TEXT_CHARS)
    assert {k: v.get_secret_value() for k, v in settings.keys.items()} == {"alice": SECRET, "bob": GOOD_SECRET}
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())


def test_lists_are_comma_separated_and_urls_normalised(monkeypatch):
    monkeypatch.setenv("NER_GATEWAY_AUTH_DISABLED", "1")
    monkeypatch.setenv("NER_GATEWAY_CORS_ORIGINS", "http://a.example, https://b.example:8443")
    monkeypatch.setenv("NER_GATEWAY_LABELS", "PER,ORG")
    monkeypatch.setenv("NER_GATEWAY_INFERENCE_URL", "http://10.0.0.5:9080/")
    settings = load_settings()
    assert settings.cors_origins == ["http://a.example", "https://b.example:8443"]
    assert settings.labels == ["PER", "ORG"]
    assert settings.inference_url == "http://10.0.0.5:9080"


def test_keys_file_and_config_file(tmp_path, monkeypatch):
    keys = tmp_path / "keys"
    keys.write_text(f"# team keys\nalice:{SECRET}\n\ncarol.{GOOD_SECRET}\n")
    config = tmp_path / "gateway.env"
    config.write_text(f"NER_GATEWAY_API_KEYS_FILE={keys}\nNER_GATEWAY_PORT=9001\nNER_GATEWAY_MAX_TEXT_CHARS=5000\n")
    monkeypatch.setenv("NER_GATEWAY_CONFIG_FILE", str(config))
    monkeypatch.setenv("NER_GATEWAY_PORT", "9002")  # the environment wins over the file
    settings = load_settings()
    assert settings.port == 9002 and settings.max_text_chars == 5000
    assert sorted(settings.keys) == ["alice", "carol"]


@pytest.mark.parametrize(
    "environment, message",
    [
        ({}, "authentication is on but no API keys are configured"),
        ({"NER_GATEWAY_AUTH_DISABLED": "1", "NER_GATEWAY_HOST": "0.0.0.0"}, "not a loopback address"),
        ({"NER_GATEWAY_AUTH_DISABLED": "1", "NER_GATEWAY_HOST": "gateway.example"}, "not a loopback address"),
        ({"NER_GATEWAY_API_KEYS": "alice:short"}, "must be 16-256 characters"),
        ({"NER_GATEWAY_API_KEYS": f"no-separator{SECRET}"}, "not of the form id:secret"),
        ({"NER_GATEWAY_API_KEYS": f"a:{SECRET},a:{GOOD_SECRET}"}, "defined twice"),
        ({"NER_GATEWAY_API_KEYS": f"bad id:{SECRET}"}, "key id"),
        ({"NER_GATEWAY_API_KEYS_FILE": "/nonexistent/keys"}, "cannot read /nonexistent/keys"),
        ({"NER_GATEWAY_AUTH_DISABLED": "1", "NER_GATEWAY_INFERENCE_URL": "localhost:8080"}, "INFERENCE_URL"),
        ({"NER_GATEWAY_AUTH_DISABLED": "1", "NER_GATEWAY_PORT": "70000"}, "NER_GATEWAY_PORT"),
        ({"NER_GATEWAY_AUTH_DISABLED": "1", "NER_GATEWAY_MAX_IN_FLIGHT_PER_CONNECTION": "0"}, "IN_FLIGHT"),
        ({"NER_GATEWAY_AUTH_DISABLED": "1", "NER_GATEWAY_UPSTREAM_TIMEOUT_S": "-1"}, "UPSTREAM_TIMEOUT_S"),
        ({"NER_GATEWAY_AUTH_DISABLED": "1", "NER_GATEWAY_RETRY_BACKOFF_INITIAL_S": "5"}, "must not exceed"),
        ({"NER_GATEWAY_AUTH_DISABLED": "1", "NER_GATEWAY_CORS_ORIGINS": "http://a.example/path"}, "origin"),
        ({"NER_GATEWAY_AUTH_DISABLED": "1", "NER_GATEWAY_API_KEY": "x"}, "unknown setting(s) ['NER_GATEWAY_API_KEY']"),
        ({"NER_GATEWAY_CONFIG_FILE": "/nonexistent/gateway.env"}, "is not a file"),
    ],
)
def test_unsafe_or_invalid_configuration_fails_fast(monkeypatch, environment, message):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert message in str(error.value)


def test_remote_bind_without_auth_needs_an_explicit_override(monkeypatch):
    monkeypatch.setenv("NER_GATEWAY_AUTH_DISABLED", "true")
    monkeypatch.setenv("NER_GATEWAY_HOST", "0.0.0.0")
    monkeypatch.setenv("NER_GATEWAY_ALLOW_REMOTE_WITHOUT_AUTH", "1")
    assert load_settings().auth_disabled


def test_errors_never_echo_secrets(monkeypatch):
    monkeypatch.setenv("NER_GATEWAY_API_KEYS", f"alice:{SECRET}!")  # an invalid character in the secret
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert SECRET not in str(error.value) and "alice" in str(error.value)


def test_python_m_gateway_refuses_to_start_and_says_why(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "NER_GATEWAY_HOST": "0.0.0.0", "NER_GATEWAY_AUTH_DISABLED": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "gateway"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "NER_GATEWAY_ALLOW_REMOTE_WITHOUT_AUTH" in result.stderr and "Traceback" not in result.stderr


def test_python_m_gateway_check_prints_the_local_url():
    env = {
        "PATH": "/usr/bin:/bin",
        "NER_GATEWAY_API_KEYS": f"a:{SECRET}",
        "NER_GATEWAY_PORT": "9123",
        "NER_GATEWAY_HOST": "0.0.0.0",
    }
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "--check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "http://127.0.0.1:9123"


@pytest.mark.parametrize("auth_disabled", [True, False])
def test_python_m_gateway_check_warns_on_stderr_when_authentication_is_off(auth_disabled):
    env = {"PATH": "/usr/bin:/bin", "NER_GATEWAY_PORT": "9123"}
    env.update({"NER_GATEWAY_AUTH_DISABLED": "1"} if auth_disabled else {"NER_GATEWAY_API_KEYS": f"a:{SECRET}"})
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "--check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "http://127.0.0.1:9123"  # scripts/gateway.sh reads the URL from stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    if auth_disabled:
        assert warnings == [
            "WARNING: authentication is disabled (NER_GATEWAY_AUTH_DISABLED): anyone who can "
            "reach 127.0.0.1:9123 can use the model"
        ]
    else:
        assert warnings == [] and result.stderr == ""
