"""The terminal ticker: what ``ticker replay`` shows while it runs.

Attached to a terminal it is a live panel (rich): event time, GMV, orders/s, a progress bar, the
leaderboard and the latest milestones. Piped, it prints one plain line per milestone and a
closing summary, so logs and scripts read it; ``--quiet`` prints nothing but errors.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import timezone
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ticker.aggregate.milestones import Milestone
from ticker.clock import format_clock, format_time
from ticker.money import Currency, format_money
from ticker.sink import RunStart
from ticker.views import Summary, Tick


class TerminalTicker:
    """Shows one run's progress: a :class:`ticker.Sink` (rich throttles the redraws)."""

    def __init__(self, *, title: str, currency: Currency, zone: timezone, total_events: int,
                 scale: float, quiet: bool = False, out: TextIO | None = None,
                 live: bool | None = None):
        self.console = Console(file=out, highlight=False, soft_wrap=True)
        self.title = title
        self.currency = currency
        self.zone = zone
        self.total = max(1, total_events)
        self.scale = scale
        self.quiet = quiet
        self.live_mode = (not quiet) and (self.console.is_terminal if live is None else live)
        self.recent: deque[Milestone] = deque(maxlen=6)
        self._live: Live | None = None
        self._view: dict[str, Any] = {}

    def __enter__(self) -> TerminalTicker:
        if self.live_mode:
            self._live = Live(self._render(), console=self.console, refresh_per_second=8,
                              transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.update(self._render(), refresh=True)
            self._live.__exit__(None, None, None)
            self._live = None

    # --- the Sink protocol (ticker.sink) ------------------------------------------------------

    def start(self, run: RunStart) -> None:
        self.__enter__()

    def note(self, text: str) -> None:
        """A plain message (resume, recovery, replacement notes), unless quiet."""
        if not self.quiet:
            self.console.print(text, markup=False)

    def tick(self, tick: Tick) -> None:
        self._view = {"time": tick.event_time_us, "seq": tick.seq, "gmv": tick.gmv_minor,
                      "orders": tick.orders, "rate": tick.orders_per_s, "board": tick.leaderboard}
        if self._live is not None:
            self._live.update(self._render())

    def finish(self, summary: Summary) -> None:
        self.__exit__()
        if self.quiet:
            return
        peak_time = format_clock(summary.peak.at_us, self.zone)
        rate = summary.peak.orders_per_s
        full = f" (≈ {rate / self.scale:,.0f} at full scale)" if self.scale != 1 else ""
        self.console.print(
            f"{summary.run}: GMV {format_money(summary.gmv_minor, self.currency)} from "
            f"{summary.orders:,} orders; peak {rate:,} orders/s at "
            f"{peak_time}{full}; {len(summary.milestones)} milestones; "
            f"{summary.events:,} events in {summary.wall_s or 0:.1f} s", markup=False)
        if summary.partial:
            p = summary.partial
            self.console.print(f"PARTIAL: this replay lacks the events from seq "
                               f"{p['missing_from_seq']:,} on ({p['why']})", markup=False)
        if summary.mqtt is not None:
            self.console.print(summary.mqtt.report, markup=False)

    def milestones(self, found: Sequence[Milestone]) -> None:
        for m in found:
            self.recent.appendleft(m)
            if not self.quiet:
                when = format_time(m.event_time_us, self.zone)[:23].replace("T", " ")
                self.console.print(f"{when}  {m.headline}", markup=False)

    def close(self) -> None:
        self.__exit__()

    def _render(self) -> Group:
        v = self._view
        head = Table.grid(padding=(0, 2))
        head.add_row(Text(self.title, style="bold"),
                     Text(format_clock(v["time"], self.zone) if v else "starting", style="cyan"))
        if v:
            full = f" (≈ {v['rate'] / self.scale:,.0f} at full scale)" if self.scale != 1 else ""
            head.add_row("GMV", Text(format_money(v["gmv"], self.currency), style="bold green"))
            head.add_row("orders", f"{v['orders']:,}")
            head.add_row("orders/s", f"{v['rate']:,}{full}")
        done = (v["seq"] if v else 0) / self.total
        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=1.0, completed=done, width=40), f"{done:6.1%}")
        board = Table(title="leaderboard", show_edge=False, pad_edge=False)
        board.add_column("#", justify="right")
        board.add_column("brand")
        board.add_column("GMV", justify="right")
        for rank, (name, gmv) in enumerate(v.get("board", []) if v else [], start=1):
            board.add_row(str(rank), name, format_money(gmv, self.currency))
        latest = Table(title="latest milestones", show_edge=False, pad_edge=False, show_header=False)
        latest.add_column("when", style="cyan")
        latest.add_column("milestone")
        for m in self.recent:
            latest.add_row(format_clock(m.event_time_us, self.zone), m.headline)
        return Group(head, bar, board, latest)
