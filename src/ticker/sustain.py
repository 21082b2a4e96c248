"""``ticker bench --sustain``: the highest rate the whole pipeline holds, through a real broker.

The pipeline is the replay's own (:func:`ticker.engine.execute`: the generator, the pacer, the
fold, the MQTT publisher), run on the 2020 main day (Nov 11 alone: it opens at the festival's
record, 583,000 orders/s) at scale 1, paced at a *speed factor* (``--speed``: sale time runs
``factor`` times wall time), publishing ticks and milestones — and, in a second ladder, the raw
orders too (``--publish-orders``). An independent subscriber, another process, receives it all
from the broker (a private Mosquitto on a free loopback port, or ``--mqtt URL``).

**Lag.** Every replayed event has a due time: the wall time at which the pacer's schedule wants
it, ``origin + (event time - the day's start) / factor``. Whenever the subscriber receives a GMV
tick or an order frame it takes a lag sample: its receive time minus the due time of the newest
event that message covers (a tick's ``event_time``; a frame's last event). The last sample is the
run's "finished" status: received minus the due time of the run's last event, so everything the
run published, drained. A rung **holds** when all of these are true:

* *complete*: the subscriber received every milestone, the "finished" status and (with order
  frames) every order; the publisher acknowledged everything and dropped no frame;
* *bounded*: no lag sample exceeds ``LAG_BOUND_S`` (1 s), the final one included;
* *not growing*: the least-squares slope of lag against wall time is at most ``GROWTH_BOUND``
  (0.02 s per s: a pipeline short of capacity by x % falls behind by x/100 s every second), or
  the fitted line gains under ``GROWTH_FLOOR_S`` (0.1 s, the tick interval) over the whole run.

**The ladder.** For each mode, rungs at increasing factors, each replaying the first
``rung_s x factor`` seconds of Nov 11 (so a held rung lasts ``rung_s`` seconds of wall time and
always starts at the peak, the hardest part of the day); a rung that fails is run once more (the
machine may be shared), and the ladder stops at the first factor that fails twice. The held rate
is the last rung that held: its events per second (events folded / wall time from the first
event's due time to the subscriber's receipt of the final status) and that over the peak.

**Milestone latency.** At the held factor (if any rung held), one longer run replays the first ``latency_s``
seconds of Nov 11 (900 s: about 370 milestones at any scale — brands, channels and Tmall Global
brands crossing their thresholds) and the subscriber measures, for each milestone, its receive
time minus the payload's ``folded_us`` (the wall clock as the fold returned it): p50, p99, max
and how many were measured. That run's lag is checked like a rung's and reported with it.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ticker.clock import US_PER_S, parse_time
from ticker.events import OrderBatch
from ticker.publish.url import PublishError
from ticker.scenario import Scenario, parse_scenario, resolve

#: The 2020 festival's record: orders per second in the first second of Nov 11 (FACTS.md).
PEAK_ORDERS_PER_S = 583_000
#: Most seconds a lag sample may reach in a held rung.
LAG_BOUND_S = 1.0
#: Most seconds of lag gained per second of wall time (the least-squares slope) in a held rung,
#: unless the fitted line gains less than ``GROWTH_FLOOR_S`` over the whole rung: the ticks come
#: every 0.1 s, so a smaller gain is the measurement's resolution, not a trend (short rungs).
GROWTH_BOUND = 0.02
GROWTH_FLOOR_S = 0.1
DEFAULT_FACTORS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
DEFAULT_RUNG_S = 8.0
DEFAULT_LATENCY_S = 900.0
#: The two ladders: ticks and milestones; and the raw orders on top (``--publish-orders``).
MODES = {"ticks": False, "orders": True}
MODE_NAMES = {"ticks": "ticks + milestones", "orders": "ticks + milestones + --publish-orders"}


def main_day(name: str = "double11-2020") -> Scenario:
    """The scenario with its earlier windows removed: its last sales window (Nov 11) alone."""
    text = resolve(name).text
    blocks = [m.start() for m in re.finditer(r"^\[\[windows\]\]", text, flags=re.M)]
    text = text[:blocks[0]] + text[blocks[-1]:]  # the windows are consecutive tables
    renamed = re.sub(r'^name = "([^"]+)"', r'name = "\1-main-day"', text, count=1, flags=re.M)
    return parse_scenario(renamed, f"{name}-main-day.toml")


def until(batches: Iterator[OrderBatch], end_us: int) -> Iterator[OrderBatch]:
    """The stream up to (not including) event time ``end_us``."""
    for batch in batches:
        stop = int(np.searchsorted(batch.event_time, end_us))
        if stop:
            yield batch.slice(0, stop)
        if stop < len(batch):
            return


@dataclass
class Rung:
    """One paced run and what the subscriber saw of it."""

    mode: str
    factor: float
    sale_s: float
    events: int
    wall_s: float  # the first event's due time -> the subscriber has the "finished" status
    lag_max_s: float
    lag_final_s: float
    lag_slope: float  # seconds of lag per second of wall time (least squares)
    lag_samples: int
    milestones_folded: int
    milestones_delivered: int  # acknowledged by the broker (the publisher's report)
    milestones_received: int
    orders_received: int | None  # with order frames
    held: bool
    why: str  # why it did not hold ("" if it did)
    delivery: str  # the publisher's own report
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    #: CPU seconds used during the run by the pipeline's process (fold and publisher thread), the
    #: subscriber and the broker (None: not ours to see): what the rate costs, whatever the load
    cpu_s: dict[str, float | None] = field(default_factory=dict)

    def cores(self, who: str) -> float | None:
        """CPU seconds of ``who`` per second of wall time: the share of a core it needed."""
        cpu = self.cpu_s.get(who)
        return None if cpu is None or self.wall_s <= 0 else cpu / self.wall_s

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def of_peak(self) -> float:
        return self.events_per_s / PEAK_ORDERS_PER_S

    def latency(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        if not lat:
            return {"milestones": 0}
        return {"milestones": len(lat), "min_ms": round(lat[0], 3),
                "p50_ms": round(_quantile(lat, 0.50), 3), "p99_ms": round(_quantile(lat, 0.99), 3),
                "max_ms": round(lat[-1], 3)}

    def to_json(self) -> dict[str, Any]:
        return {"factor": self.factor, "sale_s": self.sale_s, "events": self.events,
                "wall_s": round(self.wall_s, 3), "events_per_s": round(self.events_per_s),
                "of_peak": round(self.of_peak, 3), "lag_max_s": round(self.lag_max_s, 3),
                "lag_final_s": round(self.lag_final_s, 3), "lag_slope": round(self.lag_slope, 4),
                "lag_samples": self.lag_samples, "milestones_folded": self.milestones_folded,
                "milestones_delivered": self.milestones_delivered,
                "milestones_received": self.milestones_received,
                "orders_received": self.orders_received, "held": self.held, "why": self.why,
                "cpu_s": {k: None if v is None else round(v, 3) for k, v in self.cpu_s.items()}}


def _quantile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile, linear between the two nearest ranks (numpy's default)."""
    return float(np.quantile(np.asarray(ordered), q))


@dataclass
class Ladder:
    mode: str
    rungs: list[Rung]
    held: Rung | None  # the fastest rung that held
    latency: Rung | None  # the latency run at the held factor


@dataclass
class SustainResult:
    scenario: str
    scale: float
    broker: str
    rung_s: float
    latency_s: float
    ladders: list[Ladder]
    load: tuple[float, float, float]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "scenario": self.scenario, "scale": self.scale, "broker": self.broker,
            "peak_orders_per_s": PEAK_ORDERS_PER_S, "lag_bound_s": LAG_BOUND_S,
            "growth_bound": GROWTH_BOUND, "growth_floor_s": GROWTH_FLOOR_S,
            "rung_s": self.rung_s, "latency_s": self.latency_s,
            "load": [round(x, 2) for x in self.load], "cores": os.cpu_count(), "modes": {}}
        for ladder in self.ladders:
            held, lat = ladder.held, ladder.latency
            out["modes"][ladder.mode] = {
                "rungs": [r.to_json() for r in ladder.rungs],
                "held_factor": held.factor if held else None,
                "held_events_per_s": round(held.events_per_s) if held else None,
                "held_of_peak": round(held.of_peak, 3) if held else None,
                "latency": None if lat is None else {**lat.to_json(), **lat.latency()}}
        return out


# --- one rung -------------------------------------------------------------------------------------

def run_rung(scenario: Scenario, url: str, mode: str, factor: float, sale_s: float,
             scale: float, broker_pid: int | None = None) -> Rung:
    """Replay the first ``sale_s`` seconds of ``scenario`` at ``factor`` through ``url`` with an
    independent subscriber, and judge whether the pipeline kept up."""
    from ticker.engine import ReplayOptions, execute, prepare
    from ticker.publish.sink import connect

    orders = MODES[mode]
    run = prepare(scenario, ReplayOptions(scale=scale, speed=factor, record=False))
    start_us = scenario.windows[0].start_us
    origin: list[int] = []

    def paced_from_here(batches: Iterator[OrderBatch]) -> Iterator[OrderBatch]:
        for batch in batches:
            if not origin:  # the pacer's schedule starts as it takes this batch
                origin.append(time.time_ns())
            yield batch

    run.batches = paced_from_here(until(run.batches, start_us + int(sale_s * US_PER_S)))
    with Listener(url, run.run, orders=orders) as listener:
        sink = connect(run, url, orders=orders)
        cpu0, broker0 = _cpu_self(), _cpu_of(broker_pid)
        summary = execute(run, [sink])
        heard = listener.result(timeout=30.0)
        cpu1, broker1 = _cpu_self(), _cpu_of(broker_pid)
    cpu = {"pipeline": cpu1 - cpu0, "subscriber": heard.get("cpu_s"),
           "broker": None if broker0 is None or broker1 is None else broker1 - broker0}
    assert origin, "a rung replays at least one batch"
    folded = {m.id for m in summary.milestones}
    last_us = run.aggregator.state.last_time_us

    def due_ns(t_us: np.ndarray) -> np.ndarray:
        return origin[0] + (t_us - start_us) * (1000 / factor)

    received = np.array(heard["samples"], dtype=np.float64).reshape(-1, 2)  # recv ns, event µs
    lags = (received[:, 0] - due_ns(received[:, 1])) / 1e9
    walls = (received[:, 0] - origin[0]) / 1e9
    finished_ns = heard["finished_ns"]
    lag_final = (finished_ns - float(due_ns(np.array(last_us)))) / 1e9 if finished_ns else float("inf")
    all_lags = np.append(lags, lag_final)
    slope = float(np.polyfit(walls, lags, 1)[0]) if len(lags) >= 3 and np.ptp(walls) > 0 else 0.0
    got = heard["milestones"]
    latencies = [(recv_ns / 1e3 - fold_us) / 1e3 for mid, (recv_ns, fold_us) in got.items()
                 if mid in folded and fold_us is not None]
    report = sink.publisher.report()  # the final one: close() has run
    why = []
    if not finished_ns:
        why.append("the subscriber never heard 'finished'")
    if not report.ok or report.order_frames_dropped:
        why.append(f"publisher: {report}")
    if len(folded - got.keys()):
        why.append(f"{len(folded - got.keys())} milestones not received")
    if orders and heard["orders"] != summary.events:
        why.append(f"{summary.events - heard['orders']:,} orders not received")
    if float(all_lags.max()) > LAG_BOUND_S:
        why.append(f"lag reached {float(all_lags.max()):.2f} s > {LAG_BOUND_S:g} s")
    if slope > GROWTH_BOUND and slope * float(np.ptp(walls)) > GROWTH_FLOOR_S:
        why.append(f"lag grew {slope:.3f} s/s > {GROWTH_BOUND:g}")
    wall_s = ((finished_ns or time.time_ns()) - origin[0]) / 1e9
    return Rung(mode, factor, sale_s, summary.events, wall_s, float(all_lags.max()), lag_final,
                slope, len(lags) + 1, len(folded), report.milestones_delivered,
                len(folded & got.keys()),
                heard["orders"] if orders else None, not why, "; ".join(why), str(report), latencies,
                cpu)


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_of(pid: int | None) -> float | None:
    """CPU seconds (user + system) of process ``pid`` so far, from /proc (None elsewhere)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the subscriber: another process --------------------------------------------------------------

class Listener:
    """``python -m ticker.sustain URL RUN ORDERS OUT``: an MQTT subscriber in its own process (so
    it neither shares the pipeline's interpreter lock nor its clock readings), started and
    subscribed before the run begins; :meth:`result` waits for what it heard."""

    def __init__(self, url: str, run: str, *, orders: bool) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="ticker-sustain-")
        self.out = Path(self._dir.name) / "heard.json"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ticker.sustain", url, run, "1" if orders else "0", str(self.out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()  # "subscribed", or nothing if it died
        if line != "subscribed":
            self.proc.wait(10)
            why = self._stderr()
            self.close()
            raise PublishError(f"the benchmark's subscriber could not subscribe: {why}")

    def _stderr(self) -> str:
        with contextlib.suppress(Exception):
            assert self.proc.stderr is not None
            return (self.proc.stderr.read() or "").strip().splitlines()[-1]
        return "no message"

    def result(self, timeout: float) -> dict[str, Any]:
        """What the subscriber heard, once it has the "finished" status (or ``timeout`` s pass:
        then what it had)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)  # it writes what it has and exits
            self.proc.wait(10)
        if not self.out.exists():
            raise PublishError(f"the benchmark's subscriber wrote nothing: {self._stderr()}")
        heard: dict[str, Any] = orjson.loads(self.out.read_bytes())
        return heard

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        self._dir.cleanup()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _listen(url: str, run: str, orders: bool, out: Path) -> int:
    """The subscriber's body: record each tick's and frame's receive time with the newest event
    time it covers, each milestone's receive time with its ``folded_us``, and stop at the run's
    "finished" status (or SIGTERM). Retained messages (an earlier rung's) are not this run's."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from ticker.publish import topics
    from ticker.publish.url import parse_url

    parsed = parse_url(url)
    samples: list[int] = []  # receive ns, event µs, flattened
    milestones: dict[str, tuple[int, int | None]] = {}
    heard: dict[str, float] = {"orders": 0, "finished_ns": 0}
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    prefix = topics.run_prefix(run)
    wanted = [(topics.gmv_topic(run), 0), (topics.status_topic(run), 1),
              (topics.milestones_filter(run), 1)]
    if orders:
        wanted.append((f"{prefix}/orders/#", 1))

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        now = time.time_ns()
        if message.retain:
            return
        topic, payload = message.topic, message.payload
        if topic.startswith(f"{prefix}/orders/"):
            batch = OrderBatch.from_frame(payload)
            if len(batch):
                heard["orders"] += len(batch)
                samples.extend((now, int(batch.event_time[-1])))
        elif topic.startswith(f"{prefix}/milestones/"):
            data = orjson.loads(payload)
            milestones.setdefault(data["id"], (now, data.get("folded_us")))
        elif topic == topics.gmv_topic(run):
            samples.extend((now, parse_time(orjson.loads(payload)["event_time"])))
        elif orjson.loads(payload).get("state") == "finished":
            heard["finished_ns"] = now
            done.set()

    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    if parsed.username:
        client.username_pw_set(parsed.username, parsed.password)
    if parsed.tls:
        client.tls_set()
    client.on_connect = lambda c, *_: c.subscribe(wanted)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = on_message
    try:
        client.connect(parsed.host, parsed.port)
    except OSError as exc:
        print(f"cannot connect to MQTT broker {parsed}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    client.loop_start()
    if not subscribed.wait(15):
        print(f"no SUBACK from {parsed} within 15 s", file=sys.stderr)
        return 1
    cpu0 = _cpu_self()
    print("subscribed", flush=True)
    done.wait()
    heard["cpu_s"] = _cpu_self() - cpu0
    client.disconnect()
    client.loop_stop()
    out.write_bytes(orjson.dumps({"samples": samples, "milestones": milestones, **heard}))
    return 0


# --- the ladders ----------------------------------------------------------------------------------

def run_sustain(url: str | None = None, *, factors: Sequence[float] = DEFAULT_FACTORS,
                rung_s: float = DEFAULT_RUNG_S, latency_s: float = DEFAULT_LATENCY_S,
                modes: Sequence[str] = tuple(MODES), scale: float = 1.0, retries: int = 1,
                progress: Callable[[Rung], None] | None = None) -> SustainResult:
    """Climb each mode's ladder of speed factors, then measure milestone latency at the held
    factor; with no ``url``, against a private Mosquitto on a free loopback port."""
    from ticker.engine import tune_allocator
    from ticker.publish.mosquitto import PrivateMosquitto
    from ticker.publish.url import redact

    tune_allocator()
    scenario = main_day()
    with contextlib.ExitStack() as stack:
        broker_pid = None
        if url is None:
            broker = stack.enter_context(PrivateMosquitto())
            url, broker_pid = broker.url, broker.pid
        ladders = []
        for mode in modes:
            rungs: list[Rung] = []
            held: Rung | None = None
            for factor in sorted(factors):
                for _attempt in range(1 + retries):
                    rung = run_rung(scenario, url, mode, factor, rung_s * factor, scale, broker_pid)
                    rungs.append(rung)
                    if progress:
                        progress(rung)
                    if rung.held:
                        break
                if not rung.held:
                    break
                held = rung
            latency = None  # "at the held rate": none when no rung held
            if held is not None:
                latency = run_rung(scenario, url, mode, held.factor,
                                   max(latency_s, rung_s * held.factor), scale, broker_pid)
                if progress:
                    progress(latency)
            ladders.append(Ladder(mode, rungs, held, latency))
        return SustainResult(scenario.name, scale, redact(url), rung_s, latency_s, ladders,
                             os.getloadavg())


def print_sustain(result: SustainResult) -> None:
    """The ladders as tables, then the held rate and the milestone latency at it."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(100, Console().width))
    for ladder in result.ladders:
        table = Table(title=f"{MODE_NAMES[ladder.mode]}: {result.scenario} at scale "
                      f"{result.scale:g} through {result.broker}; rungs of {result.rung_s:g} s wall")
        for name in ("speed", "sale s", "events", "events/s", "× peak", "lag max s",
                     "lag s/s", "final s", "cores p/s/b", "held"):
            table.add_column(name, justify="right")
        for r in ladder.rungs:
            table.add_row(f"×{r.factor:g}", f"{r.sale_s:g}", f"{r.events:,}",
                          f"{r.events_per_s:,.0f}", f"{r.of_peak:.2f}", f"{r.lag_max_s:.3f}",
                          f"{r.lag_slope:+.4f}", f"{r.lag_final_s:.3f}",
                          "/".join("-" if (c := r.cores(w)) is None else f"{c:.2f}"
                                   for w in ("pipeline", "subscriber", "broker")),
                          "yes" if r.held else "no")
        console.print(table)
        for r in ladder.rungs:
            if not r.held:
                console.print(f"  ×{r.factor:g} did not hold: {r.why}")
        held, lat = ladder.held, ladder.latency
        if held is None:
            console.print(f"[bold]{MODE_NAMES[ladder.mode]}: no rung held[/bold]")
        else:
            console.print(f"[bold]{MODE_NAMES[ladder.mode]}: holds ×{held.factor:g} sale time: "
                          f"{held.events_per_s:,.0f} events/s = {held.of_peak:.2f}× the peak "
                          f"({PEAK_ORDERS_PER_S:,} orders/s)[/bold]")
        if lat is not None:
            stats = lat.latency()
            kept = "held" if lat.held else f"did NOT hold: {lat.why}"
            numbers = (f"p50 {stats['p50_ms']:.1f} ms, p99 {stats['p99_ms']:.1f} ms, max "
                       f"{stats['max_ms']:.1f} ms" if stats["milestones"] else "none received")
            console.print(f"  milestone latency, fold -> subscriber, at ×{lat.factor:g} over the "
                          f"first {lat.sale_s:g} s of the day ({lat.events:,} events, "
                          f"{lat.events_per_s:,.0f}/s, {kept}): {stats['milestones']} milestones, "
                          f"{numbers}")
    load = ", ".join(f"{x:.2f}" for x in result.load)
    console.print(f"load average {load} on {os.cpu_count()} cores; held = every message received, "
                  f"lag ≤ {LAG_BOUND_S:g} s, growing ≤ {GROWTH_BOUND:g} s/s (or < "
                  f"{GROWTH_FLOOR_S:g} s over the run); cores p/s/b = CPU seconds per wall second "
                  "of the pipeline's process (fold + publisher thread) / the subscriber / the broker")


if __name__ == "__main__":  # the subscriber process (Listener)
    sys.exit(_listen(sys.argv[1], sys.argv[2], sys.argv[3] == "1", Path(sys.argv[4])))
