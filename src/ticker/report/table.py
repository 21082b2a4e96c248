"""The report as text: a table of the facts checked, then the run's milestone headlines (an
arrival-ordered run: live against final, and the corrections)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TextIO

from rich.console import Console

from ticker.aggregate.milestones import Milestone
from ticker.clock import format_clock, parse_time
from ticker.money import format_money
from ticker.report.facts import tolerance_text
from ticker.report.model import Report, utc_offset


def shown_milestones(milestones: Sequence[Milestone]) -> tuple[list[Milestone], int]:
    """The meaningful milestones, and how many brand milestones were left out.

    Every festival-wide milestone is kept; of each brand race (one threshold), the first three,
    every 100th and the last. A default run has hundreds of brand milestones; this keeps a dozen.
    """
    last_rank: dict[tuple[str, int], int] = {}  # every race: brands', a dimension's (ranked)
    for m in milestones:
        if m.rank is not None:
            race = (m.kind, m.threshold_minor)
            last_rank[race] = max(last_rank.get(race, 0), m.rank)
    shown = [m for m in milestones if m.rank is None or m.rank <= 3 or m.rank % 100 == 0
             or m.rank == last_rank[(m.kind, m.threshold_minor)]]
    return shown, len(milestones) - len(shown)


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
                      fact, f.expected, f.measured, f.difference, tolerance_text(f.tolerance))
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
                       f"{utc_offset(zone)}):", style="bold"))
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


