"""``python -m gateway``: validate the configuration, then serve with uvicorn (``--check``: validate only).

Exit status 2 with one line per problem when the configuration is unsafe or invalid, before anything listens.
"""

from __future__ import annotations

import argparse
import sys

from gateway.settings import GatewaySettings, SettingsError, is_loopback, load_settings

GRACEFUL_SHUTDOWN_S = 10  # open WebSockets get close code 1012 (service restart), then this long to finish


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
    parser.add_argument("--check", action="store_true",
                        help="validate the configuration, print the gateway's local URL and exit")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        from gateway.app import create_app  # after validation: a bad config fails without importing the app

        app = create_app(settings)
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.check:
        print(local_url(settings))
        return 0
    import uvicorn

    from gateway.logs import log_config

    if not is_loopback(settings.host):
        print(f"note: listening on {settings.host}; put TLS in front (tokens travel in headers)", file=sys.stderr)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=log_config(settings.log_level),
                access_log=False, server_header=False, ws_max_size=settings.max_message_bytes,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
