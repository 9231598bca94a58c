"""``python -m gateway``: validate the configuration, then serve with uvicorn (``--check``: validate only).

Exit status 2 with one line per problem when the configuration is unsafe or invalid, before anything listens.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gateway.net import is_loopback
from gateway.settings import GatewaySettings, SettingsError, load_settings

WS_PING_INTERVAL_S = 20.0
# On SIGTERM, REST requests in flight get this long to finish. Streams do not: uvicorn closes open WebSockets at
# once with code 1012 (service restart) and sse-starlette ends SSE streams, so replies still in flight are lost;
# clients resend them after reconnecting (docs/GATEWAY.md).
GRACEFUL_SHUTDOWN_S = 10


def local_url(settings: GatewaySettings) -> str:
    """A URL this machine can reach the gateway at (a wildcard bind address is reached on loopback)."""
    host = settings.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway",
        description="Real-time NER gateway (WebSocket, SSE, REST, demo page) in front of TorchServe. "
        "Configured by NER_GATEWAY_* environment variables; see docs/GATEWAY.md.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the configuration, print the gateway's local URL (and a warning on stderr when "
        "authentication is off) and exit",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        from gateway.app import create_app  # after validation: a bad config fails without importing the app

        app = create_app(settings)
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.check:
        if settings.auth_disabled:
            # --check is what scripts/gateway.sh start runs in the terminal: the running gateway's own warning
            # goes to its log file, where nobody may read it.
            print(
                f"WARNING: authentication is disabled (NER_GATEWAY_AUTH_DISABLED): anyone who can reach "
                f"{settings.host}:{settings.port} can use the model",
                file=sys.stderr,
            )
        print(local_url(settings))
        return 0
    import uvicorn

    from gateway.logs import log_config

    if not is_loopback(settings.host):
        print(f"note: listening on {settings.host}; put TLS in front (tokens travel in headers)", file=sys.stderr)
    uvicorn.run(app, log_config=log_config(settings.log_level), **uvicorn_options(settings))
    return 0


def uvicorn_options(settings: GatewaySettings) -> dict[str, Any]:
    """uvicorn's settings for the gateway (also used by the tests that run it under a real uvicorn)."""
    from gateway.slow_clients import with_header_timeout  # imports uvicorn, which --check does not need

    return {
        "host": settings.host,
        "port": settings.port,
        "access_log": False,
        "server_header": False,
        "ws_max_size": settings.max_message_bytes,
        "ws_per_message_deflate": settings.ws_compression,
        # uvicorn times out neither a request head nor a connection that never sends one; this protocol does.
        "http": with_header_timeout(settings.header_timeout_s),
        # uvicorn's type says int; it is only handed to call_later.
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        "ws_ping_interval": WS_PING_INTERVAL_S,
        # A WebSocket whose every slot is busy is not read (backpressure), so the client's pongs wait behind its
        # messages: the timeout outlasts one message's whole retry budget, or a healthy client waiting for slow
        # replies would be dropped with 1011. A dead peer is still found, later.
        "ws_ping_timeout": settings.longest_request_s() + WS_PING_INTERVAL_S,
    }


if __name__ == "__main__":
    sys.exit(main())
