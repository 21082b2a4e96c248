"""Time-to-value milestones for a platform's GMV and a second brand's (the unit scenario's rules
are for the first brand, a region and the whole festival): the fold against the reference fold,
and cases written out."""

from __future__ import annotations

import pytest
from hypothesis import given

from ticker.aggregate import Aggregator, milestone_sort_key
from ticker.aggregate.reference import ReferenceFold
from ticker.scenario import parse_scenario

from .test_aggregator import make_batch, streams
from .unit_scenario import NAMES, UNIT, UNIT_TOML

TAOBAO = parse_scenario(UNIT_TOML + """
[[milestones.time_to_value]]
subject = "platform:Taobao"
start = 2021-11-11T00:00:00+08:00
value = "2.00"
""", "taobao.toml")
W2 = TAOBAO.windows[1].start_us


def _time_to_value(milestones) -> list:
    return sorted((m for m in milestones if m.kind == "time_to_value"), key=milestone_sort_key)


#: a rule for a brand after the catalogue's first: a brand rule counts the orders of its brand's
#: place in the catalogue (the unit scenario's rule is Apple's, place 0, which a rule that
#: misread its brand as place 0 would count too)
LOREAL = parse_scenario(UNIT_TOML + """
[[milestones.time_to_value]]
subject = "brand:L'Oréal"
start = 2021-11-01T00:00:00+08:00
value = "2.00"
""", "loreal.toml")


@pytest.mark.parametrize("scenario", [TAOBAO, LOREAL], ids=["platform", "second-brand"])
@given(streams())
def test_a_platform_or_a_later_brands_rule_agrees_with_the_reference_fold(scenario, case):
    stream, cuts = case
    agg = Aggregator(scenario, "run", brand_names=NAMES)
    found = []
    for lo, hi in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        found += agg.apply(stream.slice(lo, hi))
    found += agg.finish()
    ref = ReferenceFold(scenario, NAMES, "run")
    ref.apply(stream)
    ref.finish()
    assert _time_to_value(found) == _time_to_value(ref.milestones)


def test_only_the_platforms_own_orders_count_toward_its_value():
    # Tmall (platform 0) sells RMB 5.00 first; Taobao (1) RMB 1.50, a refund of 0.50, then 1.00
    batch = make_batch(0, [W2 + 1_000_000, W2 + 2_000_000, W2 + 2_500_000, W2 + 3_000_000],
                       [0, 0, 0, 0], [500, 150, -50, 100], [0, 0, 1, 0], platforms=[0, 1, 1, 1])
    agg = Aggregator(TAOBAO, "taobao", brand_names=NAMES)
    ref = ReferenceFold(TAOBAO, NAMES, "taobao")
    ref.apply(batch)
    ref.finish()
    for milestones in ([*agg.apply(batch), *agg.finish()], ref.milestones):
        found = [(m.value_minor, m.seq, m.event_time_us - W2, m.headline)
                 for m in _time_to_value(milestones) if m.subject == "platform:Taobao"]
        assert found == [(200, 3, 3_000_000, "Taobao reaches RMB 2 in 3.00 seconds")]


def _all_folds(scenario, batch) -> list[list]:
    """The milestones of the four folds (ordered and event-time, each with its reference) over
    ``batch``, in time order."""
    from ticker.aggregate.eventtime import EventTimeAggregator
    from ticker.aggregate.reference import EventTimeReferenceFold

    from .test_eventtime import CONFIG, DEDUP, LATENESS

    agg, ref = Aggregator(scenario, "u", brand_names=NAMES), ReferenceFold(scenario, NAMES, "u")
    etagg = EventTimeAggregator(scenario, NAMES, "u", CONFIG)
    etref = EventTimeReferenceFold(scenario, NAMES, "u", LATENESS, DEDUP)
    out = [agg.apply(batch) + agg.finish()]
    for fold in (ref, etagg, etref):
        fold.apply(batch)
        fold.finish()
    return [*out, ref.milestones, etagg.state.milestones, etref.milestones]


@pytest.mark.parametrize(("at", "reached"), [(1_999_999, True), (2_000_000, False)])
def test_a_rule_with_a_deadline_excludes_its_last_instant(at, reached):
    """Apple's rule: RMB 1.50 within the first two seconds. RMB 1.00 at 0.5 s, and RMB 1.00 at
    ``at``: reached one microsecond before the deadline, not at it."""
    w1 = UNIT.windows[0].start_us
    batch = make_batch(0, [w1 + 500_000, w1 + at], [0, 0], [100, 100], [0, 0])
    for milestones in _all_folds(UNIT, batch):
        apple = [m for m in milestones if m.subject == "brand:Apple" and m.kind == "time_to_value"]
        assert bool(apple) == reached and all(m.event_time_us == w1 + at for m in apple)


def test_an_order_counts_toward_every_rule_it_falls_in():
    """An Apple order of RMB 1.00 at 1.5 s does not reach Apple's RMB 1.50, but still counts
    toward the festival's RMB 2.50 from 1 s, which L'Oréal's RMB 1.50 at 1.6 s then reaches."""
    w1 = UNIT.windows[0].start_us
    batch = make_batch(0, [w1 + 1_500_000, w1 + 1_600_000], [0, 1], [100, 150], [0, 0])
    for milestones in _all_folds(UNIT, batch):
        assert [(m.value_minor, m.event_time_us - w1) for m in milestones
                if m.subject == "all" and m.timing in (None, "final")] == [(250, 1_600_000)]


@pytest.mark.parametrize(("at", "decided"), [(1_999_999, False), (2_000_000, True)])
def test_a_rule_is_decided_by_the_first_order_at_its_deadline(at, decided):
    """Apple's rule (RMB 1.50 within two seconds) with RMB 1.00 of Apple's orders so far: an
    order of another brand one microsecond before the deadline leaves it open, one at the
    deadline closes it. Whether a rule is decided is part of the state a snapshot keeps and a
    resumed run or the cluster's assembly continues from; the reference fold agrees."""
    w1 = UNIT.windows[0].start_us
    batch = make_batch(0, [w1 + 500_000, w1 + at], [0, 1], [100, 20], [0, 0])
    agg, ref = Aggregator(UNIT, "u", brand_names=NAMES), ReferenceFold(UNIT, NAMES, "u")
    agg.apply(batch)
    ref.apply(batch)
    apple = next(r for r, rule in enumerate(agg.rules) if rule.subject == "brand:Apple")
    assert (bool(agg.state.rule_done[apple]), int(agg.state.rule_value[apple])) == (decided, 100)
    assert (ref.rules[apple]["done"], ref.rules[apple]["acc"]) == (decided, 100)


def test_an_order_at_a_rules_very_start_counts_even_as_the_last_of_its_batch():
    """Apple's rule starts with the festival: one RMB 1.50 order at that very microsecond, alone
    in its batch, reaches it at once (after 0 seconds)."""
    w1 = UNIT.windows[0].start_us
    agg = Aggregator(UNIT, "u", brand_names=NAMES)
    found = [m for m in agg.apply(make_batch(0, [w1], [0], [150], [0])) if m.kind == "time_to_value"]
    assert [(m.subject, m.seq, m.value_minor, m.event_time_us) for m in found] == \
        [("brand:Apple", 0, 150, w1)]
