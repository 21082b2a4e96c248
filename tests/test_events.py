"""The order event model: the frame codec round-trips exactly, and rebatch never changes a stream."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticker.events import (
    COLUMNS,
    EVENT_BYTES,
    FRAME_HEADER_BYTES,
    FrameError,
    OrderBatch,
    OrderKind,
    rebatch,
)


@st.composite
def batches(draw: st.DrawFn, max_size: int = 40) -> OrderBatch:
    """A batch of ``n`` events with contiguous seq and arbitrary values in every other column."""
    n = draw(st.integers(0, max_size))
    first = draw(st.integers(0, 2**62))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    columns = {}
    for name, dtype in COLUMNS.items():
        info = np.iinfo(dtype)
        columns[name] = rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)
    columns["seq"] = np.arange(first, first + n, dtype=np.int64)
    return OrderBatch(**columns)


@given(batches())
def test_frame_round_trips_exactly(batch: OrderBatch) -> None:
    frame = batch.to_frame()
    assert len(frame) == FRAME_HEADER_BYTES + len(batch) * EVENT_BYTES
    decoded = OrderBatch.from_frame(frame)
    assert decoded.equals(batch)
    assert all(decoded.columns()[n].dtype == dt for n, dt in COLUMNS.items())
    assert decoded.to_frame() == frame


def test_empty_batch_round_trips() -> None:
    empty = OrderBatch.empty()
    decoded = OrderBatch.from_frame(empty.to_frame())
    assert len(decoded) == 0
    assert decoded.equals(empty)


@given(batches(), st.data())
def test_short_frames_raise(batch: OrderBatch, data: st.DataObject) -> None:
    frame = batch.to_frame()
    cut = data.draw(st.integers(0, len(frame) - 1))
    with pytest.raises(FrameError):
        OrderBatch.from_frame(frame[:cut])


@given(batches(), st.binary(min_size=1, max_size=50))
def test_trailing_bytes_raise(batch: OrderBatch, extra: bytes) -> None:
    with pytest.raises(FrameError, match="should be"):
        OrderBatch.from_frame(batch.to_frame() + extra)


def _event() -> OrderBatch:
    return OrderBatch(
        seq=np.array([7], np.int64), event_time=np.array([1], np.int64),
        order_id=np.array([2], np.int64), brand=np.array([3], np.int32),
        platform=np.array([0], np.uint8), region=np.array([1], np.uint8),
        amount_minor=np.array([500], np.int64), kind=np.array([OrderKind.PLACED], np.uint8))


def test_corrupt_headers_raise_naming_the_fault() -> None:
    frame = bytearray(_event().to_frame())
    magic, version, ncols, count, first = struct.unpack_from("<4sHHqq", frame)

    bad = bytearray(frame)
    bad[:4] = b"XXXX"
    with pytest.raises(FrameError, match="bad frame magic b'XXXX'"):
        OrderBatch.from_frame(bad)

    bad = bytearray(frame)
    struct.pack_into("<4sHHqq", bad, 0, magic, version + 1, ncols, count, first)
    with pytest.raises(FrameError, match=f"frame version {version + 1} with {ncols} columns"):
        OrderBatch.from_frame(bad)

    bad = bytearray(frame)
    struct.pack_into("<4sHHqq", bad, 0, magic, version, ncols, count, first + 1)
    with pytest.raises(FrameError, match="header says first seq 8, rows start at 7"):
        OrderBatch.from_frame(bad)

    bad = bytearray(frame)
    struct.pack_into("<4sHHqq", bad, 0, magic, version, ncols, -1, first)
    with pytest.raises(FrameError, match="frame of -1 events"):
        OrderBatch.from_frame(bad)


def test_batch_rejects_columns_of_the_wrong_dtype() -> None:
    columns = _event().columns()
    columns["brand"] = columns["brand"].astype(np.int64)
    with pytest.raises(ValueError, match="column brand: expected 1-d int32 of length 1"):
        OrderBatch(**columns)


@settings(max_examples=60)
@given(st.lists(st.integers(0, 30), max_size=12), st.integers(1, 50))
def test_rebatch_preserves_the_stream(sizes: list[int], size: int) -> None:
    stream = OrderBatch(**{
        name: np.arange(sum(sizes), dtype=dtype) for name, dtype in COLUMNS.items()})
    parts, start = [], 0
    for n in sizes:
        parts.append(stream.slice(start, start + n))
        start += n
    out = list(rebatch(parts, size))
    assert OrderBatch.concat(out).equals(stream)
    assert all(len(b) == size for b in out[:-1])
    assert not out or 0 < len(out[-1]) <= size


@settings(max_examples=200)
@given(st.lists(st.integers(0, 40), max_size=10), st.data())
def test_rebatch_cuts_at_every_boundary_asked_for_and_nowhere_else(sizes: list[int],
                                                                   data: st.DataObject) -> None:
    """The one cutter, every option together: the events out are the stream's from ``from_seq``
    up to the first event at or after ``before_time``, in order; no piece crosses a multiple of
    ``every`` or a seq of ``at``; pieces span at most ``span_us`` of event time; with ``size``,
    a piece is shorter than ``size`` only at a boundary or at the end, and without it a piece
    never spans two of the stream's batches."""
    total = sum(sizes)
    gaps = data.draw(st.lists(st.integers(0, 5), min_size=total, max_size=total))
    times = np.cumsum(np.array(gaps, np.int64))
    if data.draw(st.booleans()):  # an arrival-ordered stream: event times out of order
        times = np.array(data.draw(st.permutations(times.tolist())), np.int64)
    first = data.draw(st.integers(0, 1000))
    columns = {name: np.zeros(total, dtype) for name, dtype in COLUMNS.items()}
    columns["seq"] = np.arange(first, first + total, dtype=np.int64)
    columns["event_time"] = times
    stream = OrderBatch(**columns)
    parts, start = [], 0
    for n in sizes:
        parts.append(stream.slice(start, start + n))
        start += n
    size = data.draw(st.none() | st.integers(1, 30))
    every = data.draw(st.none() | st.integers(1, 25))
    at = data.draw(st.lists(st.integers(first - 5, first + total + 5), max_size=6))
    from_seq = data.draw(st.none() | st.integers(first - 5, first + total + 5))
    before_time = data.draw(st.none() | st.integers(-1, int(times.max(initial=0)) + 1))
    sorted_times = bool(np.all(np.diff(times) >= 0))
    span = data.draw(st.none() | st.integers(1, 12)) if sorted_times else None
    out = list(rebatch(parts, size, every=every, at=at, from_seq=from_seq,
                       before_time=before_time, span_us=span))

    keep = stream.slice(max(0, (from_seq or first) - first), total)
    if before_time is not None and (keep.event_time >= before_time).any():
        keep = keep.slice(0, int(np.argmax(keep.event_time >= before_time)))
    assert OrderBatch.concat(out).equals(keep)
    assert all(len(piece) for piece in out)
    bounds = set(at) | ({s for s in range(first, first + total + 1) if s % every == 0}
                        if every else set())
    for piece in out:
        assert not any(piece.first_seq < b < piece.end_seq for b in bounds)
        if span is not None and len(piece) > 1:
            assert int(piece.event_time[-1]) < int(piece.event_time[0]) + span
        if size is not None:
            assert len(piece) <= size
            if len(piece) < size and piece is not out[-1] and span is None:
                assert piece.end_seq in bounds
        if size is None or span is not None:
            assert any(p.first_seq <= piece.first_seq and piece.end_seq <= p.end_seq
                       for p in parts if len(p))


@pytest.mark.parametrize("size", [0, -3])
def test_rebatch_rejects_a_non_positive_size(size: int) -> None:
    with pytest.raises(ValueError, match=f"batch size must be positive, got {size}"):
        list(rebatch([OrderBatch.empty()], size))
