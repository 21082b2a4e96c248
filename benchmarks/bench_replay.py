"""End-to-end replay costs, side by side in one run, against a real Mosquitto on loopback.

1. Throughput: ``double11-2021`` at ``--scale`` (default 0.01, 25.6 M events) replayed at
   ``--speed max`` with nothing on, with the event log on (``--fsync interval``), and with MQTT
   publishing on; interleaved ``--repeats`` times, medians and ratios to the bare run.
2. Milestone latency: the 2020 main day (Nov 11 alone: its opening is the 583,000 orders/s peak)
   at scale 0.1 and ``--speed realtime`` for ``--latency-s`` seconds of sale time; for each
   milestone, its receipt by an independent subscriber minus the payload's ``folded_us`` (the
   wall clock as the fold returned it; ``ticker bench --sustain`` measures the same at its held rate).
3. ``--publish-orders`` at scale 1, real time, for ``--orders-s`` seconds of the Nov 11 opening:
   the raw order frames an independent subscriber receives per second, and any dropped.
4. (not by default) part 3's run without and with ``--publish-orders``, interleaved
   ``--repeats`` times: the wall time per second of sale time each needs.

Usage: python benchmarks/bench_replay.py [--scale 0.01] [--repeats 3] [--latency-s 300] [--orders-s 20]
                                        [--parts 1,2,3]
Needs ``mosquitto`` (apt-get install mosquitto); takes about 7 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import threading
import time
from pathlib import Path

import aiomqtt
import orjson

from ticker.cli import main as ticker
from ticker.engine import ReplayOptions, execute, prepare, tune_allocator
from ticker.publish.mosquitto import PrivateMosquitto
from ticker.publish.sink import connect
from ticker.sustain import main_day, until


class Subscriber:
    """An independent aiomqtt client on its own thread, recording what arrives and when."""

    def __init__(self, port: int, topic: str):
        self.port, self.topic = port, topic
        self.arrivals: dict[str, tuple[int, int]] = {}  # milestone id -> (received, folded_us)
        self.order_events = 0
        self.order_bytes = 0
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()
        self.ready.wait(10)

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port) as client:
            await client.subscribe(self.topic, qos=1)
            self.ready.set()
            async def consume():
                async for message in client.messages:
                    now = time.time_ns()
                    payload = message.payload
                    if "/orders/" in message.topic.value:
                        self.order_events += int.from_bytes(payload[8:16], "little")
                        self.order_bytes += len(payload)
                    else:
                        data = orjson.loads(payload)
                        self.arrivals.setdefault(data["id"], (now, data["folded_us"]))
            task = asyncio.create_task(consume())
            while not self.stop.is_set():
                await asyncio.sleep(0.05)
            task.cancel()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


def throughput(workdir: Path, broker: PrivateMosquitto, scale: float, repeats: int) -> None:
    configs = {
        "nothing on (--no-log --mqtt none)": ["--no-log", "--mqtt", "none"],
        "event log on (--fsync interval)": ["--mqtt", "none", "--fsync", "interval"],
        "MQTT on (Mosquitto, loopback)": ["--no-log", "--mqtt", broker.url],
    }
    rates: dict[str, list[float]] = {name: [] for name in configs}
    for _repeat, (name, extra) in itertools.product(range(repeats), configs.items()):
        summary_path = workdir / "summary.json"
        code = ticker(["replay", "double11-2021", "--scale", str(scale), "--quiet",
                       "--run-dir", str(workdir / "run"), "--summary", str(summary_path), *extra])
        assert code == 0, f"{name}: exit {code}"
        rates[name].append(orjson.loads(summary_path.read_bytes())["events_per_s"])
    base = statistics.median(rates["nothing on (--no-log --mqtt none)"])
    print(f"\n1. replay double11-2021 --scale {scale} --speed max, {repeats} interleaved runs each")
    print(f"{'configuration':<38} {'median events/s':>16} {'vs bare':>8}   runs")
    for name, values in rates.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v / 1e6:.1f}M" for v in values)
        print(f"{name:<38} {median:>16,.0f} {median / base:>7.0%}   {runs}")


def paced(broker: PrivateMosquitto, scale: float, seconds: float, orders: bool) -> tuple:
    scenario = main_day()
    path = Path(tempfile.mkdtemp()) / "main-day.toml"
    path.write_text(scenario.text)
    run = prepare(str(path), ReplayOptions(scale=scale, speed=1.0, record=False))
    end = scenario.start_us + int(seconds * 1e6)
    run.batches = until(run.batches, end)
    topic = f"ticker/{run.run}/orders/#" if orders else f"ticker/{run.run}/milestones/#"
    sub = Subscriber(broker.port, topic)
    mqtt = connect(run, broker.url, orders=orders)
    started = time.monotonic()
    summary = execute(run, [mqtt])  # each milestone's payload says when the fold found it
    wall = time.monotonic() - started
    mqtt.close()
    deadline = time.monotonic() + 5  # let the last messages land before the subscriber stops
    while time.monotonic() < deadline and not orders and len(sub.arrivals) < len(summary.milestones):
        time.sleep(0.01)
    if orders:
        time.sleep(1.0)
    sub.close()
    return summary, sub, wall


def latency(broker: PrivateMosquitto, seconds: float) -> None:
    summary, sub, wall = paced(broker, 0.1, seconds, orders=False)
    lat = sorted((received / 1e3 - folded_us) / 1e3 for received, folded_us in sub.arrivals.values())
    missing = len(summary.milestones) - len(lat)
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [lat[0]] * 99
    print(f"\n2. milestone latency, fold -> subscriber: double11-2020 main day, scale 0.1, realtime, "
          f"{seconds:g} s of sale time ({summary.events:,} events in {wall:.1f} s)")
    print(f"milestones {len(lat)} (missing {missing}); ms: p50 {q[49]:.2f}  p90 {q[89]:.2f}  "
          f"p99 {q[98]:.2f}  max {lat[-1]:.2f}")


def publish_orders(broker: PrivateMosquitto, seconds: float) -> None:
    summary, sub, wall = paced(broker, 1.0, seconds, orders=True)
    report = summary.mqtt.report
    print(f"\n3. --publish-orders at scale 1, realtime, the first {seconds:g} s of Nov 11 2020 "
          f"(peak 583,000 orders/s)")
    print(f"events generated {summary.events:,} in {wall:.1f} s; received by a subscriber "
          f"{sub.order_events:,} ({sub.order_events / wall:,.0f}/s, "
          f"{sub.order_bytes / wall / 1e6:.1f} MB/s)")
    print(report)


def orders_cost(broker: PrivateMosquitto, seconds: float, repeats: int) -> None:
    """Part 3's run without and with ``--publish-orders``, interleaved: what publishing the raw
    frames costs a paced replay (1.00 = it kept real time; the frames' wall time includes the
    publisher's close, which waits for the last frames' PUBACKs)."""
    walls: dict[bool, list[float]] = {False: [], True: []}
    for _repeat, orders in itertools.product(range(repeats), (False, True)):
        summary, sub, wall = paced(broker, 1.0, seconds, orders=orders)
        report = summary.mqtt.report
        assert not orders or sub.order_events == summary.events, report
        assert "NOT delivered" not in report and "not acknowledged" not in report, report
        walls[orders].append(wall)
    print(f"\n4. the cost of --publish-orders: the first {seconds:g} s of Nov 11 2020 at scale 1, "
          f"real time, {repeats} interleaved runs each; wall time / sale time")
    for orders, values in walls.items():
        runs = ", ".join(f"{w / seconds:.2f}" for w in values)
        print(f"{'with' if orders else 'without':<8} order frames: median "
              f"{statistics.median(values) / seconds:.2f}   runs {runs}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-s", type=float, default=300)
    parser.add_argument("--orders-s", type=float, default=20)
    parser.add_argument("--parts", default="1,2,3", help="which measurements, e.g. 1 or 2,3")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    tune_allocator()
    with tempfile.TemporaryDirectory() as tmp, PrivateMosquitto() as broker:
        if "1" in parts:
            throughput(Path(tmp), broker, args.scale, args.repeats)
        if "2" in parts:
            latency(broker, args.latency_s)
        if "3" in parts:
            publish_orders(broker, args.orders_s)
        if "4" in parts:
            orders_cost(broker, args.orders_s, args.repeats)

