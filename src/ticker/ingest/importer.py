"""``ticker import FILE``: an order file into a run directory, through the engine's pipeline.

The rows become order batches in the file's order (that is the arrival order), each batch is
logged, folded and checkpointed by :func:`ticker.engine.execute` exactly as a generated stream
is — so ``replay RUN_DIR``, ``report``, ``verify``, ``state --at`` and ``export`` work on the
result, and an export of a run imports back into the very same log bytes. Rejected rows go to
``dead-letters.jsonl`` with their line and reason; nothing is held but one chunk of rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ticker.aggregate import Aggregator
from ticker.aggregate.eventtime import EventTimeAggregator, aggregator_for
from ticker.aggregate.milestones import Milestone
from ticker.engine import ReplayOptions, Run, execute
from ticker.eventlog import EventLog, FsyncPolicy, LogWriter
from ticker.events import OrderBatch
from ticker.ingest import rundir as ingest_rundir
from ticker.ingest.deadletters import DeadLetters
from ticker.ingest.festival import default_scenario
from ticker.ingest.fields import RowError, parse_event_time
from ticker.ingest.orders import Catalogue, OrderParser, Rows
from ticker.ingest.readers import Chunk, InputError, detect_format, open_input, read_chunks
from ticker.rundir import RunDir
from ticker.scenario import Scenario, resolve
from ticker.sink import RunStart
from ticker.views import Summary, Tick


@dataclass
class ImportOptions:
    path: str
    fmt: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    scenario: str | None = None
    currency: str = "CNY"
    run_dir: Path | None = None
    scale: float = 1.0
    fsync: FsyncPolicy = "interval"
    snapshot_every: int = 1 << 23
    batch_size: int = 1 << 20
    disorder: str | None = None  # NAME|FILE|none: the event-time fold's lateness and dedup window


@dataclass
class ImportResult:
    run_dir: RunDir
    summary: dict[str, Any]
    accepted: int
    rejected: int
    duplicates: int
    notes: list[str]


class _Counts:
    """A sink that adds the import's counts to the summary (written by ``execute``)."""

    def __init__(self, feed: _Feed, run_dir: RunDir, source: dict[str, Any]):
        self.feed, self.run_dir, self.source = feed, run_dir, source

    def start(self, run: RunStart) -> None: ...
    def milestones(self, found: Sequence[Milestone]) -> None: ...
    def tick(self, tick: Tick) -> None: ...
    def close(self) -> None: ...

    def finish(self, summary: Summary) -> None:
        feed = self.feed
        feed.dead.close()
        summary.sections["ingest"] = {
            **self.source, "accepted": feed.accepted, "rejected": feed.dead.count,
            "duplicates": feed.parser.duplicates, "dead_letters": str(self.run_dir.dead_letters_path)}
        ingest_rundir.finish_meta(self.run_dir, summary.events,
                                  {"accepted": feed.accepted, "rejected": feed.dead.count})


class _Feed:
    """Rows -> batches: parse, dead-letter, grow the catalogue (file first, then aggregator)."""

    def __init__(self, chunks: Iterator[Chunk], parser: OrderParser, run_dir: RunDir,
                 aggregator: Aggregator | EventTimeAggregator, where: str):
        self.chunks, self.parser, self.run_dir, self.aggregator = chunks, parser, run_dir, aggregator
        self.where = where
        self.dead = DeadLetters(run_dir.dead_letters_path, append=False)
        self.accepted = 0
        self.checked_header = False  # CSV and Parquet: the first row's columns are the file's

    def batches(self) -> Iterator[OrderBatch]:
        for chunk in self.chunks:
            rows = Rows.empty()
            for line, row in chunk:
                if isinstance(row, RowError):
                    self.dead.add(f"{self.where}:{line}", str(row), row.raw, line=line)
                    continue
                if not self.checked_header:
                    self._check_header(row)
                try:
                    self.parser.parse(row, rows)
                except RowError as exc:
                    self.dead.add(f"{self.where}:{line}", str(exc), row, line=line)
            new = self.parser.catalogue.take_new()
            self.run_dir.append_catalogue(new)  # before the log can hold an id that needs it
            self.aggregator.add_brands(new)
            if len(rows):
                yield rows.batch(self.aggregator.state.next_seq)  # execute folds it before the next
                self.accepted += len(rows)
        self.dead.flush()

    def _check_header(self, row: dict[str, Any]) -> None:
        self.checked_header = True
        missing = self.parser.missing(row)
        if missing:
            have = ", ".join(list(row)[:12])
            raise InputError(f"{self.where}: no column for {', '.join(missing)} (columns: {have}; "
                             "map one with --map FIELD=COLUMN)")


def _first_time(chunks: Iterator[Chunk], mapping: dict[str, str]) -> tuple[int | None, Iterator[Chunk]]:
    """The first readable event time (UTC when it has no offset), and the chunks, unconsumed."""
    column = mapping.get("event_time", "event_time")
    seen: list[Chunk] = []
    found = None
    for chunk in chunks:
        seen.append(chunk)
        for _, row in chunk:
            if isinstance(row, dict) and row.get(column) not in (None, ""):
                try:
                    found = parse_event_time(row[column], default_scenario(0).zone)
                    break
                except RowError:
                    continue
        if found is not None:
            break
    return found, itertools.chain(seen, chunks)


def import_orders(opts: ImportOptions) -> ImportResult:
    where = "<stdin>" if opts.path == "-" else opts.path
    with open_input(opts.path) as stream:
        head = stream.peek(8)[:8] if hasattr(stream, "peek") else b""
        fmt = opts.fmt or detect_format(opts.path, head)
        chunks = read_chunks(stream, fmt, where)
        scenario: Scenario
        if opts.scenario:
            scenario = resolve(opts.scenario)
            bundled = True
        else:
            first, chunks = _first_time(chunks, opts.mapping)
            try:
                scenario = default_scenario(first or 0, currency=opts.currency)
            except ValueError as exc:
                raise InputError(str(exc)) from None
            bundled = False
        stem = "stdin" if opts.path == "-" else Path(opts.path).stem
        run = ingest_rundir.safe_run_id(opts.run_dir.name if opts.run_dir else
                                        f"{scenario.name}-import-{stem}")
        run_dir = RunDir(opts.run_dir or ingest_rundir.default_run_dir(run))
        source = {"import": where, "format": fmt}
        disorder = ingest_rundir.event_time(scenario, opts.disorder)
        names, notes = ingest_rundir.create(run_dir, run, scenario, bundled=bundled, source=source,
                                            scale=opts.scale, disorder=disorder)
        aggregator = aggregator_for(scenario, names, run, disorder)
        # the ordered fold needs event-time order; the event-time fold takes any arrival order
        parser = OrderParser(scenario, Catalogue(names), opts.mapping, ordered=disorder is None)
        feed = _Feed(chunks, parser, run_dir, aggregator, where)
        feed.checked_header = fmt == "jsonl"  # each JSON object has its own fields
        options = ReplayOptions(scale=opts.scale, seed=0, run_dir=run_dir.path, fsync=opts.fsync,
                                snapshot_every=opts.snapshot_every, batch_size=opts.batch_size)
        log = LogWriter(EventLog(run_dir.log, fsync=opts.fsync))
        runner = Run(scenario, 0, opts.scale, run, names, aggregator, feed.batches(), 0, log,
                     run_dir, options, notes)
        try:
            summary = execute(runner, [_Counts(feed, run_dir, source)])
        finally:
            if not feed.dead.fh.closed:
                feed.dead.close()
    return ImportResult(run_dir, summary.to_json(), feed.accepted, feed.dead.count, parser.duplicates, notes)
