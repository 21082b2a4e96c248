"""The generator: deterministic whatever the batches or workers, well-formed, and bounded in memory."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import sys
import tracemalloc
from collections.abc import Iterable
from functools import cache

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from ticker.events import OrderBatch, OrderKind, rebatch
from ticker.scenario import Scenario, ScenarioError, generate, make_plan, parse_scenario, resolve
from ticker.scenario.brands import catalogue
from ticker.scenario.curves import window_rates
from ticker.scenario.model import Bump, SalesWindow

gen = sys.modules["ticker.scenario.generate"]  # the module; the package exports the function


@cache
def scenario(name: str) -> Scenario:
    return resolve(name)


def digest(batches: Iterable[OrderBatch]) -> str:
    """SHA-256 of the stream's frames, re-cut to a fixed size so that only the events count."""
    h = hashlib.sha256()
    for batch in rebatch(batches, 4096):
        h.update(batch.to_frame())
    return h.hexdigest()


@cache
def smoke_events(scale: float = 0.1, seed: int | None = None) -> OrderBatch:
    return OrderBatch.concat(generate(scenario("smoke"), seed, scale))


def test_the_stream_is_the_same_whatever_the_batch_size() -> None:
    s = scenario("smoke")
    reference = digest(generate(s, scale=0.1, batch_size=1))
    for size in (997, 65536, 1 << 20):
        assert digest(generate(s, scale=0.1, batch_size=size)) == reference


def test_larger_batch_sizes_cut_a_multi_chunk_stream_the_same() -> None:
    s = scenario("double11-2021")
    sizes = [digest(generate(s, scale=0.0005, batch_size=size)) for size in (997, 65536, 1 << 20)]
    assert len(set(sizes)) == 1


def test_batches_held_by_the_caller_are_never_written_again() -> None:
    """The generator reuses a batch's columns once nothing refers to them: batches kept (or
    sliced) by the caller must keep their events while the stream goes on."""
    s = scenario("double11-2021")
    streamed = digest(generate(s, scale=0.0005, batch_size=100_000))
    held = list(generate(s, scale=0.0005, batch_size=100_000))
    assert len(held) > 4 and digest(held) == streamed
    slices = [batch.slice(0, len(batch)) for batch in generate(s, scale=0.0005, batch_size=100_000)]
    assert digest(slices) == streamed


@pytest.fixture
def shared_blocks(monkeypatch) -> list[str]:
    """The names of the shared-memory blocks the worker pool makes, in order."""
    from ticker.scenario import parallel

    made: list[str] = []

    class Recorded(parallel.SharedMemory):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self.name)

    monkeypatch.setattr(parallel, "SharedMemory", Recorded)
    return made


def test_workers_make_the_same_stream_as_one_process(shared_blocks) -> None:
    s = scenario("double11-2021")
    assert make_plan(s, scale=0.0005).chunks > 6  # enough chunks to keep three workers busy
    one = digest(generate(s, scale=0.0005))
    assert not shared_blocks
    assert digest(generate(s, scale=0.0005, workers=3)) == one
    assert len(shared_blocks) == 1  # made by the workers, through one pool's shared memory


def test_workers_resume_mid_stream_and_a_stopped_stream_leaves_no_shared_memory(shared_blocks) -> None:
    from ticker.scenario import parallel

    made = shared_blocks
    plan = make_plan(scenario("double11-2021"), scale=0.0005)
    start = plan.chunks // 2
    alone = list(gen.chunks(plan, start_chunk=start))
    assert digest(gen.chunks(plan, workers=2, start_chunk=start)) == digest(alone)
    stream = gen.chunks(plan, workers=2)
    assert next(stream).equals(gen.generate_chunk(plan, 0))
    stream.close()  # the consumer stops early: the pool ends, the block is unlinked
    assert len(made) == 2
    assert not [name for name in made if (parallel.Path(parallel._SHM_DIR) / name).exists()]


def test_batches_from_any_seq_are_the_same_with_workers_and_close_early(shared_blocks) -> None:
    """The engine's stream (``batches``): from a seq inside a chunk, with the chunks lent from
    shared memory by 2 workers, the same batches as made in this process; stopped after one
    batch, the pool ends and the block is unmapped and unlinked (no view of it left behind)."""
    from ticker.scenario import parallel

    made = shared_blocks
    plan = make_plan(scenario("double11-2021"), scale=0.0005)
    start = int(plan.chunk_seq[plan.chunks // 2]) + 12_345
    alone = list(gen.batches(plan, 70_000, start_seq=start))
    lent = list(gen.batches(plan, 70_000, start_seq=start, workers=2))
    assert [len(b) for b in lent] == [len(b) for b in alone] and alone[0].first_seq == start
    assert all(a.equals(b) for a, b in zip(alone, lent, strict=True))
    stream = gen.batches(plan, 70_000, workers=2)
    assert next(stream).equals(next(gen.batches(plan, 70_000)))
    stream.close()
    assert len(made) == 2
    assert not [name for name in made if (parallel.Path(parallel._SHM_DIR) / name).exists()]
    # batches smaller than a chunk, held: each a copy out of the lent chunk, never a view of
    # shared memory that the next chunk is written over
    small = list(gen.batches(plan, 5_000, start_seq=start, workers=2))
    assert OrderBatch.concat(small).equals(OrderBatch.concat(alone))


@pytest.mark.parametrize("offset", [0, 1, 999_999])
def test_refunds_stay_between_their_order_and_its_windows_end_wherever_in_its_second_it_falls(
        offset: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The draw may put an order on any microsecond of its second, the first and the last
    included, but each only one time in a million: no drawn stream has a refunded order at the
    very start of a window. Here every order falls ``offset`` µs into its second, so smoke's
    second window opens with orders placed at its first microsecond, some of them refunded: each
    refund must still come after its order and before that window's end (not the previous
    window's, whose last second comes just before it in the plan's list of seconds)."""
    def at_offset(rng: np.random.Generator, second_us: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return np.repeat(second_us + offset, counts)  # sorted, and inside each order's second

    monkeypatch.setattr(gen, "_second_times", at_offset)
    s = scenario("smoke")
    plan = make_plan(s, scale=0.1)
    events = OrderBatch.concat(gen.chunks(plan))
    refunded_at_opening = (events.kind == OrderKind.REFUNDED) & np.isin(
        events.order_id, events.order_id[events.event_time == s.windows[1].start_us + offset])
    assert refunded_at_opening.any()  # the case this test is for
    check_stream(s, plan, events)


def test_another_seed_gives_another_stream() -> None:
    s = scenario("smoke")
    assert digest(generate(s, 1, 0.1)) != digest(generate(s, 2, 0.1))
    assert digest(generate(s, None, 0.1)) == digest(generate(s, s.seed, 0.1))


@pytest.mark.parametrize("name,scale", [("smoke", 1.0), ("double11-2021", 0.0005)])
def test_stream_invariants(name: str, scale: float) -> None:
    s = scenario(name)
    plan = make_plan(s, scale=scale)
    assert (plan.scale, plan.seed) == (scale, s.seed)
    events = OrderBatch.concat(gen.chunks(plan))
    check_stream(s, plan, events)
    # the public entry, with its defaults (the first event on, the default batch size, scale 1)
    check_stream(s, plan, OrderBatch.concat(generate(s) if scale == 1.0 else generate(s, scale=scale)))


def check_stream(s: Scenario, plan: gen.Plan, events: OrderBatch) -> None:
    n = len(events)
    assert n == plan.total_events
    assert np.array_equal(events.seq, np.arange(n))
    assert (np.diff(events.event_time) >= 0).all()
    starts = np.array([w.start_us for w in s.windows])
    ends = np.array([w.end_us for w in s.windows])
    window = np.searchsorted(starts, events.event_time, side="right") - 1
    assert (window >= 0).all()
    assert (events.event_time < ends[window]).all()
    assert ((events.brand >= 0) & (events.brand < s.brand_count)).all()
    assert (events.platform < len(s.platforms)).all()
    assert (events.region < len(s.regions)).all()

    placed = events.kind == OrderKind.PLACED
    refund = events.kind == OrderKind.REFUNDED
    assert (placed | refund).all()
    assert (events.amount_minor[placed] > 0).all()
    assert (events.amount_minor[refund] < 0).all()
    assert int(placed.sum()) == plan.total_orders
    assert len(np.unique(events.order_id[placed])) == plan.total_orders

    # Every refund undoes one earlier order: same id, brand, platform, region, minus its amount.
    order_row = dict(zip(events.order_id[placed].tolist(), np.flatnonzero(placed).tolist(),
                         strict=True))
    rows = np.flatnonzero(refund)
    origin = np.array([order_row[i] for i in events.order_id[rows].tolist()], dtype=np.int64)
    assert len(set(origin.tolist())) == len(rows)  # nothing is refunded twice
    assert (origin < rows).all()
    assert (events.event_time[origin] <= events.event_time[rows]).all()
    for column in ("brand", "platform", "region"):
        assert np.array_equal(getattr(events, column)[origin], getattr(events, column)[rows])
    assert np.array_equal(events.amount_minor[origin], -events.amount_minor[rows])
    assert abs(len(rows) - s.refund_rate * plan.total_orders) < 1 + plan.chunks


def test_chunks_can_start_anywhere() -> None:
    plan = make_plan(scenario("double11-2021"), scale=0.0005)
    tail = list(gen.chunks(plan, start_chunk=5))
    assert tail[0].first_seq == plan.chunk_seq[5]
    assert tail[0].equals(gen.generate_chunk(plan, 5))


def _chunk_bounds_by_hand(placed: list[int], size: int) -> list[int]:
    """The chunking rule, one second at a time: a chunk ends with the second in which the
    festival's running count of placed orders reaches the next multiple of ``size`` below the
    total (several multiples reached in one second make one cut), and the last chunk ends with
    the festival."""
    total, running, target, bounds = sum(placed), 0, size, [0]
    for second, count in enumerate(placed):
        running += count
        if target < total and running >= target:
            bounds.append(second + 1)
            while target <= running:
                target += size
    return bounds if bounds[-1] == len(placed) else [*bounds, len(placed)]


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4000), st.integers(0, 10**6))
def test_chunks_end_where_the_placed_orders_reach_each_multiple_of_the_chunk_size(
        size: int, pick: int) -> None:
    """Chunk bounds fix the stream's bytes (each chunk draws from its own seed), so the rule is
    pinned for any chunk size: drawn, and the running count at the end of a drawn second and of
    the festival's second-to-last second (a multiple reached exactly there ends a chunk just
    before the last second)."""
    s = scenario("smoke")
    whole = make_plan(s, scale=0.1)
    placed = whole.base_counts + whole.burst_counts.sum(axis=0)
    running = np.cumsum(placed)
    assert placed[-1] > 0 and running[-2] > 0
    for chunk in {size, int(running[pick % len(running)]) or 1, int(running[-2])}:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(gen, "CHUNK_EVENTS", chunk)
            plan = make_plan(s, scale=0.1)
        assert plan.chunk_sec.tolist() == _chunk_bounds_by_hand(placed.tolist(), chunk), chunk
        assert plan.chunk_placed.tolist() == [0, *running[plan.chunk_sec[1:] - 1].tolist()]


def test_peak_and_order_count_are_exact_in_the_plan_at_full_scale() -> None:
    plan = make_plan(scenario("double11-2020"), scale=1.0)
    placed = plan.base_counts + plan.burst_counts.sum(axis=0)
    assert int(placed.max()) == 583_000
    assert plan.total_orders == 2_320_000_000


def test_bad_scales_are_refused() -> None:
    from ticker.scenario import ScenarioError

    for scale in (0.0, -1.0, 11.0, float("nan")):
        with pytest.raises(ScenarioError, match=r"--scale: expected a number in \[1e-06, 10\]"):
            make_plan(scenario("smoke"), scale=scale)


def test_a_scale_too_small_for_a_festival_is_refused_with_the_scale_that_is_enough() -> None:
    """At exactly :data:`MIN_ORDERS` orders of the curves the plan is made; below, the refusal
    says how many orders the scale gives and which scale is enough (two digits)."""
    s = scenario("smoke")
    enough = gen.MIN_ORDERS / sum(w.orders for w in s.windows)  # the curves' orders at scale 1
    assert int(make_plan(s, scale=enough).base_counts.sum()) == gen.MIN_ORDERS
    with pytest.raises(ScenarioError) as caught:
        make_plan(s, scale=enough * 0.9)
    found = re.fullmatch(r"--scale: smoke at scale (\S+) is (\d+) orders; expected at least 100 "
                         r"\(scale (\S+) or more\)", str(caught.value))
    assert found, str(caught.value)
    assert float(found[1]) == pytest.approx(enough * 0.9, rel=1e-5) and int(found[2]) == 90
    assert float(found[3]) == pytest.approx(enough, rel=0.05)


def test_memory_does_not_grow_with_the_number_of_events() -> None:
    """tracemalloc sees numpy's buffers: the peak is the plan plus a few chunks, not the run."""
    s = scenario("singles-day-2016")

    def peak(scale: float) -> tuple[int, int]:
        events = 0
        tracemalloc.start()
        try:
            for batch in generate(s, scale=scale, batch_size=1 << 16):
                events += len(batch)
            return tracemalloc.get_traced_memory()[1], events
        finally:
            tracemalloc.stop()

    small, few = peak(0.001)
    large, many = peak(0.02)
    assert many > 15 * few
    assert large < small + 16 * 2**20  # 20 times the events, not 20 times the memory
    assert large < 64 * 2**20


# --- properties of the parts ----------------------------------------------------------------

@given(st.lists(st.floats(0, 1e6, allow_nan=False), max_size=200))
def test_carry_rounding_keeps_every_running_total(expected: list[float]) -> None:
    counts = gen._carry_round(np.asarray(expected, dtype=np.float64))
    assert (counts >= 0).all()
    running = np.cumsum(counts)
    assert (np.abs(running - np.cumsum(expected)) <= 0.5 + 1e-6).all()


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5000), st.integers(0, 3))
def test_any_batch_size_gives_the_same_stream(size: int, seed: int) -> None:
    whole = smoke_events(0.1, seed)
    assert OrderBatch.concat(generate(scenario("smoke"), seed, 0.1, batch_size=size)).equals(whole)


@cache
def _whole_smoke() -> tuple[gen.Plan, OrderBatch]:
    return make_plan(scenario("smoke")), smoke_events(1.0)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 3), st.floats(0, 1), st.integers(1, 3 * gen.CHUNK_EVENTS))
@example(chunk=1, into=0.2, size=100_000)  # from inside a chunk, past its end
@example(chunk=1, into=0.2, size=1_000)  # from inside a chunk, batches inside it
@example(chunk=2, into=0.0, size=gen.CHUNK_EVENTS)  # from a chunk's first event
def test_batches_from_any_seq_in_any_size_are_the_stream_from_there(chunk: int, into: float,
                                                                      size: int) -> None:
    """``batches(start_seq=...)``, the engine's resume: from any event (inside a chunk, at its
    start, the end), in any batch size (inside a chunk, across several), the stream from there."""
    plan, whole = _whole_smoke()
    assert plan.chunks == 4
    a, b = int(plan.chunk_seq[chunk]), int(plan.chunk_seq[chunk + 1])
    start = a + int(into * (b - a))  # up to the chunk's end: the next one's start, or the stream's
    got = list(gen.batches(plan, size, start_seq=start))
    assert [len(batch) for batch in got[:-1]] == [size] * (len(got) - 1)
    if start == plan.total_events:
        assert got == []
    else:
        assert 0 < len(got[-1]) <= size and OrderBatch.concat(got).equals(whole.slice(start, len(whole)))


@st.composite
def sales_windows(draw) -> tuple[SalesWindow, int]:
    """A window of 3 to 30 hours starting at any second, in any time zone (whole minutes), with
    any daily shape, a short opening rush and up to two gala peaks; and its UTC offset."""
    offset_s = draw(st.integers(-12 * 60, 14 * 60)) * 60
    start_s = draw(st.integers(1_600_000_000, 1_700_000_000))
    seconds = draw(st.integers(3 * 3600, 30 * 3600))
    shape = tuple(draw(st.lists(st.floats(0.1, 10), min_size=24, max_size=24)))
    level = draw(st.integers(1, 1000))  # mean orders/s
    peak = 3 * level * max(shape) / min(shape)  # above the rhythm anywhere: amplitude > 0
    bumps = tuple(Bump((start_s + draw(st.integers(0, seconds - 1))) * 1_000_000,
                       draw(st.floats(0, peak)), draw(st.floats(60, 3600)))
                  for _ in range(draw(st.integers(0, 2))))
    window = SalesWindow("w", start_s * 1_000_000, (start_s + seconds) * 1_000_000, level * seconds,
                         peak, draw(st.floats(0.5, 5)), shape, bumps)
    return window, offset_s


def daily_rhythm(window: SalesWindow, offset_s: int) -> np.ndarray:
    """The daily shape at each second's middle, in local time: straight lines between the hour
    centres (h + 0.5 h), wrapping around midnight."""
    local = (window.start_us // 1_000_000 + offset_s + np.arange(window.seconds) + 0.5) % 86_400
    x = local / 3600 - 0.5  # hours past the centre of hour 0
    below = np.floor(x).astype(np.int64)
    shape = np.asarray(window.daily_shape)
    return (1 - (x - below)) * shape[below % 24] + (x - below) * shape[(below + 1) % 24]


@given(sales_windows())
def test_a_windows_rate_curve_is_its_daily_rhythm_in_local_time_with_its_rush_and_peaks(case) -> None:
    """Orders/s over a window: the first second at the opening peak, the seconds sum to the
    window's orders, and once the rush has died away the rate is one base level times the daily
    shape at that local time of day, plus each gala peak's Gaussian (all computed here, apart)."""
    window, offset_s = case
    try:
        rates = window_rates(window, offset_s)
    except ScenarioError:  # the rush and peaks alone sell more than the window's orders
        assume(False)
    peaks = gala_peaks(window)
    assert rates[0] == pytest.approx(window.opening_peak + peaks[0], rel=1e-9)
    assert rates.sum() == pytest.approx(window.orders, rel=1e-9)
    calm = int(60 * window.opening_decay_s) + 1  # the rush is below e^-60 of the peak from here
    base = (rates - peaks)[calm:] / daily_rhythm(window, offset_s)[calm:]
    assert base.min() > 0 and base.max() == pytest.approx(base.min(), rel=1e-9)


def gala_peaks(window: SalesWindow) -> np.ndarray:
    """Each second's extra orders from the window's gala peaks: Gaussians around their times."""
    mid = np.arange(window.seconds) + 0.5
    return sum((b.extra * np.exp(-0.5 * ((mid - (b.at_us - window.start_us) / 1e6) / b.width_s) ** 2)
                for b in window.bumps), np.zeros(window.seconds))


def refusal(window: SalesWindow, offset_s: int) -> tuple[str, int] | None:
    """None if the window is shaped (checking the rates), else which bound its line states:
    ("too few", the orders the rush and peaks alone sell) or ("too many", the most it takes)."""
    try:
        rates = window_rates(window, offset_s, "w.toml: windows[0].orders: ")
    except ScenarioError as exc:
        line = str(exc)
        assert "\n" not in line and line.startswith("w.toml: windows[0].orders: expected "), line
        too_few = "rush and peaks alone sell" in line
        pattern = r"\(([\d,]+)\), found ([\d,]+)" if too_few else r"at most ([\d,]+) orders .* found ([\d,]+)"
        bound, found = (int(x.replace(",", "")) for x in re.findall(pattern, line)[0])
        assert found == window.orders, line
        assert line.endswith("; raise orders or lower opening_peak, opening_decay_s or the peaks" if too_few
                             else "; lower orders or raise opening_peak"), line
        return ("too few" if too_few else "too many"), bound
    assert rates.sum() == pytest.approx(window.orders, rel=1e-9) and (rates > 0).all()
    assert rates[0] == pytest.approx(window.opening_peak + gala_peaks(window)[0], rel=1e-9)
    return None


@given(sales_windows(), st.integers(1, 10**12))
def test_a_window_is_shaped_or_refused_in_one_line_that_holds(case, orders: int) -> None:
    """Any number of orders for a window: rates that sum to them, opening at the peak, or one
    line saying what was expected — and the bound it states is the real one, to the order: one
    order inside it is not refused for that reason, one order outside it is."""
    window, offset_s = case
    window = dataclasses.replace(window, orders=orders)
    refused = refusal(window, offset_s)
    if refused is not None:
        why, bound = refused
        assert orders <= bound if why == "too few" else orders > bound
        inside, outside = (bound + 1, bound - 1) if why == "too few" else (bound - 1, bound + 1)
        for other, same in ((inside, False), (outside, True)):
            if other >= 1:
                again = refusal(dataclasses.replace(window, orders=other), offset_s)
                assert (again is not None and again[0] == why) == same, (other, again)


@given(st.integers(1, 100_000), st.integers(3600, 48 * 3600), st.floats(0.5, 600),
       st.one_of(st.just(0.0), st.floats(1e-6, 0.99)))
def test_a_flat_window_opening_at_its_own_rate_is_that_rate_throughout(level: int, seconds: int,
                                                                       decay: float, extra: float) -> None:
    """No rush to speak of: an opening peak equal to the window's average rate, with a flat
    daily shape, is accepted (not refused for the last bit of a float) and is that rate; a peak
    less than one order/s above it is still its first second's rate."""
    start = 1_636_560_000 * 1_000_000
    window = SalesWindow("w", start, start + seconds * 1_000_000, level * seconds, level + extra, decay,
                         (1.0,) * 24, ())
    rates = window_rates(window, 8 * 3600)
    assert rates[0] == pytest.approx(level + extra, rel=1e-12)
    assert rates.sum() == pytest.approx(level * seconds, rel=1e-9)
    if not extra:
        assert rates == pytest.approx(np.full(seconds, level), rel=1e-9)


@given(st.integers(2, 10), st.floats(0.5, 2), st.integers(10, 10**6))
@example(seconds=2, decay=0.5, peak=10)  # the rhythm's share is under one second's worth (0.86)
def test_a_window_of_a_few_seconds_is_shaped(seconds: int, decay: float, peak: int) -> None:
    """Two seconds are enough: a rush of any decay leaves some rhythm to scale. The orders are
    chosen so that the rhythm runs at half the peak (rush sum computed here, apart)."""
    start = 1_636_560_000 * 1_000_000
    rush = sum(math.exp(-k / decay) for k in range(seconds))
    orders = round(peak / 2 * (seconds - rush) + peak * rush)
    window = SalesWindow("w", start, start + seconds * 1_000_000, orders, float(peak), decay, (1.0,) * 24, ())
    rates = window_rates(window, 0)
    assert rates[0] == pytest.approx(peak, rel=1e-9) and rates.sum() == pytest.approx(orders, rel=1e-9)


@given(st.integers(1, 10**9), st.floats(0.5, 1e6))
def test_a_window_of_one_second_is_refused_in_one_line(orders: int, decay: float) -> None:
    """Its opening rush fills it: no rhythm left to scale (and no division by zero on the way)."""
    start = 1_636_560_000 * 1_000_000
    window = SalesWindow("w", start, start + 1_000_000, orders, 10.0, decay, (1.0,) * 24, ())
    with pytest.raises(ScenarioError) as exc:
        window_rates(window, 0, "w.toml: windows[0].orders: ")
    assert str(exc.value) == ("w.toml: windows[0].orders: expected a window that outlasts its "
                              f"opening rush, found 1 s with opening_decay_s = {decay:g}; "
                              "lengthen the window or lower opening_decay_s")


@cache
def _plan_2021() -> gen.Plan:
    return make_plan(scenario("double11-2021"), scale=0.001)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=300))
def test_brand_pick_agrees_with_a_plain_inverse_cdf(draws: list[int]) -> None:
    plan = _plan_2021()
    bits = np.array(draws, dtype=np.uint64)
    brand, quantile, value = gen._pick_brand(plan, bits.copy())
    # the reference: a binary search over the brand intervals, then the relative position
    u = [(d >> 11) / 2**53 for d in draws]
    want = np.searchsorted(plan.brand_start, u, side="right") - 1
    assert np.array_equal(brand, want)
    assert np.array_equal(value, plan.order_value[want])
    lo, hi = plan.brand_start[want], plan.brand_start[want + 1]
    position = (np.array(u) - lo) / (hi - lo)
    assert (np.abs(quantile - position * gen._AMOUNT_QUANTILES) <= 1).all()
    assert ((quantile >= 0) & (quantile < gen._AMOUNT_QUANTILES)).all()


def test_brand_pick_agrees_at_every_cell_edge_and_brand_boundary() -> None:
    """The cell table's shortcut holds exactly where it is weakest: the first and last draw of
    every cell, and the draws either side of every brand's start (the cells a start falls in
    must fall back to the guide table). Its own plan, not the cached one: a mutation run links
    a test to the functions it calls, and the cached plan's tables were built by another test."""
    plan = make_plan(scenario("double11-2021"), scale=0.001)
    cells = np.arange(1 << gen._CELL_BITS, dtype=np.uint64) << np.uint64(64 - gen._CELL_BITS)
    starts = (plan.brand_start[1:-1] * 2.0**53).astype(np.uint64) << np.uint64(11)
    bits = np.concatenate([cells, cells + np.uint64((1 << (64 - gen._CELL_BITS)) - 1),
                           starts, starts - np.uint64(1 << 11), starts + np.uint64(1 << 11)])
    brand, _, value = gen._pick_brand(plan, bits.copy())
    want = np.searchsorted(plan.brand_start, (bits >> np.uint64(11)) / 2.0**53, side="right") - 1
    assert np.array_equal(brand, want)
    assert np.array_equal(value, plan.order_value[want])
    assert 0 < (plan.brand_cell >= 0).mean() < 1  # both paths were taken


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=60), st.integers(0, 2**32))
def test_second_times_are_sorted_and_inside_their_seconds(counts: list[int], seed: int) -> None:
    second_us = 1_600_000_000_000_000 + np.arange(len(counts), dtype=np.int64) * 1_000_000
    times = gen._second_times(np.random.default_rng(seed), second_us, np.array(counts))
    assert len(times) == sum(counts)
    assert (np.diff(times) >= 0).all()
    per_second = np.bincount((times - second_us[0]) // 1_000_000, minlength=len(counts))
    assert per_second.tolist() == counts


def test_amount_table_has_mean_exactly_one() -> None:
    table = gen._amount_table(1.0)
    assert int(table.sum()) == gen._AMOUNT_ONE * gen._AMOUNT_QUANTILES
    assert (np.diff(table) >= 0).all()


def test_batches_hold_the_requested_number_of_events_the_last_fewer() -> None:
    for size in (997, 4096):
        sizes = [len(batch) for batch in generate(scenario("smoke"), scale=0.1, batch_size=size)]
        assert len(sizes) > 2 and set(sizes[:-1]) == {size} and 0 < sizes[-1] <= size, size


@given(st.integers(-(2**63), 0))
def test_a_batch_size_below_one_is_refused_in_words(size: int) -> None:
    """Zero or a negative batch size: a ValueError naming it, before any event is made."""
    plan = make_plan(scenario("smoke"), scale=0.01)
    with pytest.raises(ValueError) as err:
        next(gen.batches(plan, size))
    assert str(err.value) == f"batch size must be positive, got {size}"



def test_a_burst_of_a_brand_without_an_average_order_is_refused_in_one_line() -> None:
    """A burst's order count comes from its brand's published average order, which only the
    named brands have: a tiered brand (Cedar) is a brand the file may name, but not burst."""
    text = resolve("smoke").text.replace('brand = "Bamboo"', 'brand = "Cedar"')
    with pytest.raises(ScenarioError) as caught:
        make_plan(parse_scenario(text, "smoke.toml"), scale=0.01)
    assert str(caught.value) == ("smoke.toml: bursts: expected a brand with an avg_order (one of "
                                 "brands.named), found 'Cedar'")


def test_a_festival_without_refunds_is_a_stream_of_placed_orders_only() -> None:
    """``refund_rate = 0``: no chunk has a refund, so every event is its own placed order (the
    generator's other path, where each event's columns come straight from its order number)."""
    text = resolve("smoke").text.replace("refund_rate = 0.05", "refund_rate = 0.0")
    s = parse_scenario(text, "smoke.toml")
    plan = make_plan(s)
    assert plan.chunk_refunds.sum() == 0
    events = OrderBatch.concat(generate(s))
    check_stream(s, plan, events)
    assert (events.kind == OrderKind.PLACED).all()


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_a_bursts_orders_sell_its_gmv_to_the_fen(scale: float) -> None:
    """Aurora's flash sale of RMB 600,000.07 in 200 orders of RMB 3,000 (at scale 0.1, 20 of
    RMB 30,000: the burst's GMV is not scaled, its orders are): the first 7 of them (in time
    order) sell a fen more, so the burst adds up to its GMV exactly."""
    text = resolve("smoke").text.replace("gmv = 600_000", 'gmv = "600000.07"', 1)
    s = parse_scenario(text, "smoke.toml")
    burst = s.bursts[0]
    assert (burst.brand, burst.gmv_minor) == ("Aurora", 60_000_007)
    events = OrderBatch.concat(generate(s, scale=scale, batch_size=1000))
    aurora = catalogue(s).index("Aurora")
    count = round(200 * scale)
    each = 60_000_007 // count
    inside = ((events.brand == aurora) & (events.kind == OrderKind.PLACED)
              & (events.event_time >= burst.start_us)
              & (events.event_time < burst.start_us + burst.seconds * 1_000_000))
    amounts = events.amount_minor[inside]
    assert int((amounts == each + 1).sum()) == 7 and int((amounts == each).sum()) == count - 7
    first = np.flatnonzero(np.isin(amounts, (each, each + 1)))[:7]
    assert (amounts[first] == each + 1).all()  # the fen goes to the burst's first orders


def test_buffers_reuse_columns_nothing_refers_to_and_never_ones_held() -> None:
    """Two sets are kept; a set is written again only once no batch, slice or view of it is
    alive, and a longer request replaces a free set (never a held one). The caller holds the
    arrays (as a batch made of them does), not the dict it was given."""
    buffers = gen.Buffers()
    held = dict(buffers.get(10))
    held["seq"][:] = 7
    dropped = dict(buffers.get(10))
    assert not np.shares_memory(held["seq"], dropped["seq"]) and len(buffers.kept) == 2
    del dropped
    longer = dict(buffers.get(20))  # no free set is long enough: it takes the free one's place
    assert len(buffers.kept) == 2 and buffers.kept[0]["seq"] is held["seq"]
    assert buffers.kept[1]["seq"] is longer["seq"]
    view = longer["seq"][3:5]
    del longer
    assert not np.shares_memory(dict(buffers.get(15))["seq"], view)  # a view of it is alive
    del view
    again = dict(buffers.get(15))  # now free: reused, as a view of the kept set
    assert np.shares_memory(again["seq"], buffers.kept[1]["seq"]) and len(again["seq"]) == 15
    del again
    exact = dict(buffers.get(20))  # a set exactly as long as asked for is reused too
    assert np.shares_memory(exact["seq"], buffers.kept[1]["seq"])
    assert (held["seq"] == 7).all()


def test_a_chunk_made_into_reused_buffers_is_the_chunk() -> None:
    """``generate_chunk(plan, c, buffers)`` (the cluster's regeneration) writes into reused
    columns: the same events as a chunk made fresh; made again once dropped, in the same memory."""
    plan = make_plan(scenario("smoke"))
    buffers = gen.Buffers()
    first = gen.generate_chunk(plan, 1, buffers)
    assert first.equals(gen.generate_chunk(plan, 1))
    assert len(buffers.kept) == 1 and first.seq is buffers.kept[0]["seq"]
    del first
    again = gen.generate_chunk(plan, 1, buffers)
    assert again.equals(gen.generate_chunk(plan, 1))
    assert len(buffers.kept) == 1 and np.shares_memory(again.seq, buffers.kept[0]["seq"])


def test_orders_too_large_for_int64_at_a_scale_are_refused() -> None:
    """A brand's order value grows as the scale shrinks (its GMV is spread over fewer orders):
    once the largest order could pass 2^62 minor units (the fold's headroom), the plan is
    refused. Aurora's average order is set so that at scale 0.5 its largest order is just over."""
    s = scenario("smoke")
    largest_multiple = int(gen._amount_table(s.order_value_sigma).max())  # 2^-16 units
    avg_yuan = -(-(2**62) // (largest_multiple * 2 * 100)) + 1  # value at scale 0.5: 2 x avg
    assert 2**62 <= avg_yuan * 200 * largest_multiple < 2**63
    text = s.text.replace("avg_order = 3_000", f"avg_order = {avg_yuan}", 1)
    with pytest.raises(ScenarioError) as caught:
        make_plan(parse_scenario(text, "smoke.toml"), scale=0.5)
    assert str(caught.value) == ("--scale: expected a larger scale: at 0.5 single orders are too "
                                 "large for int64 minor units")
    make_plan(parse_scenario(text, "smoke.toml"), scale=1.0)  # half the value: within bounds


def test_a_burst_larger_than_its_brands_target_is_refused_naming_the_file() -> None:
    text = resolve("smoke").text.replace("gmv = 150_000", "gmv = 4_000_000", 1)
    with pytest.raises(ScenarioError) as caught:
        make_plan(parse_scenario(text, "smoke.toml"), scale=0.1)
    assert str(caught.value) == ("smoke.toml: bursts: expected 'Bamboo' to sell less in its bursts "
                                 "than its whole GMV target, found more")
