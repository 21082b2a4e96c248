"""Publishing benchmark: milestone latency, raw order-frame throughput, embedded-broker memory.

Usage (starts its own Mosquitto on a free loopback port, ``ticker.publish.mosquitto``, unless
``--mqtt`` is given)::

    python benchmarks/bench_publish.py                 # all three, 3 rounds, tables of medians
    python benchmarks/bench_publish.py --rounds 5 --frames 200 --rss-publishes 100000

1. Milestone latency: ``Publisher.milestone()`` call -> arrival at an independent paho
   subscriber, through the broker (QoS 1 both ways). "one at a time" waits for each arrival
   before the next call (the unloaded latency); "burst" submits N at once (queueing included).
2. Order frames: frames of 65,536 events (``OrderBatch.to_frame()``, ~2.5 MB) on
   ``ticker/{run}/orders/{partition}`` as fast as the publisher takes them; events/s until the
   broker has acknowledged every frame, and until one subscriber has received them all. The
   issue's target is 583,000 orders/s (the 2020 peak).
3. Embedded broker (amqtt) RSS while a client publishes N retained QoS 1 messages on 100
   rotating topics with one subscriber attached: memory should plateau, not grow with N.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from ticker.aggregate.milestones import Milestone, milestone_id
from ticker.events import COLUMNS, OrderBatch
from ticker.publish import Publisher, RunInfo, parse_url, topics
from ticker.publish.mosquitto import PrivateMosquitto, free_port

FRAME_EVENTS = 1 << 16
TARGET_ORDERS_PER_S = 583_000


# --- a broker to measure against ------------------------------------------------------------------

class Counter:
    """An independent paho subscriber: counts messages and bytes, timestamps each arrival."""

    def __init__(self, url: str, topic_filter: str, *, keep_times: bool = False) -> None:
        parsed = parse_url(url)
        self.count = 0
        self.bytes = 0
        self.arrivals: dict[str, float] = {}
        self.keep_times = keep_times
        self.cond = threading.Condition()
        subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.client.on_connect = lambda c, *a: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(parsed.host, parsed.port)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("subscriber could not subscribe")

    def _on_message(self, client, userdata, message) -> None:
        now = time.perf_counter()
        with self.cond:
            self.count += 1
            self.bytes += len(message.payload)
            if self.keep_times:
                self.arrivals[message.topic] = now
            self.cond.notify_all()

    def wait(self, n: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.count >= n, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --- 1. milestone latency -------------------------------------------------------------------------

def milestones_for(run: str, n: int) -> list[Milestone]:
    return [Milestone(milestone_id(run, "brand_gmv", f"Brand {i}", 10**9), "brand_gmv", f"Brand {i}",
                      10**9, 10**9 + i, i, 1_636_560_000_000_000 + i, i + 1,
                      f"Brand {i} passes RMB 10 million") for i in range(n)]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def bench_latency(url: str, n: int, rnd: int) -> dict[str, float]:
    run = f"bench-lat-{os.getpid()}-{rnd}"
    info = RunInfo(run)
    ms = milestones_for(run, n)
    sub = Counter(url, topics.milestones_filter(run), keep_times=True)
    out: dict[str, float] = {}
    try:
        with Publisher(url, info) as pub:
            sent: dict[str, float] = {}
            for i, m in enumerate(ms[: n // 2]):  # one at a time
                topic = topics.milestone_topic(run, m)
                sent[topic] = time.perf_counter()
                pub.milestone(m)
                if not sub.wait(i + 1, 10):
                    raise RuntimeError("milestone never arrived")
            seq = [(sub.arrivals[t] - s) * 1e3 for t, s in sent.items()]
            burst_sent: dict[str, float] = {}
            for m in ms[n // 2:]:  # all at once
                burst_sent[topics.milestone_topic(run, m)] = time.perf_counter()
                pub.milestone(m)
            if not sub.wait(n, 30):
                raise RuntimeError("burst never arrived")
            burst = [(sub.arrivals[t] - s) * 1e3 for t, s in burst_sent.items()]
        out = {"seq_p50_ms": percentile(seq, 50), "seq_p99_ms": percentile(seq, 99),
               "seq_max_ms": max(seq), "burst_p50_ms": percentile(burst, 50),
               "burst_p99_ms": percentile(burst, 99), "burst_max_ms": max(burst)}
    finally:
        sub.close()
    return out


# --- 2. order-frame throughput --------------------------------------------------------------------

def make_frame(n: int = FRAME_EVENTS) -> bytes:
    rng = np.random.default_rng(7)
    cols = {name: rng.integers(0, 1000, n).astype(dtype) for name, dtype in COLUMNS.items()}
    cols["seq"] = np.arange(n, dtype=COLUMNS["seq"])
    cols["event_time"] = np.sort(rng.integers(0, 10**9, n)).astype(COLUMNS["event_time"])
    return OrderBatch(**cols).to_frame()


def bench_frames(url: str, frames: int, rnd: int, frame: bytes) -> dict[str, float]:
    run = f"bench-orders-{os.getpid()}-{rnd}"
    sub = Counter(url, f"ticker/{run}/orders/#")
    try:
        pub = Publisher(url, RunInfo(run), max_order_bytes=(frames + 1) * len(frame)).start()
        began = time.perf_counter()
        for i in range(frames):
            pub.orders(i % 4, frame)
        submitted = time.perf_counter() - began
        if not pub.flush(timeout=300):
            raise RuntimeError("frames not acknowledged")
        acked = time.perf_counter() - began
        if not sub.wait(frames, 300):
            raise RuntimeError("frames not received")
        received = time.perf_counter() - began
        report = pub.close()
        assert report.order_frames_dropped == 0 and report.order_frames_sent == frames
    finally:
        sub.close()
    events = frames * FRAME_EVENTS
    return {"submit_us_per_frame": submitted / frames * 1e6,
            "acked_events_per_s": events / acked, "received_events_per_s": events / received,
            "mb_per_s": frames * len(frame) / received / 1e6}


# --- 3. embedded broker memory --------------------------------------------------------------------

def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def bench_embedded_rss(publishes: int) -> list[tuple[int, int]]:
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom ticker.publish import run_broker\n"
         "sys.exit(run_broker('127.0.0.1', int(sys.argv[1])))", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    points: list[tuple[int, int]] = []
    try:
        child.stdout.readline()
        url = f"mqtt://127.0.0.1:{port}"
        sub = Counter(url, "ticker/rss/#")
        inflight = threading.Semaphore(100)
        pub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        pub.on_publish = lambda *a: inflight.release()
        pub.max_inflight_messages_set(100)
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        payload = b'{"id":"x","value":"RMB 10.0 billion","headline":"' + b"x" * 150 + b'"}'
        step = max(1, publishes // 10)
        points.append((0, rss_kib(child.pid)))
        for i in range(publishes):
            inflight.acquire()
            pub.publish(f"ticker/rss/milestones/t{i % 100}", payload, qos=1, retain=True)
            if (i + 1) % step == 0:
                sub.wait(i + 1 - 200, 60)
                points.append((i + 1, rss_kib(child.pid)))
        pub.disconnect()
        pub.loop_stop()
        sub.close()
    finally:
        child.terminate()
        child.communicate(timeout=30)
    return points


# --- main -----------------------------------------------------------------------------------------

def table(title: str, rows: list[dict[str, float]]) -> None:
    print(f"\n{title}  (median of {len(rows)} rounds)")
    for key in rows[0]:
        values = [r[key] for r in rows]
        print(f"  {key:<26} {statistics.median(values):>14,.2f}   "
              f"[{min(values):,.2f} .. {max(values):,.2f}]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mqtt", help="broker URL (default: start a private Mosquitto)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--milestones", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--rss-publishes", type=int, default=100_000)
    parser.add_argument("--skip", nargs="*", default=[], choices=["latency", "frames", "rss"])
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        url = args.mqtt or stack.enter_context(PrivateMosquitto()).url
        print(f"broker: {parse_url(url)}  cores: {os.cpu_count()}  python {sys.version.split()[0]}")
        if "latency" not in args.skip:
            table(f"milestone latency, call -> subscriber ({args.milestones // 2} one at a "
                  f"time, then a burst of {args.milestones - args.milestones // 2})",
                  [bench_latency(url, args.milestones, r) for r in range(args.rounds)])
        if "frames" not in args.skip:
            frame = make_frame()
            rows = [bench_frames(url, args.frames, r, frame) for r in range(args.rounds)]
            table(f"order frames: {args.frames} x {FRAME_EVENTS:,} events "
                  f"({len(frame) / 1e6:.2f} MB each), QoS 1", rows)
            best = statistics.median(r["received_events_per_s"] for r in rows)
            print(f"  target {TARGET_ORDERS_PER_S:,} orders/s: "
                  f"{'MET' if best >= TARGET_ORDERS_PER_S else 'NOT MET'} "
                  f"({best / TARGET_ORDERS_PER_S:.1f}x)")
    if "rss" not in args.skip:
        points = bench_embedded_rss(args.rss_publishes)
        print(f"\nembedded broker (amqtt) RSS, {args.rss_publishes:,} retained QoS 1 publishes "
              "on 100 topics, 1 subscriber")
        for n, kib in points:
            print(f"  after {n:>9,} publishes: {kib / 1024:8.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
