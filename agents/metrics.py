"""The agent's own counters, rendered as Prometheus text (served by the CLI)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from schemas.prometheus import render_metrics

__all__ = ["AgentMetrics"]


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
        return render_metrics("bridgeledger_agent", (
            ("samples_total", "counter", self.samples, "GPU readings taken"),
            ("windows_closed_total", "counter", self.windows_closed, "telemetry windows closed"),
            ("windows_sent_total", "counter", self.windows_sent, "windows acknowledged by Kafka"),
            ("windows_dropped_total", "counter", self.windows_dropped, "windows dropped by the spool-full policy"),
            ("spooled_windows", "gauge", self.spooled, "windows waiting in the spool"),
            ("send_failures_total", "counter", self.send_failures, "failed sends (kept in the spool)"),
        ), [("nvml_errors_total", "counter", "call", self.nvml_errors, "NVML calls that failed, by call")])
