"""The production agent loop: sample → window → sign → spool → send.

The energy counter is read once per window (where a window closes; it is
the dearest NVML call on some nodes), the cheap readings at every sample;
agents/windowing.py shares each counter delta among the samples it covers.

Sampling never waits for the network: windows are committed to the spool
first, then drained in order whenever Kafka answers. A failed send keeps the
windows and backs off; a dead broker for hours just grows the spool.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from agents import AgentError, PublishError
from agents.job_resolver import JobResolver
from agents.metrics import AgentMetrics
from agents.publisher import Publisher
from agents.readers.base import GpuReader, GpuSample
from agents.spool import Spool
from agents.windowing import Windower
from schemas import TelemetryWindow
from schemas.signing import SigningKey, sign_window
from schemas.topics import WINDOWS_TOPIC

__all__ = ["AgentService", "complete_last", "encode_window", "read_once"]

log = logging.getLogger(__name__)


def encode_window(w: TelemetryWindow, key_id: str | None = None, key: SigningKey | None = None) -> bytes:
    """The window as it travels: compact JSON, signed with the node's key when it has one
    (the signature covers these very bytes; schemas/signing.py)."""
    doc: dict[str, Any] = w.model_dump(mode="json", exclude_none=True)
    doc.pop("signature", None)
    if key_id is None or key is None:
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    doc["key_id"] = key_id
    return sign_window(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(), key)


def read_once(reader: GpuReader, windower: Windower, every_sample: bool = False) -> list[GpuSample]:
    """One reading of every GPU for ``windower``: the counter only where it needs
    it, unless ``every_sample``."""
    samples = reader.sample(energy=every_sample)
    return reader.add_energy(samples) if windower.needs_energy(samples) else samples


def complete_last(reader: GpuReader, windower: Windower, last: list[GpuSample]) -> list[TelemetryWindow]:
    """Before the open window is flushed: the counter for the readings that wait
    for one, read now for the last reading (nothing else of it: its
    utilisation and processes are in the window already)."""
    if not (windower.pending() and last):
        return []
    counters = [replace(s, util_gpu=None, mem_used_bytes=None, running_pids=(), process_util=None, flags=())
                for s in reader.add_energy(last)]
    return windower.add(counters)


class AgentService:
    def __init__(
        self,
        *,
        reader: GpuReader,
        resolver: JobResolver,
        spool: Spool,
        publisher_factory: Callable[[], Publisher],
        agent_id: str,
        site_id: str,
        node: str,
        window_s: float,
        sample_s: float,
        key_id: str | None = None,
        key: SigningKey | None = None,
        send_batch: int = 500,
        send_timeout_s: float = 10.0,
        clock_ns: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
        metrics: AgentMetrics | None = None,
        counter_every_sample: bool = False,
    ) -> None:
        self.reader = reader
        self.counter_every_sample = counter_every_sample
        self.spool = spool
        self.publisher_factory = publisher_factory
        self.sample_s = sample_s
        self.key_id, self.key = key_id, key
        self.send_batch = send_batch
        self.send_timeout_s = send_timeout_s
        self.clock_ns = clock_ns
        self.monotonic = monotonic
        self.metrics = metrics or AgentMetrics()
        self.windower = Windower(agent_id=agent_id, site_id=site_id, node=node, boot_id=reader.boot_id(),
                                 window_ns=int(window_s * 1e9), resolver=resolver, epoch=spool.epoch)
        checkpoint = spool.checkpoint()
        if checkpoint and self.windower.restore(checkpoint):
            log.info("resumed after a restart: boot %s, next seq %d, %d window(s) still spooled",
                     self.windower.boot_id, self.windower.seq, spool.count())
        elif checkpoint:
            log.info("new boot %s (spool was at boot %s): windows start at seq 0",
                     self.windower.boot_id, checkpoint.get("boot_id"))
        self._publisher: Publisher | None = None
        self._last_samples: list[GpuSample] = []
        self.last_sample_at: float | None = None
        self._retry_at = 0.0
        self._backoff = 1.0
        self.metrics.spooled = spool.count()
        self.metrics.windows_dropped = spool.dropped

    # -- one step ------------------------------------------------------------------
    def tick(self, drain: bool = True) -> list[TelemetryWindow]:
        samples = read_once(self.reader, self.windower, self.counter_every_sample)
        self._last_samples = samples or self._last_samples
        self.metrics.samples += 1
        self.last_sample_at = self.monotonic()
        windows = self.windower.add(samples)
        self._spool(windows)
        if drain:
            self.drain()
        return windows

    def _spool(self, windows: list[TelemetryWindow]) -> None:
        if not windows:
            return
        checkpoint = self.windower.checkpoint()
        assert checkpoint is not None
        messages = [(w.node.encode(), encode_window(w, self.key_id, self.key)) for w in windows]
        dropped = self.spool.append(WINDOWS_TOPIC, messages, checkpoint)
        self.metrics.windows_closed += len(windows)
        self.metrics.windows_dropped += dropped
        self.metrics.spooled = self.spool.count()

    def drain(self, force: bool = False) -> int:
        """Send spooled windows in order until the spool is empty or Kafka fails."""
        if not force and self.monotonic() < self._retry_at:
            return 0
        sent = 0
        while True:
            batch = self.spool.pending(self.send_batch)
            if not batch:
                break
            try:
                publisher = self._get_publisher()
                for m in batch:
                    publisher.publish(m.topic, m.key, m.value)
                publisher.flush(self.send_timeout_s)
            except PublishError as exc:
                self.metrics.send_failures += 1
                self._retry_at = self.monotonic() + self._backoff
                log.warning("Kafka send failed (%s); %d window(s) kept in the spool, retry in %.0f s",
                            exc, self.spool.count(), self._backoff)
                self._backoff = min(self._backoff * 2, 60.0)
                self._drop_publisher()
                break
            self.spool.ack([m.rowid for m in batch])
            sent += len(batch)
            self._backoff = 1.0
        self.metrics.windows_sent += sent
        self.metrics.spooled = self.spool.count()
        return sent

    def _get_publisher(self) -> Publisher:
        if self._publisher is None:
            try:
                self._publisher = self.publisher_factory()
            except AgentError:
                raise
            except Exception as exc:  # a client library's own connection errors
                raise PublishError(str(exc)) from exc
        return self._publisher

    def _drop_publisher(self) -> None:
        if self._publisher is not None:
            try:
                self._publisher.close()
            except Exception as exc:  # closing a broken client must not stop sampling
                log.debug("closing the Kafka client failed: %s", exc)
            self._publisher = None

    def health(self) -> tuple[bool, str]:
        """For /healthz: the sampling loop read the GPUs recently (Kafka's state does
        not matter: in an outage the agent spools, which is healthy)."""
        if self.last_sample_at is None:
            return False, "no reading yet"
        age = self.monotonic() - self.last_sample_at
        limit = max(10.0, 5 * self.sample_s)
        if age > limit:
            return False, f"last reading {age:.0f} s ago (limit {limit:.0f} s)"
        return True, f"ok: last reading {age:.1f} s ago, {self.metrics.spooled} window(s) spooled"

    # -- the loop ------------------------------------------------------------------
    def run(self, stop: threading.Event, max_ticks: int | None = None) -> None:
        """Sample on the sample_s grid of the wall clock until ``stop`` is set.

        Sending runs in its own thread, so a slow or dead broker never delays a
        reading."""
        sender_stop = threading.Event()
        sender = threading.Thread(target=self._send_loop, args=(sender_stop,), name="sender", daemon=True)
        sender.start()
        step = int(self.sample_s * 1e9)
        ticks = 0
        try:
            while not stop.is_set() and (max_ticks is None or ticks < max_ticks):
                self.tick(drain=False)
                ticks += 1
                now = self.clock_ns()
                stop.wait(max(0.0, ((now // step + 1) * step - now) / 1e9))
        finally:
            sender_stop.set()
            sender.join(timeout=self.send_timeout_s + 5)
            self.shutdown()

    def _send_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.drain()
            stop.wait(0.2)

    def close_open_window(self) -> TelemetryWindow | None:
        """Close the partial window and spool it, its energy measured: the last
        reading is completed with the counter first."""
        self._spool(complete_last(self.reader, self.windower, self._last_samples))
        last = self.windower.flush()
        if last is not None:
            self._spool([last])
        return last

    def shutdown(self) -> None:
        """Close the partial window, spool it and try a last send: nothing is lost."""
        self.close_open_window()
        self.drain(force=True)
        self._drop_publisher()
        log.info("agent stopped: %d window(s) left in the spool for the next start", self.spool.count())
