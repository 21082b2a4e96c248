"""The rate-record rule at its boundary: a second is a new record when its placed orders beat the
standing record by MORE than ``rate_record_min_gain`` -- exactly that gain is not enough."""

from __future__ import annotations

from ticker.aggregate import Aggregator
from ticker.aggregate.eventtime import EventTimeAggregator
from ticker.aggregate.reference import EventTimeReferenceFold, ReferenceFold

from .test_aggregator import make_batch
from .test_eventtime import CONFIG, DEDUP, LATENESS
from .unit_scenario import NAMES, unit_with_gain

HALF = unit_with_gain(0.5)
W1 = HALF.windows[0].start_us
# orders in seconds 0..5: 3 = 2 x 1.5 and 6 = 4 x 1.5 tie the bar, 4 and 7 beat it (the last
# second, 1, only closes the others)
COUNTS = [2, 3, 4, 6, 7, 1]
RECORDS = [(0, 2), (2, 4), (4, 7)]  # (second, orders): a record beats the one before by > 50 %


def _stream():
    times = [W1 + s * 1_000_000 + k for s, n in enumerate(COUNTS) for k in range(n)]
    return make_batch(0, times, [0] * len(times), [10] * len(times), [0] * len(times))


def _records(milestones) -> list[tuple[int, int, int]]:
    return [(m.value_minor, m.threshold_minor, m.seq) for m in milestones if m.kind == "rate_record"]


def _expected() -> list[tuple[int, int, int]]:
    """RECORDS as (orders, the record beaten, the second's last seq)."""
    last_seqs = [sum(COUNTS[: s + 1]) - 1 for s in range(len(COUNTS))]
    return [(n, previous, last_seqs[s]) for (s, n), previous in zip(RECORDS, [0, 2, 4], strict=True)]


def test_a_second_must_beat_the_record_by_more_than_the_minimum_gain():
    expected = _expected()
    agg = Aggregator(HALF, "half", brand_names=NAMES)
    assert _records(agg.apply(_stream())) == expected  # the batch's own seconds, searched at once
    one_at_a_time = Aggregator(HALF, "half", brand_names=NAMES)
    found = []
    for seq, event in enumerate(_stream().slice(i, i + 1) for i in range(sum(COUNTS))):
        found += one_at_a_time.apply(event)
        assert event.seq[0] == seq
    assert _records(found) == expected  # each second closed by the next one's first order


def test_the_reference_folds_and_the_event_time_fold_take_the_same_minimum_gain():
    """The tests' oracles hold the gain rule too (the other tests' scenarios have a gain of 0,
    where ``record * (1 + gain)`` and ``record / (1 + gain)`` agree): the reference fold, and
    the event-time folds' live records (their live ordered fold) and final ones (the decided
    seconds' chain), over the same stream, in order, so live and final coincide."""
    ref = ReferenceFold(HALF, NAMES, "half")
    event_time = EventTimeAggregator(HALF, NAMES, "half", CONFIG)
    event_ref = EventTimeReferenceFold(HALF, NAMES, "half", LATENESS, DEDUP)
    for fold in (ref, event_time, event_ref):
        fold.apply(_stream())
        fold.finish()
    assert _records(ref.milestones) == _expected()
    for milestones in (event_time.state.milestones, event_ref.milestones):
        for timing in ("live", "final"):
            assert _records(m for m in milestones if m.timing == timing) == _expected(), timing


def test_the_rule_over_closed_seconds_as_the_cluster_assembles_them():
    agg = Aggregator(HALF, "half", brand_names=NAMES)
    agg.state.second_orders[: len(COUNTS)] = COUNTS
    seconds = list(range(len(COUNTS) - 1))
    found = agg.rate_records_in(seconds, [100 + s for s in seconds])
    assert [(m.value_minor, m.seq) for m in found] == [(n, 100 + s) for s, n in RECORDS]
    assert agg.state.rate_record == 7
