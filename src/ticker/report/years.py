"""``ticker history``: the festivals year by year — the bundled scenarios side by side, and the
record's yearly series from 2009 — each figure with where it comes from.

Two tables (and ``--png``, a chart of both):

* **The bundled festivals, as modelled**: per scenario its span, GMV, orders, peak orders per
  second and brands at scale 1, and how many brands its catalogue puts over each of its brand
  thresholds. These are the scenario's calibration (what a replay reproduces; its ``ticker
  report`` checks the sourced ones at the default scale), computed from the scenario file alone:
  the GMV it declares, the generator's orders per second at scale 1 (their sum and the busiest;
  flash-sale bursts included), its catalogue's GMV targets. Each figure is *sourced* when the
  scenario's ``[[targets]]`` or :data:`SERIES` hold it, otherwise an *assumption* (recalled or
  chosen; the scenario file says which and why).
* **The record, year by year** (:data:`SERIES`): every yearly figure the source articles give,
  from the 27 merchants of 2009 to 2021, with its seed; a figure computed from sourced ones is
  marked *derived* and says how. Nothing recalled is in it.

Not :mod:`ticker.history`, which is a recorded run's own history (``verify``, ``state --at``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ticker.money import CNY, Currency, format_money, money_label
from ticker.report.model import ReportError
from ticker.scenario import Scenario, bundled_names, resolve

SOURCED, DERIVED, ASSUMED = "sourced", "derived", "assumption"


@dataclass(frozen=True, slots=True)
class YearFact:
    """One figure of the record: ``value`` in ``unit`` (``CNY``: minor units; else a count)."""

    year: str
    what: str
    value: float
    unit: str
    basis: str  # sourced or derived
    source: str
    words: str = ""  # how the article puts it, when it is not an exact figure ("more than")

    def text(self) -> str:
        if self.unit == "CNY":
            shown = format_money(int(self.value), CNY)
        elif self.unit == "a year":
            shown = f"{self.value:.0%} a year"
        else:
            shown = f"{self.value:,.0f} {self.unit}"
        return f"{self.words} {shown}" if self.words else shown


def _rmb(billions: str) -> int:
    return CNY.to_minor(billions) * 10**9


#: Every yearly figure of FACTS.md (the seeds), in year order. Recalled figures are not here:
#: they are assumptions of the scenarios that use them (``double11-2017.toml``, ...).
SERIES: tuple[YearFact, ...] = (
    YearFact("2009", "merchants taking part, the first 11.11", 27, "merchants", SOURCED,
             "FACTS.md, seeds 001, 002, 004"),
    YearFact("2014-2019", "compound annual growth of 11.11 GMV (the sector's, Bain & Co)", 0.35,
             "a year", SOURCED, "FACTS.md, seed 001"),
    YearFact("2016", "GMV, the 24-hour sale", _rmb("120.7"), "CNY", SOURCED, "FACTS.md, seed 004"),
    YearFact("2016", "merchants taking part", 100_000, "merchants", SOURCED, "FACTS.md, seed 004",
             "nearly"),
    YearFact("2017", "festival season", 24, "days", SOURCED, "FACTS.md, seed 004"),
    YearFact("2017", "brands taking part", 140_000, "brands", SOURCED, "FACTS.md, seed 004",
             "more than"),
    YearFact("2017", "international brands", 60_000, "brands", SOURCED, "FACTS.md, seed 004",
             "more than"),
    YearFact("2017", "product listings", 15_000_000, "listings", SOURCED, "FACTS.md, seed 004"),
    YearFact("2019", "GMV, Nov 1 - Nov 11", _rmb("498.2") * 100 // 126, "CNY", DERIVED,
             "2020's RMB 498.2 billion was +26 % on the same timeframe of 2019 (seed 002): "
             "498.2 / 1.26"),
    YearFact("2020", "GMV, Nov 1 - Nov 11", _rmb("498.2"), "CNY", SOURCED,
             "FACTS.md, seeds 002, 000"),
    YearFact("2020", "peak orders per second", 583_000, "orders/s", SOURCED, "FACTS.md, seed 002"),
    YearFact("2020", "delivery orders", 2_320_000_000, "orders", SOURCED, "FACTS.md, seed 002"),
    YearFact("2020", "brands taking part", 250_000, "brands", SOURCED, "FACTS.md, seeds 002, 003"),
    YearFact("2020", "brands taking part, Lazada (Southeast Asia, one day)", 400_000,
             "brands and sellers", SOURCED, "FACTS.md, seed 000"),
    YearFact("2021", "GMV, Nov 1 - Nov 11", _rmb("540.3"), "CNY", SOURCED, "FACTS.md, seed 001"),
    YearFact("2021", "brands taking part", 290_000, "brands", SOURCED, "FACTS.md, seed 001"),
)


@dataclass(frozen=True, slots=True)
class Figure:
    """A festival's figure as modelled, and whether the record holds it."""

    value: int
    basis: str  # sourced or assumption
    source: str  # a target's or a series' source, or where the scenario file explains it

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "basis": self.basis, "source": self.source}


@dataclass(frozen=True, slots=True)
class Festival:
    """A bundled scenario's headline figures at scale 1."""

    year: int
    name: str
    title: str
    currency: Currency
    start: str
    end: str
    days: float
    gmv_minor: Figure
    orders: Figure
    peak_orders_per_s: Figure
    brands: Figure
    brands_over: tuple[tuple[int, Figure], ...]

    def to_json(self) -> dict[str, Any]:
        return {"year": self.year, "scenario": self.name, "title": self.title,
                "currency": self.currency.code, "start": self.start, "end": self.end,
                "days": self.days, "gmv_minor": self.gmv_minor.to_json(),
                "orders": self.orders.to_json(),
                "peak_orders_per_s": self.peak_orders_per_s.to_json(),
                "brands": self.brands.to_json(),
                "brands_over": {str(t): f.to_json() for t, f in self.brands_over}}


def festival(scenario: Scenario) -> Festival:
    """``scenario``'s figures at scale 1, each marked sourced or assumption: the generator's plan
    (the catalogue, the orders of every second). Cost: well under a second a festival."""
    import numpy as np

    from ticker.clock import format_time
    from ticker.scenario.generate import make_plan

    year = int(format_time(scenario.start_us, scenario.zone)[:4])
    here = f"assumption ({Path(scenario.path).name})"

    def figure(value: int, metric: str, series_what: str | tuple[str, ...],
               threshold: int | None = None) -> Figure:
        for t in scenario.targets:
            if t.metric == metric and t.threshold_minor == threshold and t.at_us is None \
                    and t.subject is None:
                return Figure(value, SOURCED, f"target: {t.fact} ({t.source})")
        for fact in SERIES:
            if fact.year == str(year) and fact.what.startswith(series_what) and \
                    fact.basis == SOURCED and fact.value == value:
                return Figure(value, SOURCED, fact.source)
        return Figure(value, ASSUMED, here)

    # the generator's own counts per second at scale 1: the curves', and the bursts' on top
    plan = make_plan(scenario, scale=1.0)
    per_second = plan.base_counts + plan.burst_counts.sum(axis=0)
    targets = plan.catalogue.gmv_target
    over = tuple((t, figure(int(np.count_nonzero(targets >= t)), "brands_over", (), t))
                 for t in scenario.milestones.brand_thresholds_minor)
    return Festival(
        year=year, name=scenario.name, title=scenario.title, currency=scenario.currency,
        start=format_time(scenario.start_us, scenario.zone, precision="minutes"),
        end=format_time(scenario.end_us, scenario.zone, precision="minutes"),
        days=(scenario.end_us - scenario.start_us) / 86_400e6,
        gmv_minor=figure(scenario.gmv_minor, "gmv", "GMV"),
        orders=figure(int(per_second.sum()), "orders", "delivery orders"),
        peak_orders_per_s=figure(int(per_second.max()), "peak_orders_per_s", "peak"),
        brands=figure(scenario.brand_count, "brands", ("brands taking part", "merchants taking part")),
        brands_over=over)


def festivals(names: list[str] | None = None) -> list[Festival]:
    """The bundled festivals (all but ``smoke``, a test scenario), by year."""
    chosen = [n for n in bundled_names() if n != "smoke"] if names is None else names
    return sorted((festival(resolve(n)) for n in chosen), key=lambda f: (f.year, f.start, f.name))


def history_json(found: list[Festival]) -> dict[str, Any]:
    return {"festivals": [f.to_json() for f in found],
            "series": [{"year": s.year, "what": s.what, "value": s.value, "unit": s.unit,
                        "text": s.text(), "basis": s.basis, "source": s.source} for s in SERIES],
            "assumption": "recalled or chosen figures of a scenario; its file says which and why"}


def render(found: list[Festival], out: TextIO, *, width: int | None = None) -> None:
    """The two tables; an assumption is marked ``*``, a derived figure ``†``."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=out, highlight=False, emoji=False, width=width)
    if width is None and not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(file=out, highlight=False, emoji=False, width=120)

    def cell(f: Figure, text: str) -> str:
        return text + ("" if f.basis == SOURCED else " *")

    table = Table(title=Text("The bundled festivals, as modelled (scale 1)", style="bold"),
                  title_justify="left", pad_edge=False)
    for name, justify in (("year", "left"), ("scenario", "left"), ("span", "left"),
                          ("GMV", "right"), ("orders", "right"), ("peak orders/s", "right"),
                          ("brands", "right"), ("brands over", "right")):
        table.add_column(name, justify=justify,  # type: ignore[arg-type]  # rich's Literal
                         no_wrap=name in ("year", "scenario", "span"))
    for f in found:
        over = "\n".join(cell(fig, f"{money_label(t, f.currency)}: {fig.value:,}")
                         for t, fig in f.brands_over)
        table.add_row(str(f.year), f.name, f"from {f.start[:10]}\n{f.days:g} day"
                      + ("" if f.days == 1 else "s"),
                      cell(f.gmv_minor, format_money(f.gmv_minor.value, f.currency)),
                      cell(f.orders, f"{f.orders.value:,}"),
                      cell(f.peak_orders_per_s, f"{f.peak_orders_per_s.value:,}"),
                      cell(f.brands, f"{f.brands.value:,}"), over)
    console.print(table)
    console.print("* assumption: recalled or chosen, the scenario file says which and why; "
                  "unmarked: sourced (a target its report checks, or the record below)")
    console.print()
    series = Table(title=Text("The record, year by year (FACTS.md, the source articles)",
                              style="bold"), title_justify="left", pad_edge=False)
    series.add_column("year")
    series.add_column("figure")
    series.add_column("value", justify="right")
    series.add_column("source")
    for s in SERIES:
        series.add_row(s.year, s.what, s.text() + (" †" if s.basis == DERIVED else ""), s.source)
    console.print(series)
    console.print("† derived: computed from sourced figures as its source says")


def write_png(found: list[Festival], png: str | os.PathLike[str], *, dpi: int = 110) -> None:
    """GMV and brands taking part by year: the record (filled: sourced; hollow: derived) and the
    bundled RMB festivals as modelled (squares; hollow: an assumption)."""
    from ticker.report.chart import require_plotting

    require_plotting()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(12, 5.5), dpi=dpi)
    FigureCanvasAgg(fig)
    gmv_ax, brands_ax = fig.subplots(1, 2)
    colour = "#1f4e9c"
    per_billion = CNY.minor_per_major * 10**9

    def point(ax: Any, x: int, y: float, filled: bool, marker: str, label: str) -> None:
        ax.plot([x], [y], marker=marker, markersize=9, color=colour,
                markerfacecolor=colour if filled else "white", linestyle="none")
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)

    for s in SERIES:
        if s.unit == "CNY":
            point(gmv_ax, int(s.year), s.value / per_billion, s.basis == SOURCED, "o",
                  f"{s.value / per_billion:,.1f} ({s.what.split(', ')[1]}"
                  f"{', derived' if s.basis == DERIVED else ''})")
        elif s.what.endswith("taking part") or s.what.startswith("merchants taking part"):
            point(brands_ax, int(s.year), s.value, True, "o", f"{s.words} {s.value:,.0f}".strip())
    recorded = {(int(s.year), int(s.value)) for s in SERIES if s.unit == "CNY"}
    for f in found:  # the modelled years the record has no GMV for
        if f.currency is CNY and (f.year, f.gmv_minor.value) not in recorded:
            point(gmv_ax, f.year, f.gmv_minor.value / per_billion, f.gmv_minor.basis == SOURCED,
                  "s", f"{f.gmv_minor.value / per_billion:,.1f} ({f.name})")
    growth = next(s for s in SERIES if s.unit == "a year")
    gmv_ax.text(0.02, 0.96, f"{growth.year}: {growth.text()}, compounded ({growth.source})",
                transform=gmv_ax.transAxes, fontsize=8, va="top")
    gmv_ax.set_title("11.11 GMV, RMB billion", loc="left")
    gmv_ax.set_ylim(0, None)
    brands_ax.set_title("merchants / brands taking part (log scale)", loc="left")
    brands_ax.set_yscale("log")
    for ax in (gmv_ax, brands_ax):
        ax.set_xlim(2008, 2025)
        ax.grid(alpha=0.3)
    fig.suptitle("Alibaba's 11.11, year by year", x=0.02, y=0.98, ha="left", fontsize=13,
                 fontweight="bold")
    fig.text(0.02, 0.915, "circles: the record (FACTS.md; hollow: derived); squares: a bundled "
             "scenario where the record has no GMV (hollow: assumed)", fontsize=9, color="0.3")
    fig.subplots_adjust(top=0.82)
    out = Path(png)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=dpi, facecolor="white", format="png")
    except OSError as exc:
        raise ReportError(f"{out}: cannot write the chart ({exc.strerror or exc})") from None
