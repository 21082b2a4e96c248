"""The pipeline: source → event log → aggregator → sinks, with its clock and pacing.

One pipeline, two sources: a scenario (generate the orders and record them) or a recorded run
(read its log back). Either way every batch goes through the same steps, in order:

1. pace it against the event-time clock (``--speed``; ``max`` does not wait);
2. append it to the event log, when recording;
3. fold it with :meth:`Aggregator.apply`, which returns the milestones it crossed;
4. hand the milestones to the sinks at once, and the tick and leaderboard at most ``tick_hz``
   times a wall-clock second (the terminal ticker, the MQTT publisher);
5. every ``snapshot_every`` events, checkpoint the state and the derived milestone file.

``--resume`` restarts a crashed recording from its newest readable snapshot, re-folds the log's
tail behind it, and carries on generating from the log's end: the result is byte-identical to a
run that never stopped.

The other pipelines (``ticker follow``, which must log and acknowledge each message itself;
``--cluster``; ``ticker sweep``) drive their own loops with the engine's public steps:
:func:`prepare`, :func:`execute`, :func:`send_tick`, :func:`checkpoint`, :func:`make_summary`,
:func:`summary_of`, :func:`snapshot_interval`, :func:`disorder_profile`, :func:`tune_allocator`;
restoring a run's state is :meth:`ticker.rundir.RunDir.restore`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import numpy as np

from ticker import __version__
from ticker.aggregate import Aggregator, BatchRejected
from ticker.aggregate.eventtime import EventTimeAggregator, aggregator_for
from ticker.clock import US_PER_S
from ticker.errors import TickerError
from ticker.eventlog import (
    DEFAULT_SEGMENT_BYTES,
    LOG_RECORD_EVENTS,
    CorruptLogError,
    EventLog,
    FsyncPolicy,
    LogWriter,
)
from ticker.events import EVENT_BYTES, OrderBatch, rebatch
from ticker.rundir import RunDir, RunDirError, run_id, scenario_digest
from ticker.scenario import Scenario, make_plan, resolve
from ticker.scenario.disorder import DisorderProfile, arrive, load_profile, resume_point
from ticker.scenario.generate import DEFAULT_BATCH_EVENTS, Plan, batches
from ticker.scenario.generate import chunks as plan_chunks
from ticker.sink import OrderSink, RunStart, Sink
from ticker.views import Summary, Tick

DEFAULT_SNAPSHOT_EVERY = 128 * LOG_RECORD_EVENTS  # 8,388,608 events


class ReplayError(TickerError, ValueError):
    """A replay cannot start or go on; one line for the user."""


@dataclass
class ReplayOptions:
    scale: float | None = None  # None: the scenario's default_scale
    seed: int | None = None
    speed: float | None = None  # None: as fast as possible; 1.0: real time; else a factor
    run_dir: Path | None = None
    resume: bool = False
    record: bool = True  # write the event log and snapshots
    fsync: FsyncPolicy = "interval"
    snapshot_every: int = DEFAULT_SNAPSHOT_EVERY  # rounded up to whole log records
    segment_bytes: int = DEFAULT_SEGMENT_BYTES  # the event log's segment size
    batch_size: int = DEFAULT_BATCH_EVENTS
    workers: int = 1
    disorder: str | None = None  # a profile name or file, "none"; None: the scenario's [disorder]
    tick_hz: float = 10.0
    partial: bool = False  # replay what a damaged log holds, and call it partial
    notes: list[str] = field(default_factory=list)


@dataclass
class Run:
    """A replay ready to go: what is being run, from which source, into which sinks."""

    scenario: Scenario
    seed: int
    scale: float
    run: str
    brand_names: tuple[str, ...]
    aggregator: Aggregator | EventTimeAggregator  # the event-time fold for an arrival-ordered run
    batches: Iterator[OrderBatch]
    total_events: int
    log: LogWriter | None
    run_dir: RunDir | None
    options: ReplayOptions
    notes: list[str] = field(default_factory=list)
    #: set when a replay from a damaged log was asked to go on (``--partial``): what it lacks
    partial: dict[str, Any] | None = None

    def start_info(self) -> RunStart:
        """What the sinks learn at the start (a resumed run: the milestones already reached)."""
        return RunStart(self.run, self.scenario, self.seed, self.scale, self.total_events,
                        tuple(self.aggregator.state.milestones))


def tune_allocator() -> None:
    """Keep numpy's big per-batch temporaries on the heap (glibc only).

    glibc hands any block over 128 KiB back to the kernel on free, so every batch's 8 MB
    temporaries would cost thousands of fresh page faults; a higher threshold keeps them
    reusable. Measured: +10–20 % aggregator throughput on 1-million-event batches.

    A thread other than the main one (a Dask worker's task thread) allocates from an arena of
    its own, made of 64 MiB heaps that glibc unmaps as soon as one falls empty, whatever the
    trim threshold; a top pad as large as a heap keeps them (``heap_trim`` only drops a heap
    when the one before it has ``pad`` bytes to spare), so the next batch's temporaries land
    on pages already there. Measured on a Dask worker, double11-2020 at scale 1: 10× fewer
    page faults over its peak chunks, ~9 % less CPU there (docs/benchmarks.md, Dask).
    """
    name = ctypes.util.find_library("c")
    if not name:
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        libc.mallopt(m_mmap_threshold, 32 << 20)
        libc.mallopt(m_trim_threshold, 256 << 20)
        libc.mallopt(m_top_pad, 64 << 20)


def prepare(source: str | Path | Scenario, options: ReplayOptions) -> Run:
    """Open a scenario (generate, record) or a recorded run directory (re-read its log)."""
    try:
        if isinstance(source, Scenario):
            return _prepare_generated(source, options)
        path = Path(source)
        if path.is_dir() and (path / "run.json").is_file():
            return _prepare_recorded(RunDir(path), options)
        return _prepare_generated(resolve(str(source)), options)
    except RunDirError as exc:
        raise ReplayError(str(exc)) from None


def _prepare_recorded(run_dir: RunDir, options: ReplayOptions) -> Run:
    """Replay a run from its log. A log that does not hold the whole run (cut short, a torn or
    corrupt record, a run that never finished) is refused, naming what is missing from which
    seq, unless ``options.partial``: then what is readable is replayed and called partial."""
    try:
        meta, scenario, log = run_dir.open_recorded(check="readable" if options.partial else "full")
    except RunDirError as exc:
        raise ReplayError(f"{exc}; the log is the run's truth: nothing after it can be replayed "
                          "(add --partial to replay the records before it)") from None
    names = run_dir.brand_names(scenario)
    aggregator = aggregator_for(scenario, names, meta["run"], meta.get("disorder"))
    total = log.next_seq
    expected = meta.get("events") if meta.get("state") == "finished" else None
    missing = None
    if log.damage is not None:
        missing = str(log.damage)
    elif log.recovery is not None:
        missing = f"a torn record at {log.recovery.segment.name} offset {log.recovery.offset}"
    elif expected is not None and total < expected:
        missing = f"run.json says {expected:,} events, the log ends at seq {total:,}"
    elif meta.get("state") != "finished":
        missing = f"the run is {meta.get('state')}: it never finished"
    partial = None
    if missing is not None:
        if not options.partial:
            raise ReplayError(f"{run_dir.log}: the log does not hold the whole run: missing from "
                              f"seq {total:,} ({missing}); add --partial to replay the {total:,} "
                              f"readable events, or finish it with 'ticker replay "
                              f"{meta['scenario']} --run-dir {run_dir.path} --resume'")
        partial = {"events": total, "of": expected, "missing_from_seq": total, "why": missing}
    notes = [f"replaying the recorded log of {meta['run']} ({total:,} events)"]
    if partial is not None:
        notes.append(f"PARTIAL replay: the log is missing events from seq {total:,} ({missing})")
    return Run(scenario, meta["seed"], meta["scale"], meta["run"], names, aggregator,
               rebatch(log.read(0), options.batch_size), total, None, None, options, notes=notes,
               partial=partial)


def _prepare_generated(scenario: Scenario, options: ReplayOptions) -> Run:
    seed = scenario.seed if options.seed is None else options.seed
    if options.scale is None:
        options.scale = scenario.default_scale
    plan = make_plan(scenario, seed, options.scale)
    profile = disorder_profile(scenario, options.disorder)
    run = run_id(scenario.name, seed, options.scale, profile.name if profile else None)
    names = plan.catalogue.names
    notes: list[str] = []
    total = plan.total_events + (profile.duplicates_before(plan.total_events) if profile else 0)
    disorder = profile.to_json() if profile else None
    if not options.record:
        aggregator = aggregator_for(scenario, names, run, disorder)
        return Run(scenario, seed, options.scale, run, names, aggregator,
                   _generated(plan, 0, options, profile), total, None, None, options)
    run_dir = RunDir(options.run_dir or Path("runs") / run)
    meta = {"run": run, "scenario": scenario.name, "seed": seed, "scale": options.scale,
            "events": total, "ticker": __version__, "state": "running"}
    if disorder:
        meta["disorder"] = disorder
    if options.resume and run_dir.half_made():
        notes.append(f"nothing was recorded in {run_dir.path} (its creation was cut short): "
                     "starting the run")
    elif options.resume:
        return _prepare_resume(scenario, plan, run, run_dir, meta, options)
    notes += run_dir.claim()
    run_dir.create(meta, scenario.text)
    log = _open_log(run_dir, options)
    aggregator = aggregator_for(scenario, names, run, disorder)
    return Run(scenario, seed, options.scale, run, names, aggregator,
               _generated(plan, 0, options, profile), total, log, run_dir, options, notes)


def _prepare_resume(scenario: Scenario, plan: Plan, run: str, run_dir: RunDir, meta: dict[str, Any],
                    options: ReplayOptions) -> Run:
    old = run_dir.meta()
    for key in ("scenario", "seed", "scale", "disorder"):
        if old.get(key) != meta.get(key):
            raise ReplayError(f"{run_dir.path}: cannot resume: it recorded {key} {old.get(key)!r}, "
                              f"this replay asks for {meta.get(key)!r}")
    if old.get("scenario_sha256", digest := scenario_digest(scenario.text)) != digest:
        raise ReplayError(f"{run_dir.path}: cannot resume: the scenario file differs from the one "
                          "the run was recorded with (run.json's scenario_sha256)")
    meta["scenario_sha256"] = digest
    run_dir.clear_staging()  # what a cluster's workers wrote and its driver never took in
    log = _open_log(run_dir, options)
    notes = []
    if log.recovery is not None:
        notes.append(f"recovered the event log: {log.recovery}")
    names = plan.catalogue.names
    # The newest readable snapshot plus the log's tail behind it, writing the snapshots missing
    # on the way (a cluster run's driver writes them only at its end), then carry on generating.
    every, have = snapshot_interval(options), set(run_dir.snapshot_seqs())
    missing = [s for s in range(every, log.next_seq + 1, every) if s not in have]
    restored = run_dir.restore(log=log.log, scenario=scenario, brand_names=names, stops=missing,
                               at_stop=lambda seq, agg: run_dir.write_snapshot(agg.state, run))
    notes += restored.notes
    notes.append(f"resuming {run} at seq {log.next_seq:,} ({restored.folded:,} events re-folded "
                 "from the log)")
    run_dir.write_meta(meta)
    profile = disorder_profile(scenario, options.disorder)
    return Run(scenario, meta["seed"], meta["scale"], run, names, restored.aggregator,
               _generated(plan, log.next_seq, options, profile), meta["events"], log, run_dir,
               options, notes)


def _open_log(run_dir: RunDir, options: ReplayOptions) -> LogWriter:
    """The log for appending; on resume every record is checksummed first, so a damaged record
    anywhere stops the resume (a finished run must not carry one silently)."""
    try:
        return LogWriter(EventLog(run_dir.log, fsync=options.fsync, segment_bytes=options.segment_bytes,
                                  check="full" if options.resume else "tail"))
    except CorruptLogError as exc:
        raise ReplayError(f"{exc} (run 'ticker verify {run_dir.path}')") from None


def disorder_profile(scenario: Scenario, disorder: str | None) -> DisorderProfile | None:
    """The disorder profile a run uses: ``--disorder NAME|FILE`` (``none``: ordered), else
    (``None``) the scenario's own ``[disorder]``."""
    if disorder is None:
        return scenario.disorder
    if disorder in ("none", "off"):
        return None
    return load_profile(disorder)


def _generated(plan: Plan, start_seq: int, options: ReplayOptions,
               profile: DisorderProfile | None = None) -> Iterator[OrderBatch]:
    """The plan's stream from ``start_seq`` on, cut into the options' batches; with a disorder
    profile, the arrival-ordered stream, made from the chunk whose orders can still arrive at
    ``start_seq`` (``disorder.resume_point``) and skipped up to it."""
    if profile is not None:
        c, first = resume_point(plan, profile, start_seq)
        arrived = arrive(plan_chunks(plan, workers=options.workers, start_chunk=c), profile,
                         plan.seed, first_seq=first)
        return rebatch(arrived, options.batch_size, from_seq=start_seq)
    return batches(plan, options.batch_size, start_seq=start_seq, workers=options.workers)


# --- running ----------------------------------------------------------------------------------


class Pacer:
    """The event-time clock: waits so that sale time advances ``speed`` times wall time.

    Sale time skips the gaps between sales windows (Nov 4-10 is not replayed as a week of
    silence). ``speed=None`` never waits. ``clock`` and ``sleep`` are the wall clock's.
    """

    def __init__(self, scenario: Scenario, speed: float | None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.speed = speed
        self.clock, self.sleep = clock, sleep
        self.starts = np.array([w.start_us for w in scenario.windows], np.int64)
        lengths = np.array([w.end_us - w.start_us for w in scenario.windows], np.int64)
        self.before = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.origin: tuple[float, int] | None = None

    def sale_us(self, t: int) -> int:
        w = max(0, int(np.searchsorted(self.starts, t, side="right")) - 1)
        return int(self.before[w]) + t - int(self.starts[w])

    def pieces(self, batch: OrderBatch) -> Iterator[OrderBatch]:
        """Cut a batch into slices of 1/20 s of wall time each, waiting for each one's moment."""
        if self.speed is None:
            yield batch
            return
        step = max(1, int(US_PER_S / 20 * self.speed))
        for piece in rebatch([batch], span_us=step):
            start = self.sale_us(int(piece.event_time[0]))
            if self.origin is None:
                self.origin = (self.clock(), start)
            due = self.origin[0] + (start - self.origin[1]) / US_PER_S / self.speed
            delay = due - self.clock()
            if delay > 0:
                self.sleep(delay)  # pacing: the wall clock is what we wait for
            yield piece


class Interrupted(TickerError):
    """SIGINT or SIGTERM stopped a replay cleanly; ``code`` is the exit code (128 + signal)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.code = 128 + signum


class StopSignals:
    """SIGINT and SIGTERM ask a long command (a replay, a follow) to stop at its next safe point
    (never inside a fold, whose state must stay whole to be checkpointed): ``signum`` says which came,
    and ``on_stop`` (if given) is called with it. A second signal stops it at once.

    A SIGINT that was ignored when the command started stays ignored: a shell without job control
    starts background commands (``cmd &``, ``nohup``) with Ctrl-C ignored so that the Ctrl-C meant for
    the foreground does not reach them, and ticker honours that as Python itself does. Signal
    handlers can only be set from the main thread; a library caller's other thread gets none."""

    def __init__(self, on_stop: Callable[[int], None] | None = None) -> None:
        self.signum: int | None = None
        self._on_stop = on_stop
        self._old: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}  # as signal gives them

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._old[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # asked twice: the user means now
        self.signum = signum
        if self._on_stop is not None:
            self._on_stop(signum)

    def __exit__(self, *exc: object) -> None:
        for signum, old in self._old.items():
            signal.signal(signum, old)


def execute(run: Run, sinks: Sequence[Sink]) -> Summary:
    """Drive the run to its end; returns its summary. Every sink is closed, even on error.

    SIGINT and SIGTERM stop it at the next log record boundary (at most 65,535 events on,
    unpaced): the log is flushed, the state checkpointed,
    run.json says ``interrupted``, the publisher says ``offline`` itself, and :class:`Interrupted`
    is raised (exit code 130 or 143). A full disk (or any write failure) is one line naming the
    path and the space needed; the run stays resumable and no temporary file is left."""
    try:
        with StopSignals() as stop:
            try:
                return _drive(run, sinks, stop)
            except OSError as exc:
                _abandon(run)
                raise ReplayError(_write_failure(run, exc)) from None
    finally:
        for sink in reversed(sinks):
            sink.close()


def _drive(run: Run, sinks: Sequence[Sink], stop: StopSignals) -> Summary:
    agg = run.aggregator
    options = run.options
    pacer = Pacer(run.scenario, options.speed)
    every = snapshot_interval(options)
    interval = 1.0 / options.tick_hz
    last_tick = 0.0
    wall0 = time.perf_counter()
    events0 = agg.state.next_seq
    order_sinks = [s for s in sinks if isinstance(s, OrderSink)]
    start = run.start_info()
    for sink in sinks:
        sink.start(start)
    try:
        for batch in run.batches:
            for paced in pacer.pieces(batch):
                # once asked to stop: cut at log records, so that it stops on a record boundary
                # (an interrupted-and-resumed run then has a straight run's log bytes)
                for piece in rebatch([paced], every=LOG_RECORD_EVENTS if stop.signum else every):
                    if run.log is not None:
                        run.log.append(piece)
                    found = agg.apply(piece)
                    for order_sink in order_sinks:
                        order_sink.orders(piece)
                    if found:
                        for sink in sinks:
                            sink.milestones(found)
                    if run.run_dir is not None and agg.state.next_seq % every == 0:
                        checkpoint(run)  # at exact multiples: the same snapshots for any batching
                    if stop.signum is not None and agg.state.next_seq % LOG_RECORD_EVENTS == 0:
                        _interrupt(run, sinks, stop.signum)
                if stop.signum is not None:
                    pacer.sleep = _no_wait  # the rest of the record at once
                now = time.perf_counter()
                if now - last_tick >= interval:
                    last_tick = now
                    send_tick(run, sinks)
    except BatchRejected as exc:
        raise ReplayError(str(exc)) from None
    found = agg.finish()
    if found:
        for sink in sinks:
            sink.milestones(found)
    send_tick(run, sinks)
    wall = time.perf_counter() - wall0
    summary = make_summary(run, wall, agg.state.next_seq - events0)
    if run.run_dir is not None:
        checkpoint(run)
    if run.log is not None:
        run.log.close()
    for sink in sinks:  # a sink may add to the summary (the publisher: what was not delivered)
        sink.finish(summary)
    if run.run_dir is not None:
        run.run_dir.write_summary(summary.to_json())
        meta = run.run_dir.meta()
        meta["state"] = "finished"
        run.run_dir.write_meta(meta)
    return summary


def snapshot_interval(options: ReplayOptions) -> int:
    """Events between snapshots: ``snapshot_every`` rounded up to whole log records."""
    return -(-max(1, options.snapshot_every) // LOG_RECORD_EVENTS) * LOG_RECORD_EVENTS


def _no_wait(seconds: float) -> None:
    pass


def _interrupt(run: Run, sinks: Sequence[Sink], signum: int) -> NoReturn:
    """Leave the run as a crash would not: flushed, checkpointed, marked, said offline."""
    seq = run.aggregator.state.next_seq
    send_tick(run, sinks)
    if run.run_dir is not None:
        checkpoint(run)  # syncs the log first
        meta = run.run_dir.meta()
        meta["state"] = "interrupted"
        run.run_dir.write_meta(meta)
    if run.log is not None:
        run.log.close()
    for sink in sinks:
        if hasattr(sink, "interrupted"):
            sink.interrupted()
    name = signal.Signals(signum).name
    again = (f"; resume with 'ticker replay {run.scenario.name} --run-dir {run.run_dir.path} "
             "--resume'" if run.run_dir is not None and run.log is not None else "")
    raise Interrupted(f"interrupted by {name} at seq {seq:,} of {run.total_events:,}: "
                      f"{'log flushed, state checkpointed' if run.log else 'nothing recorded'}"
                      f"{again}", signum)


def _abandon(run: Run) -> None:
    """After a failed write: release the log (its lock) without writing more."""
    if run.log is not None:
        with contextlib.suppress(OSError, ValueError):
            run.log.close()


def _write_failure(run: Run, exc: OSError) -> str:
    """One line for a write that failed: where, why, and for a full disk the space needed."""
    where = exc.filename or (run.run_dir.path if run.run_dir is not None else "the output")
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return f"{where}: cannot write ({exc.strerror or exc})"
    left = max(0, run.total_events - run.aggregator.state.next_seq)
    need = left * (EVENT_BYTES + 1) + 8 * (1 << 20)  # the log's rest, and room for snapshots
    root = run.run_dir.path if run.run_dir is not None else Path(".")
    free = shutil.disk_usage(root).free
    resume = (f"; free some space and resume with 'ticker replay {run.scenario.name} --run-dir "
              f"{run.run_dir.path} --resume'" if run.run_dir is not None else "")
    return (f"{where}: no space left on the device ({_mib(free)} free, about {_mib(need)} more "
            f"needed to finish this run; nothing written so far is lost{resume})")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def checkpoint(run: Run) -> None:
    """Write the run's state as a snapshot and the milestone file, after syncing the log up to it
    (a recorded run only)."""
    if run.log is not None:
        run.log.sync()  # a snapshot must never cover events the log could still lose
    assert run.run_dir is not None  # only a recorded run is checkpointed
    state = run.aggregator.state
    run.run_dir.write_snapshot(state, run.run)
    run.run_dir.write_milestones(state.milestones, run.scenario.zone)


def send_tick(run: Run, sinks: Sequence[Sink]) -> None:
    """Show the sinks where the run is: one :class:`Tick` (GMV, orders, the rate of the last
    whole second, the leaderboard; an arrival-ordered run's watermark). Nothing before the first
    event."""
    agg = run.aggregator
    st = agg.state
    if st.next_seq == 0:
        return
    second = (st.last_time_us - agg.start_us) // US_PER_S
    rate = int(st.second_orders[second - 1]) if second > 0 else int(st.second_orders[0])
    tick = Tick(event_time_us=st.last_time_us, seq=st.next_seq - 1, gmv_minor=st.gmv_minor,
                orders=st.orders, orders_per_s=rate, leaderboard=tuple(agg.leaderboard()),
                watermark_us=agg.watermark_us if isinstance(agg, EventTimeAggregator) else None)
    for sink in sinks:
        sink.tick(tick)


def make_summary(run: Run, wall_s: float, events: int) -> Summary:
    return summary_of(run.aggregator, run.run, run.seed, run.scale, wall_s=round(wall_s, 3),
                      events_per_s=round(events / wall_s, 1) if wall_s > 0 else None,
                      partial=run.partial)


def summary_of(agg: Aggregator | EventTimeAggregator, run: str, seed: int, scale: float, *,
               wall_s: float | None, events_per_s: float | None,
               partial: dict[str, Any] | None = None) -> Summary:
    """The summary of a fold: a replay's, or ``verify --repair``'s."""
    scenario = agg.scenario
    return Summary(
        run=run, scenario=scenario.name, seed=seed, scale=scale, currency=scenario.currency,
        zone=scenario.zone, orders=agg.state.orders, refunds=agg.state.refunds,
        events=agg.state.next_seq, gmv_minor=agg.state.gmv_minor, peak=agg.peak(),
        brands_over=agg.brands_over(), milestones=tuple(agg.state.milestones),
        events_per_s=events_per_s, wall_s=wall_s, partial=partial,
        event_time=agg.report() if isinstance(agg, EventTimeAggregator) else None)
