"""A late order that moves a time-to-value milestone already decided: the correction, written
out, from the event-time fold and its reference fold alike -- for a brand's rule (with a
deadline) and a platform's (without), each also with a late order that must not count."""

from __future__ import annotations

import pytest

from ticker.scenario import parse_scenario

from .test_aggregator import make_batch
from .test_eventtime import fold, reference
from .test_time_to_value import TAOBAO
from .unit_scenario import UNIT, UNIT_TOML

W1, W2 = UNIT.windows[0].start_us, UNIT.windows[1].start_us
CASES = {  # scenario, window start, rule's id, brand and platform of the orders that count
    "brand:Apple": (UNIT, W1, "time_to_value:brand:Apple:150", 0, 0,
                    "Apple reaches RMB 1.50 in 1.00 seconds (the first two seconds)"),
    "platform:Taobao": (TAOBAO, W2, "time_to_value:platform:Taobao:200", 1, 1,
                        "Taobao reaches RMB 2 in 1.00 seconds"),
}


@pytest.mark.parametrize("subject", CASES)
def test_a_late_order_before_the_crossing_corrects_it(subject):
    scenario, start, rule, brand, platform, headline = CASES[subject]
    other = 1 - platform if subject.startswith("platform") else platform
    # RMB 1.00 and 1.00 (or 1.50 and 1.00) cross the value at 1.0 s; an order at 5.0 s moves the
    # watermark past it; then two late orders: one of another brand or platform at 0.2 s (no
    # effect), one that counts, at the rule's very start: the value was reached before the
    # order that crossed it
    first = 100 if subject.startswith("brand") else 150
    times = [start + 500_000, start + 1_000_000, start + 5_000_000, start + 200_000, start]
    brands = [brand, brand, 1, 1 if subject.startswith("brand") else brand, brand]
    platforms = [platform, platform, other, other if subject.startswith("platform") else platform, platform]
    batch = make_batch(0, times, brands, [first, 100, 10, 60, 60], [0] * 5, platforms=platforms)
    agg, ref = fold(batch, [], scenario=scenario, run="run"), reference(batch, scenario, "run")
    when = "2021-11-01T00:00:00.000" if start == W1 else "2021-11-11T00:00:00.000"
    for milestones in (agg.state.milestones, ref.milestones):
        found = [(m.id, m.value_minor, m.seq, m.event_time_us - start, m.headline, m.corrects)
                 for m in milestones if m.subject == subject and m.timing == "correction"]
        assert found == [(f"run:{rule}:correction", first + 100 + 60, 4, 0,
                          f"Correction: {headline} — a late order of {when}+08:00 means it was reached "
                          "before that order", f"run:{rule}")]


TWO_FOR_APPLE = parse_scenario(UNIT_TOML + """
[[milestones.time_to_value]]
subject = "brand:Apple"
start = 2021-11-01T00:00:00+08:00
value = "3.00"
""", "two.toml")


def test_a_late_order_is_judged_by_the_rule_of_the_milestone_it_moves():
    """Apple has two rules: RMB 1.50 within 2 s (crossed at 1.0 s) and RMB 3.00 with no deadline
    (crossed at 3.0 s). A late Apple order of RMB 1.00 at 2.5 s is past the first rule's deadline
    and after its crossing, but before the second's: only the second is corrected."""
    times = [W1 + 500_000, W1 + 1_000_000, W1 + 3_000_000, W1 + 6_500_000, W1 + 2_500_000]
    batch = make_batch(0, times, [0, 0, 0, 1, 0], [100, 100, 100, 10, 100], [0] * 5)
    agg, ref = fold(batch, [], scenario=TWO_FOR_APPLE, run="run"), reference(batch, TWO_FOR_APPLE, "run")
    for milestones in (agg.state.milestones, ref.milestones):
        assert [(m.id, m.value_minor, m.seq, m.event_time_us - W1, m.headline)
                for m in milestones if m.timing == "correction"] == [
            ("run:time_to_value:brand:Apple:300:correction", 400, 4, 2_500_000,
             "Correction: Apple reaches RMB 3 in 3.00 seconds — a late order of "
             "2021-11-01T00:00:02.500+08:00 means it was reached before that order")]


@pytest.mark.parametrize(("refund", "corrections"), [
    (-10, []),  # 60 - 10 + 50 = 100: the crossing order still reaches RMB 1.00, exactly
    (-11, [("run:brand_gmv:Apple:100:correction", 99, 3,
            "a late order of 2021-11-01T00:00:00.500+08:00 means that order no longer reaches it")]),
])
def test_a_late_refund_corrects_a_crossing_only_if_it_leaves_it_short_of_the_threshold(refund, corrections):
    """Apple: 60 at 0 s, then 50 at 1 s crosses RMB 1.00 with 110; an order at 5 s moves the
    watermark past both; then a late refund of Apple's from 0.5 s. Reaching the threshold
    exactly is reaching it."""
    batch = make_batch(0, [W1, W1 + 1_000_000, W1 + 5_000_000, W1 + 500_000], [0, 0, 1, 0],
                       [60, 50, 10, refund], [0, 0, 0, 1])
    agg, ref = fold(batch, [], run="run"), reference(batch, run="run")
    for milestones in (agg.state.milestones, ref.milestones):
        assert [(m.id, m.value_minor, m.seq, m.headline.split(" — ")[1]) for m in milestones
                if m.kind == "brand_gmv" and m.timing == "correction"] == corrections


def test_a_late_order_of_the_rules_region_from_before_the_rules_start_does_not_count():
    """West's rule (RMB 3.00 from the second window's start) is crossed at 1.0 s by RMB 2.00 and
    1.00 of West orders; an order at 5.0 s moves the watermark past it. Then two late West orders
    of RMB 1.00: the first from the first window (Nov 1, before the rule starts: not West's
    rule's, though West's), the second from 0.2 s into the rule (it was reached before the
    crossing order). Only the second corrects it, and the correction names that order."""
    w1, w2 = UNIT.windows[0].start_us, UNIT.windows[1].start_us
    times = [w2 + 500_000, w2 + 1_000_000, w2 + 5_000_000, w1 + 1_000_000, w2 + 200_000]
    west, east = 1, 0
    batch = make_batch(0, times, [1] * 5, [200, 100, 10, 100, 100], [0] * 5,
                       regions=[west, west, east, west, west])
    agg, ref = fold(batch, [], run="run"), reference(batch, UNIT, "run")
    for milestones in (agg.state.milestones, ref.milestones):
        assert [(m.corrects, m.value_minor, m.seq, m.event_time_us - w2) for m in milestones
                if m.subject == "region:West" and m.timing == "correction"] == [
            ("run:time_to_value:region:West:300", 400, 4, 200_000)]
