"""A tiny JSON HTTP server on a free loopback port, for tests of clients (the tools' fakes of TorchServe, gateway)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Route = Callable[[str], tuple[int, Any]]  # GET path -> (status, JSON value, or bytes sent as they are)


@contextmanager
def json_server(route: Route) -> Iterator[str]:
    """Serve ``GET`` with ``route(path)``; yields the base URL and shuts the server down after."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, value = route(self.path)
            body = value if isinstance(value, bytes) else json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
