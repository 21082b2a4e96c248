"""What a report is: each target checked (:class:`FactCheck`), the run against its targets
(:class:`Report`), and :class:`ReportError`, the one error of ``ticker report``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path
from typing import Any

from ticker.aggregate.milestones import Milestone
from ticker.clock import offset_text
from ticker.errors import TickerError
from ticker.scenario.model import Scenario

MINUS = "\N{MINUS SIGN}"


class ReportError(TickerError, ValueError):
    """The run cannot be reported on (not a run directory, unfinished, unreadable); one line."""


@dataclass(frozen=True, slots=True)
class FactCheck:
    """One target checked against the run: the texts for people, the numbers for scripts.

    ``expected_value`` is what the run must show (already multiplied by the scale for a scaled
    target; minor units for money; a list of names for ``first_brands_over``); ``measured_value``
    is what it shows, or ``None`` when it could not be measured (which fails the fact).
    """

    fact: str
    metric: str
    source: str
    expected: str
    measured: str
    difference: str
    tolerance: float
    ok: bool
    expected_value: Any
    measured_value: Any
    unit: str

    def to_json(self) -> dict[str, Any]:
        return {"fact": self.fact, "metric": self.metric, "source": self.source,
                "expected": self.expected, "measured": self.measured,
                "difference": self.difference, "tolerance": self.tolerance, "ok": self.ok,
                "expected_value": self.expected_value, "measured_value": self.measured_value,
                "unit": self.unit}


@dataclass(frozen=True)
class Report:
    """A run against its scenario's targets, and the run's milestones in event-time order."""

    run: str
    scenario: Scenario
    seed: int
    scale: float
    summary: dict[str, Any]  # summary.json
    facts: tuple[FactCheck, ...]
    milestones: tuple[Milestone, ...]
    path: Path | None = None  # the run directory, when the report was read from one
    notes: tuple[str, ...] = field(default=())
    #: an arrival-ordered run: its live milestones and corrections (``milestones`` are final)
    live: tuple[Milestone, ...] = field(default=())
    corrections: tuple[Milestone, ...] = field(default=())

    def live_vs_final(self) -> list[tuple[Milestone, Milestone | None]]:
        """Each final milestone with its live twin (None if the live fold never crossed it)."""
        live = {m.id.removesuffix(":live"): m for m in self.live}
        return [(m, live.get(m.id)) for m in self.milestones]

    @property
    def ok(self) -> bool:
        """Every fact holds (a scenario without targets has nothing to fail)."""
        return all(f.ok for f in self.facts)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` shape; keys are stable, new ones may be added."""
        zone = self.scenario.zone
        out = {"run": self.run, "scenario": self.scenario.name, "seed": self.seed,
               "scale": self.scale, "facts": [f.to_json() for f in self.facts], "ok": self.ok,
               "milestones": [m.to_json(zone) for m in self.milestones]}
        if self.live or self.corrections:
            out["event_time"] = self.summary.get("event_time")
            out["live_vs_final"] = [
                {"id": f.id, "final": f.to_json(zone)["event_time"],
                 "live": live.to_json(zone)["event_time"] if live else None,
                 "live_minus_final_s": (live.event_time_us - f.event_time_us) / 1e6 if live else None,
                 "same_order": live.seq == f.seq if live else None}
                for f, live in self.live_vs_final()]
            out["corrections"] = [m.to_json(zone) for m in self.corrections]
        return out


def utc_offset(zone: timezone) -> str:
    """``UTC+08:00``: how the table and the chart name the festival's zone."""
    return f"UTC{offset_text(zone)}"
