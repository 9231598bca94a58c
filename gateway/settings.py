"""The gateway's one configuration object: environment variables ``NER_GATEWAY_*`` and an optional file.

Precedence: explicit arguments > environment > the file named by ``NER_GATEWAY_CONFIG_FILE`` (dotenv format, the
same ``NER_GATEWAY_*`` names) > defaults. Everything is validated at start-up and unsafe combinations are refused
with a message naming the setting: authentication on without keys, authentication off on a non-loopback address
(unless ``NER_GATEWAY_ALLOW_REMOTE_WITHOUT_AUTH=1``), a misspelt ``NER_GATEWAY_*`` variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway.errors import format_validation_errors
from gateway.net import is_loopback
from nerserve.protocol import (
    DEFAULT_DOCUMENT_BYTES,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_TEXT_CHARS,
    DEFAULT_MAX_TEXTS_PER_REQUEST,
)

ENV_PREFIX = "NER_GATEWAY_"
CONFIG_FILE_VARIABLE = ENV_PREFIX + "CONFIG_FILE"
# Read by scripts/gateway.sh, not by the app; listed so the misspelling check does not refuse them.
SCRIPT_VARIABLES = {"CONFIG_FILE", "STATE_DIR", "START_TIMEOUT", "LOG_DIR"}

KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,256}$")
MIN_SECRET_CHARS = 16


class SettingsError(ValueError):
    """Configuration that must not start: the message names every offending setting."""


class GatewaySettings(BaseSettings):
    """Validated gateway configuration; field ``x`` is read from ``NER_GATEWAY_X``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True, case_sensitive=False)

    # TorchServe
    inference_url: str = "http://127.0.0.1:8080"
    management_url: str = "http://127.0.0.1:8081"
    model_name: str = Field("ner_model", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    # Bodies over document_bytes go to the model's document lane (nerserve.protocol.document_lane), when it is
    # served; 0 sends everything to model_name.
    document_bytes: int = Field(DEFAULT_DOCUMENT_BYTES, ge=0)
    # WebSocket messages, SSE chunks and REST bodies of one text waiting at the same moment go upstream as one
    # multi-text request of at most coalesce_max_texts texts and coalesce_max_bytes bytes (gateway.coalescing), with
    # at most coalesce_groups such requests in flight; coalesce_max_texts 1 sends every text alone.
    coalesce_max_texts: int = Field(32, ge=1, le=DEFAULT_MAX_TEXTS_PER_REQUEST)
    coalesce_max_bytes: int = Field(16384, ge=1024)
    coalesce_groups: int = Field(4, ge=1, le=4096)
    # Where the gateway listens
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Authentication: "id:secret" pairs separated by commas, and/or a file with one pair per line
    auth_disabled: bool = False
    allow_remote_without_auth: bool = False
    api_keys: Annotated[dict[str, SecretStr], NoDecode] = Field(default_factory=dict)
    api_keys_file: Path | None = None
    # Limits
    max_message_bytes: int = Field(DEFAULT_MAX_REQUEST_BYTES, ge=1024)
    max_text_chars: int = Field(DEFAULT_MAX_TEXT_CHARS, ge=1)
    max_in_flight_per_connection: int = Field(8, ge=1, le=1024)
    # permessage-deflate on WebSockets when the client offers it: off by default, as compressing every small reply
    # cost the gateway about a third more CPU per message at 8 connections (docs/GATEWAY.md, "WebSocket").
    ws_compression: bool = False
    upstream_concurrency: int = Field(64, ge=1, le=4096)
    upstream_timeout_s: float = Field(60.0, gt=0)
    retry_deadline_s: float = Field(30.0, ge=0)
    retry_max_attempts: int = Field(16, ge=1, le=1000)
    # A request whose worker died may be what killed it: sent again this many times at most (gateway.upstream).
    retry_worker_lost_max: int = Field(1, ge=0, le=10)
    retry_backoff_initial_s: float = Field(0.1, gt=0)
    retry_backoff_max_s: float = Field(2.0, gt=0)
    # Slow clients (gateway.slow_clients): a request's line and headers, its body, the wait between two requests
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(30.0, gt=0)
    keep_alive_timeout_s: float = Field(5.0, gt=0)
    # Server-Sent Events streaming of long documents
    stream_chunk_chars: int = Field(1000, ge=64)
    stream_concurrency: int = Field(4, ge=1, le=256)
    # Browsers
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Label legend of the demo page: explicit labels, else read from a checkpoint directory
    labels: Annotated[list[str], NoDecode] = Field(default_factory=list)
    model_dir: Path | None = None
    log_level: str = Field("info", pattern=r"^(critical|error|warning|info|debug)$")

    _keys: dict[str, SecretStr] = PrivateAttr(default_factory=dict)

    # --- parsing ------------------------------------------------------------------------------------------------

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_key_entries(value.split(","))
        return value

    @field_validator("cors_origins", "labels", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("inference_url", "management_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http(s) URL such as http://127.0.0.1:8080, got {value!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"must not have a query or fragment, got {value!r}")
        return value.rstrip("/")

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            parts = urlsplit(origin)
            if origin != "*" and (parts.scheme not in ("http", "https") or not parts.hostname or parts.path):
                raise ValueError(f"an origin is '*' or scheme://host[:port] without a path, got {origin!r}")
        return origins

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    # --- cross-field rules --------------------------------------------------------------------------------------

    @model_validator(mode="after")
    def _check_safety(self) -> GatewaySettings:
        keys = dict(self.api_keys)
        if self.api_keys_file is not None:
            for key_id, secret in read_keys_file(self.api_keys_file).items():
                if key_id in keys:
                    raise ValueError(
                        f"API key id {key_id!r} is defined twice (NER_GATEWAY_API_KEYS and {self.api_keys_file})"
                    )
                keys[key_id] = secret
        for key_id, secret in keys.items():  # keys given as a dict in code skipped the string parser
            check_key(key_id, secret.get_secret_value(), "NER_GATEWAY_API_KEYS")
        if not self.auth_disabled and not keys:
            raise ValueError(
                "authentication is on but no API keys are configured: set NER_GATEWAY_API_KEYS=id:secret "
                "(or NER_GATEWAY_API_KEYS_FILE), or NER_GATEWAY_AUTH_DISABLED=1 for local development"
            )
        if self.auth_disabled and not is_loopback(self.host) and not self.allow_remote_without_auth:
            raise ValueError(
                f"authentication is disabled while listening on {self.host!r}, which is not a loopback address: "
                "anyone who can reach it could use the model; configure API keys, bind 127.0.0.1, or set "
                "NER_GATEWAY_ALLOW_REMOTE_WITHOUT_AUTH=1 if a proxy in front authenticates"
            )
        if self.retry_backoff_initial_s > self.retry_backoff_max_s:
            raise ValueError(
                f"retry_backoff_initial_s ({self.retry_backoff_initial_s}) must not exceed "
                f"retry_backoff_max_s ({self.retry_backoff_max_s})"
            )
        self._keys = keys
        return self

    def longest_request_s(self) -> float:
        """The longest one prediction can take: waiting for a free upstream slot and retrying both end at the
        retry deadline; then one last attempt of up to the upstream timeout, after at most one backoff."""
        return self.retry_deadline_s + self.retry_backoff_max_s + self.upstream_timeout_s

    @property
    def keys(self) -> Mapping[str, SecretStr]:
        """All API keys (from NER_GATEWAY_API_KEYS and the keys file): key id -> secret."""
        return dict(self._keys)


def parse_key_entries(entries: list[str], source: str = "") -> dict[str, SecretStr]:
    """``id:secret`` (or the token form ``id.secret``) entries -> {id: secret}; blank entries are skipped.

    ``source`` names where the entries came from in error messages (a file); never the entries themselves.
    """
    keys: dict[str, SecretStr] = {}
    where = f"{source}: " if source else ""
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        separator = ":" if ":" in entry else "."
        key_id, found, secret = entry.partition(separator)
        if not found:
            # Never echo the entry: it may be a whole secret.
            raise ValueError(f"{where}an entry is not of the form id:secret")
        check_key(key_id, secret, source)
        if key_id in keys:
            raise ValueError(f"{where}API key id {key_id!r} is defined twice")
        keys[key_id] = SecretStr(secret)
    return keys


def check_key(key_id: str, secret: str, source: str = "") -> None:
    where = f"{source}: " if source else ""
    if not KEY_ID_PATTERN.match(key_id):
        raise ValueError(f"{where}key id {key_id[:64]!r} must be 1-64 characters of A-Z a-z 0-9 _ -")
    if not SECRET_PATTERN.match(secret):
        raise ValueError(
            f"{where}the secret of key {key_id!r} must be {MIN_SECRET_CHARS}-256 characters of A-Z a-z 0-9 _ - "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )


def read_keys_file(path: Path) -> dict[str, SecretStr]:
    """One ``id:secret`` (or ``id.secret``) per line; blank lines and lines starting with # are ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"NER_GATEWAY_API_KEYS_FILE: cannot read {path}: {err.strerror}") from None
    lines = [line for line in text.splitlines() if not line.strip().startswith("#")]
    return parse_key_entries(lines, str(path))


def load_settings(**overrides: Any) -> GatewaySettings:
    """Settings from the environment and the optional config file; raises SettingsError with readable lines."""
    environ = os.environ
    fields = {name.upper() for name in GatewaySettings.model_fields}
    unknown = sorted(
        name
        for name in environ
        if name.upper().startswith(ENV_PREFIX) and name.upper()[len(ENV_PREFIX) :] not in fields | SCRIPT_VARIABLES
    )
    if unknown:
        raise SettingsError(f"unknown setting(s) {unknown}; known: {sorted(ENV_PREFIX + f for f in fields)}")
    config_file = environ.get(CONFIG_FILE_VARIABLE)
    if config_file and not Path(config_file).is_file():
        raise SettingsError(f"{CONFIG_FILE_VARIABLE}: {config_file} is not a file")
    try:
        # _env_file is BaseSettings' own keyword, which mypy's view of the generated __init__ does not show.
        return GatewaySettings(_env_file=config_file or None, **overrides)  # type: ignore[call-arg]
    except ValidationError as err:
        lines = format_validation_errors(err, variable_name)
        raise SettingsError("invalid gateway configuration:\n  " + "\n  ".join(lines)) from None


def variable_name(location: str) -> str:
    """The environment variable of a settings field (``port`` -> ``NER_GATEWAY_PORT``); "settings" for the whole."""
    return ENV_PREFIX + location.upper() if location else "settings"
