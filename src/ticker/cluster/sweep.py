"""``ticker sweep SCENARIO --seeds A-B``: the same festival under many seeds, and how much its
milestones move — the question the record cannot answer (how robust is "Apple first to RMB 10
billion"?).

Each seed is an independent single-process replay without a log (one Dask task per seed with
``--cluster``, else one after the other here). Per milestone (festival thresholds, time-to-value,
each race's winner: the brand races and the dimensions') the table gives how many seeds reached
it and the earliest, median and latest event time; per race, how often each brand or seller won
it; per published fact of the
scenario (``ticker report``'s checks), how many seeds it holds for. Rate records are left out:
their thresholds are each run's own previous record, so they do not line up across seeds.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timezone
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from ticker.aggregate.milestones import Milestone
from ticker.clock import format_time
from ticker.errors import TickerError
from ticker.scenario import Scenario

if TYPE_CHECKING:
    from distributed import Client

MAX_SEEDS = 100_000


class SweepError(TickerError, ValueError):
    """A bad ``--seeds`` range; one line."""


def parse_seeds(text: str) -> range:
    """``A-B`` (inclusive) or ``A``: non-negative integers, at most :data:`MAX_SEEDS` seeds."""
    first, sep, last = text.partition("-")
    try:
        a = int(first)
        b = int(last) if sep else a
    except ValueError:
        raise SweepError(f"--seeds {text!r}: expected A-B, two non-negative integers such as "
                         "1-100") from None
    if a < 0 or b < a:
        raise SweepError(f"--seeds {text!r}: expected A-B with 0 <= A <= B")
    if b - a + 1 > MAX_SEEDS:
        raise SweepError(f"--seeds {text!r}: {b - a + 1:,} seeds, at most {MAX_SEEDS:,} in a sweep")
    return range(a, b + 1)


_tuned = False


def replay_seed(scenario: Scenario, seed: int, scale: float) -> dict[str, Any]:
    """One seed's replay without a log, on this process; its summary."""
    global _tuned
    from ticker.engine import ReplayOptions, execute, prepare, tune_allocator

    if not _tuned:  # a Dask worker's nanny sets MALLOC_TRIM_THRESHOLD_ low: undo it
        tune_allocator()
        _tuned = True
    run = prepare(scenario, ReplayOptions(scale=scale, seed=seed, record=False))
    return execute(run, []).to_json()


class MilestoneSpread(TypedDict):
    """When one milestone was reached across the seeds (event times as milestones give them)."""

    kind: str
    subject: str
    threshold_minor: int
    what: str
    reached: int  # seeds that reached it
    earliest: str
    median: str
    latest: str


class Race(TypedDict):
    kind: str  # brand_gmv, or a dimension's race (channel_gmv, tmall_global_brand_gmv, …)
    threshold_minor: int
    what: str
    winners: dict[str, int]  # brand -> seeds it was first in


class FactRate(TypedDict):
    fact: str
    metric: str
    holds: int
    measured: int  # seeds where it could be measured
    runs: int
    rate: float | None


@dataclass
class Sweep:
    scenario: Scenario
    scale: float
    seeds: range
    summaries: list[dict[str, Any]]  # each seed's summary JSON
    wall_s: float
    milestones: list[MilestoneSpread] = field(default_factory=list)
    races: list[Race] = field(default_factory=list)
    facts: list[FactRate] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario.name, "scale": self.scale,
                "seeds": [self.seeds.start, self.seeds.stop - 1], "runs": len(self.summaries),
                "milestones": self.milestones, "races": self.races, "facts": self.facts,
                "wall_s": round(self.wall_s, 3)}


def run_sweep(scenario: Scenario, seeds: range, scale: float, client: Client | None = None) -> Sweep:
    """Replay every seed (on ``client``'s cluster when given) and gather the variation."""
    t0 = time.perf_counter()
    if client is None:
        summaries = [replay_seed(scenario, seed, scale) for seed in seeds]
    else:
        import uuid

        from ticker.cluster.driver import shippable

        token = uuid.uuid4().hex[:12]
        lean = shippable(scenario)
        futures = [client.submit(replay_seed, lean, seed, scale, pure=False,
                                 key=f"ticker-sweep-{token}-{seed}") for seed in seeds]
        summaries = client.gather(futures)
    sweep = Sweep(scenario, scale, seeds, summaries, time.perf_counter() - t0)
    _gather_milestones(sweep)
    _gather_facts(sweep)
    return sweep


def _gather_milestones(sweep: Sweep) -> None:
    zone = sweep.scenario.zone
    times: dict[tuple[str, str, int], list[int]] = defaultdict(list)  # (kind, subject, threshold)
    headline: dict[tuple[str, str, int], str] = {}
    winners: dict[tuple[str, str, int], Counter[str]] = defaultdict(Counter)
    for summary in sweep.summaries:
        for m in (Milestone.from_json(d) for d in summary["milestones"]):
            if m.kind == "rate_record":
                continue
            if m.rank is not None:  # a race: the brands', or a dimension's (its sellers, its
                if m.rank != 1:     # value's brands); its winner is what moves across seeds
                    continue
                key = (m.kind, "first", m.threshold_minor)
                winners[key][m.subject] += 1
                # "Apple is the first brand to pass RMB 10 billion" → "first brand to pass …"
                headline[key] = m.headline.split(" is the ", 1)[1]
            else:
                key = (m.kind, m.subject, m.threshold_minor)
                headline[key] = m.headline.split(" in ")[0] if m.kind == "time_to_value" \
                    else m.headline
            times[key].append(m.event_time_us)
    order = {"gmv": 0, "time_to_value": 1, "brand_gmv": 2}  # then the dimensions' races
    for key in sorted(times, key=lambda k: (order.get(k[0], 3), k[0], k[2], k[1])):
        t = sorted(times[key])
        sweep.milestones.append({
            "kind": key[0], "subject": key[1], "threshold_minor": key[2], "what": headline[key],
            "reached": len(t), "earliest": _time(t[0], zone),
            "median": _time(statistics.median_low(t), zone), "latest": _time(t[-1], zone)})
    for key in sorted(winners, key=lambda k: (order.get(k[0], 3), k[0], k[2])):
        sweep.races.append({"kind": key[0], "threshold_minor": key[2], "what": headline[key],
                            "winners": dict(winners[key].most_common())})


def _gather_facts(sweep: Sweep) -> None:
    from ticker.report import build_report

    holds: Counter[str] = Counter()
    measured: Counter[str] = Counter()
    for summary in sweep.summaries:
        for fact in build_report(sweep.scenario, summary).facts:
            if fact.measured_value is not None or fact.metric == "time_to_value":
                measured[fact.fact] += 1  # a time-to-value never reached is measured: it failed
                holds[fact.fact] += fact.ok
    for target in sweep.scenario.targets:
        n = measured[target.fact]
        sweep.facts.append({"fact": target.fact, "metric": target.metric, "holds": holds[target.fact],
                            "measured": n, "runs": len(sweep.summaries),
                            "rate": round(holds[target.fact] / n, 4) if n else None})


def render(sweep: Sweep) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    runs = len(sweep.summaries)
    title = (f"{sweep.scenario.title}: {runs} seeds ({sweep.seeds.start}-{sweep.seeds.stop - 1}) "
             f"at scale {sweep.scale:g}, {sweep.wall_s:.1f} s")
    table = Table(title=title)
    columns: tuple[tuple[str, Literal["left", "right"]], ...] = (
        ("milestone", "left"), ("reached", "right"), ("earliest", "left"), ("median", "left"),
        ("latest", "left"))
    for col, justify in columns:
        table.add_column(col, justify=justify)
    for m in sweep.milestones:
        table.add_row(m["what"], f"{m['reached']}/{runs}", _short(m["earliest"]),
                      _short(m["median"]), _short(m["latest"]))
    console.print(table)
    if sweep.races:
        races = Table(title="who wins each race (seeds won)")
        races.add_column("race")
        races.add_column("winners")
        for race in sweep.races:
            races.add_row(race["what"], ", ".join(f"{b} {n}" for b, n in race["winners"].items()))
        console.print(races)
    if sweep.facts:
        facts = Table(title="published facts: seeds they hold for")
        facts.add_column("fact")
        facts.add_column("holds", justify="right")
        for f in sweep.facts:
            rate = "not measured (needs the event log)" if f["measured"] == 0 else \
                f"{f['holds']}/{f['measured']} ({f['rate']:.0%})"
            facts.add_row(f["fact"], rate)
        console.print(facts)


def _time(us: int, zone: timezone) -> str:
    return format_time(us, zone, precision="microseconds")  # as milestones give it


def _short(text: str) -> str:
    """``2021-11-11T00:00:13.370451+08:00`` → ``2021-11-11 00:00:13.370``."""
    return text[:23].replace("T", " ")
