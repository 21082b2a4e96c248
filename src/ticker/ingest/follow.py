"""``ticker follow``: order events from an MQTT broker into a run, live — logged first, then
folded, then published under ``ticker/{run}/…`` like a replay.

**Inputs.** Ticker's binary order frames (``ticker/{source}/orders/{partition}``, what
``replay --publish-orders`` sends) and JSON orders (one object, or an array of objects, per
message; the schema of :mod:`ticker.ingest.orders`) on any topic filter. A run follows one kind:
the first valid payload decides (frames from one source run, or JSON); the other kind is
dead-lettered with that reason.

**Frames keep the source's order.** A replay splits each batch into 8 partition frames, which
may interleave; every event carries the source's ``seq``, so the follower puts them back into
source order (vectorised: one sort of the waiting events) and logs them in it. Its log is then
the source's log (``follower seq = source seq − skipped``), a redelivered frame is recognised by
its seqs and dropped, and the follower's totals, per-second series and milestones are the
replayer's exactly. Seqs that never arrive (a frame the broker or the publisher dropped, or one
refused here) are skipped when the source says it has finished and nothing more comes, or at
stop; each skip is recorded in ``follow.json`` before any later event is logged, so a resume
maps seqs the same way.

**JSON orders** are checked one by one. With ``--disorder`` the run is folded by event time
(``EventTimeAggregator``: any arrival order, duplicates dropped by the fold); without it, orders
must come in event-time order, and duplicates (same order id and kind) within the last
:data:`~ticker.ingest.orders.DEDUP_WINDOW` accepted orders are counted once.

**Nothing lost, nothing counted twice.** The MQTT session is persistent (clean session off, QoS
1, a client id derived from the run), so the broker keeps what arrives while ``follow`` is down,
and messages are acknowledged by hand only once their events are in the log (or their reason in
the dead-letter file): a SIGKILL at any moment loses nothing the broker handed over, and what it
hands over again is recognised. A restart resumes from the newest snapshot plus the log's tail.

**Bad input never stops it**: every refused payload or order goes to ``dead-letters.jsonl`` and
to ``ticker/{run}/dead-letters`` (QoS 1) with its reason and raw payload, and is counted in the
tick (``dead_letters``) and the summary.

**Stopping.** SIGINT or SIGTERM, or when the followed run's retained status says ``finished``
and every event it announced has arrived (or nothing more came for ``idle_s``); then the
summary is written as a replay writes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ticker.aggregate import Aggregator
from ticker.aggregate.eventtime import EventTimeAggregator, aggregator_for
from ticker.engine import (
    ReplayOptions,
    Run,
    StopSignals,
    checkpoint,
    make_summary,
    send_tick,
    snapshot_interval,
)
from ticker.errors import TickerError
from ticker.eventlog import EventLog, FsyncPolicy
from ticker.events import COLUMNS, FRAME_MAGIC, FrameError, OrderBatch, rebatch
from ticker.ingest import rundir as ingest_rundir
from ticker.ingest.deadletters import DeadLetters, count_lines
from ticker.ingest.festival import default_scenario
from ticker.ingest.fields import RowError, parse_event_time
from ticker.ingest.orders import Catalogue, DuplicateOrder, OrderParser, RecentOrders, Rows
from ticker.publish.url import PublishError, parse_url
from ticker.rundir import RunDir, RunDirError, write_atomic
from ticker.scenario import Scenario, resolve
from ticker.sink import OrderSink, RunStart, Sink
from ticker.views import Tick

if TYPE_CHECKING:
    import paho.mqtt.client as paho

    from ticker.publish.sink import MqttSink

DEFAULT_TOPICS = ("ticker/+/orders/+",)
DEFAULT_URL = "mqtt://127.0.0.1:1883"
DRAIN_MESSAGES = 256  # messages taken per step (the broker's in-flight window is ~20 anyway)


class FollowError(TickerError, ValueError):
    """``follow`` cannot start or go on (one line for the user)."""


@dataclass
class FollowOptions:
    url: str = DEFAULT_URL
    topics: tuple[str, ...] = DEFAULT_TOPICS
    scenario: str | None = None
    run_dir: Path = Path("runs/follow")
    currency: str = "CNY"
    tick_hz: float = 10.0
    snapshot_every: int = 1 << 23
    fsync: FsyncPolicy = "interval"
    idle_s: float = 5.0  # after the source's "finished", how long to wait for missing seqs
    ca_file: str | None = None
    publish: bool = True
    disorder: str | None = None  # NAME|FILE|none: the event-time fold (as replay --disorder)
    on_progress: Callable[[str], None] | None = None


@dataclass
class _Message:
    mid: int
    qos: int
    topic: str
    payload: bytes


def client_id(run: str) -> str:
    """A stable MQTT client id for a run (23 characters at most, as MQTT 3.1.1 guarantees):
    the broker recognises the session of a restarted follower by it."""
    return "tkf-" + hashlib.blake2b(run.encode(), digest_size=9).hexdigest()


# --- frames in source order ------------------------------------------------------------------


class Reassembler:
    """Events of one source run -> its stream in source-seq order, duplicates dropped."""

    def __init__(self, next_seq: int):
        self.next = next_seq
        self.pending = OrderBatch.empty()
        self.duplicates = 0

    def add(self, batch: OrderBatch) -> OrderBatch:
        """Take a frame's events; return what is now contiguous from :attr:`next` on."""
        joined = OrderBatch.concat([self.pending, batch]) if len(self.pending) else batch
        order = np.argsort(joined.seq, kind="stable")
        seq = joined.seq[order]
        fresh = seq >= self.next
        fresh[1:] &= seq[1:] != seq[:-1]
        self.duplicates += int(len(seq) - fresh.sum())
        order, seq = order[fresh], seq[fresh]
        run = seq == self.next + np.arange(len(seq))
        ready = len(seq) if run.all() else int(np.argmin(run))
        released = joined.take(order[:ready])
        self.pending = joined.take(order[ready:])
        self.next += ready
        return released

    def skip_to(self, seq: int) -> int:
        """Give up on seqs before ``seq`` (they will not come); returns how many were skipped."""
        skipped = max(0, seq - self.next)
        self.next = max(self.next, seq)
        return skipped

    def release_rest(self) -> tuple[OrderBatch, int]:
        """Everything waiting, in seq order, skipping the gaps; (events, seqs skipped)."""
        rest, skipped = [], 0
        while len(self.pending):
            skipped += self.skip_to(int(self.pending.seq.min()))
            rest.append(self.add(OrderBatch.empty()))
        return OrderBatch.concat(rest), skipped


# --- the follower ------------------------------------------------------------------------------


@dataclass
class _State:
    """What ``follow.json`` keeps: the mode, the source run, and the seq skips (frames mode)."""

    mode: str | None = None  # "frames" | "json"
    source: str | None = None
    skips: list[list[int]] = field(default_factory=list)  # [follower seq, source - follower]

    def offset(self, at: int | None = None) -> int:
        """source seq − follower seq from follower seq ``at`` on (default: the latest)."""
        found = [k for f, k in self.skips if at is None or f <= at]
        return found[-1] if found else 0

    def forget_after(self, at: int) -> None:
        """Skips recorded for events that never reached the log (a crash in between)."""
        self.skips = [[f, k] for f, k in self.skips if f <= at]


@dataclass
class _Live:
    """What exists once the run does (at its first usable payload, or on resume): made together,
    used together."""

    scenario: Scenario
    aggregator: Aggregator | EventTimeAggregator
    log: EventLog
    catalogue: Catalogue
    parser: OrderParser
    dead: DeadLetters
    reasm: Reassembler
    runner: Run


class Follower:
    def __init__(self, opts: FollowOptions):
        self.opts = opts
        self.url = parse_url(opts.url)
        self.run_dir = RunDir(opts.run_dir)
        self.run = ingest_rundir.safe_run_id(opts.run_dir.resolve().name)
        self.inbox: queue.Queue[_Message] = queue.Queue()
        self.stop = threading.Event()
        self.ready = threading.Event()  # connected and subscribed: what is published now arrives
        self.state = _State()
        self.live: _Live | None = None  # the run, once it exists
        self.sinks: list[Sink] = []
        self.mqtt_sink: _FollowSink | None = None
        self.unacked: list[tuple[int, int, int]] = []  # (last source seq, mid, qos): frames waiting
        self.source_status: dict[str, Any] | None = None
        self.finished_at: float | None = None
        self.dead_early: list[tuple[str, str, object]] = []
        self.notes: list[str] = []
        self.events0 = 0
        self.last_tick = 0.0
        self.ticked = -1  # the seq the last tick showed
        self.client: paho.Client | None = None
        self.ordered = True  # the ordered fold (no --disorder): events must come in time order

    # --- MQTT (paho, its own network thread) -----------------------------------------------

    def _opened(self) -> _Live:
        """The run, where the code runs only once it exists."""
        assert self.live is not None, "the run is not open yet"
        return self.live

    def _connect(self) -> paho.Client:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.properties import Properties
        from paho.mqtt.reasoncodes import ReasonCode

        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id(self.run),
                             clean_session=False, protocol=paho.MQTTv311, manual_ack=True)
        if self.url.username is not None:
            client.username_pw_set(self.url.username, self.url.password)
        if self.url.tls:
            client.tls_set_context(ssl.create_default_context(cafile=self.opts.ca_file))
        # paho annotates the delays as whole seconds; it waits any float
        client.reconnect_delay_set(0.05, 1.0)  # type: ignore[arg-type]
        connected = threading.Event()
        refused: list[str] = []

        def on_connect(c: paho.Client, userdata: object, flags: paho.ConnectFlags, reason: ReasonCode,
                       properties: Properties | None = None) -> None:
            if reason.is_failure:
                refused.append(str(reason))
                connected.set()
                return
            # the session keeps the subscriptions; subscribing again is harmless (and needed the
            # first time, or after the broker lost its persistence)
            c.subscribe([(t, 1) for t in self.opts.topics])
            if self.state.source:
                c.subscribe(f"ticker/{self.state.source}/status", 1)

        def on_subscribe(c: paho.Client, userdata: object, mid: int, reason_codes: list[ReasonCode],
                         properties: Properties | None = None) -> None:
            failed = [str(r) for r in reason_codes if r.is_failure]
            if failed:
                refused.append(f"subscription refused ({failed[0]})")
            connected.set()
            self.ready.set()

        def on_message(c: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
            self.inbox.put(_Message(message.mid, message.qos, message.topic, bytes(message.payload)))

        client.on_connect = on_connect
        client.on_message = on_message
        client.on_subscribe = on_subscribe
        try:
            client.connect(self.url.host, self.url.port, keepalive=30)
        except OSError as exc:
            raise PublishError(f"cannot connect to MQTT broker {self.url}: "
                               f"{exc.strerror or exc}") from None
        client.loop_start()
        if not connected.wait(10) or refused:
            client.loop_stop()
            raise PublishError(f"MQTT broker {self.url} refused the connection: "
                               f"{refused[0] if refused else 'no answer within 10 s'}")
        self.client = client
        return client

    def _ack(self, message: _Message) -> None:
        if message.qos:
            assert self.client is not None  # messages come from it
            self.client.ack(message.mid, message.qos)

    # --- the run directory ---------------------------------------------------------------

    @property
    def follow_path(self) -> Path:
        return self.run_dir.path / "follow.json"

    def _save_state(self) -> None:
        write_atomic(self.follow_path, orjson.dumps(
            {"mode": self.state.mode, "source": self.state.source, "skips": self.state.skips}) + b"\n")

    def _open_existing(self) -> bool:
        if not self.run_dir.exists():
            return False
        meta = self.run_dir.meta()
        if not self.follow_path.is_file():
            raise FollowError(f"{self.run_dir.path} holds a run that 'follow' did not make; "
                              "choose another --run-dir")
        saved = orjson.loads(self.follow_path.read_bytes())
        self.state = _State(saved.get("mode"), saved.get("source"), saved.get("skips", []))
        from ticker.scenario import load_scenario

        scenario = load_scenario(self.run_dir.scenario_path)
        names = ingest_rundir.reopen_catalogue(self.run_dir, scenario)
        log = EventLog(self.run_dir.log, fsync=self.opts.fsync)
        if log.recovery is not None:
            self.notes.append(f"recovered the event log: {log.recovery}")
        restored = self.run_dir.restore(log=log, scenario=scenario, brand_names=names)
        aggregator = restored.aggregator
        self.ordered = not meta.get("disorder")
        self.notes += restored.notes
        self.notes.append(f"resuming {meta['run']} at seq {log.next_seq:,} "
                          f"({restored.folded:,} events re-folded from the log)")
        live = self._ready(scenario, log, aggregator, names, meta)
        if self.state.mode == "json":  # duplicates: remember the log's latest orders again
            recent = live.parser.recent
            assert recent is not None  # follow's parser keeps them (see _ready)
            start = max(0, log.next_seq - recent.size)
            for batch in log.read(start):  # (read from a seq: the batches start there)
                recent.add_batch(batch)
            live.parser.last_time_us = aggregator.state.last_time_us
        live.dead.count = count_lines(self.run_dir.dead_letters_path)
        meta["state"] = "running"
        self.run_dir.write_meta(meta)
        return True

    def _create(self, scenario: Scenario, bundled: bool) -> None:
        source = {"follow": str(self.url), "topics": list(self.opts.topics)}
        disorder = ingest_rundir.event_time(scenario, self.opts.disorder)
        names, notes = ingest_rundir.create(self.run_dir, self.run, scenario, bundled=bundled,
                                            source=source, disorder=disorder)
        self.notes += notes
        self.ordered = disorder is None
        self._save_state()
        log = EventLog(self.run_dir.log, fsync=self.opts.fsync)
        aggregator = aggregator_for(scenario, names, self.run, disorder)
        self._ready(scenario, log, aggregator, names, self.run_dir.meta())

    def _ready(self, scenario: Scenario, log: EventLog, aggregator: Aggregator | EventTimeAggregator,
               names: tuple[str, ...], meta: dict[str, Any]) -> _Live:
        catalogue = Catalogue(names)
        parser = OrderParser(scenario, catalogue, recent=RecentOrders(), ordered=self.ordered)
        dead = DeadLetters(self.run_dir.dead_letters_path)
        self.state.forget_after(log.next_seq)
        reasm = Reassembler(log.next_seq + self.state.offset(log.next_seq))
        options = ReplayOptions(scale=meta.get("scale", 1.0), seed=0, run_dir=self.run_dir.path,
                                snapshot_every=self.opts.snapshot_every, tick_hz=self.opts.tick_hz)
        runner = Run(scenario, 0, meta.get("scale", 1.0), meta["run"], tuple(catalogue.names),
                     aggregator, iter(()), 0, None, self.run_dir, options, self.notes)
        live = self.live = _Live(scenario, aggregator, log, catalogue, parser, dead, reasm, runner)
        self.events0 = aggregator.state.next_seq
        if self.opts.publish:
            from ticker.publish.sink import connect

            self.mqtt_sink = _FollowSink(connect(runner, str(self.opts.url), tick_hz=self.opts.tick_hz,
                                                 ca_file=self.opts.ca_file), self)
            self.sinks.append(self.mqtt_sink)
        start = runner.start_info()
        for sink in self.sinks:
            sink.start(start)
        for where, reason, raw in self.dead_early:
            self._dead(where, reason, raw)
        self.dead_early.clear()
        if self.state.source and self.client is not None:
            self.client.subscribe(f"ticker/{self.state.source}/status", 1)
        return live

    def _ensure_run(self, message: _Message, kind: str, source: str | None) -> bool:
        """Create the run at its first usable payload; False if it must wait (frames without a
        scenario wait for the source's status, which names it)."""
        if self.live is not None:
            return True
        self.state.mode, self.state.source = kind, source
        if self.opts.scenario:
            self._create(resolve(self.opts.scenario), bundled=True)
            return True
        if kind == "frames":
            if self.client is not None and not self.source_status:
                self.client.subscribe(f"ticker/{source}/status", 1)
            if not self.source_status:
                return False
            name = self.source_status.get("scenario", "")
            try:
                scenario = resolve(name)
            except TickerError:
                raise FollowError(f"the frames of run {source} are from scenario {name!r}, which "
                                  "is not bundled: pass it with --scenario FILE") from None
            self._create(scenario, bundled=True)
            return True
        first = None
        with contextlib.suppress(orjson.JSONDecodeError, RowError, TypeError, KeyError, AttributeError):
            doc = orjson.loads(message.payload)
            doc = doc[0] if isinstance(doc, list) else doc
            first = parse_event_time(doc["event_time"], default_scenario(0).zone)
        self._create(default_scenario(first if first is not None else time.time_ns() // 1000,
                                      currency=self.opts.currency, name="followed", command="follow"),
                     bundled=False)
        return True

    # --- handling messages -----------------------------------------------------------------

    def _dead(self, where: str, reason: str, raw: object) -> None:
        if self.live is None:  # before the run exists: written once it does
            self.dead_early.append((where, reason, raw))
            return
        line = self.live.dead.add(where, reason, raw)
        if self.client is not None and self.opts.publish:
            self.client.publish(f"ticker/{self.run}/dead-letters", line, qos=1)

    def _status(self, message: _Message) -> None:
        with contextlib.suppress(orjson.JSONDecodeError):
            status = orjson.loads(message.payload)
            if isinstance(status, dict):
                self.source_status = status
                if status.get("state") == "finished" and self.finished_at is None:
                    self.finished_at = time.monotonic()
        self._ack(message)

    def step(self, timeout: float = 0.1) -> None:
        """Take what the broker has handed over, log it, acknowledge it, fold it."""
        messages: list[_Message] = []
        try:
            messages.append(self.inbox.get(timeout=timeout))
            while len(messages) < DRAIN_MESSAGES:
                messages.append(self.inbox.get_nowait())
        except queue.Empty:
            pass
        frames: list[OrderBatch] = []
        rows = Rows.empty()
        ack_now: list[_Message] = []
        waiting: list[tuple[_Message, OrderBatch]] = []
        for m in messages:
            if m.topic.endswith("/status") and m.topic.startswith("ticker/"):
                self._status(m)
                continue
            if m.payload[:4] == FRAME_MAGIC:
                source = _frame_source(m.topic)
                if self.state.mode not in (None, "frames") or (
                        self.state.source not in (None, source)):
                    self._dead(m.topic, f"frames from {source}, but this run follows "
                               f"{self.state.source or 'JSON orders'}", m.payload)
                    ack_now.append(m)
                    continue
                try:
                    batch = OrderBatch.from_frame(m.payload)
                except FrameError as exc:
                    self._dead(m.topic, f"malformed order frame: {exc}", m.payload)
                    ack_now.append(m)
                    continue
                if not self._ensure_run(m, "frames", source):
                    self.inbox.put(m)  # again once the source's status names its scenario
                    time.sleep(0.01)  # poll: the status arrives on the network thread
                    continue
                reason = self._check_frame(batch)
                if reason:
                    self._dead(m.topic, reason, m.payload)
                    ack_now.append(m)
                    continue
                frames.append(batch)
                waiting.append((m, batch))
            else:
                if self.state.mode == "frames":
                    self._dead(m.topic, f"a JSON payload, but this run follows the frames of "
                               f"{self.state.source}", m.payload)
                    ack_now.append(m)
                    continue
                self._ensure_run(m, "json", None)
                self._json(m, rows)
                ack_now.append(m)
        received = self._frames_batch(frames, waiting) if frames else None
        if len(rows):
            received = rows.batch(self._opened().log.next_seq)
        self._commit(received, ack_now)

    def _json(self, m: _Message, rows: Rows) -> None:
        try:
            doc = orjson.loads(m.payload)
        except orjson.JSONDecodeError as exc:
            self._dead(m.topic, f"not JSON ({exc})", m.payload)
            return
        orders = doc if isinstance(doc, list) else [doc]
        parser = self._opened().parser
        for i, order in enumerate(orders):
            where = m.topic if len(orders) == 1 else f"{m.topic}[{i}]"
            try:
                parser.parse(order, rows)
            except DuplicateOrder:
                continue  # counted by the parser: a redelivery, not bad input
            except RowError as exc:
                self._dead(where, str(exc), order if isinstance(doc, list) else m.payload)

    def _check_frame(self, batch: OrderBatch) -> str | None:
        live = self._opened()
        return frame_refusal(batch, live.scenario, len(live.catalogue.names))

    def _frames_batch(self, frames: list[OrderBatch], waiting: list[tuple[_Message, OrderBatch]]
                      ) -> OrderBatch | None:
        released = self._opened().reasm.add(OrderBatch.concat(frames))
        for m, b in waiting:
            self.unacked.append((int(b.seq.max()), m.mid, m.qos))
        return self._renumber(released)

    def _renumber(self, released: OrderBatch) -> OrderBatch | None:
        """Source-ordered events -> the follower's seqs, recording any skip in follow.json first."""
        if not len(released):
            return None
        live = self._opened()
        at = live.log.next_seq
        skips = len(self.state.skips)
        first, end = int(released.seq[0]), int(released.seq[-1]) + 1
        if first - at != self.state.offset():  # seqs given up on before this run
            self.state.skips.append([at, first - at])
        # the ordered fold (no --disorder) needs event-time order: an event
        # before the latest folded one is dead-lettered, and its seq skipped
        times = released.event_time
        peak = np.maximum.accumulate(np.concatenate([[live.aggregator.state.last_time_us], times]))
        behind = times < peak[:-1] if self.ordered else np.zeros(len(times), bool)
        if behind.any():
            for i in np.flatnonzero(behind).tolist():
                self._dead(f"{self.state.source} seq {int(released.seq[i])}", "event time before the "
                           "previous order's; this fold needs event-time order", _event_json(released, i))
            released = released.take(np.flatnonzero(~behind))
            self.state.skips.append([at + len(released), end - at - len(released)])
        if len(self.state.skips) != skips:
            self._save_state()  # before the events that need it are logged
        if not len(released):
            return None
        columns = released.columns()
        columns["seq"] = np.arange(live.log.next_seq, live.log.next_seq + len(released), dtype=np.int64)
        return OrderBatch(**columns)

    def _commit(self, batch: OrderBatch | None, ack_now: list[_Message]) -> None:
        """Log, then acknowledge, then fold and publish."""
        live = self.live
        if live is not None:
            new = live.catalogue.take_new()
            self.run_dir.append_catalogue(new)  # before the log can hold an id that needs it
            live.aggregator.add_brands(new)
        if batch is not None:
            assert live is not None  # a batch is made by the run's parser or reassembler
            live.log.append(batch)
        if live is not None:
            live.dead.flush()
        for m in ack_now:
            self._ack(m)
        if live is not None and self.unacked:
            done = [u for u in self.unacked if u[0] < live.reasm.next]
            self.unacked = [u for u in self.unacked if u[0] >= live.reasm.next]
            for _, mid, qos in done:
                if qos:
                    assert self.client is not None  # the frames came from it
                    self.client.ack(mid, qos)
        if batch is not None:
            self._fold(batch)
        now = time.perf_counter()
        behind = live is not None and self.ticked != live.aggregator.state.next_seq
        if live is not None and behind and (
                batch is None or now - self.last_tick >= 1.0 / self.opts.tick_hz):
            # at most tick_hz a second while orders flow, and the latest state once they pause
            self.last_tick, self.ticked = now, live.aggregator.state.next_seq
            send_tick(live.runner, self.sinks)

    def _fold(self, batch: OrderBatch) -> None:
        live = self._opened()
        every = snapshot_interval(live.runner.options)  # the replay's: whole log records
        for piece in rebatch([batch], every=every):
            found = live.aggregator.apply(piece)
            for sink in self.sinks:
                if isinstance(sink, OrderSink):
                    sink.orders(piece)
                if found:
                    sink.milestones(found)
            if live.aggregator.state.next_seq % every == 0:
                live.log.sync()
                checkpoint(live.runner)

    # --- the loop ------------------------------------------------------------------------------

    def source_done(self) -> bool:
        """The followed run says finished, and its events are all here (or nothing came for
        ``idle_s`` since it said so)."""
        if self.finished_at is None or self.state.mode != "frames" or self.live is None:
            return False
        reasm = self.live.reasm
        events = self.source_status.get("events") if self.source_status else None
        if isinstance(events, int) and reasm.next >= events and not len(reasm.pending):
            return True
        return self.inbox.empty() and time.monotonic() - self.finished_at > self.opts.idle_s

    def run_loop(self) -> dict[str, Any]:
        client = self._connect()
        try:
            if self._open_existing():
                self._say(*self.notes)
            while not self.stop.is_set():
                self.step()
                if self.source_done():
                    break
            return self._finish()
        finally:
            client.loop_stop()
            with contextlib.suppress(Exception):
                client.disconnect()

    def _say(self, *lines: str) -> None:
        if self.opts.on_progress:
            for line in lines:
                self.opts.on_progress(line)

    def _finish(self) -> dict[str, Any]:
        live = self.live
        if live is None:
            raise FollowError(f"stopped before any order arrived on {', '.join(self.opts.topics)}; "
                              "nothing recorded")
        if len(live.reasm.pending):  # give up on the gaps
            rest, skipped = live.reasm.release_rest()
            self._commit(self._renumber(rest), [])
            self.notes.append(f"{skipped:,} seqs of {self.state.source} never arrived")
        finished = self.finished_at is not None and self.state.mode == "frames"
        found = live.aggregator.finish()
        if found:
            for sink in self.sinks:
                sink.milestones(found)
        send_tick(live.runner, self.sinks)
        live.log.sync()
        checkpoint(live.runner)
        summary = make_summary(live.runner, 0.0, live.aggregator.state.next_seq - self.events0)
        summary.sections["ingest"] = {
            "follow": str(self.url), "topics": list(self.opts.topics), "mode": self.state.mode,
            "source": self.state.source, "accepted": live.aggregator.state.next_seq,
            "rejected": live.dead.count, "dead_letters": str(self.run_dir.dead_letters_path),
            "duplicates": live.parser.duplicates + live.reasm.duplicates,
            "skipped_seqs": self.state.offset(),
        }
        live.dead.close()
        live.log.close()
        for sink in self.sinks:
            sink.finish(summary)
        self.run_dir.write_summary(summary.to_json())
        meta = self.run_dir.meta()
        meta["state"] = "finished" if finished else "stopped"
        meta["events"] = live.aggregator.state.next_seq
        self.run_dir.write_meta(meta)
        return summary.to_json()


class _FollowSink:
    """The replay's MQTT sink, with the follower's counts in every tick."""

    def __init__(self, sink: MqttSink, follower: Follower):
        self.sink, self.follower = sink, follower

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sink, name)

    def start(self, run: RunStart) -> None:
        self.sink.publisher.status("running", events=None, follows=self.follower.state.source)
        for m in run.milestones:
            self.sink.publisher.milestone(m)

    def tick(self, tick: Tick) -> None:
        from ticker.publish import topics

        live = self.follower.live
        payload = topics.tick_json(self.sink.info, event_time_us=tick.event_time_us, seq=tick.seq,
                                   gmv_minor=tick.gmv_minor, orders=tick.orders,
                                   orders_per_s=tick.orders_per_s)
        payload["dead_letters"] = live.dead.count if live else 0
        payload["duplicates"] = live.parser.duplicates + live.reasm.duplicates if live else 0
        self.sink.publisher.tick(payload)
        self.sink.publisher.leaderboard(topics.leaderboard_json(
            self.sink.info, event_time_us=tick.event_time_us, brands=list(tick.leaderboard)))


def frame_refusal(batch: OrderBatch, scenario: Scenario, brands: int) -> str | None:
    """What the aggregator would refuse in a frame of ``scenario``'s stream (``brands`` in its
    catalogue), as a dead-letter reason; None for a sound frame. Checked before the frame is
    logged and acknowledged: a frame the fold refuses later would stay in the event log."""
    if not len(batch):
        return None
    limits = (("brand", brands), ("platform", len(scenario.platforms)),
              ("region", len(scenario.regions)), ("kind", 2))
    for column, size in limits:
        values = getattr(batch, column)
        if int(values.min()) < 0 or int(values.max()) >= size:
            return (f"{column} id {int(values.max())} is not in this run's {column}s "
                    f"(0..{size - 1}): are the frames from scenario {scenario.name}?")
    placed = batch.kind == 0
    if (batch.amount_minor[placed] <= 0).any() or (batch.amount_minor[~placed] >= 0).any():
        return "an amount of the wrong sign (placed orders positive, refunds negative)"
    t = batch.event_time
    inside = np.zeros(len(t), bool)
    for w in scenario.windows:
        inside |= (t >= w.start_us) & (t < w.end_us)
    if not inside.all():
        return f"event times outside every sales window of {scenario.name}"
    return None


def _frame_source(topic: str) -> str:
    parts = topic.split("/")
    return parts[1] if len(parts) >= 4 and parts[0] == "ticker" and parts[2] == "orders" else topic


def _event_json(batch: OrderBatch, i: int) -> dict[str, int]:
    return {name: int(getattr(batch, name)[i]) for name in COLUMNS}


def follow(opts: FollowOptions) -> tuple[dict[str, Any], Follower]:
    """Run until SIGINT/SIGTERM or the followed run finishes; returns the summary."""
    follower = Follower(opts)
    try:
        with StopSignals(on_stop=lambda signum: follower.stop.set()):
            summary = follower.run_loop()
    except RunDirError as exc:
        raise FollowError(str(exc)) from None
    finally:
        if follower.mqtt_sink is not None:
            follower.mqtt_sink.close()
    return summary, follower

