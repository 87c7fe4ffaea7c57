"""The agent's own counters, optionally served as Prometheus text."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["AgentMetrics", "serve_metrics"]


@dataclass
class AgentMetrics:
    samples: int = 0
    windows_closed: int = 0
    windows_sent: int = 0
    windows_dropped: int = 0
    spooled: int = 0
    send_failures: int = 0
    nvml_errors: Counter[str] = field(default_factory=Counter)

    def render(self) -> str:
        lines = []
        for name, kind, value, help_ in (
            ("samples_total", "counter", self.samples, "GPU readings taken"),
            ("windows_closed_total", "counter", self.windows_closed, "telemetry windows closed"),
            ("windows_sent_total", "counter", self.windows_sent, "windows acknowledged by Kafka"),
            ("windows_dropped_total", "counter", self.windows_dropped, "windows dropped by the spool-full policy"),
            ("spooled_windows", "gauge", self.spooled, "windows waiting in the spool"),
            ("send_failures_total", "counter", self.send_failures, "failed sends (kept in the spool)"),
        ):
            lines += [f"# HELP bridgeledger_agent_{name} {help_}", f"# TYPE bridgeledger_agent_{name} {kind}",
                      f"bridgeledger_agent_{name} {value}"]
        lines += ["# HELP bridgeledger_agent_nvml_errors_total NVML calls that failed, by call",
                  "# TYPE bridgeledger_agent_nvml_errors_total counter"]
        for call, n in sorted(self.nvml_errors.items()):
            lines.append(f'bridgeledger_agent_nvml_errors_total{{call="{call}"}} {n}')
        return "\n".join(lines) + "\n"


def serve_metrics(metrics: AgentMetrics, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path != "/metrics":
                self.send_error(404)
                return
            body = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
