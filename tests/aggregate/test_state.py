"""The aggregate state: copies are independent, comparison sees every field, snapshots round-trip
and a bad one is refused in one line."""

from __future__ import annotations

import io
import zipfile
from dataclasses import fields, replace

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker.aggregate import AggregateState, Aggregator, SnapshotError
from ticker.aggregate.eventtime import EventTimeAggregator, EventTimeState, sort_key
from ticker.events import OrderBatch

from .test_aggregator import W1, make_batch
from .test_eventtime import CONFIG, late_into_a_decided_second, reference
from .test_eventtime import fold as event_time_fold
from .unit_scenario import NAMES, UNIT, UNIT_DIMS


def folded() -> AggregateState:
    """A state with every field in use (the dimensions' arrays too)."""
    agg = Aggregator(UNIT_DIMS, "unit", brand_names=NAMES)
    agg.apply(make_batch(0, [W1 + i * 400_000 for i in range(8)], [0, 1, 2, 0, 1, 2, 0, 1],
                         [70, 80, 90, 70, 80, 90, 70, -20], [0] * 7 + [1], [0, 1] * 4, [1, 0] * 4))
    assert agg.state.milestones
    return agg.state


def changed(state: AggregateState, name: str) -> AggregateState:
    """A copy of ``state`` that differs in the one field ``name``."""
    value = getattr(state, name)
    if isinstance(value, np.ndarray):
        value = value.copy()
        flat = value.reshape(-1)
        flat[0] = not flat[0] if value.dtype == bool else flat[0] + 1
    elif isinstance(value, list):
        value = value[:-1]
    else:
        value += 1
    return replace(state.copy(), **{name: value})


@pytest.mark.parametrize("name", [f.name for f in fields(AggregateState)])
def test_equals_and_differences_see_every_field(name: str) -> None:
    state = folded()
    other = changed(state, name)
    assert not state.equals(other) and not other.equals(state)
    assert state.differences(other) == [name]
    assert state.equals(state.copy()) and state.differences(state.copy()) == []


def every_field_stream() -> OrderBatch:
    """Arrivals that leave an arrival-ordered state with every field in use: late orders (one
    corrects a rate record), a redelivery, decided records, final milestones still open to
    correction, an undecided second's last order and an order still in the reorder buffer."""
    late = late_into_a_decided_second()
    # then orders at 6.5 s (released: the watermark is at 6.9 s) and 9.9 s (held), and the last
    # late order again
    more = make_batch(len(late), [W1 + 6_500_000, W1 + 9_900_000], [1, 2], [1, 1], [0, 0])
    stream = OrderBatch.concat([late, more, late.slice(len(late) - 1, len(late))])
    n = len(stream)
    return OrderBatch(**{**stream.columns(), "seq": np.arange(n, dtype=np.int64),
                         "order_id": np.append(np.arange(n - 1), len(late) - 1) + 1000,
                         "amount_minor": np.full(n, 100, np.int64)})


def event_time_folded() -> EventTimeState:
    """The state ``every_field_stream`` leaves (no ``finish``)."""
    agg = EventTimeAggregator(UNIT, NAMES, "unit", CONFIG)
    agg.apply(every_field_stream())
    s = agg.state
    assert s.duplicates and s.late and s.corrected and s.open_finals and s.records and len(s.buffer)
    assert all(len(getattr(s, name)) for name in ("last_second", "dedup_keys"))
    return s


def test_an_arrival_ordered_fold_resumed_from_a_snapshot_carries_on_exactly() -> None:
    """Snapshot the state with every field in use, resume from it and go on: a redelivery the
    restored window must still recognise, a late order that corrects both a final milestone and
    the rate-record chain, an order that releases the buffer, the end. The resumed fold ends as
    the one that never stopped, field for field, with the reference's milestones; the finished
    state round-trips too."""
    first = every_field_stream()
    n = len(first)
    rest = OrderBatch.concat([first.slice(8, 9), make_batch(0, [W1 + 50_000, W1 + 20_000_000],
                                                            [0, 3], [100, 100], [0, 0])])
    rest = OrderBatch(**{**rest.columns(), "seq": np.arange(n, n + 3, dtype=np.int64),
                         "order_id": np.array([1008, 999, 1020], np.int64)})
    whole = event_time_fold(OrderBatch.concat([first, rest]), [n], CONFIG)
    agg = EventTimeAggregator(UNIT, NAMES, "unit", CONFIG)
    agg.apply(first)
    resumed = EventTimeAggregator(UNIT, NAMES, "unit", CONFIG,
                                  AggregateState.from_snapshot(agg.state.to_snapshot("unit"), "snap", "unit"))
    found = resumed.apply(rest) + resumed.finish()
    assert resumed.state.differences(whole.state) == []
    assert resumed.state.duplicates == 2 and resumed.state.buffer_max and not len(resumed.state.buffer)
    assert {m.timing for m in found} == {"live", "final", "correction"}
    ref = reference(OrderBatch.concat([first, rest]))
    assert sorted(resumed.state.milestones, key=sort_key) == sorted(ref.milestones, key=sort_key)
    finished = AggregateState.from_snapshot(resumed.state.to_snapshot("unit"), "snap", "unit")
    assert finished.differences(whole.state) == []


def _changed_event_time(state: EventTimeState, name: str) -> tuple[EventTimeState, str]:
    """A copy of ``state`` that differs in the one field ``name`` (in one field of an inner
    state or one column of the buffer), and the name ``differences`` should give it."""
    value = getattr(state, name)
    if isinstance(value, AggregateState):
        return replace(state.copy(), **{name: changed(value, "gmv_minor")}), f"{name}.gmv_minor"
    if isinstance(value, OrderBatch):
        columns = value.columns()
        buffer = OrderBatch(**{**columns, "amount_minor": columns["amount_minor"] + 1})
        return replace(state.copy(), buffer=buffer), "buffer.amount_minor"
    return changed(state, name), name


@pytest.mark.parametrize("name", [f.name for f in fields(EventTimeState)])
def test_an_arrival_ordered_state_equals_and_differences_see_every_field(name: str) -> None:
    """``ticker verify`` and the batch-invariance tests compare arrival-ordered states with
    ``differences``: a field it missed (or misnamed) would hide a resume that lost it."""
    state = event_time_folded()
    other, expected = _changed_event_time(state, name)
    assert not state.equals(other) and not other.equals(state)
    assert state.differences(other) == [expected] and other.differences(state) == [expected]
    copy = state.copy()
    assert state.equals(copy) and state.differences(copy) == []


def test_an_ordered_state_never_equals_an_arrival_ordered_one() -> None:
    """``ticker verify`` compares a snapshot with the re-folded log; when run.json was changed
    to the other kind of fold since, the difference it reports is the kind of state, either way."""
    state = folded()
    et = event_time_fold(make_batch(0, [W1, W1 + 400_000], [0, 1], [70, 80], [0, 0]), [], CONFIG).state
    assert not state.equals(et) and not et.equals(state)
    assert state.differences(et) == ["kind of state (ordered against arrival-ordered)"]
    assert et.differences(state) == ["kind of state (arrival-ordered against ordered)"]


@given(st.lists(st.tuples(st.integers(0, 600_000_000), st.integers(0, 4), st.integers(0, 1),
                          st.integers(0, 1), st.integers(1, 10_000), st.booleans()), max_size=30))
def test_every_total_is_an_exact_int64_sum_of_its_events(events) -> None:
    """Money is int64 minor units and counts are int64, from the very first event (the state's
    contract, which its snapshots, the cluster's merge of partial folds and the reports rely on;
    a float64 total is exact only to 2**53): per brand, per (platform, region) and per second,
    each total is exactly the sum of its events'."""
    events = sorted(events)
    times = [W1 + e[0] for e in events]
    amounts = [-e[4] if e[5] else e[4] for e in events]
    agg = Aggregator(UNIT, "unit", brand_names=NAMES)
    agg.apply(make_batch(0, times, [e[1] for e in events], amounts, [int(e[5]) for e in events],
                         [e[2] for e in events], [e[3] for e in events]))
    agg.finish()
    st_ = agg.state
    expected: dict[str, dict] = {name: {} for name in
                                 ("brand_gmv", "brand_orders", "mix_gmv", "mix_orders", "second_gmv",
                                  "second_orders")}
    for (_, brand, platform, region, _, refund), t, amount in zip(events, times, amounts, strict=True):
        second = (t - UNIT.start_us) // 1_000_000
        for name, at in (("brand", (brand,)), ("mix", (platform, region)), ("second", (second,))):
            for column, add in (("gmv", amount), ("orders", int(not refund))):
                table = expected[f"{name}_{column}"]
                table[at] = table.get(at, 0) + add
    for name, want in expected.items():
        got = getattr(st_, name)
        assert got.dtype == np.int64, name
        assert {at: int(got[at]) for at in zip(*np.nonzero(got), strict=True)} == {
            at: v for at, v in want.items() if v}, name
    assert (st_.gmv_minor, st_.orders) == (sum(amounts), sum(not e[5] for e in events))


def test_a_copy_shares_nothing_mutable() -> None:
    state = folded()
    copy = state.copy()
    for f in fields(state):
        value = getattr(copy, f.name)
        if isinstance(value, np.ndarray):
            value.reshape(-1)[0] += 1
        elif isinstance(value, list):
            value.clear()
    assert state.equals(folded())


def test_a_snapshot_round_trips_every_field_and_dtype() -> None:
    state = folded()
    restored = AggregateState.from_snapshot(state.to_snapshot("unit"), "snap", "unit")
    assert restored.equals(state)
    for f in fields(state):
        value = getattr(state, f.name)
        if isinstance(value, np.ndarray):
            assert getattr(restored, f.name).dtype == value.dtype, f.name
        else:
            assert type(getattr(restored, f.name)) is type(value), f.name


def test_a_snapshot_is_a_plain_npz_with_its_stamp() -> None:
    data = folded().to_snapshot("unit")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        meta = orjson.loads(npz["meta"].tobytes())
        assert set(npz.files) == {f.name for f in fields(AggregateState)
                                  if isinstance(getattr(folded(), f.name), np.ndarray)} | {"meta"}
    assert (meta["schema"], meta["run"]) == (1, "unit")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}


def _rewrite_meta(data: bytes, whole=None, **change) -> bytes:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = orjson.loads(arrays["meta"].tobytes()) if whole is None else whole
    for key, value in change.items():
        if value is None:
            del meta["scalars"][key]
        else:
            meta[key] = value
    arrays["meta"] = np.frombuffer(orjson.dumps(meta), np.uint8)
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def test_a_bad_snapshot_is_refused_in_one_line() -> None:
    data = folded().to_snapshot("unit")
    cases = [
        (b"not a snapshot", "unit", "snap: unreadable snapshot (This file contains pickled"),
        (data[: len(data) // 2], "unit", "snap: unreadable snapshot (File is not a zip file)"),
        (data, "other", "snap: snapshot of run 'unit', expected 'other'"),
        (_rewrite_meta(data, schema=99), "unit", "snap: snapshot schema 99, expected 1"),
        (_rewrite_meta(data, whole=[1, 2]), "unit", "snap: unreadable snapshot (its meta is not a table)"),
        (_rewrite_meta(data, gmv_level=None), "unit", "snap: snapshot fields do not match this "
         "ticker (AggregateState.__init__() missing 1 required positional argument: 'gmv_level')"),
    ]
    for blob, run, message in cases:
        with pytest.raises(SnapshotError) as err:
            AggregateState.from_snapshot(blob, "snap", run)
        assert str(err.value).startswith(message.removesuffix(")")) and "\n" not in str(err.value)
    assert AggregateState.from_snapshot(data, "snap").equals(folded())  # run=None: any run
