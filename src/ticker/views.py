"""Typed, read-only values the library hands out: a tick, a leaderboard row, a peak, a summary.

These are what :class:`ticker.Aggregator`'s views return, what a :class:`ticker.Sink` receives,
and what :func:`ticker.replay` returns. Money is integer minor units (fen, cents); times are UTC
microseconds. :class:`Summary`'s JSON *is* the summary contract of ``DESIGN.md``
(``summary.json``, ``--summary``): :meth:`Summary.to_json` writes the same keys in the same order
as before the library existed, byte for byte (``tests/test_golden.py``).

New facts go in as fields with a default (so existing constructors keep working) and, if they
belong in the JSON contract, as a key :meth:`to_json` adds only when set — the way ``mqtt`` is.

>>> board = [BrandGMV("Apple", 1_000_598_294_550), BrandGMV("L'Oréal", 1_000_1_00)]
>>> board[0].brand, board[0].gmv_minor
('Apple', 1000598294550)
>>> Peak(583, 1_636_560_000_000_000).orders_per_s
583
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from ticker.clock import format_time
from ticker.money import Currency

if TYPE_CHECKING:  # the aggregator returns these views: no import of it at run time
    from ticker.aggregate.milestones import Milestone


class BrandGMV(NamedTuple):
    """One leaderboard row: a brand and its GMV so far (minor units)."""

    brand: str
    gmv_minor: int


class Peak(NamedTuple):
    """The busiest event-time second: its order count and its start (UTC µs)."""

    orders_per_s: int
    at_us: int


@dataclass(frozen=True, slots=True)
class Tick:
    """The running state as a sink sees it, at most ``tick_hz`` times a wall-clock second.

    ``seq`` is the last folded event's; ``orders_per_s`` is the last complete event-time
    second's count (the first second's while it is the only one).
    """

    event_time_us: int
    seq: int
    gmv_minor: int
    orders: int
    orders_per_s: int
    leaderboard: tuple[BrandGMV, ...]
    #: an arrival-ordered run's watermark (event time before which the fold is final); None for
    #: an ordered run
    watermark_us: int | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An aggregator's state as one immutable value (:meth:`ticker.Aggregator.snapshot`)."""

    run: str
    events: int  # events folded: seqs 0 .. events - 1
    event_time_us: int  # the last folded event's time (0 before the first)
    gmv_minor: int
    orders: int
    refunds: int
    peak: Peak
    leaderboard: tuple[BrandGMV, ...]
    brands_over: dict[int, int]  # brand threshold (minor units) -> brands that have passed it
    milestones: tuple[Milestone, ...]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a publishing sink delivered (the summary's ``mqtt`` object)."""

    url: str
    milestones_delivered: int
    undelivered: tuple[str, ...]  # milestone ids never acknowledged, in submission order
    report: str  # one line for people

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "milestones_delivered": self.milestones_delivered,
                "undelivered": list(self.undelivered), "report": self.report}


@dataclass(slots=True)
class Summary:
    """A finished run: totals, peak, brands over each threshold, every milestone, speed.

    Mutable in one place only: a sink's :meth:`~ticker.Sink.finish` may record what it alone
    knows — the MQTT publisher sets :attr:`mqtt`, ``ticker import`` adds an ``ingest`` object to
    :attr:`sections` (further top-level objects of the JSON, in the order they were added).
    """

    run: str
    scenario: str
    seed: int
    scale: float
    currency: Currency
    zone: timezone
    orders: int
    refunds: int
    events: int
    gmv_minor: int
    peak: Peak
    brands_over: dict[int, int]
    milestones: tuple[Milestone, ...]
    events_per_s: float | None  # wall-clock: differs from run to run
    wall_s: float | None  # wall-clock: differs from run to run (None: not measured)
    mqtt: Delivery | None = None
    sections: dict[str, Any] = field(default_factory=dict)
    #: a replay of a damaged log asked to go on (``--partial``): what it lacks; first in the JSON
    partial: dict[str, Any] | None = None
    #: an arrival-ordered run's event-time report (watermark, late orders, corrections)
    event_time: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The summary contract (``summary.json``), keys in their documented order."""
        out: dict[str, Any] = {} if self.partial is None else {"partial": self.partial}
        out |= {
            "run": self.run,
            "scenario": self.scenario,
            "seed": self.seed,
            "scale": self.scale,
            "currency": self.currency.code,
            "orders": self.orders,
            "refunds": self.refunds,
            "events": self.events,
            "gmv_minor": self.gmv_minor,
            "peak_orders_per_s": self.peak.orders_per_s,
            "peak_at": format_time(self.peak.at_us, self.zone, precision="seconds"),
            "brands_over": {str(t): c for t, c in self.brands_over.items()},
            "milestones": [m.to_json(self.zone) for m in self.milestones],
        }
        if self.event_time is not None:
            out["event_time"] = self.event_time
        out |= {"events_per_s": self.events_per_s, "wall_s": self.wall_s}
        if self.mqtt is not None:
            out["mqtt"] = self.mqtt.to_json()
        out.update(self.sections)
        return out
