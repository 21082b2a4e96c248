"""--speed: the event-time clock releases each slice of orders at its moment of sale time /
speed, skipping the gaps between sales windows (checked on a fake wall clock: no sleeping)."""

from __future__ import annotations

import itertools

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


SLICE_S = 1 / 20  # the pacer's promise: orders are released at most this much wall time early
HOUR = 3_600 * US_PER_S  # both of UNIT's windows last an hour


def sale_time_us(t: int) -> int:
    """Independent of the pacer: the windows before ``t``'s window, in full, plus the time into it."""
    elapsed = 0
    for window in UNIT.windows:
        if window.start_us <= t < window.end_us:
            return elapsed + t - window.start_us
        elapsed += window.end_us - window.start_us
    raise AssertionError(f"{t} is in no window")


@settings(max_examples=50, deadline=None)
@given(st.sampled_from([1.0, 60.0, 3600.0]),
       st.lists(st.integers(0, 2 * HOUR - 1) | st.sampled_from([0, HOUR - 1, HOUR, 2 * HOUR - 1]),
                min_size=1, max_size=200),
       st.lists(st.integers(0, 200), max_size=5))
def test_each_order_is_released_at_its_sale_time_over_the_speed(speed, offsets, cuts):
    """Across both windows and any batch cuts: every order is released no later than its sale
    time / speed (since the first order) and at most one 1/20 s slice earlier; the first order of
    each slice exactly on time."""
    clock = FakeClock()
    pacer = Pacer(UNIT, speed, clock=clock, sleep=clock.sleep)
    times = sorted(W1 + o if o < HOUR else W2 + o - HOUR for o in offsets)
    batch = stream(times)
    edges = [0, *sorted(c for c in cuts if c <= len(batch)), len(batch)]
    released: list[float] = []  # wall time at which each order was released
    slice_firsts = []
    for lo, hi in itertools.pairwise(edges):
        for piece in pacer.pieces(batch.slice(lo, hi)):
            slice_firsts.append(len(released))
            released += [clock.now] * len(piece)
    assert len(released) == len(batch)
    start = released[0]
    due = [start + (sale_time_us(t) - sale_time_us(times[0])) / US_PER_S / speed for t in times]
    for i, (wall, when) in enumerate(zip(released, due, strict=True)):
        assert wall <= when + 1e-6, f"order {i} released {wall - when:.6f} s late"
        assert wall > when - SLICE_S - 1e-6, f"order {i} released {when - wall:.6f} s early"
    for i in slice_firsts:
        assert abs(released[i] - due[i]) < 1e-6


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
