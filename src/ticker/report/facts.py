"""Checking a run's summary against its scenario's ``[[targets]]`` (the facts of ``FACTS.md``),
each within its tolerance, into a :class:`~ticker.report.model.Report`; what each metric measures
is in the package's docstring."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ticker import comparisons
from ticker.aggregate.milestones import Milestone
from ticker.clock import US_PER_S
from ticker.money import format_money, money_label
from ticker.report.model import MINUS, FactCheck, Report
from ticker.scenario.model import Scenario, Target


def build_report(scenario: Scenario, summary: dict[str, Any], *, path: Path | None = None,
                 fold_brands: Callable[[int | None], np.ndarray] | None = None,
                 baseline: Callable[[], comparisons.RunFacts | str] | None = None) -> Report:
    """Check ``summary`` (the DESIGN.md summary contract) against ``scenario``'s targets.

    ``fold_brands(before_us)`` gives every brand's net GMV from the events before ``before_us``
    (all events for ``None``); it is only called for a ``brands_over`` threshold that the
    aggregator does not race on, and without it such a fact is reported as not measured.
    """
    every = sorted((Milestone.from_json(m) for m in summary.get("milestones", [])),
                   key=lambda m: (m.event_time_us, m.seq))
    # an arrival-ordered run is checked on its final milestones (first in event-time order)
    milestones = [m for m in every if m.timing in (None, "final")]
    ctx = _Context(scenario, summary, float(summary["scale"]), milestones, fold_brands,
                   path=path, baseline=baseline)
    facts = tuple(_check(ctx, t) for t in scenario.targets)
    return Report(run=summary["run"], scenario=scenario, seed=int(summary["seed"]),
                  scale=float(summary["scale"]), summary=summary, facts=facts,
                  milestones=tuple(milestones), path=path, notes=tuple(ctx.notes),
                  live=tuple(m for m in every if m.timing == "live"),
                  corrections=tuple(m for m in every if m.timing == "correction"))


@dataclass
class _Context:
    scenario: Scenario
    summary: dict[str, Any]
    scale: float
    milestones: list[Milestone]
    fold_brands: Callable[[int | None], np.ndarray] | None
    notes: list[str] = field(default_factory=list)
    path: Path | None = None
    baseline: Callable[[], comparisons.RunFacts | str] | None = None  # year-on-year facts

    def race(self, threshold: int) -> list[Milestone]:
        """The brands that passed ``threshold``, by rank."""
        return sorted((m for m in self.milestones
                       if m.kind == "brand_gmv" and m.threshold_minor == threshold),
                      key=lambda m: (m.rank or 0, m.seq))


def _check(ctx: _Context, t: Target) -> FactCheck:
    checks = {"gmv": _check_gmv, "orders": _check_count, "peak_orders_per_s": _check_count,
              "brands_over": _check_brands_over, "first_brands_over": _check_first_brands,
              "time_to_value": _check_time_to_value, "brands": _check_brands}
    if t.metric in comparisons.METRICS:  # dimensions and baselines (ticker/comparisons.py)
        run = comparisons.RunFacts(ctx.scenario, ctx.milestones, ctx.fold_brands, ctx.path,
                                   ctx.scale)
        m = comparisons.measure(t, run, ctx.baseline)
        return _fact(t, m.expected, m.measured, m.difference, m.ok, m.expected_value,
                     m.measured_value, m.unit)
    check = checks.get(t.metric)
    if check is None:  # a metric newer than this report: say so, never pass it silently
        return _fact(t, str(t.value), "not measured", f"unknown metric {t.metric!r}", False,
                     t.value, None, "")
    return check(ctx, t)


def _fact(t: Target, expected: str, measured: str, difference: str, ok: bool,
          expected_value: Any, measured_value: Any, unit: str) -> FactCheck:
    return FactCheck(t.fact, t.metric, t.source, expected, measured, difference, t.tolerance, ok,
                     expected_value, measured_value, unit)


def _within(measured: float, expected: float, tolerance: float) -> bool:
    return abs(measured - expected) <= tolerance * abs(expected) + 1e-9


def _check_gmv(ctx: _Context, t: Target) -> FactCheck:
    cur = ctx.scenario.currency
    measured, expected = int(ctx.summary["gmv_minor"]), int(t.value)
    diff = measured - expected
    text = "0" if diff == 0 else f"{_sign(diff)}{format_money(abs(diff), cur)}"
    if diff and expected:
        text += f" ({_percent(diff / expected)})"
    return _fact(t, format_money(expected, cur, digits=2), format_money(measured, cur, digits=2),
                 text, _within(measured, expected, t.tolerance), expected, measured, "minor")


def _check_count(ctx: _Context, t: Target) -> FactCheck:
    unit = "orders" if t.metric == "orders" else "orders/s"
    measured = int(ctx.summary["orders" if t.metric == "orders" else "peak_orders_per_s"])
    value = float(t.value)
    expected = value * ctx.scale if t.scaled else value
    expected_text = f"{_count(expected)} {unit}"
    if t.scaled and ctx.scale != 1:
        expected_text += f" ({_count(value)} × {ctx.scale:g})"
    diff = measured - expected
    diff_text = "0" if diff == 0 else f"{_sign(diff)}{_count(abs(diff))} {unit}"
    if diff and expected:
        diff_text += f" ({_percent(diff / expected)})"
    return _fact(t, expected_text, f"{measured:,} {unit}", diff_text,
                 _within(measured, expected, t.tolerance), _number(expected), measured, unit)


def _check_brands_over(ctx: _Context, t: Target) -> FactCheck:
    threshold = int(t.threshold_minor or 0)
    expected = float(t.value)
    measured: int | None = None
    if threshold in ctx.scenario.milestones.brand_thresholds_minor:
        if t.at_us is None:
            counts = ctx.summary.get("brands_over", {})
            measured = int(counts[str(threshold)]) if str(threshold) in counts else len(
                ctx.race(threshold))
        else:
            measured = sum(1 for m in ctx.race(threshold) if m.event_time_us < t.at_us)
    elif ctx.fold_brands is not None:
        # Not raced by the aggregator: count the brands at or over it in a fold of the log.
        measured = int(np.count_nonzero(ctx.fold_brands(t.at_us) >= threshold))
        ctx.notes.append(f"{t.fact}: {money_label(threshold, ctx.scenario.currency)} is not a "
                         "milestone threshold; counted from the log (net GMV at that time)")
    if measured is None:
        return _fact(t, _brands(expected), "not measured",
                     "not a milestone threshold and no event log", False, _number(expected), None,
                     "brands")
    diff = measured - expected
    text = "0" if diff == 0 else f"{_sign(diff)}{_brands(abs(diff))}"
    if diff and expected:
        text += f" ({_percent(diff / expected)})"
    return _fact(t, _brands(expected), _brands(measured), text,
                 _within(measured, expected, t.tolerance), _number(expected), measured, "brands")


def _check_brands(ctx: _Context, t: Target) -> FactCheck:
    """Brands taking part: the run's catalogue (every brand of it is offered to every order; at a
    small scale some of the smallest sell nothing, so the log's fold says how many did)."""
    expected = float(t.value)
    measured = ctx.scenario.brand_count
    sold = ""
    if ctx.fold_brands is not None:
        gmv = ctx.fold_brands(None)
        measured = len(gmv)  # an ingested run's catalogue grows with the stream
        sold = f" ({int(np.count_nonzero(gmv > 0)):,} sold)"
    diff = measured - expected
    text = "0" if diff == 0 else f"{_sign(diff)}{_brands(abs(diff))}"
    if diff and expected:
        text += f" ({_percent(diff / expected)})"
    return _fact(t, _brands(expected), _brands(measured) + sold, text,
                 _within(measured, expected, t.tolerance), _number(expected), measured, "brands")


def _check_first_brands(ctx: _Context, t: Target) -> FactCheck:
    wanted = list(t.value)
    race = ctx.race(int(t.threshold_minor or 0))
    first = [m.subject for m in race[:len(wanted)]]
    ok = len(first) == len(wanted) and set(first) == set(wanted)
    missing = [b for b in wanted if b not in first]
    extra = [b for b in first if b not in wanted]
    parts = []
    if missing:
        parts.append("missing " + ", ".join(missing))
    if extra:
        parts.append("instead " + ", ".join(extra))
    if len(first) < len(wanted):
        parts.append(f"only {_brands(len(first))} passed")
    return _fact(t, ", ".join(wanted), ", ".join(first) or "none", "; ".join(parts) or "same set",
                 ok, wanted, first, "brands")


def _check_time_to_value(ctx: _Context, t: Target) -> FactCheck:
    expected = float(t.value)
    rule = next((r for r in ctx.scenario.milestones.time_to_value
                 if r.subject == t.subject and r.value_minor == t.threshold_minor), None)
    hit = next((m for m in ctx.milestones if m.kind == "time_to_value"
                and m.subject == t.subject and m.threshold_minor == t.threshold_minor), None)
    if rule is None or hit is None:
        why = "no such milestone rule" if rule is None else "never reached"
        return _fact(t, f"{expected:,g} s", "not reached", why, False, _number(expected), None, "s")
    took = (hit.event_time_us - rule.start_us) / US_PER_S
    diff = took - expected
    text = "0" if diff == 0 else f"{_sign(diff)}{_seconds(abs(diff))}"
    if diff and expected:
        text += f" ({_percent(diff / expected)})"
    if t.at_most:  # a deadline ("in the first second"): any time up to it holds
        return _fact(t, f"≤ {expected:,g} s", _seconds(took), text,
                     took <= expected * (1 + t.tolerance) + 1e-9, _number(expected), took, "s")
    return _fact(t, f"{expected:,g} s", _seconds(took), text, _within(took, expected, t.tolerance),
                 _number(expected), took, "s")


def _sign(x: float) -> str:
    return "+" if x > 0 else MINUS if x < 0 else ""


def _percent(ratio: float) -> str:
    """A signed percentage with two significant digits: ``+0.03 %``, ``−1.2 %``, ``+12 %``."""
    pct = abs(ratio) * 100
    if pct == 0:
        return "0 %"
    decimals = max(0, min(6, 1 - math.floor(math.log10(pct))))
    text = f"{pct:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{_sign(ratio)}{text} %"


def _count(x: float) -> str:
    return f"{x:,.0f}" if abs(x - round(x)) < 1e-9 else f"{x:,.1f}"


def _number(x: float) -> int | float:
    return round(x) if abs(x - round(x)) < 1e-9 else x


def _brands(n: float) -> str:
    return f"{_count(n)} brand" + ("" if n == 1 else "s")


def _seconds(s: float) -> str:
    return f"{s:,.3f} s" if s < 10 else f"{s:,.1f} s"


def tolerance_text(t: float) -> str:
    return "exact" if t == 0 else f"± {t * 100:g} %"

