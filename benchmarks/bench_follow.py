"""``ticker follow`` throughput: the highest rate it keeps up with from Mosquitto, for ticker's
binary order frames and for JSON orders (one order per message).

Usage (starts its own Mosquitto on a free loopback port)::

    python benchmarks/bench_follow.py                       # both inputs, default rate ladders
    python benchmarks/bench_follow.py --frames 200000,400000,800000 --json 2000,5000,10000 --seconds 5

A ``ticker follow`` process subscribes; this process publishes at a fixed rate for ``--seconds``
per rung of the ladder (frames: a batch every 1/20 s cut into 8 partition frames, as ``replay
--publish-orders`` does, from paho; JSON: one order object per message, QoS 1, from
``mosquitto_pub -l``), then waits for the
follower's tick (``ticker/{run}/gmv``, 10 a second) to show the rung's last event. A rung is
*kept up* when the follower's lag after the publisher's last message is under one second and the
publisher itself held the rate. Publisher, broker and follower share the machine's two cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from ticker.events import OrderBatch
from ticker.scenario import generate, resolve

PARTITIONS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n"
                    "max_inflight_messages 1000\n"
                    + ("user root\n" if os.geteuid() == 0 else ""))
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class Ticks:
    """The follower's latest tick seq, from its gmv topic."""

    def __init__(self, port: int, run: str):
        self.seq = -1
        self.changed = threading.Condition()
        self.client = paho.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"ticker/{run}/gmv", 0)
        self.client.loop_start()

    def _on(self, c, u, m) -> None:
        with self.changed:
            self.seq = max(self.seq, orjson.loads(m.payload)["seq"])
            self.changed.notify_all()

    def wait(self, seq: int, timeout: float) -> float | None:
        """Seconds until the follower's tick reaches ``seq`` (None: not within ``timeout``)."""
        t0 = time.perf_counter()
        with self.changed:
            ok = self.changed.wait_for(lambda: self.seq >= seq, timeout)
        return time.perf_counter() - t0 if ok else None


def wait_connected(port: int, clients: int, timeout: float = 60) -> None:
    """Until the broker counts ``clients`` connections besides this probe ($SYS): a follower
    that is not subscribed yet would miss what is published (its session starts at connect)."""
    seen: list[int] = []
    probe = paho.Client(CallbackAPIVersion.VERSION2)
    probe.on_message = lambda c, u, m: seen.append(int(m.payload or 0))
    probe.connect("127.0.0.1", port)
    probe.subscribe("$SYS/broker/clients/connected")
    probe.loop_start()
    deadline = time.monotonic() + timeout
    try:
        while not (seen and seen[-1] >= clients + 1):
            if time.monotonic() > deadline:
                raise TimeoutError("ticker follow did not connect")
            time.sleep(0.05)  # polling the broker's own count, bounded
    finally:
        probe.loop_stop()
        probe.disconnect()


def publisher(port: int) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def paced(rate: float, seconds: float, step_s: float):
    """Yield (index, due) every ``step_s`` for ``seconds``, sleeping until each is due."""
    t0 = time.perf_counter()
    for i in range(int(seconds / step_s)):
        due = t0 + i * step_s
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing the publisher is the point
        yield i


def rung_frames(client, source: str, stream: OrderBatch, start: int, rate: int, seconds: float):
    per_step = max(1, int(rate / 20))
    t0 = time.perf_counter()
    infos = []
    pos = start
    for _ in paced(rate, seconds, 0.05):
        batch = stream.slice(pos, pos + per_step)
        pos += len(batch)
        key = batch.brand % PARTITIONS
        for p in range(PARTITIONS):
            part = batch.take(np.flatnonzero(key == p))
            if len(part):
                infos.append(client.publish(f"ticker/{source}/orders/{p}", part.to_frame(), qos=1))
    for info in infos:
        info.wait_for_publish(60)
    return pos, time.perf_counter() - t0


def rung_json(port: int, topic: str, start: int, rate: int, seconds: float, t_first: int):
    """JSON orders through ``mosquitto_pub -l`` (one message per line, QoS 1): a C publisher, so
    the rung measures the follower, not a Python publisher's per-message cost."""
    per_step = max(1, int(rate / 100))
    pub = subprocess.Popen([shutil.which("mosquitto_pub") or "mosquitto_pub", "-h", "127.0.0.1",
                            "-p", str(port), "-t", topic, "-q", "1", "-l"], stdin=subprocess.PIPE)
    t0 = time.perf_counter()
    n = start
    for _ in paced(rate, seconds, 0.01):
        lines = []
        for _ in range(per_step):
            lines.append(orjson.dumps({"order_id": n + 1, "brand": f"shop-{n % 997}",
                                       "amount": f"{10 + n % 500}.{n % 100:02d}",
                                       "event_time": t_first + n * 100, "kind": "placed"}))
            n += 1
        pub.stdin.write(b"\n".join(lines) + b"\n")
        pub.stdin.flush()
    pub.stdin.close()
    pub.wait(120)
    return n, time.perf_counter() - t0


def start_follow(port: int, run_dir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ticker", "follow", "--mqtt", f"mqtt://127.0.0.1:{port}",
                             "--run-dir", str(run_dir), "--quiet", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def ladder(name: str, rates: list[int], seconds: float, run_rung, warm, ticks: Ticks) -> list[dict]:
    rows = []
    pos, lost = warm()  # lost: warm-up messages sent before the follower subscribed
    for rate in rates:
        end, took = run_rung(pos, rate, seconds)
        sent = (end - pos) / took
        lag = ticks.wait(end - 1 - lost, timeout=60)
        kept = lag is not None and lag < 1.0 and sent >= 0.95 * rate
        rows.append({"input": name, "target_per_s": rate, "published_per_s": round(sent),
                     "lag_s": None if lag is None else round(lag, 3), "kept_up": kept})
        print(f"{name:6} target {rate:>9,}/s  published {sent:>11,.0f}/s  follower lag "
              f"{'-' if lag is None else f'{lag:.3f} s':>9}  {'kept up' if kept else 'FELL BEHIND'}",
              flush=True)
        pos = end
        if lag is None:
            break
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", default="100000,200000,400000,800000,1600000")
    parser.add_argument("--json", default="1000,2000,4000,8000,16000")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print("load:", os.getloadavg(), flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-follow-"))
    broker, port = start_mosquitto(work)
    results = []
    try:
        # frames: a double11-2021 stream (its first window), enough for the whole ladder
        frames = [int(r) for r in args.frames.split(",") if r]
        need = int(sum(frames) * args.seconds * 1.05) + 10_000
        scenario = resolve("double11-2021")
        parts, got = [], 0
        for batch in generate(scenario, seed=None, scale=0.01, batch_size=1 << 20):
            parts.append(batch)
            got += len(batch)
            if got >= need:
                break
        stream = OrderBatch.concat(parts)
        source = "bench-source"
        follow = start_follow(port, work / "frames", "--scenario", "double11-2021", "--idle-exit", "1")
        ticks = Ticks(port, "frames")
        client = publisher(port)
        wait_connected(port, 3)  # follower, ticks, publisher

        def warm_frames() -> int:
            pos, _ = rung_frames(client, source, stream, 0, 20_000, 0.5)
            ticks.wait(pos - 1, 120)  # the follower built its catalogue and is folding
            return pos, 0

        results += ladder("frames", frames, args.seconds,
                          lambda pos, rate, s: rung_frames(client, source, stream, pos, rate, s),
                          warm_frames, ticks)
        follow.terminate()
        follow.wait(60)
        # JSON orders
        follow = start_follow(port, work / "json", "--scenario", "double11-2021", "--topic", "shop/orders")
        ticks.client.loop_stop()
        ticks.client.disconnect()
        ticks = Ticks(port, "json")
        t_first = scenario.windows[0].start_us + 1_000_000

        def warm_json() -> tuple[int, int]:
            """Send a few orders a second until the follower's tick shows one: then it is
            subscribed, and the orders sent before that are the ones it never saw."""
            n = 0
            while True:
                n, _ = rung_json(port, "shop/orders", n, 100, 0.2, t_first)
                if ticks.wait(0, 1.0) is not None:
                    time.sleep(1.0)  # let the ticks of the warm-up settle (coalesced at 10 Hz)
                    return n, n - 1 - ticks.seq

        results += ladder("json", [int(r) for r in args.json.split(",") if r], args.seconds,
                          lambda pos, rate, s: rung_json(port, "shop/orders", pos, rate, s, t_first),
                          warm_json, ticks)
        follow.terminate()
        follow.wait(60)
        client.loop_stop()
    finally:
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    for kind in ("frames", "json"):
        kept = [r["target_per_s"] for r in results if r["input"] == kind and r["kept_up"]]
        print(f"highest rate kept up, {kind}: {max(kept):,}/s" if kept else f"{kind}: none kept up")
    print(orjson.dumps(results).decode())


if __name__ == "__main__":
    main()
