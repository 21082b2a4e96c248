"""The run directory: where one replay keeps its truth (the log) and what is derived from it.

::

    runs/{run}/
      run.json            what was run: scenario name, seed, scale, batch size, ticker version
      scenario.toml       the scenario file exactly as run
      log/                the event log segments (the truth)
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

import os
import re
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path

import orjson

from ticker.aggregate.milestones import Milestone
from ticker.aggregate.state import AggregateState, SnapshotError
from ticker.errors import TickerError
from ticker.eventlog import CorruptLogError, EventLog, sync_directory
from ticker.scenario import Scenario, load_scenario

_SNAPSHOT = re.compile(r"^snap-(\d{20})\.npz$")


class RunDirError(TickerError, ValueError):
    """A run directory is missing, incomplete, or belongs to another run."""


def run_id(scenario: str, seed: int, scale: float) -> str:
    """A run's stable name: the same scenario, seed and scale always name the same run."""
    return f"{scenario}-seed{seed}-x{scale:g}"


@dataclass(frozen=True, slots=True)
class RunDir:
    path: Path

    @property
    def log(self) -> Path:
        return self.path / "log"

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
            from ticker.scenario.brands import build_catalogue

            return build_catalogue(scenario).names
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

    def create(self, meta: dict, scenario_text: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.snapshots.mkdir(exist_ok=True)
        write_atomic(self.scenario_path, scenario_text.encode())
        self.write_meta(meta)

    def open_recorded(self) -> tuple[dict, Scenario, EventLog]:
        """What was run and its log, opened read-only; :class:`RunDirError` if unreadable."""
        meta = self.meta()
        scenario = load_scenario(self.scenario_path)
        try:
            return meta, scenario, EventLog(self.log, readonly=True)
        except (CorruptLogError, FileNotFoundError) as exc:
            raise RunDirError(str(exc)) from None

    def write_meta(self, meta: dict) -> None:
        write_atomic(self.meta_path, orjson.dumps(meta, option=orjson.OPT_INDENT_2) + b"\n")

    def meta(self) -> dict:
        if not self.meta_path.is_file():
            raise RunDirError(f"{self.path}: not a run directory (no run.json; expected the "
                              "--run-dir of a 'ticker replay')")
        try:
            return orjson.loads(self.meta_path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise RunDirError(f"{self.meta_path}: unreadable ({exc})") from None

    def snapshot_path(self, seq: int) -> Path:
        return self.snapshots / f"snap-{seq:020d}.npz"

    def write_snapshot(self, state: AggregateState, run: str) -> None:
        write_atomic(self.snapshot_path(state.next_seq), state.to_snapshot(run))
        sync_directory(self.snapshots)

    def load_snapshot(self, seq: int, run: str | None = None) -> AggregateState:
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

    def read_milestones(self) -> list[dict]:
        if not self.milestones_path.is_file():
            return []
        return [orjson.loads(line) for line in self.milestones_path.read_bytes().splitlines() if line]

    def write_summary(self, summary: dict) -> None:
        write_atomic(self.summary_path, orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")

    def summary(self) -> dict | None:
        if not self.summary_path.is_file():
            return None
        return orjson.loads(self.summary_path.read_bytes())


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file, fsync, rename: readers see the old content or the new, never a torn file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)

