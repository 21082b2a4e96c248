"""The report's chart (``--png``): GMV and orders/s with the milestones, and the top brands'
races, one column per sales window (a broken time axis). Needs ``matplotlib``, the optional
``ticker[plot]`` extra."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ticker.aggregate.milestones import Milestone, ordinal
from ticker.clock import US_PER_S, format_clock, format_duration, parse_time
from ticker.money import Currency, format_money, money_label
from ticker.report.chart_data import ChartData
from ticker.report.model import Report, ReportError, utc_offset
from ticker.scenario.model import Scenario

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.transforms import Bbox

    from ticker.scenario.model import SalesWindow


PLOT_HINT = "pip install 'ticker[plot]'"


def require_plotting() -> None:
    """Raise :class:`ReportError` (one line) when matplotlib, the ``plot`` extra, is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportError(f"the chart needs matplotlib, which is not installed: {PLOT_HINT}") from None


def _zone_label(scenario: Scenario) -> str:
    """The axis's clock in words; a scenario only has an offset, so China's is named by guess."""
    offset = utc_offset(scenario.zone)
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

    data = ChartData.load(report, top_brands)
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

    def __init__(self, fig: Figure, canvas: FigureCanvasAgg, report: Report, data: ChartData):
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
            edges = w.start_us + np.arange(ChartData.BUCKETS + 1) * (w.end_us - w.start_us) \
                // ChartData.BUCKETS
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

