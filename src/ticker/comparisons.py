"""Facts beyond the brand races, measured for ``ticker report``: counts on the scenario's
``[[dimensions]]`` and comparisons with a baseline run (the previous year).

Each metric is a function from a target and the run (and, for a comparison, its baseline) to a
:class:`Measured`; ``report`` turns it into a row of its table. The meanings:

=====================  ==============================================================================
metric                 measured, and when it holds
=====================  ==============================================================================
``dimension_over``     sellers of a per-order dimension (``subject = "channel"``) or brands of a
                       per-brand value (``subject = "tmall_global"``) that passed ``threshold`` (one
                       of the dimension's race thresholds; before ``at`` when given), within tolerance
``dimension_brands``   brands of a per-brand value (or of any of a dimension's values but its rest,
                       ``subject = "origin"``) taking part: in the run's catalogue (at small scales
                       some of the smallest sell nothing; the report says how many did)
``dimension_over_      year on year: a value's brands over ``threshold`` (its race's count, or, for
change``               a threshold it does not race on, net GMV at the end from a fold of the log)
                       as a change on the baseline run's (``value = 0.46``: up 46 %)
``time_to_baseline``   seconds from ``at`` until the subject's GMV since then passes its GMV in the
                       baseline run's window [``baseline_from``, ``baseline_to``) ("within 4
                       minutes, more than its whole first day of 2020"); ``at_most``: a deadline
=====================  ==============================================================================

**The baseline run** is the previous year's scenario (``festival.baseline``) replayed at the run's
scale and its own seed: ``ticker report RUN --baseline RUN2`` names one, otherwise the report
replays it on demand next to the run (``runs/double11-2020-seed20201111-x0.001``) and reuses it
after. The two catalogues share brand identities by name: the named and tiered brands by their
names, the long tail by rank (``brand-000123`` is the 123rd brand of either year).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ticker.aggregate.milestones import Milestone
from ticker.scenario.dimensions import tables
from ticker.scenario.model import Scenario, Target

#: (events before a time, or all for None) -> every brand's net GMV: the report's log fold
FoldBrands = Callable[[int | None], np.ndarray]


@dataclass(frozen=True, slots=True)
class Measured:
    """A fact's row: texts for people, numbers for scripts (``measured_value`` None: not measured,
    which fails the fact)."""

    expected: str
    measured: str
    difference: str
    ok: bool
    expected_value: Any
    measured_value: Any
    unit: str


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What a comparison needs of one run: its scenario, its (final) milestones, its log."""

    scenario: Scenario
    milestones: Sequence[Milestone]
    fold_brands: FoldBrands | None
    path: Path | None = None
    scale: float = 1.0


METRICS = ("dimension_over", "dimension_brands", "dimension_over_change", "time_to_baseline")
BASELINE_METRICS = ("dimension_over_change", "time_to_baseline")


def measure(t: Target, run: RunFacts, baseline: Callable[[], RunFacts | str] | None = None
            ) -> Measured:
    """``baseline()`` gives the baseline run, or why there is none (one line)."""
    if t.metric == "dimension_over":
        return _dimension_over(t, run)
    if t.metric == "dimension_brands":
        return _dimension_brands(t, run)
    base = baseline() if baseline is not None else "no baseline run"
    if isinstance(base, str):
        return Measured(f"{float(t.value):,g}", "not measured", base, False, t.value, None, "")
    if t.metric == "dimension_over_change":
        return _dimension_over_change(t, run, base)
    return _time_to_baseline(t, run, base)


def _count_row(t: Target, measured: int | None, unit: str, why: str = "") -> Measured:
    expected = float(t.value)
    if measured is None:
        return Measured(f"{expected:,.0f} {unit}", "not measured", why, False, expected, None,
                        unit)
    diff = measured - expected
    text = "0" if diff == 0 else f"{'+' if diff > 0 else '−'}{abs(diff):,.0f}"
    if diff and expected:
        text += f" ({diff / expected:+.1%})".replace("-", "−")
    ok = abs(diff) <= t.tolerance * abs(expected) + 1e-9
    return Measured(f"{expected:,.0f} {unit}", f"{measured:,} {unit}", text, ok, expected,
                    measured, unit)


def race_kind(scenario: Scenario, subject: str) -> tuple[str, str]:
    """The milestone kind of a dimension's races on ``subject`` and what it counts."""
    for d in scenario.dimensions:
        if d.per == "order" and d.name == subject:
            return f"{subject}_gmv", f"{subject}s"
        for v in d.values:
            if v.name == subject:
                return f"{subject}_brand_gmv", "brands"
    raise KeyError(subject)


def _dimension_over(t: Target, run: RunFacts) -> Measured:
    kind, unit = race_kind(run.scenario, str(t.subject))
    measured = sum(1 for m in run.milestones if m.kind == kind and m.threshold_minor ==
                   t.threshold_minor and (t.at_us is None or m.event_time_us < t.at_us))
    return _count_row(t, measured, unit)


def _dimension_brands(t: Target, run: RunFacts) -> Measured:
    mine = brand_group(run.scenario, str(t.subject), run.scenario.brand_count)
    row = _count_row(t, int(np.count_nonzero(mine)), "brands")
    if run.fold_brands is None:
        return row
    sold = int(np.count_nonzero(mine & (run.fold_brands(None) > 0)))
    return Measured(row.expected, f"{row.measured} ({sold:,} sold)", row.difference, row.ok,
                    row.expected_value, row.measured_value, row.unit)


def brand_group(scenario: Scenario, subject: str, brands: int) -> np.ndarray:
    """Brands with value ``subject``, or with any value of dimension ``subject`` but its rest."""
    for table in tables(scenario):
        if table.per_order:
            continue
        codes = table.brand_value[:brands]
        if table.dimension.name == subject:
            return np.asarray(codes != 0)
        if subject in table.names[1:]:
            return np.asarray(codes == table.names.index(subject))
    raise KeyError(subject)


def _dimension_over_change(t: Target, run: RunFacts, base: RunFacts) -> Measured:
    kind, unit = race_kind(run.scenario, str(t.subject))

    def count(r: RunFacts) -> int | None:
        if any(t.threshold_minor in d.thresholds_minor for d in r.scenario.dimensions
               for v in d.values if v.name == t.subject):
            return sum(1 for m in r.milestones if m.kind == kind
                       and m.threshold_minor == t.threshold_minor)
        if r.fold_brands is None:  # not raced: the brands at or over it in a fold of the log
            return None
        gmv = r.fold_brands(None)
        mine = brand_group(r.scenario, str(t.subject), len(gmv))
        return int(np.count_nonzero(mine & (gmv >= int(t.threshold_minor or 0))))

    now, before = count(run), count(base)
    if now is None or before is None:
        return Measured(f"{float(t.value):+.0%}", "not measured", "no event log", False,
                        t.value, None, "")
    expected = float(t.value)
    if before == 0:
        return Measured(f"{expected:+.0%}", f"{now:,} {unit} (baseline: none)", "no baseline",
                        False, expected, None, "")
    change = now / before - 1
    diff = change - expected
    ok = abs(diff) <= t.tolerance * abs(expected) + 1e-9
    return Measured(f"{expected:+.1%}".replace("-", "−"),
                    f"{change:+.1%} ({now:,} vs {before:,} {unit})".replace("-", "−"),
                    f"{diff * 100:+.1f} points".replace("-", "−"), ok, expected, change, "")


def _time_to_baseline(t: Target, run: RunFacts, base: RunFacts) -> Measured:
    expected = float(t.value)
    brand = str(t.subject).partition(":")[2]
    window = t.baseline_window_us
    if base.fold_brands is None or run.path is None or window is None or t.at_us is None:
        return Measured(f"{expected:,g} s", "not measured", "no event log", False, expected,
                        None, "s")
    names = base.scenario  # the baseline's brand id of the subject, by name
    from ticker.scenario.brands import catalogue

    value = int(base.fold_brands(window[1])[catalogue(names).index(brand)]
                - base.fold_brands(window[0])[catalogue(names).index(brand)])
    at = passing_time(run.path, catalogue(run.scenario).index(brand), t.at_us, value)
    if at is None:
        return Measured(f"{'≤ ' if t.at_most else ''}{expected:,g} s", "never",
                        f"baseline {value:,} minor units never reached", False, expected, None, "s")
    took = (at - t.at_us) / 1e6
    diff = took - expected
    ok = (took <= expected * (1 + t.tolerance) + 1e-9 if t.at_most
          else abs(diff) <= t.tolerance * expected + 1e-9)
    return Measured(f"{'≤ ' if t.at_most else ''}{expected:,g} s", f"{took:,.1f} s",
                    f"{diff:+,.1f} s".replace("-", "−"), ok, expected, took, "s")


def passing_time(path: Path, brand: int, at_us: int, value: int) -> int | None:
    """The event time of the first order of ``brand`` at or after ``at_us`` whose running GMV
    since ``at_us`` reaches ``value`` (one pass over the run's log), or None."""
    from ticker.eventlog import EventLog

    total = 0
    log = EventLog(path / "log", readonly=True)
    try:
        for batch in log.read(0):
            if batch.event_time[-1] < at_us:
                continue
            mine = (batch.brand == brand) & (batch.event_time >= at_us)
            amounts = batch.amount_minor[mine]
            if not len(amounts):
                continue
            running = total + np.cumsum(amounts)
            hit = np.flatnonzero(running >= value)
            if len(hit):
                return int(batch.event_time[mine][hit[0]])
            total = int(running[-1])
    finally:
        log.close()
    return None
