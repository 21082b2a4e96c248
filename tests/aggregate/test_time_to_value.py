"""Time-to-value milestones for a platform's GMV (the unit scenario's rules are for a brand, a
region and the whole festival): the fold against the reference fold, and one case written out."""

from __future__ import annotations

from hypothesis import given

from ticker.aggregate import Aggregator, milestone_sort_key
from ticker.aggregate.reference import ReferenceFold
from ticker.scenario import parse_scenario

from .test_aggregator import make_batch, streams
from .unit_scenario import NAMES, UNIT_TOML

TAOBAO = parse_scenario(UNIT_TOML + """
[[milestones.time_to_value]]
subject = "platform:Taobao"
start = 2021-11-11T00:00:00+08:00
value = "2.00"
""", "taobao.toml")
W2 = TAOBAO.windows[1].start_us


def _time_to_value(milestones) -> list:
    return sorted((m for m in milestones if m.kind == "time_to_value"), key=milestone_sort_key)


@given(streams())
def test_a_platform_rule_agrees_with_the_reference_fold(case):
    stream, cuts = case
    agg = Aggregator(TAOBAO, "taobao", brand_names=NAMES)
    found = []
    for lo, hi in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        found += agg.apply(stream.slice(lo, hi))
    found += agg.finish()
    ref = ReferenceFold(TAOBAO, NAMES, "taobao")
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
