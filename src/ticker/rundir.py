"""The run directory: where one replay keeps its truth (the log) and what is derived from it.

::

    runs/{run}/
      run.json            what was run: scenario name, seed, scale, batch size, ticker version
      scenario.toml       the scenario file exactly as run
      log/                the event log segments (the truth)
      log/.staging/       a cluster run's segments not yet in the log (gone when it ends)
      snapshots/          aggregate state at a seq, snap-{seq}.npz, written atomically
      catalogue.jsonl     ingested runs only: the brand names in id order, append-only; the
                          log's brand ids index it (a generated run's catalogue is its scenario's)
      dead-letters.jsonl  ingested runs only: every rejected row or payload, its reason, raw
      milestones.jsonl    derived: every milestone in canonical order, rewritten whole
      summary.json        derived: the summary contract of DESIGN.md

Derived files are rewritten whole through a temp file and a rename, never appended, so a crash
or a resume cannot leave a duplicate line.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from ticker.aggregate.aggregator import Aggregator
from ticker.aggregate.eventtime import EventTimeAggregator, aggregator_for
from ticker.aggregate.milestones import Milestone
from ticker.aggregate.state import AggregateState, SnapshotError
from ticker.errors import TickerError
from ticker.eventlog import CorruptLogError, EventLog, sync_directory
from ticker.events import OrderBatch, rebatch
from ticker.scenario import Scenario, load_scenario
from ticker.validate import SCALE

if TYPE_CHECKING:
    from ticker.aggregate.eventtime import EventTimeState

_SNAPSHOT = re.compile(r"^snap-(\d{20})\.npz$")
#: what an interrupted creation (older tickers: mkdir, then these files) can leave
_CREATION_FILES = ("scenario.toml", ".scenario.toml.tmp", ".run.json.tmp")


class RunDirError(TickerError, ValueError):
    """A run directory is missing, incomplete, or belongs to another run."""


def run_id(scenario: str, seed: int, scale: float, disorder: str | None = None) -> str:
    """A run's stable name: the same scenario, seed and scale (and disorder profile, for an
    arrival-ordered run) always name the same run."""
    return f"{scenario}-seed{seed}-x{scale:g}" + (f"-{disorder}" if disorder else "")


#: Events folded per batch when restoring (one batch of the default replay).
RESTORE_BATCH = 1 << 20


@dataclass
class Restored:
    """A run's aggregate state at a point of its log (:meth:`RunDir.restore`)."""

    aggregator: Aggregator | EventTimeAggregator
    from_snapshot: int  # seq of the snapshot it started from (0: from the start)
    folded: int  # events folded from the log on top of it
    notes: list[str] = field(default_factory=list)  # snapshots passed over, and why


@dataclass(frozen=True, slots=True)
class RunDir:
    path: Path

    @property
    def log(self) -> Path:
        return self.path / "log"

    @property
    def staging(self) -> Path:
        """Where a cluster's workers write their log segments until the driver takes them in."""
        return self.log / ".staging"

    def clear_staging(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    @property
    def snapshots(self) -> Path:
        return self.path / "snapshots"

    @property
    def meta_path(self) -> Path:
        return self.path / "run.json"

    @property
    def scenario_path(self) -> Path:
        return self.path / "scenario.toml"

    @property
    def milestones_path(self) -> Path:
        return self.path / "milestones.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def catalogue_path(self) -> Path:
        return self.path / "catalogue.jsonl"

    @property
    def dead_letters_path(self) -> Path:
        return self.path / "dead-letters.jsonl"

    def brand_names(self, scenario: Scenario) -> tuple[str, ...]:
        """The names the log's brand ids index: the catalogue file of an ingested run (brands are
        added as they arrive), else the scenario's generated catalogue."""
        if not self.catalogue_path.is_file():
            from ticker.scenario.brands import catalogue

            return catalogue(scenario).names
        data = self.catalogue_path.read_bytes()
        if not data.endswith(b"\n"):  # a line torn by a crash: no logged event uses it yet
            data = data[: data.rfind(b"\n") + 1]
        try:
            return tuple(orjson.loads(line) for line in data.splitlines())
        except orjson.JSONDecodeError as exc:
            raise RunDirError(f"{self.catalogue_path}: unreadable ({exc})") from None

    def append_catalogue(self, names: list[str]) -> None:
        """Append brand names, durably, before any log record that uses their ids is written."""
        if not names:
            return
        with open(self.catalogue_path, "ab") as fh:
            fh.write(b"".join(orjson.dumps(n) + b"\n" for n in names))
            fh.flush()
            os.fsync(fh.fileno())

    def exists(self) -> bool:
        return self.meta_path.is_file()

    def half_made(self) -> bool:
        """A directory whose creation by an older ticker was cut short (between ``mkdir`` and
        run.json): nothing in it but what creation writes first, nothing recorded."""
        if not self.path.is_dir() or self.exists():
            return False
        for entry in self.path.iterdir():
            if entry.name in _CREATION_FILES and entry.is_file():
                continue
            if entry.name in ("snapshots", "log") and entry.is_dir() and all(
                    e.name == "LOCK" for e in entry.iterdir()):
                continue
            return False
        return True

    def claim(self) -> list[str]:
        """Make the directory ready for a new run, or refuse in one line. Nothing there, an
        empty directory: fine. A previous run: its files are removed (said in the notes). A
        half-made directory: taken over. Anything else is not ours to delete."""
        if not self.path.exists() or (self.path.is_dir() and not any(self.path.iterdir())):
            return []
        if not self.path.is_dir():
            raise RunDirError(f"{self.path}: expected a directory for the run, found a file")
        if self.half_made():
            shutil.rmtree(self.path)
            return [f"taking over {self.path}: its creation was cut short, nothing was recorded"]
        if not self.exists():
            raise RunDirError(f"{self.path} exists and is not a ticker run directory; choose "
                              "another --run-dir")
        for stale in (self.log, self.snapshots):
            shutil.rmtree(stale, ignore_errors=True)
        for stale in (self.milestones_path, self.summary_path, self.catalogue_path,
                      self.dead_letters_path):
            stale.unlink(missing_ok=True)
        return [f"replacing the previous run in {self.path}"]

    def create(self, meta: dict[str, Any], scenario_text: str) -> None:
        """Write a new run's scenario and run.json (after :meth:`claim`). A fresh directory is
        made atomically: built beside its place under a temporary name, then renamed, so a crash
        leaves either no directory or a whole one (a previous run's is rewritten in place: it
        is a run directory throughout)."""
        meta = {**meta, "scenario_sha256": scenario_digest(scenario_text)}
        if self.exists():
            self.snapshots.mkdir(exist_ok=True)
            write_atomic(self.scenario_path, scenario_text.encode())
            self.write_meta(meta)
            return
        parent = self.path.absolute().parent
        parent.mkdir(parents=True, exist_ok=True)
        for debris in parent.glob(f".{self.path.name}.creating-*"):  # a crash mid-creation
            shutil.rmtree(debris, ignore_errors=True)
        building = RunDir(parent / f".{self.path.name}.creating-{secrets.token_hex(4)}")
        building.path.mkdir()  # (not mkdtemp: its 0700 would outlive the rename)
        try:
            building.snapshots.mkdir()
            write_atomic(building.scenario_path, scenario_text.encode())
            building.write_meta(meta)
            if self.path.is_dir():
                self.path.rmdir()  # empty (claimed): the rename needs its place
            os.rename(building.path, self.path)
            sync_directory(parent)
        except BaseException:
            shutil.rmtree(building.path, ignore_errors=True)
            raise

    def open_recorded(self, check: Literal["tail", "full", "readable"] = "tail"
                      ) -> tuple[dict[str, Any], Scenario, EventLog]:
        """What was run and its log, opened read-only; :class:`RunDirError` if unreadable.
        ``check="full"`` checksums every record first (a replay must not find out half way)."""
        meta = self.meta()
        scenario = self.scenario(meta)
        try:
            return meta, scenario, EventLog(self.log, readonly=True, check=check)
        except (CorruptLogError, FileNotFoundError) as exc:
            raise RunDirError(str(exc)) from None

    def scenario(self, meta: dict[str, Any] | None = None) -> Scenario:
        """The scenario as run: scenario.toml, checked against the sha256 run.json keeps of it
        (a changed copy would silently re-fold the log under other rules)."""
        meta = self.meta() if meta is None else meta
        scenario = load_scenario(self.scenario_path)
        digest = scenario_digest(scenario.text)
        if meta.get("scenario_sha256", digest) != digest:
            raise RunDirError(f"{self.scenario_path}: expected the scenario the run was made with "
                              f"(sha256 {meta['scenario_sha256'][:16]}… in run.json), found other "
                              "bytes")
        return scenario

    def write_meta(self, meta: dict[str, Any]) -> None:
        write_atomic(self.meta_path, orjson.dumps(meta, option=orjson.OPT_INDENT_2) + b"\n")

    def meta(self) -> dict[str, Any]:
        """run.json, checked: one line naming the file and the key for anything wrong."""
        if not self.meta_path.is_file():
            raise RunDirError(f"{self.path}: not a run directory (no run.json; expected the "
                              "--run-dir of a 'ticker replay')")
        meta = _read_json(self.meta_path, "the run's metadata as 'ticker replay' writes it")
        if not isinstance(meta, dict):
            raise RunDirError(f"{self.meta_path}: expected a JSON object, found {type(meta).__name__}")
        for key, (check, expected) in _META.items():
            if key not in meta:
                raise RunDirError(f"{self.meta_path}: {key}: missing (expected {expected})")
            if not check(meta[key]):
                raise RunDirError(f"{self.meta_path}: {key}: expected {expected}, found "
                                  f"{orjson.dumps(meta[key]).decode()[:40]}")
        disorder = None
        if "disorder" in meta:  # an arrival-ordered run: its profile, checked like a profile file
            from ticker.scenario.disorder import DisorderError, parse_profile

            try:
                disorder = parse_profile(meta["disorder"], f"{self.meta_path}: disorder", "").name
            except DisorderError as exc:
                raise RunDirError(exc.problems[0]) from None
        generated = "source" not in meta  # (an ingested run names itself after its source)
        if generated and meta["run"] != (named := run_id(meta["scenario"], meta["seed"], meta["scale"],
                                                         disorder)):
            raise RunDirError(f"{self.meta_path}: run: expected {named!r} (its scenario, seed, "
                              f"scale and disorder), found {meta['run']!r}")
        return meta

    def events(self, from_seq: int = 0, to_seq: int | None = None) -> Iterator[OrderBatch]:
        """The log's events ``[from_seq, to_seq)``, read-only (the log is opened here and closed
        when the iteration ends); :class:`RunDirError` for a log that cannot be opened or a
        record that does not read."""
        try:
            log = EventLog(self.log, readonly=True)
        except (CorruptLogError, OSError) as exc:
            raise RunDirError(f"{self.log}: cannot read the event log ({exc})") from None
        try:
            yield from log.read(from_seq, to_seq)
        except CorruptLogError as exc:
            raise RunDirError(str(exc)) from None
        finally:
            log.close()

    def restore(self, *, before_seq: int | None = None, before_time: int | None = None,
                trust_snapshots: bool = True, stops: Iterable[int] = (),
                at_stop: Callable[[int, Aggregator | EventTimeAggregator], None] | None = None,
                log: EventLog | None = None, scenario: Scenario | None = None,
                brand_names: tuple[str, ...] | None = None) -> Restored:
        """The aggregate state at a point of the log: the newest readable snapshot at or before
        it, then the log folded on from there up to the point. The one way to restore a run
        (``--resume``, ``ticker follow``'s resume, ``ticker state --at``, ``ticker verify``, the
        report). The state is the stream's before its end is declared: a finished run's final
        snapshot (taken after ``finish()``) is no starting point; call ``finish()`` on the
        result for the end of a finished run.

        * ``before_seq``: the fold of the events before this seq (None: the whole log);
        * ``before_time``: the fold of the log up to its first event at or after this event time.
          For an arrival-ordered run, the state when its watermark reached the moment: up to the
          first arrival at or after ``before_time`` + lateness, so every final milestone before
          the moment is in, and the totals hold what had arrived by then.
        * ``trust_snapshots=False`` folds from the start (``verify`` checks the snapshots);
        * ``at_stop(seq, aggregator)`` is called when the fold reaches each seq of ``stops``.

        ``log``, ``scenario`` and ``brand_names`` default to the directory's own (the log opened
        read-only); a caller holding them open passes them. A point beyond the log's end gives
        the state at its end. Raises :class:`RunDirError` for a run that cannot be read.
        """
        meta = self.meta()
        scenario = scenario if scenario is not None else self.scenario(meta)
        names = brand_names if brand_names is not None else self.brand_names(scenario)
        run, disorder = meta["run"], meta.get("disorder")
        opened = log is None
        if log is None:
            try:
                log = EventLog(self.log, readonly=True)
            except (CorruptLogError, OSError) as exc:
                raise RunDirError(f"{self.log}: cannot read the event log ({exc})") from None
        try:
            aggregator = aggregator_for(scenario, names, run, disorder)
            end = log.next_seq if before_seq is None else min(before_seq, log.next_seq)
            until = before_time
            if until is not None and isinstance(aggregator, EventTimeAggregator):
                until += aggregator.config.lateness_us
            notes: list[str] = []
            start = 0
            for seq in reversed(self.snapshot_seqs() if trust_snapshots else []):
                if seq > log.next_seq:
                    notes.append(f"ignoring snapshot at seq {seq:,}: beyond the log's end "
                                 f"({log.next_seq:,})")
                    continue
                if seq > end:
                    continue
                try:
                    state = self.load_snapshot(seq, run)
                    if state.open_second < 0:
                        continue  # a finished run's final state (its last second closed)
                    if until is not None and state.last_time_us >= until:
                        continue  # it holds an event at or after the moment
                    aggregator = aggregator_for(scenario, names, run, disorder, state)
                except SnapshotError as exc:
                    notes.append(f"ignoring {exc}")
                    continue
                start = seq
                break
            folded = 0
            stops = sorted(set(stops))
            for batch in rebatch(log.read(start, end), RESTORE_BATCH, at=stops, before_time=until):
                aggregator.apply(batch)
                folded += len(batch)
                if at_stop is not None and aggregator.state.next_seq in stops:
                    at_stop(aggregator.state.next_seq, aggregator)
        except CorruptLogError as exc:
            raise RunDirError(str(exc)) from None
        finally:
            if opened:
                log.close()
        return Restored(aggregator, start, folded, notes)

    def snapshot_path(self, seq: int) -> Path:
        return self.snapshots / f"snap-{seq:020d}.npz"

    def write_snapshot(self, state: AggregateState | EventTimeState, run: str) -> None:
        write_atomic(self.snapshot_path(state.next_seq), state.to_snapshot(run))
        sync_directory(self.snapshots)

    def load_snapshot(self, seq: int, run: str | None = None) -> AggregateState | EventTimeState:
        path = self.snapshot_path(seq)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SnapshotError(f"{path}: cannot read ({exc.strerror})") from None
        return AggregateState.from_snapshot(data, str(path), run)

    def snapshot_seqs(self) -> list[int]:
        """The seqs covered by the snapshots on disk, ascending."""
        if not self.snapshots.is_dir():
            return []
        found = (_SNAPSHOT.match(p.name) for p in self.snapshots.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def write_milestones(self, milestones: list[Milestone], zone: timezone) -> None:
        lines = b"".join(orjson.dumps(m.to_json(zone)) + b"\n" for m in milestones)
        write_atomic(self.milestones_path, lines)

    def read_milestones(self) -> list[dict[str, Any]]:
        """milestones.jsonl; :class:`RunDirError` naming the line that is not a milestone."""
        if not self.milestones_path.is_file():
            return []
        data = self.milestones_path.read_bytes()
        out = []
        for number, line in enumerate(data.split(b"\n"), start=1):
            if not line and number == data.count(b"\n") + 1:
                break  # after the last newline
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError:
                item = None
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise RunDirError(f"{self.milestones_path}: line {number}: expected a milestone "
                                  f"(a JSON object with an id), found {line[:40]!r}")
            out.append(item)
        if data and not data.endswith(b"\n"):
            raise RunDirError(f"{self.milestones_path}: line {len(out)}: expected a newline at the "
                              f"end (offset {len(data)}), found the file cut short")
        return out

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_atomic(self.summary_path, orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")

    def summary(self) -> dict[str, Any] | None:
        if not self.summary_path.is_file():
            return None
        summary = _read_json(self.summary_path, "the run's summary as 'ticker replay' writes it")
        if not isinstance(summary, dict):
            raise RunDirError(f"{self.summary_path}: expected a JSON object, found "
                              f"{type(summary).__name__}")
        for key, (kind, expected) in _SUMMARY.items():
            value = summary.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise RunDirError(f"{self.summary_path}: {key}: expected {expected}, found "
                                  f"{orjson.dumps(value).decode()[:40]}")
        for i, item in enumerate(summary["milestones"]):
            try:
                Milestone.from_json(item)
            except Exception:  # damaged JSON of any shape: say where
                raise RunDirError(f"{self.summary_path}: milestones[{i}]: expected a milestone "
                                  f"as milestones.jsonl has it, found "
                                  f"{orjson.dumps(item).decode()[:60]}") from None
        return summary


#: summary.json's keys that readers rely on, and their JSON types
_SUMMARY: dict[str, tuple[type | tuple[type, ...], str]] = {
    **{key: (str, "a string") for key in ("run", "scenario", "currency", "peak_at")},
    **{key: (int, "an integer") for key in ("seed", "orders", "refunds", "events", "gmv_minor",
                                            "peak_orders_per_s")},
    "scale": ((int, float), "a number"), "brands_over": (dict, "an object"),
    "milestones": (list, "an array"),
}


def scenario_digest(text: str) -> str:
    """What run.json keeps of the scenario file as run, so that a changed copy is noticed."""
    return hashlib.sha256(text.encode()).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file, fsync, rename: readers see the old content or the new, never a torn file.
    A failed write (a full disk) leaves no temp file behind."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_json(path: Path, expected: str) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RunDirError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        found = "the file cut short" if exc.pos >= len(data.rstrip()) else "bytes that are not JSON"
        raise RunDirError(f"{path}: offset {exc.pos}: expected {expected}, found {found} "
                          f"({exc.msg})") from None


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


#: what run.json's ``state`` says: ``interrupted`` by SIGINT/SIGTERM (flushed, checkpointed),
#: ``stopped`` (a follow ended before its source finished); ``running`` after a crash.
RUN_STATES = ("running", "finished", "interrupted", "stopped")
#: run.json's keys, each with its check and what it should be.
_META: dict[str, tuple[Callable[[Any], bool], str]] = {
    "run": (lambda x: isinstance(x, str) and bool(x), "the run id, a non-empty string"),
    "scenario": (lambda x: isinstance(x, str) and bool(x), "the scenario's name"),
    "seed": (_is_int, "a non-negative integer"),
    "scale": (lambda x: SCALE.problem(x) is None, f"the scale, {SCALE.describe()}"),
    "events": (lambda x: x is None or _is_int(x), "the run's event count, an integer"),
    "state": (lambda x: x in RUN_STATES, f"one of {', '.join(RUN_STATES)}"),
}

