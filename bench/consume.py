"""What reading the windows topic costs the worker, per message, before any processing.

    .venv/bin/python bench/consume.py [--windows 20000]

On the bench stack (.state-bench, ports +20000; brought up if it is down), the
same node windows are produced once and read twice, each reader in a fresh
consumer group and doing nothing with the windows:
1. a Faust agent taking them with ``noack_take(2000, within=0.5 s)`` and
   acking each one, as the worker read them before streams/consumer.py;
2. streams/consumer.py ``WindowConsumer`` (aiokafka record batches, offsets
   committed per batch), the worker's reader now.
Prints CPU time per message and messages/s for each, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bridgeledger.stack import Stack, StackPorts  # noqa: E402
from schemas.topics import WINDOWS_TOPIC  # noqa: E402


def faust_null(bootstrap: str, n: int) -> None:
    """Child process: a Faust worker whose agent only acks; prints its cost and exits."""
    import faust
    from faust.worker import Worker

    app = faust.App(f"bench-faust-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}", value_serializer="raw",
                    key_serializer="raw", store="memory://", web_enabled=False,
                    consumer_auto_offset_reset="earliest", topic_partitions=4)
    topic = app.topic(WINDOWS_TOPIC, value_serializer="raw")
    seen = 0
    t0: tuple[float, float] | None = None

    @app.agent(topic)
    async def take(stream):  # noqa: ANN001
        nonlocal seen, t0
        async for events in stream.noack_take(2000, within=0.5):
            if t0 is None:
                t0 = (time.perf_counter(), time.process_time())
            seen += len(events)
            for e in events:
                await stream.ack(e)
            if seen >= n:
                print(f"RESULT {seen} {time.perf_counter() - t0[0]:.4f} {time.process_time() - t0[1]:.4f}",
                      flush=True)
                os._exit(0)

    sys.argv = [sys.argv[0], "worker", "-l", "warning"]
    Worker(app, loglevel="warning").execute_from_commandline()


async def batch_null(bootstrap: str, n: int) -> tuple[int, float, float]:
    from streams.consumer import WindowConsumer
    from streams.settings import StreamSettings
    from streams.worker import WindowBatch

    done = asyncio.get_running_loop().create_future()
    state: dict[str, float] = {"seen": 0}

    class Nothing:  # the worker's two calls, doing nothing
        def prepare(self, raws: list[bytes], stamps: list[int | None]) -> WindowBatch:
            if "t0" not in state:
                state["t0"], state["c0"] = time.perf_counter(), time.process_time()
            state["seen"] += len(raws)
            if state["seen"] >= n and not done.done():
                done.set_result((int(state["seen"]), time.perf_counter() - state["t0"],
                                 time.process_time() - state["c0"]))
            return WindowBatch()

    async def nothing(*_: object) -> list:
        return []

    settings = StreamSettings(kafka_bootstrap=bootstrap, app_id=f"bench-batch-{uuid.uuid4().hex[:8]}")
    consumer = WindowConsumer(settings, Nothing(), write=nothing, forward=nothing)  # type: ignore[arg-type]
    task = asyncio.ensure_future(consumer.run())
    result = await asyncio.wait_for(done, 600)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=20_000, help="node windows (8 GPUs each)")
    ap.add_argument("--faust-null", type=int, default=0, help=argparse.SUPPRESS)  # the child process
    ap.add_argument("--bootstrap", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.faust_null:
        faust_null(args.bootstrap, args.faust_null)
        return

    from pipeline import make_windows, produce

    from streams.topic_admin import declare_topics

    stack = Stack(ROOT / ".state-bench", StackPorts.offset(20000))
    stack.up(timeout_s=240)
    declare_topics(stack.kafka_bootstrap, 4)
    raws = make_windows(args.windows)
    produce(stack, raws)
    n = len(raws)

    out = subprocess.run([sys.executable, __file__, "--faust-null", str(n), "--bootstrap", stack.kafka_bootstrap],
                         capture_output=True, text=True, timeout=900, cwd=ROOT)
    # Faust's worker sends what the agent prints through its logger: find the line anywhere
    line = next((x for x in (out.stdout + out.stderr).splitlines() if "RESULT " in x), None)
    if line is None:
        sys.exit(f"the Faust reader did not finish: {out.stdout[-2000:]}{out.stderr[-2000:]}")
    seen_s, wall_s, cpu_s = line.split("RESULT ", 1)[1].split()[:3]
    faust_seen, faust_wall, faust_cpu = int(seen_s), float(wall_s), float(cpu_s)
    batch_seen, batch_wall, batch_cpu = asyncio.run(batch_null(stack.kafka_bootstrap, n))

    print(f"machine: {os.cpu_count()} cores; {n} node windows of 8 GPUs produced, read by each reader "
          f"(the topic may hold more from earlier runs; each reader stops at {n})")
    per = {}
    for name, seen, wall, cpu in (("Faust agent, noack_take + ack", faust_seen, faust_wall, faust_cpu),
                                  ("WindowConsumer, record batches", batch_seen, batch_wall, batch_cpu)):
        per[name] = cpu / seen * 1e6
        print(f"{name:<32} {per[name]:7.1f} µs CPU per message  {seen / wall:>9,.0f} messages/s "
              f"({seen * 8 / wall:,.0f} GPU-windows/s)")
    a, b = per.values()
    print(f"CPU per message, Faust / batch consumer: {a / b:.1f}x")


if __name__ == "__main__":
    main()
