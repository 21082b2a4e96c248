"""``ticker report``: a recorded run held against the published record, as a table and a chart.

A scenario's ``[[targets]]`` are the facts of ``FACTS.md`` it must reproduce. :func:`load_report`
reads a run directory (``summary.json`` and ``scenario.toml``; the final snapshot and the log only
when a fact needs them) and checks every target within its tolerance into a :class:`Report`;
:func:`render` prints it as a table followed by the run's milestone headlines, and
:func:`write_png` draws the run (``matplotlib``, the optional ``ticker[plot]`` extra).

What a target's metric measures (the scenario files rely on these meanings):

=====================  ==============================================================================
metric                 measured, and when it holds
=====================  ==============================================================================
``gmv``                the run's net GMV; ``|measured - value| <= tolerance * value``
``orders``             placed orders; against ``value * scale`` when ``scaled``
``peak_orders_per_s``  placed orders in the busiest event-time second; ``scaled`` as above
``brands_over``        brands that passed ``threshold`` (before ``at`` when given), within tolerance
``first_brands_over``  the set of the first ``len(value)`` brands (by rank) past ``threshold``
``time_to_value``      seconds from the rule's ``start`` to its milestone; missing milestone: fails
=====================  ==============================================================================

Cost: a report reads ``summary.json`` only (milliseconds), unless a ``brands_over`` threshold is
not one of the scenario's milestone thresholds: then it folds the event log once (about 50 ms per
million events). The chart loads the final snapshot and reads the log once more, keeping only the
top brands' events (a few seconds for a default-scale run, most of it matplotlib).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

import numpy as np
from rich.console import Console

from ticker.aggregate.milestones import Milestone, ordinal
from ticker.clock import US_PER_S, format_clock, format_duration, offset_text, parse_time
from ticker.errors import TickerError
from ticker.money import Currency, format_money, money_label
from ticker.scenario.model import Scenario, Target

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.transforms import Bbox

    from ticker.scenario.model import SalesWindow

__all__ = [
    "FactCheck",
    "Report",
    "ReportError",
    "build_report",
    "load_report",
    "print_report",
    "render",
    "require_plotting",
    "shown_milestones",
    "write_png",
]

MINUS = "\N{MINUS SIGN}"
PLOT_HINT = "pip install 'ticker[plot]'"


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


# --- reading a run ------------------------------------------------------------------------------


def load_report(path: str | os.PathLike[str]) -> Report:
    """Check a finished run directory against its scenario's targets.

    Reads ``run.json``, ``scenario.toml`` (the scenario exactly as run) and ``summary.json``;
    raises :class:`ReportError` for a directory that is not a finished run. A bad scenario file
    raises :class:`~ticker.scenario.ScenarioError` (one line per problem).
    """
    from ticker.rundir import RunDir, RunDirError

    rd = RunDir(Path(path))
    if not rd.path.is_dir():
        raise ReportError(f"{rd.path}: no such directory (expected the --run-dir of a "
                          "'ticker replay')")
    try:
        meta = rd.meta()
    except RunDirError as exc:
        raise ReportError(str(exc)) from None
    try:
        summary = rd.summary()  # checked there: one line naming the file and the key
    except RunDirError as exc:
        raise ReportError(str(exc)) from None
    if summary is None:
        state = meta.get("state", "unknown")
        raise ReportError(f"{rd.path}: the run has no summary.json (state {state!r}): finish it "
                          f"with 'ticker replay {meta.get('scenario', 'SCENARIO')} --run-dir "
                          f"{rd.path} --resume' first")
    if not rd.scenario_path.is_file():
        raise ReportError(f"{rd.scenario_path}: missing (the scenario as run)")
    scenario = rd.scenario()
    return build_report(scenario, summary, path=rd.path,
                        fold_brands=lambda before_us: _fold_brands(rd.path, scenario, before_us))


def build_report(scenario: Scenario, summary: dict[str, Any], *, path: Path | None = None,
                 fold_brands: Callable[[int | None], np.ndarray] | None = None) -> Report:
    """Check ``summary`` (the DESIGN.md summary contract) against ``scenario``'s targets.

    ``fold_brands(before_us)`` gives every brand's net GMV from the events before ``before_us``
    (all events for ``None``); it is only called for a ``brands_over`` threshold that the
    aggregator does not race on, and without it such a fact is reported as not measured.
    """
    every = sorted((Milestone.from_json(m) for m in summary.get("milestones", [])),
                   key=lambda m: (m.event_time_us, m.seq))
    # an arrival-ordered run is checked on its final milestones (first in event-time order)
    milestones = [m for m in every if m.timing in (None, "final")]
    ctx = _Context(scenario, summary, float(summary["scale"]), milestones, fold_brands)
    facts = tuple(_check(ctx, t) for t in scenario.targets)
    return Report(run=summary["run"], scenario=scenario, seed=int(summary["seed"]),
                  scale=float(summary["scale"]), summary=summary, facts=facts,
                  milestones=tuple(milestones), path=path, notes=tuple(ctx.notes),
                  live=tuple(m for m in every if m.timing == "live"),
                  corrections=tuple(m for m in every if m.timing == "correction"))


def _fold_brands(path: Path, scenario: Scenario, before_us: int | None) -> np.ndarray:
    """Every brand's net GMV from the log's events before ``before_us`` (all for ``None``).

    An ordered log's events before a moment are a prefix of it: the run restored to that moment
    (a snapshot plus the log behind it). In an arrival-ordered log they are not (a late order
    arrives after later ones): one pass over the whole log with its event-time aggregator, so
    redeliveries count once and every event before ``before_us`` counts, wherever it arrived."""
    from ticker.aggregate.eventtime import aggregator_for
    from ticker.rundir import RunDir, RunDirError

    run_dir = RunDir(path)
    try:
        meta = run_dir.meta()
        if not meta.get("disorder"):
            restored = run_dir.restore(before_time=before_us, scenario=scenario)
            return restored.aggregator.state.brand_gmv.copy()
        gmv = np.zeros(scenario.brand_count, np.int64)
        dedup = aggregator_for(scenario, run_dir.brand_names(scenario), meta["run"], meta["disorder"])
        for batch in run_dir.events():
            dedup.apply(batch)
            keep = dedup.accepted & (True if before_us is None else batch.event_time < before_us)
            np.add.at(gmv, batch.brand[keep], batch.amount_minor[keep])
        return gmv
    except RunDirError as exc:
        raise ReportError(str(exc)) from None


# --- checking the targets ------------------------------------------------------------------------


@dataclass
class _Context:
    scenario: Scenario
    summary: dict[str, Any]
    scale: float
    milestones: list[Milestone]
    fold_brands: Callable[[int | None], np.ndarray] | None
    notes: list[str] = field(default_factory=list)

    def race(self, threshold: int) -> list[Milestone]:
        """The brands that passed ``threshold``, by rank."""
        return sorted((m for m in self.milestones
                       if m.kind == "brand_gmv" and m.threshold_minor == threshold),
                      key=lambda m: (m.rank or 0, m.seq))


def _check(ctx: _Context, t: Target) -> FactCheck:
    checks = {"gmv": _check_gmv, "orders": _check_count, "peak_orders_per_s": _check_count,
              "brands_over": _check_brands_over, "first_brands_over": _check_first_brands,
              "time_to_value": _check_time_to_value}
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


def _tolerance(t: float) -> str:
    return "exact" if t == 0 else f"± {t * 100:g} %"


# --- which milestones the text shows -----------------------------------------------------------


def shown_milestones(milestones: Sequence[Milestone]) -> tuple[list[Milestone], int]:
    """The meaningful milestones, and how many brand milestones were left out.

    Every festival-wide milestone is kept; of each brand race (one threshold), the first three,
    every 100th and the last. A default run has hundreds of brand milestones; this keeps a dozen.
    """
    last_rank: dict[int, int] = {}
    for m in milestones:
        if m.kind == "brand_gmv" and m.rank is not None:
            last_rank[m.threshold_minor] = max(last_rank.get(m.threshold_minor, 0), m.rank)
    shown = [m for m in milestones if m.kind != "brand_gmv" or m.rank is None or m.rank <= 3
             or m.rank % 100 == 0 or m.rank == last_rank[m.threshold_minor]]
    return shown, len(milestones) - len(shown)


# --- the text report ---------------------------------------------------------------------------


def render(report: Report, out: TextIO, *, width: int | None = None) -> None:
    """Print the facts table, the run in one line, and the milestone headlines.

    Styled when ``out`` is a terminal, plain text otherwise; ``width`` defaults to the
    terminal's, or 120 columns when piped (rich would assume 80 and wrap every fact).
    """
    from rich.table import Table
    from rich.text import Text

    console = _Console(file=out, highlight=False, emoji=False)
    if width is None and not console.is_terminal and "COLUMNS" not in os.environ:
        width = 120
    if width is not None:
        console = _Console(file=out, highlight=False, emoji=False, width=width)
    s, cur, zone = report.summary, report.scenario.currency, report.scenario.zone
    held = sum(f.ok for f in report.facts)
    table = Table(title=Text(f"{report.scenario.title}: {report.run} against the published record",
                             style="bold"),
                  title_justify="left", show_lines=False, pad_edge=False)
    table.add_column("", no_wrap=True)
    table.add_column("fact (source)")
    table.add_column("expected", justify="right")
    table.add_column("measured", justify="right")
    table.add_column("difference", justify="right")
    table.add_column("tolerance", justify="right", no_wrap=True)
    for f in report.facts:
        fact = Text(f.fact)
        fact.append(f"\n{f.source}", style="dim")
        table.add_row(Text("✓", style="bold green") if f.ok else Text("✗", style="bold red"),
                      fact, f.expected, f.measured, f.difference, _tolerance(f.tolerance))
    console.print(table)
    if not report.facts:
        console.print("the scenario has no [[targets]] to check", markup=False)
    else:
        verdict = (f"{held} of {len(report.facts)} facts hold" if held == len(report.facts)
                   else f"{held} of {len(report.facts)} facts hold; "
                   f"{len(report.facts) - held} do not")
        console.print(Text(verdict, style="bold green" if report.ok else "bold red"))
    for note in report.notes:
        console.print(f"note: {note}", markup=False, style="dim")
    peak = format_clock(parse_time(s["peak_at"]), zone)
    full = (f" (≈ {s['peak_orders_per_s'] / report.scale:,.0f} at full scale)"
            if report.scale != 1 else "")
    console.print(
        f"\nRun: GMV {format_money(s['gmv_minor'], cur, digits=2)} from {s['orders']:,} orders "
        f"and {s.get('refunds', 0):,} refunds at scale {report.scale:g}; peak "
        f"{s['peak_orders_per_s']:,} orders/s at {peak}{full}.", markup=False, soft_wrap=True)
    shown, omitted = shown_milestones(report.milestones)
    console.print(Text(f"\nMilestones ({len(report.milestones)}, event time "
                       f"{_offset(zone)}):", style="bold"))
    for m in shown:
        line = Text(format_clock(m.event_time_us, zone), style="cyan")
        line.append(f"  {m.headline}")
        console.print(line, soft_wrap=True)  # one milestone, one line, however narrow
    if omitted:
        console.print(f"… and {omitted} more brand milestones (shown: each race's first 3, every "
                      "100th and last; --json lists them all)", markup=False, soft_wrap=True)
    if report.live or report.corrections:
        _render_event_time(console, report, shown)


def _render_event_time(console: Console, report: Report, shown: list[Milestone]) -> None:
    """An arrival-ordered run: the stream's disorder, and live against final for each shown
    milestone (the facts above are checked on the final ones)."""
    from rich.text import Text

    zone, et = report.scenario.zone, report.summary.get("event_time") or {}
    console.print(Text("\nEvent time (the facts above use the final milestones):", style="bold"))
    console.print(
        f"watermark lag {et.get('lateness_s', 0):g} s; {et.get('duplicates_dropped', 0):,} "
        f"duplicate deliveries dropped (window {et.get('dedup_s', 0):g} s); "
        f"{et.get('late_orders', 0):,} late orders (mean {et.get('late_mean_s', 0):.1f} s, max "
        f"{et.get('late_max_s', 0):.1f} s behind the watermark), all counted; "
        f"{len(report.corrections)} corrections; reorder buffer at most "
        f"{et.get('reorder_buffer_max', 0):,} orders.", markup=False, soft_wrap=True)
    pairs = dict((f.id, live) for f, live in report.live_vs_final())
    moved = 0
    for m in shown:
        live = pairs.get(m.id)
        if live is None or live.seq == m.seq:
            continue
        moved += 1
        line = Text(format_clock(m.event_time_us, zone), style="cyan")
        line.append(f"  final · live {format_clock(live.event_time_us, zone)} "
                    f"({(live.event_time_us - m.event_time_us) / 1e6:+.3f} s)  {m.headline}")
        console.print(line, soft_wrap=True)
    same = sum(1 for f, live in report.live_vs_final() if live is not None and live.seq == f.seq)
    console.print(f"{same} of {len(report.milestones)} final milestones were crossed by the same "
                  f"order live; {moved} of those shown above differ.", markup=False, soft_wrap=True)
    for m in report.corrections:
        line = Text(format_clock(m.event_time_us, zone), style="yellow")
        line.append(f"  {m.headline}")
        console.print(line, soft_wrap=True)


def print_report(report: Report, *, as_json: bool = False) -> None:
    """The report on stdout (the table, or ``--json``); a reader that stops early is no error."""
    import sys

    try:
        if as_json:
            import orjson

            sys.stdout.write(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode()
                             + "\n")
        else:
            render(report, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:  # ``| head``: silence the rest, keep the verdict
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class _Console(Console):
    """A rich console that lets a broken pipe (``| head``) reach the caller.

    rich's own answer is ``SystemExit(1)``, which would read as "a fact does not hold".
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def _offset(zone: timezone) -> str:
    return f"UTC{offset_text(zone)}"


# --- the chart ---------------------------------------------------------------------------------


def require_plotting() -> None:
    """Raise :class:`ReportError` (one line) when matplotlib, the ``plot`` extra, is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportError(f"the chart needs matplotlib, which is not installed: {PLOT_HINT}") from None


def _zone_label(scenario: Scenario) -> str:
    """The axis's clock in words; a scenario only has an offset, so China's is named by guess."""
    offset = _offset(scenario.zone)
    if scenario.currency.code == "CNY" and offset == "UTC+08:00":
        return "China Standard Time (UTC+08:00)"
    return offset


def _money_unit(amount_minor: int, currency: Currency) -> tuple[float, str]:
    """Minor units per plotted unit and its words: ``RMB billion`` or ``US$ million``."""
    major = amount_minor / currency.minor_per_major
    for unit, word in ((10**9, "billion"), (10**6, "million"), (10**3, "thousand")):
        if major >= unit:
            return unit * currency.minor_per_major, f"{currency.symbol} {word}"
    return currency.minor_per_major, currency.symbol


def _bin_seconds(window_seconds: int) -> int:
    """A round averaging bin that leaves at most ~2,000 points in the longest window."""
    for size in (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600):
        if window_seconds / size <= 2000:
            return size
    return 3600


def _bin_words(size: int) -> str:
    return f"{size}-s" if size < 60 else f"{size // 60}-min" if size < 3600 else f"{size // 3600}-h"


def write_png(report: Report, png: str | os.PathLike[str], *, top_brands: int = 6,
              dpi: int = 110) -> list[str]:
    """Draw the run into ``png``: GMV and orders/s with the milestones; the top brands' races.

    Returns the milestone callouts that found no free place (their dots are drawn, their text
    is not, rather than overlap another); empty for the bundled scenarios at the default scale.

    Needs the run directory (its final snapshot and log). Costs one read of the log (the
    ``top_brands`` brands' sales summed into fixed time buckets, so memory does not grow with the
    run) and a matplotlib render: about 1 s for double11-2021 at the default scale.
    """
    require_plotting()
    if report.path is None:
        raise ReportError("the chart needs a recorded run directory (the log and snapshots)")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = _ChartData.load(report, top_brands)
    fig = Figure(figsize=(15, 10), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    chart = _Chart(fig, canvas, report, data)
    chart.draw()
    out = Path(png)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=dpi, facecolor="white", format="png")  # the path as given
    except OSError as exc:
        raise ReportError(f"{out}: cannot write the chart ({exc.strerror or exc})") from None
    return chart.unplaced


@dataclass
class _ChartData:
    """What the chart plots, all read from the run directory."""

    BUCKETS = 3000  # time buckets per window for the brand curves: finer than the plot's pixels

    second_orders: np.ndarray  # placed orders per event-time second
    cum_gmv: np.ndarray  # GMV at the end of each second (minor units)
    brands: list[tuple[str, int]]  # the top brands: (name, final GMV)
    brand_cum: np.ndarray  # int64[top brands, windows, BUCKETS]: GMV at each bucket's end

    @classmethod
    def load(cls, report: Report, top: int) -> _ChartData:
        """The final snapshot, and one pass over the log for the top brands' curves.

        Memory is fixed (top × windows × BUCKETS totals), whatever the number of events.
        """
        from ticker.rundir import RunDir, RunDirError

        rd = RunDir(report.path)
        events = int(report.summary["events"])
        sc = report.scenario
        try:
            restored = rd.restore(before_seq=events, scenario=sc)
            names = rd.brand_names(sc)
        except RunDirError as exc:
            raise ReportError(str(exc)) from None
        restored.aggregator.finish()  # the run's end: its last second closed
        state = restored.aggregator.state
        order = np.argsort(-state.brand_gmv, kind="stable")[:top]
        order = order[state.brand_gmv[order] > 0]
        lookup = np.full(len(state.brand_gmv), -1, np.int32)
        lookup[order] = np.arange(len(order))
        starts = np.array([w.start_us for w in sc.windows], np.int64)
        lengths = np.array([w.end_us - w.start_us for w in sc.windows], np.int64)
        grid = np.zeros((len(order), len(sc.windows) * cls.BUCKETS), np.int64)
        try:
            for batch in rd.events():
                which = lookup[batch.brand]
                keep = np.flatnonzero(which >= 0)
                if not len(keep):
                    continue
                t = batch.event_time[keep]
                win = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(starts) - 1)
                inside = np.clip((t - starts[win]) * cls.BUCKETS // lengths[win], 0,
                                 cls.BUCKETS - 1)
                np.add.at(grid, (which[keep], win * cls.BUCKETS + inside),
                          batch.amount_minor[keep])
        except RunDirError as exc:
            raise ReportError(str(exc)) from None
        return cls(state.second_orders, np.cumsum(state.second_gmv),
                   [(names[b], int(state.brand_gmv[b])) for b in order.tolist()],
                   np.cumsum(grid, axis=1).reshape(len(order), len(sc.windows), cls.BUCKETS))


@dataclass
class _Label:
    """A milestone callout: a dot at ``(x, y)`` on ``axis`` and a text placed above it."""

    x: float
    y: float
    text: str
    color: str
    on_rate_axis: bool = False


class _Chart:
    """Lays the figure out: one column per sales window (a broken time axis), two panels."""

    GMV_COLOR = "#1f4e9c"
    RATE_COLOR = "#e07b39"

    def __init__(self, fig: Figure, canvas: FigureCanvasAgg, report: Report, data: _ChartData):
        self.fig, self.canvas, self.report, self.data = fig, canvas, report, data
        self.unplaced: list[str] = []  # callouts left without a place
        sc = report.scenario
        self.sc = sc
        self.offset_us = int(sc.zone.utcoffset(None).total_seconds()) * US_PER_S
        import matplotlib.dates as mdates

        self.epoch: float = mdates.date2num(np.datetime64("1970-01-01T00:00:00"))

    def x(self, us: np.ndarray | int) -> np.ndarray | float:
        """Event time (µs, UTC) -> matplotlib date number of the festival's wall clock."""
        days: np.ndarray | float = self.epoch + (np.asarray(us, dtype=np.float64) + self.offset_us) / (
            86_400 * US_PER_S)  # numpy's stubs: Any
        return days

    def draw(self) -> None:
        from matplotlib.gridspec import GridSpec

        sc, fig = self.sc, self.fig
        windows = sc.windows
        widths = [max(w.seconds, 1) ** 0.25 for w in windows]  # long windows are mostly flat
        grid = GridSpec(2, len(windows), figure=fig, width_ratios=widths, height_ratios=[1.15, 1],
                        left=0.065, right=0.9, top=0.85, bottom=0.075, wspace=0.06, hspace=0.42)
        top = [fig.add_subplot(grid[0, 0])]
        top += [fig.add_subplot(grid[0, i], sharey=top[0]) for i in range(1, len(windows))]
        low = [fig.add_subplot(grid[1, 0])]
        low += [fig.add_subplot(grid[1, i], sharey=low[0]) for i in range(1, len(windows))]
        s = self.report.summary
        fig.suptitle(f"{sc.title}: replayed at scale {self.report.scale:g}", x=0.065, y=0.985,
                     ha="left", va="top", fontsize=15, fontweight="bold")
        fig.text(0.065, 0.945, f"run {self.report.run} · GMV "
                 f"{format_money(s['gmv_minor'], sc.currency, digits=2)} from {s['orders']:,} "
                 f"orders · times in {_zone_label(sc)}", fontsize=10, color="0.3")
        self._gmv_panel(top)
        self._brand_panel(low)
        for row in (top, low):
            _break_marks(row)

    # --- panel 1 -------------------------------------------------------------------------------

    def _gmv_panel(self, axes: list[Axes]) -> None:
        sc, data, s = self.sc, self.data, self.report.summary
        per, unit = _money_unit(int(data.cum_gmv[-1]) if len(data.cum_gmv) else 0, sc.currency)
        bin_s = _bin_seconds(max(w.seconds for w in sc.windows))
        peak, peak_at = int(s["peak_orders_per_s"]), parse_time(s["peak_at"])
        rate_axes = []
        labels: list[list[_Label]] = [[] for _ in axes]
        for i, (ax, w) in enumerate(zip(axes, sc.windows, strict=True)):
            a = (w.start_us - sc.start_us) // US_PER_S
            b = (w.end_us - sc.start_us) // US_PER_S
            secs = np.arange(a, b + 1)
            # GMV at each second's start: what was sold before it
            gmv = np.concatenate([[data.cum_gmv[a - 1] if a else 0], data.cum_gmv[a:b]])
            step = max(1, len(secs) // 4000)
            xs = self.x(sc.start_us + secs[::step] * US_PER_S)
            ax.plot(xs, gmv[::step] / per, color=self.GMV_COLOR, lw=2.2, zorder=3,
                    label="cumulative GMV")
            rax = ax.twinx()
            rate_axes.append(rax)
            self._window_frame(ax, w, shade=rax)  # shaded below the rate line, on the lower axes
            orders = data.second_orders[a:b]
            n = len(orders) // bin_s * bin_s
            if n:
                mean = orders[:n].reshape(-1, bin_s).mean(axis=1)
                bx = self.x(w.start_us + (np.arange(len(mean)) * bin_s + bin_s / 2) * US_PER_S)
                rax.plot(bx, mean, color=self.RATE_COLOR, lw=0.9, alpha=0.85, zorder=2,
                         label=f"placed orders/s ({_bin_words(bin_s)} mean)")
            if w.start_us <= peak_at < w.end_us:
                full = (f"\n(≈ {peak / self.report.scale:,.0f}/s at full scale)"
                        if self.report.scale != 1 else "")
                labels[i].append(_Label(float(self.x(peak_at)), peak,
                                        f"peak {peak:,} orders/s, "
                                        f"{format_clock(peak_at, sc.zone)}{full}",
                                        self.RATE_COLOR, on_rate_axis=True))
            ax.set_zorder(rax.get_zorder() + 1)  # the GMV curve and callouts above the rate line
            ax.patch.set_visible(False)
        # callouts for the story: time-to-value, the top brand race (and the peak, above);
        # the festival GMV thresholds are marked on the curve itself, like milestones on a road
        race = _top_race(self.report.milestones)
        for m in self.report.milestones:
            if m.kind == "time_to_value":
                rule = next((r for r in sc.milestones.time_to_value if r.subject == m.subject
                             and r.value_minor == m.threshold_minor), None)
                took = format_duration(m.event_time_us - rule.start_us) if rule else ""
                who = m.subject.partition(":")[2] or "festival GMV"
                text = f"{who} reaches {money_label(m.threshold_minor, sc.currency)} in {took}"
            elif m in race:
                text = (f"{m.subject}: {ordinal(m.rank or 0)} brand to "
                        f"{money_label(m.threshold_minor, sc.currency)}")
            else:
                continue
            window = _window_index(sc, m.event_time_us)
            if window is None:
                continue
            second = (m.event_time_us - sc.start_us) // US_PER_S
            y = (m.value_minor if m.kind == "gmv" else int(data.cum_gmv[second])) / per
            labels[window].append(_Label(float(self.x(m.event_time_us)), y,
                                    f"{text}\n{format_clock(m.event_time_us, sc.zone)}",
                                    "#7a1f5c" if m.kind == "brand_gmv" else self.GMV_COLOR))
        top_gmv = max(1.0, float(data.cum_gmv[-1]) / per) if len(data.cum_gmv) else 1.0
        axes[0].set_ylim(0, top_gmv / 0.55)  # the upper 45 % holds the callouts
        rtop = max(1.0, peak) / 0.55
        for rax in rate_axes:
            rax.set_ylim(0, rtop)
        self._gmv_markers(axes, per)
        axes[0].set_ylabel(f"cumulative GMV ({unit})", color=self.GMV_COLOR, fontsize=11)
        rate_axes[-1].set_ylabel(f"placed orders/s at scale {self.report.scale:g}",
                                 color=self.RATE_COLOR, fontsize=11)
        for k, rax in enumerate(rate_axes):
            rax.tick_params(axis="y", colors=self.RATE_COLOR, labelright=k == len(rate_axes) - 1,
                            right=k == len(rate_axes) - 1)
            rax.spines[["left", "right", "top"]].set_visible(False)
        for k, ax in enumerate(axes):
            ax.tick_params(axis="y", labelleft=k == 0, left=k == 0, colors=self.GMV_COLOR)
        handles = axes[0].get_lines()[:1] + [ln for ln in rate_axes[0].get_lines()[:1]]
        axes[-1].legend(handles, [str(h.get_label()) for h in handles], loc="lower right",
                        fontsize=9, framealpha=0.9)
        axes[0].text(0.0, 1.12, f"Festival GMV ({unit}) and orders per second, with milestones",
                     transform=axes[0].transAxes, fontsize=12.5, fontweight="bold", va="bottom")
        for ax, rax, lab, marks in zip(axes, rate_axes, labels, self.marks, strict=True):
            self._place(ax, rax, lab, marks)

    def _gmv_markers(self, axes: list[Axes], per: float) -> None:
        """A dot and its amount at each festival GMV threshold, just off the curve.

        Below-right of the dot (under a rising curve), else above-left (at the right edge, or
        when below-right would cover another amount); with no room either side the amount is
        left out and its dot kept.
        """
        sc = self.sc
        renderer = self.canvas.get_renderer()
        self.marks: list[list[Bbox]] = [[] for _ in axes]  # their boxes, for the callouts to avoid
        for m in self.report.milestones:
            i = _window_index(sc, m.event_time_us) if m.kind == "gmv" else None
            if i is None:
                continue
            ax = axes[i]
            x, y = float(self.x(m.event_time_us)), m.value_minor / per
            ax.plot([x], [y], "o", color=self.GMV_COLOR, ms=5, mec="white", zorder=6)
            frame = ax.get_window_extent(renderer)
            for below_right in (True, False):
                mark = ax.annotate(
                    money_label(m.threshold_minor, sc.currency), xy=(x, y),
                    xytext=(6, -5) if below_right else (-5, 5), textcoords="offset points",
                    ha="left" if below_right else "right", va="top" if below_right else "bottom",
                    fontsize=8.5, color=self.GMV_COLOR, zorder=6,
                    bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none",
                          "alpha": 0.75})
                box = mark.get_window_extent(renderer).expanded(1.02, 1.1)
                if frame.x0 <= box.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 - 2 and \
                        not any(box.overlaps(o) for o in self.marks[i]):
                    self.marks[i].append(box)
                    break
                mark.remove()  # off the frame or on another amount: try the other side, or none

    def _window_frame(self, ax: Axes, w: SalesWindow, shade: Axes | None = None) -> None:
        """Pad the window's x range a little, shade the window, title it, format the time axis."""
        import matplotlib.dates as mdates

        x0, x1 = float(self.x(w.start_us)), float(self.x(w.end_us))
        pad = (x1 - x0) * 0.03
        ax.set_xlim(x0 - pad, x1 + pad)
        (shade or ax).axvspan(x0, x1, color="#f2efe6", zorder=0, lw=0)
        locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(_ClockFormatter(w.seconds))
        ax.tick_params(axis="x", labelsize=9)
        ax.set_title(w.name, fontsize=10.5, color="0.25")
        ax.grid(axis="y", color="0.9", lw=0.6)

    def _place(self, ax: Axes, rax: Axes, labels: list[_Label], obstacles: list[Bbox]) -> None:
        """Put each callout in a lane where neither it nor its leader hits another callout.

        Lanes are rows in the top of the panel (the curves keep below them); a callout hangs
        left- or right-aligned from its time and a leader drops from it to its dot. Callouts are
        laid left to right, each in the highest lane that fits, backtracking (at most 20,000
        steps) to place as many as can be. One left without a lane keeps its dot and is listed
        in ``unplaced`` rather than drawn over another.
        """
        from matplotlib.transforms import Bbox

        renderer = self.canvas.get_renderer()
        frame = ax.get_window_extent(renderer)
        fontsize = 8.5
        style: dict[str, Any] = {"fontsize": fontsize, "zorder": 7, "va": "top"}
        sizes = []
        margin = 0.25 * fontsize * self.fig.dpi / 72 + 1.5  # the bbox pad, and a gap
        for lab in labels:
            probe = ax.text(0, 0, lab.text, bbox={"boxstyle": "round,pad=0.25"}, **style)
            box = probe.get_window_extent(renderer)
            probe.remove()
            sizes.append((box.width + 2 * margin, box.height + 2 * margin))
        points = [(rax if lab.on_rate_axis else ax).transData.transform((lab.x, lab.y))
                  for lab in labels]
        # one lane per two-line callout, from the top down to the middle of the panel
        step = (max((h for _, h in sizes), default=30.0) + 1) / frame.height
        lanes = [0.97 - k * step for k in range(int((0.97 - 0.5) / step) + 1)]

        def options(i: int) -> list[tuple[Bbox, tuple[float, float, float, float]]]:
            """Where label ``i`` may go: its box, and its leader from the box to its dot."""
            (px, py), (w, h) = points[i], sizes[i]
            sides = ("left", "right") if px < frame.x0 + frame.width * 0.6 else ("right", "left")
            out = []
            for shift in (0, 12, 24, 48, 96):  # a slanted leader, when a straight one is blocked
                for lane in lanes:
                    top = frame.y0 + lane * frame.height
                    for ha in sides:
                        x0 = px + shift if ha == "left" else px - shift - w
                        if frame.x0 - 2 <= x0 and x0 + w <= frame.x1 + 2 and top - h > py:
                            corner = x0 if ha == "left" else x0 + w
                            out.append((Bbox([[x0, top - h], [x0 + w, top]]),
                                        (corner, top - h, px, py)))
            return out

        order = sorted(range(len(labels)), key=lambda i: labels[i].x)
        choices = [options(i) for i in order]
        best: dict[int, tuple[Bbox, tuple[float, float, float, float]]] = {}
        budget = [60_000]  # placements tried: the layout is a nicety, never a hang

        def search(k: int, chosen: dict[int, tuple[Bbox, tuple[float, float, float, float]]],
                   boxes: list[Bbox], leaders: list[tuple[float, float, float, float]]) -> None:
            nonlocal best
            if len(chosen) > len(best):
                best = dict(chosen)
            if k == len(order) or len(chosen) + len(order) - k <= len(best) or budget[0] <= 0:
                return
            for box, leader in choices[k]:
                budget[0] -= 1
                if budget[0] <= 0:
                    return
                if any(box.overlaps(o) for o in boxes) or any(_hits(seg, box) for seg in leaders) \
                        or any(_hits(leader, o) for o in boxes):
                    continue
                chosen[order[k]] = (box, leader)
                search(k + 1, chosen, [*boxes, box], [*leaders, leader])
                del chosen[order[k]]
                if len(best) == len(order):
                    return
            search(k + 1, chosen, boxes, leaders)  # leave this one out

        search(0, {}, list(obstacles), [])
        to_axes = ax.transAxes.inverted()
        for i, lab in enumerate(labels):
            target = rax if lab.on_rate_axis else ax
            target.plot([lab.x], [lab.y], "o", color=lab.color, ms=5, zorder=6, mec="white")
            if i not in best:  # no free place: keep the dot, say so rather than overlap
                self.unplaced.append(lab.text.replace("\n", " at "))
                continue
            box, (cx, cy, _, _) = best[i]
            tx, ty = to_axes.transform((box.x0 + margin, box.y1 - margin))
            ax.text(tx, ty, lab.text, transform=ax.transAxes, ha="left",
                    color=lab.color, clip_on=False,
                    bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": lab.color,
                          "lw": 0.6, "alpha": 0.95}, **style)
            ax.annotate("", xy=(lab.x, lab.y), xycoords=target.transData,
                        xytext=tuple(to_axes.transform((cx, cy))), textcoords="axes fraction",
                        zorder=6, arrowprops={"arrowstyle": "-", "color": lab.color, "lw": 0.7,
                                              "alpha": 0.8, "shrinkA": 0, "shrinkB": 3})

    # --- panel 2 -------------------------------------------------------------------------------

    def _brand_panel(self, axes: list[Axes]) -> None:
        sc, data = self.sc, self.data
        cur = sc.currency
        per, unit = _money_unit(max((g for _, g in data.brands), default=0), cur)
        import matplotlib as mpl

        tab10 = mpl.colormaps["tab10"]
        assert isinstance(tab10, mpl.colors.ListedColormap)
        # ten RGB tuples (matplotlib types a listed colormap's colours as any array-like)
        colors = cast(Sequence[tuple[float, float, float]], tab10.colors)
        crossings = {(m.subject, m.threshold_minor): m for m in self.report.milestones
                     if m.kind == "brand_gmv"}
        thresholds = sc.milestones.brand_thresholds_minor
        top = max((g for _, g in data.brands), default=per) / per
        shown = [t for t in thresholds if t / per <= top * 1.25]  # lines the curves can reach
        for j, (ax, w) in enumerate(zip(axes, sc.windows, strict=True)):
            edges = w.start_us + np.arange(_ChartData.BUCKETS + 1) * (w.end_us - w.start_us) \
                // _ChartData.BUCKETS
            for k, (name, total) in enumerate(data.brands):
                cum = data.brand_cum[k, j]
                before = int(data.brand_cum[k, j - 1, -1]) if j else 0
                ax.plot(self.x(edges), np.concatenate([[before], cum]) / per,
                        color=colors[k % 10], lw=1.7, label=f"{name}: {format_money(total, cur)}")
                for t in shown:
                    m = crossings.get((name, t))
                    if m is not None and w.start_us <= m.event_time_us < w.end_us:
                        ax.plot([float(self.x(m.event_time_us))], [m.value_minor / per], "o",
                                color=colors[k % 10], ms=5, mec="white", zorder=5)
            for t in shown:
                ax.axhline(t / per, color="0.45", lw=0.9, ls=(0, (5, 3)), zorder=2)
            self._window_frame(ax, w)
        axes[0].set_ylim(0, top * 1.12)
        to_pixels = axes[-1].transData.transform
        floor = -1e9
        for t in shown:  # label each line at the right; nudge a label up off the one below
            y = max(float(to_pixels((0, t / per))[1]), floor + 15)
            floor = y
            axes[-1].annotate(money_label(t, cur), xy=(1.0, t / per),
                              xycoords=axes[-1].get_yaxis_transform(),
                              xytext=(1.01, axes[-1].transAxes.inverted().transform((0, y))[1]),
                              textcoords="axes fraction", fontsize=9, color="0.3", va="center",
                              ha="left")
        for k, ax in enumerate(axes):
            ax.tick_params(axis="y", labelleft=k == 0, left=k == 0)
        axes[0].set_ylabel(f"brand GMV ({unit})", fontsize=11)
        axes[0].text(0.0, 1.12, f"The top {len(data.brands)} brands' cumulative GMV, crossing the "
                     "brand thresholds (dashed; dots: the crossing orders)",
                     transform=axes[0].transAxes, fontsize=12.5, fontweight="bold", va="bottom")
        axes[0].legend(loc="best", fontsize=8.5, ncol=2 if len(data.brands) > 4 else 1,
                       framealpha=0.92)
        self.fig.text(0.5, 0.02, f"event time, {_zone_label(sc)}", ha="center", fontsize=10,
                      color="0.3")


def _hits(segment: tuple[float, float, float, float], box: Bbox) -> bool:
    """Whether a line segment crosses a box (Liang–Barsky clipping), in display pixels."""
    x1, y1, x2, y2 = segment
    dx, dy = x2 - x1, y2 - y1
    t0, t1 = 0.0, 1.0
    for p, q in ((-dx, x1 - box.x0), (dx, box.x1 - x1), (-dy, y1 - box.y0), (dy, box.y1 - y1)):
        if p == 0:
            if q < 0:
                return False
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return False
    return t1 - t0 > 1e-6


def _top_race(milestones: Sequence[Milestone]) -> list[Milestone]:
    """The first three brands over the highest brand threshold that any brand passed."""
    races: dict[int, list[Milestone]] = {}
    for m in milestones:
        if m.kind == "brand_gmv":
            races.setdefault(m.threshold_minor, []).append(m)
    if not races:
        return []
    best = races[max(races)]
    return sorted(best, key=lambda m: m.rank or 0)[:3]


def _window_index(sc: Scenario, us: int) -> int | None:
    for i, w in enumerate(sc.windows):
        if w.start_us <= us < w.end_us:
            return i
    return None


def _break_marks(axes: list[Axes]) -> None:
    """Diagonal ticks where the time axis is cut between two windows; inner spines hidden."""
    d = 0.012
    for k, ax in enumerate(axes):
        kw: dict[str, Any] = {"transform": ax.transAxes, "color": "0.3", "clip_on": False, "lw": 1}
        if k < len(axes) - 1:
            ax.spines["right"].set_visible(False)
            ax.plot((1 - d, 1 + d), (-0.02, 0.02), **kw)
            ax.plot((1 - d, 1 + d), (0.98, 1.02), **kw)
        if k > 0:
            ax.spines["left"].set_visible(False)
            ax.plot((-d, d), (-0.02, 0.02), **kw)
            ax.plot((-d, d), (0.98, 1.02), **kw)


class _ClockFormatter:
    """Tick labels for the festival's wall clock: ``Nov 01`` at midnight, else ``14:00``."""

    def __init__(self, window_seconds: int):
        self.short = window_seconds < 3600

    def __call__(self, value: float, pos: float | None = None) -> str:  # pos: the tick's index
        import matplotlib.dates as mdates

        moment: datetime = mdates.num2date(value)
        if self.short:
            return moment.strftime("%H:%M:%S")
        if moment.hour == 0 and moment.minute == 0:
            return moment.strftime("%b %d\n%H:%M")
        return moment.strftime("%H:%M")
