"""A minimal Prometheus text endpoint for the agent and the stream worker.

``/metrics``: the Prometheus text; ``/healthz``: 200 "ok" while the process
is doing its work, 503 with the reason when not (a fast liveness/readiness
check with no Kafka round trip, for Kubernetes and load balancers).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["DEFAULT_HOST", "serve_text"]

# All interfaces, so that Prometheus can scrape a node or a pod; set the host
# (BRIDGELEDGER_METRICS_HOST, metrics_host in the agent config) to 127.0.0.1 to keep it local.
DEFAULT_HOST = "0.0.0.0"


def serve_text(render: Callable[[], str], port: int, host: str = DEFAULT_HOST,
               health: Callable[[], tuple[bool, str]] | None = None) -> ThreadingHTTPServer:
    """Serve ``render()`` at ``/metrics`` and ``health()`` at ``/healthz`` from a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path == "/metrics":
                self._send(200, render(), "text/plain; version=0.0.4")
            elif self.path == "/healthz":
                ok, why = health() if health is not None else (True, "ok")
                self._send(200 if ok else 503, why + "\n", "text/plain")
            else:
                self.send_error(404)

        def _send(self, code: int, text: str, content_type: str) -> None:
            body = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
