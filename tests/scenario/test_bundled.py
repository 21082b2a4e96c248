"""Every bundled scenario, generated at a small scale, reproduces its rows of FACTS.md.

The figures are measured from the stream itself by ``stream_facts`` (plain numpy, independent of
the aggregator). Scales are the smallest at which a scenario's facts are resolvable: a
threshold needs enough orders under it, and an order is worth ``1/scale`` times its real value.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from ticker.comparisons import METRICS
from ticker.events import OrderBatch, OrderKind
from ticker.scenario import Scenario, resolve
from ticker.scenario.generate import chunks, make_plan

from .stream_facts import StreamFacts, Verdict, measure_targets

US = 1_000_000
SCALES = {
    "double11-2021": 0.001,  # 2.6 million events
    "double11-2020": 0.001,  # 2.4 million
    "double11-2017": 0.01,  # 8.1 million: at 0.001 (its default) GMV is only good to ~0.2 %
    "singles-day-2016": 0.01,  # 6.7 million: at 0.001 GMV is only good to ~0.1 %
    "lazada-1111-2020": 0.1,  # 5.2 million: below ~0.05 an order outweighs US$ 10,000 gaps
    "aliexpress-2021": 0.1,  # 6.2 million: a region's first minutes need thousands of orders
    "smoke": 1.0,  # 250,000
}


@cache
def run(name: str, scale: float | None = None) -> tuple[Scenario, StreamFacts, list[Verdict]]:
    s = resolve(name)
    facts, verdicts = measure_targets(s, SCALES[name] if scale is None else scale)
    return s, facts, verdicts


def assert_targets(verdicts: list[Verdict]) -> None:
    failed = [str(v) for v in verdicts if not v.passed]
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("name", sorted(SCALES))
def test_targets_and_gmv(name: str) -> None:
    s, facts, verdicts = run(name)
    # (the dimensions' and the baselines' facts are the report's: test_bundled_replays)
    assert len(verdicts) == len([t for t in s.targets if t.metric not in METRICS])
    assert_targets(verdicts)
    assert abs(facts.gmv_minor - s.gmv_minor) <= 0.001 * s.gmv_minor or name == "smoke"
    scale = SCALES[name]
    bursts = sum(int(c.sum()) for c in facts.plan.burst_counts)
    assert facts.orders == round(s.orders * scale) + bursts


def test_double11_2021() -> None:
    s, f, _ = run("double11-2021")
    assert abs(f.gmv_minor / 540_300_000_000_00 - 1) < 0.001
    assert f.brands_over(10_000_000_000_00) == 2
    assert f.first_brands_over(10_000_000_000_00, 2) == ["Apple", "L'Oréal"]
    assert f.brands_over(1_000_000_000_00) == 36
    assert f.brands_over(100_000_000_00) == 36 + 485
    assert f.brands_over(100_000_000_00, s.windows[1].start_us + 45 * 60 * US) == 382
    assert f.time_to_value("brand:Apple", s.start_us, 300_000_000_00) <= 1.0


def test_double11_2020() -> None:
    s, f, _ = run("double11-2020")
    assert abs(f.gmv_minor / 498_200_000_000_00 - 1) < 0.001
    assert f.peak_orders_per_s == 583  # 583,000 x 0.001, in the first second of Nov 11
    assert f.peak_at_us == s.windows[1].start_us
    assert f.orders == 2_320_000
    assert f.brands_over(100_000_000_00) > 470
    assert f.brands_over(10_000_000_000_00) == 0  # 2021's two were "the first ever"
    assert len(f.plan.catalogue) == 250_000


def test_double11_2017() -> None:
    s, f, _ = run("double11-2017")
    assert s.end_us - s.start_us == 24 * 86_400 * US  # "a 24-day festival season"
    assert s.windows[-1].start_us == s.end_us - 86_400 * US  # ending with the 24-hour sale
    assert len(f.plan.catalogue) > 140_000  # "more than 140,000 brands"
    assert abs(f.gmv_minor / s.gmv_minor - 1) < 0.001
    assert f.orders == 8_120_000


def test_singles_day_2016() -> None:
    s, f, _ = run("singles-day-2016")
    assert abs(f.gmv_minor / 120_700_000_000_00 - 1) < 0.001
    assert len(f.plan.catalogue) == 100_000
    assert s.end_us - s.start_us == 24 * 3600 * US  # "the 24-hour sale"


def test_lazada_1111_2020() -> None:
    s, f, _ = run("lazada-1111-2020")
    assert s.currency.code == "USD"
    assert abs(f.time_to_value("all", s.start_us, 11_000_000_00) - 100) <= 5
    assert f.brands_over(1_000_000_00) == 26
    assert "Samsung" in f.first_brands_over(10_000_000_00, 3)
    assert f.first_brands_over(10_000_000_00, 1) == ["Samsung"]
    # "more than 8,000 SMEs over US$ 10,000": the small sellers, under US$ 100,000
    smes = (f.brand_gmv >= 10_000_00) & (f.brand_gmv < 100_000_00)
    assert int(smes.sum()) > 8_000
    assert len(f.plan.catalogue) == 400_000


def test_aliexpress_2021() -> None:
    s, f, _ = run("aliexpress-2021")
    brazil = f.time_to_value("region:Brazil", s.start_us, 5_000_000_00)
    korea = f.time_to_value("region:South Korea", s.start_us, 3_500_000_00)
    assert abs(brazil - 15 * 60) <= 0.05 * 15 * 60
    assert abs(korea - 23 * 60) <= 0.05 * 23 * 60
    assert (s.end_us - s.start_us) == 3 * 86_400 * US  # Nov 11 - Nov 13


def test_smoke_exercises_everything() -> None:
    s, f, _ = run("smoke")
    assert len(s.windows) == 2 and s.windows[0].bumps and len(s.bursts) == 2
    assert s.tiers and s.named_brands and s.milestones.time_to_value
    assert {t.metric for t in s.targets} == {"gmv", "orders", "peak_orders_per_s", "brands_over",
                                             "first_brands_over", "time_to_value"}
    assert f.refunds > 10_000
    assert f.peak_orders_per_s == 3_200 and f.peak_at_us == s.start_us
    assert f.time_to_value("region:East", s.windows[1].start_us, 5_000_000_00) is not None


def test_stream_facts_agree_with_a_per_event_fold() -> None:
    """The yardstick itself, against the plainest possible loop over the smoke stream."""
    s = resolve("smoke")
    facts, _ = measure_targets(s, 0.1)
    events = OrderBatch.concat(chunks(make_plan(s, scale=0.1)))
    gmv: dict[int, int] = {}
    first: dict[int, dict[int, int]] = {t: {} for t in facts.brand_crossings}
    for seq, brand, amount in zip(events.seq.tolist(), events.brand.tolist(),
                                  events.amount_minor.tolist(), strict=True):
        gmv[brand] = gmv.get(brand, 0) + amount
        for t, seen in first.items():
            if brand not in seen and gmv[brand] >= t:
                seen[brand] = seq
    assert facts.gmv_minor == sum(gmv.values())
    assert facts.brand_gmv.tolist() == [gmv.get(b, 0) for b in range(s.brand_count)]
    for t, seen in first.items():
        assert {b: c.seq for b, c in facts.brand_crossings[t].items()} == seen
    placed = events.kind == OrderKind.PLACED
    per_second = np.bincount(events.event_time[placed] // US - s.start_us // US)
    assert facts.peak_orders_per_s == per_second.max()


@pytest.mark.slow
@pytest.mark.parametrize("name,scale", [("double11-2021", 0.01), ("double11-2020", 0.01),
                                        ("lazada-1111-2020", 1.0), ("aliexpress-2021", 1.0)])
def test_targets_at_larger_scales(name: str, scale: float) -> None:
    s, facts, verdicts = run(name, scale)
    assert_targets(verdicts)
    assert abs(facts.gmv_minor - s.gmv_minor) <= 0.001 * s.gmv_minor
