"""--speed: the event-time clock releases each slice of orders at its moment of sale time /
speed, skipping the gaps between sales windows (checked on a fake wall clock: no sleeping)."""

from __future__ import annotations

import numpy as np
from aggregate.test_aggregator import W1, W2, make_batch
from aggregate.unit_scenario import UNIT
from hypothesis import given, settings
from hypothesis import strategies as st

from ticker.clock import US_PER_S
from ticker.engine import Pacer
from ticker.events import OrderBatch


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


def stream(times: list[int]) -> OrderBatch:
    n = len(times)
    return make_batch(0, times, [0] * n, [1] * n, [0] * n)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from([1.0, 60.0, 3600.0]),
       st.lists(st.integers(0, 3_000 * US_PER_S), min_size=1, max_size=200))
def test_each_slice_is_released_at_its_sale_time_over_the_speed(speed, offsets):
    clock = FakeClock()
    pacer = Pacer(UNIT, speed, clock=clock, sleep=clock.sleep)
    times = sorted(W1 + o if o < 3_600 * US_PER_S else W2 for o in offsets)
    batch = stream(times)
    released = []
    for piece in pacer.pieces(batch):
        released.append((clock.now, int(piece.event_time[0]), len(piece)))
    assert sum(n for _, _, n in released) == len(batch)
    start = released[0][0]
    for wall, first, _ in released:
        sale = pacer.sale_us(first) - pacer.sale_us(times[0])
        assert abs((wall - start) - sale / US_PER_S / speed) < 1e-6


def test_the_gap_between_windows_is_not_waited_for():
    clock = FakeClock()
    pacer = Pacer(UNIT, 1.0, clock=clock, sleep=clock.sleep)
    end_of_first = UNIT.windows[0].end_us - 1
    list(pacer.pieces(stream([end_of_first, W2])))
    assert clock.now - 1000.0 < 1.0  # not the ten days from Nov 1 to Nov 11


def test_max_speed_never_waits():
    clock = FakeClock()
    pacer = Pacer(UNIT, None, clock=clock, sleep=clock.sleep)
    batch = stream(list(np.linspace(W1, W1 + 3_000 * US_PER_S, 50).astype(int)))
    assert [len(p) for p in pacer.pieces(batch)] == [50] and clock.now == 1000.0
