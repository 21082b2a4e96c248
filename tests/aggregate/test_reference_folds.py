"""The reference folds are the tests' oracle, so they are held to the rule they check the real
folds against: fed in any batches, they end where they end fed the whole stream at once (the
other tests feed them whole, which left their between-batch bookkeeping unchecked)."""

from __future__ import annotations

import itertools

from hypothesis import given

from ticker.aggregate.reference import EventTimeReferenceFold

from .test_eventtime import DEDUP, LATENESS, arrivals
from .unit_scenario import NAMES, UNIT


@given(arrivals())
def test_the_event_time_reference_fed_in_batches_is_the_reference_fed_whole(case):
    _, arrived, cuts = case
    whole = EventTimeReferenceFold(UNIT, NAMES, "unit", LATENESS, DEDUP)
    found_whole = whole.apply(arrived) + whole.finish()
    cut = EventTimeReferenceFold(UNIT, NAMES, "unit", LATENESS, DEDUP)
    found_cut = []
    for lo, hi in itertools.pairwise([0, *cuts, len(arrived)]):
        found_cut += cut.apply(arrived.slice(lo, hi))
    found_cut += cut.finish()
    assert found_cut == found_whole and cut.milestones == whole.milestones
    assert (cut.duplicates, cut.late, cut.late_us_max, cut.late_us_total) == (
        whole.duplicates, whole.late, whole.late_us_max, whole.late_us_total)
