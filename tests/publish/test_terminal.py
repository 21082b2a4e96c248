"""The terminal ticker: a live panel on a terminal, plain lines when piped, nothing when quiet."""

from __future__ import annotations

import io

from ticker.aggregate.milestones import brand_milestone
from ticker.clock import parse_offset, parse_time
from ticker.money import CNY
from ticker.publish.terminal import TerminalTicker
from ticker.sink import Sink
from ticker.views import BrandGMV, Peak, Summary, Tick

ZONE = parse_offset("+08:00")
T0 = parse_time("2021-11-11T00:00:00+08:00")
VIEW = Tick(event_time_us=T0 + 5_000_000, seq=500, gmv_minor=123_456_789_00, orders=501,
            orders_per_s=100, leaderboard=(BrandGMV("Apple", 9_000_000_00), BrandGMV("L'Oréal", 5_00)))
SUMMARY = Summary(run="r", scenario="unit", seed=1, scale=0.001, currency=CNY, zone=ZONE, orders=501,
                  refunds=0, events=1000, gmv_minor=123_456_789_00, peak=Peak(100, T0), brands_over={},
                  milestones=(), events_per_s=2000.0, wall_s=0.5)


def ticker(out: io.StringIO, **kwargs) -> TerminalTicker:
    return TerminalTicker(title="Unit Fest", currency=CNY, zone=ZONE, total_events=1000,
                          scale=0.001, out=out, **kwargs)


def drive(**kwargs) -> str:
    """One milestone, one tick, the end: what the ticker printed."""
    out = io.StringIO()
    t = ticker(out, **kwargs)
    assert isinstance(t, Sink)
    t.start(None)
    t.milestones([brand_milestone("r", "Apple", 100_000_000_00, 100_000_000_00, 7, T0 + 1, 1, CNY)])
    t.tick(VIEW)
    t.finish(SUMMARY)
    t.close()
    return out.getvalue()


def test_on_a_terminal_the_panel_shows_gmv_rate_progress_leaderboard_and_milestones():
    text = drive(live=True)
    for shown in ("Unit Fest", "Nov 11 00:00:05", "RMB 123.5 million", "≈ 100,000 at full scale",
                  "50.0%", "leaderboard", "Apple", "RMB 9.0 million",
                  "Apple is the first brand to pass RMB 100 million"):
        assert shown in text, shown


def test_piped_it_prints_one_line_per_milestone_and_a_summary():
    text = drive(live=False)
    lines = text.splitlines()
    assert lines[0] == "2021-11-11 00:00:00.000  Apple is the first brand to pass RMB 100 million"
    assert lines[1].startswith("r: GMV RMB 123.5 million from 501 orders; peak 100 orders/s")
    assert len(lines) == 2 and "leaderboard" not in text


def test_quiet_prints_nothing():
    assert drive(quiet=True) == ""
