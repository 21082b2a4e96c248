"""Making and reopening the run directory of an ingested stream (``import``, ``follow``).

Same layout as a generated run (``ticker.rundir``) plus ``catalogue.jsonl`` — the brand names
the log's ids index, starting from the scenario's catalogue (or empty with the default festival)
and appended, durably, before any log record that uses a new id — and ``dead-letters.jsonl``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from ticker import __version__
from ticker.rundir import RunDir, write_atomic
from ticker.scenario import Scenario
from ticker.scenario.brands import catalogue

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_run_id(text: str) -> str:
    """A run id (one MQTT topic level, a directory name) from a file name or a label."""
    return _UNSAFE.sub("-", text).strip("-.") or "ingested"


def create(run_dir: RunDir, run: str, scenario: Scenario, *, bundled: bool, source: dict[str, Any],
           scale: float = 1.0, disorder: dict[str, Any] | None = None) -> tuple[tuple[str, ...], list[str]]:
    """A fresh run directory (replacing a previous run in it, as ``replay`` does): the brand
    names it starts with, and notes for the user."""
    notes = run_dir.claim()
    names = catalogue(scenario).names if bundled else ()
    meta = {"run": run, "scenario": scenario.name, "seed": 0, "scale": scale, "events": None,
            "ticker": __version__, "state": "running", "source": source}
    if disorder:  # an arrival-ordered stream: the event-time fold, as replay --disorder records it
        meta["disorder"] = disorder
    run_dir.create(meta, scenario.text)
    write_atomic(run_dir.catalogue_path, b"".join(orjson.dumps(n) + b"\n" for n in names))
    return names, notes


def reopen_catalogue(run_dir: RunDir, scenario: Scenario) -> tuple[str, ...]:
    """The catalogue of a run being resumed; a line torn by a crash is cut off (no logged
    event can use it: the catalogue is written before the log)."""
    path = run_dir.catalogue_path
    data = path.read_bytes() if path.is_file() else b""
    keep = data.rfind(b"\n") + 1
    if keep != len(data):
        with open(path, "r+b") as fh:
            fh.truncate(keep)
    return run_dir.brand_names(scenario)


def finish_meta(run_dir: RunDir, events: int, extra: dict[str, Any]) -> None:
    meta = run_dir.meta()
    meta["events"] = events
    meta.setdefault("source", {}).update(extra)
    run_dir.write_meta(meta)


def event_time(scenario: Scenario, disorder: str | None) -> dict[str, Any] | None:
    """``--disorder NAME|FILE|none`` (else the scenario's ``[disorder]``) as ``run.json`` records
    it: the lateness and duplicate window of the event-time fold, or None for the ordered fold."""
    from ticker.engine import disorder_profile

    profile = disorder_profile(scenario, disorder)
    return profile.to_json() if profile else None


def default_run_dir(run: str) -> Path:
    return Path("runs") / run
