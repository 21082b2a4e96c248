"""The event log: round trips across segment rolls and reopens, sequence checks, recovery of a
torn tail, and precise reports of every other kind of damage (DESIGN.md invariants 3, 6, 7)."""

from __future__ import annotations

import itertools
import os
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import crc32c
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import ticker.eventlog as eventlog
from ticker.eventlog import (
    RECORD_HEADER_BYTES,
    RECORD_MAGIC,
    CorruptLogError,
    EventLog,
    LogLockedError,
    SequenceError,
    segment_name,
    verify_log,
)
from ticker.events import COLUMNS, OrderBatch

HERE = Path(__file__).resolve()


def make_batch(first: int, n: int) -> OrderBatch:
    """A deterministic batch of ``n`` events from seq ``first``: same arguments, same bytes."""
    rng = np.random.default_rng(first * 7919 + n)
    seq = np.arange(first, first + n, dtype=np.int64)
    return OrderBatch(
        seq=seq,
        event_time=1_636_560_000_000_000 + seq * 1_000 + rng.integers(0, 1_000, n),
        order_id=rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64),
        brand=rng.integers(0, 290_000, n, dtype=np.int32),
        platform=rng.integers(0, 3, n, dtype=np.uint8),
        region=rng.integers(0, 7, n, dtype=np.uint8),
        amount_minor=rng.integers(-10**9, 10**9, n, dtype=np.int64),
        kind=rng.integers(0, 2, n, dtype=np.uint8),
    )


def make_batches(sizes: list[int], first: int = 0) -> list[OrderBatch]:
    out = []
    for n in sizes:
        out.append(make_batch(first, n))
        first += n
    return out


def frames(batches) -> list[bytes]:
    return [b.to_frame() for b in batches]


def write_log(directory: Path, batches: list[OrderBatch], **options) -> list:
    """Append ``batches``; return each record's location."""
    with EventLog(directory, fsync="never", **options) as log:
        return [log.append(b) for b in batches]


def read_all(directory: Path, **options) -> OrderBatch:
    with EventLog(directory, readonly=True, **options) as log:
        return OrderBatch.concat(list(log.read()))


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x40]))


@pytest.fixture(scope="module")
def festival() -> list[OrderBatch]:
    """Realistic batches from the real generator (double11-2021 at a small scale)."""
    from ticker.scenario import generate, resolve

    return list(generate(resolve("double11-2021"), seed=None, scale=0.0001, batch_size=20_000))


# --- round trips --------------------------------------------------------------------------------

ops = st.lists(st.one_of(st.integers(1, 120), st.just("reopen")), min_size=1, max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, segment_bytes=st.sampled_from([64, 2_000, 9_000, 1 << 20]), data=st.data())
def test_any_appends_and_reopens_read_back_frame_equal(ops, segment_bytes, data):
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "log"
        appended: list[OrderBatch] = []
        log = EventLog(directory, fsync="never", segment_bytes=segment_bytes)
        try:
            for op in ops:
                if op == "reopen":
                    log.close()
                    log = EventLog(directory, fsync="never", segment_bytes=segment_bytes)
                    assert log.recovery is None
                else:
                    location = log.append(make_batch(log.next_seq, op))
                    appended.append(make_batch(location.first_seq, op))
                assert log.next_seq == sum(len(b) for b in appended)
                # each append is one record, read back as one batch
                assert frames(log.read()) == frames(appended)
            total = log.next_seq
            if total:
                start = data.draw(st.integers(0, total - 1), label="from_seq")
                stop = data.draw(st.integers(start, total + 5), label="to_seq")
                want = OrderBatch.concat(appended).slice(start, min(stop, total))
                got = OrderBatch.concat(list(log.read(start, stop)))
                assert got.to_frame() == want.to_frame()
                seq = data.draw(st.integers(0, total - 1), label="seq")
                where = log.locate(seq)
                assert where.first_seq <= seq < where.end_seq
                assert any(b.first_seq == where.first_seq and len(b) == where.count for b in appended)
            segments = log.segments()
            for info in segments:  # rolled at the limit, except a lone oversized record
                assert info.size <= segment_bytes or info.records == 1
                assert info.path.name == segment_name(info.first_seq)
            assert [s.first_seq for s in segments[1:]] == [s.end_seq for s in segments[:-1]]
        finally:
            log.close()
        assert verify_log(directory) == []


@pytest.mark.parametrize("policy", ["every", "interval", "never"])
def test_realistic_batches_round_trip_under_each_fsync_policy(tmp_path, festival, policy):
    with EventLog(tmp_path, fsync=policy, segment_bytes=1 << 20) as log:
        for batch in festival:
            log.append(batch)
        assert len(log.segments()) > 1
    with EventLog(tmp_path, readonly=True, check="full") as log:
        assert frames(log.read()) == frames(festival)
        mid = festival[len(festival) // 2]
        assert log.locate(mid.first_seq + 1).first_seq == mid.first_seq


def test_batches_read_stay_valid_after_the_log_is_closed(tmp_path):
    write_log(tmp_path, make_batches([50, 60]))
    with EventLog(tmp_path, readonly=True) as log:
        kept = list(log.read())
    assert OrderBatch.concat(kept).to_frame() == OrderBatch.concat(make_batches([50, 60])).to_frame()


def test_empty_batch_writes_nothing(tmp_path):
    with EventLog(tmp_path) as log:
        assert log.append(OrderBatch.empty()) is None
        assert log.next_seq == 0 and log.segments() == []
    assert list(EventLog(tmp_path, readonly=True).read()) == []


def test_read_range_is_checked(tmp_path):
    write_log(tmp_path, make_batches([10]))
    with EventLog(tmp_path, readonly=True) as log:
        with pytest.raises(ValueError, match=r"holds seq 0\.\.9"):
            list(log.read(11))
        with pytest.raises(ValueError):
            list(log.read(-1))
        assert list(log.read(10)) == []
        assert list(log.read(3, 3)) == []
        with pytest.raises(IndexError, match="seq 10 is not in the log"):
            log.locate(10)
    with EventLog(tmp_path / "empty", fsync="never") as empty:
        assert list(empty.read()) == []
        with pytest.raises(ValueError, match=r"^read from seq 1: the log is empty$"):
            list(empty.read(1))
        with pytest.raises(IndexError, match=r"^seq 0 is not in the log \(it is empty\)$"):
            empty.locate(0)


# --- sequence checks ----------------------------------------------------------------------------


def _sizes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(directory.glob("*.seg"))}


@pytest.mark.parametrize(
    ("first", "match"),
    [(12, r"^append of seq 12..18 to .* refused: the log expects seq 10 next \(gap: seq 10..11 missing\)$"),
     (5, r"^append of seq 5..11 to .* refused: the log expects seq 10 next \(duplicate: seq 5..9 already "
         r"in the log\)$"),
     (0, r"^append of seq 0..6 to .* refused: .*\(duplicate: seq 0..6 already in the log\)$")],
)
def test_append_refuses_gaps_and_duplicates_and_writes_nothing(tmp_path, first, match):
    with EventLog(tmp_path) as log:
        log.append(make_batch(0, 10))
        before = _sizes(tmp_path)
        with pytest.raises(SequenceError, match=match):
            log.append(make_batch(first, 7))
        assert log.next_seq == 10 and _sizes(tmp_path) == before
        log.append(make_batch(10, 4))
    assert frames([read_all(tmp_path)]) == frames([OrderBatch.concat(make_batches([10, 4]))])


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 12), st.data())
def test_append_refuses_any_batch_whose_seqs_break_and_writes_nothing(n, data):
    """From two events on, a batch whose seqs jump or repeat anywhere is refused, naming the
    first row where they break."""
    row = data.draw(st.integers(1, n - 1))
    jump = data.draw(st.integers(-3, 3).filter(lambda d: d != 1))
    seqs = list(range(row)) + [row - 1 + jump + k for k in range(n - row)]
    columns = make_batch(0, n).columns()
    columns["seq"] = np.array(seqs, dtype=np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        with EventLog(tmp) as log:
            with pytest.raises(SequenceError, match=rf"not contiguous at row {row} \(seq {seqs[row]} "
                                                    rf"after {seqs[row - 1]}\)"):
                log.append(OrderBatch(**columns))
            assert log.next_seq == 0
        assert _sizes(Path(tmp)) == {}


def test_append_refuses_a_batch_whose_seqs_are_not_contiguous(tmp_path):
    batch = make_batch(0, 8)
    columns = batch.columns()
    columns["seq"] = np.array([0, 1, 2, 4, 5, 6, 7, 8], dtype=np.int64)
    with EventLog(tmp_path) as log:
        with pytest.raises(SequenceError, match=r"not contiguous at row 3 \(seq 4 after 2\)"):
            log.append(OrderBatch(**columns))
        columns["seq"] = np.array([0, 1, 2, 3, 3, 5, 6, 7], dtype=np.int64)  # right ends, wrong inside
        with pytest.raises(SequenceError, match=r"row 4 \(seq 3 after 3\)"):
            log.append(OrderBatch(**columns))
        assert log.next_seq == 0
    assert _sizes(tmp_path) == {}


@settings(max_examples=40, deadline=None)
@given(st.one_of(
    st.tuples(st.just("fsync"), st.text(max_size=8).filter(lambda x: x not in eventlog._POLICIES)),
    st.tuples(st.just("fsync_interval"), st.one_of(st.floats(max_value=0), st.just(float("nan")))),
    st.tuples(st.just("segment_bytes"), st.integers(-(2**40), RECORD_HEADER_BYTES - 1)),
    st.tuples(st.just("check"), st.text(max_size=8).filter(lambda x: x not in ("tail", "full", "readable"))),
    st.tuples(st.just("check"), st.just("readable")),  # a writable log cannot skip its damage
))
def test_bad_log_options_are_refused_in_one_line(option):
    name, value = option
    expected = {
        "fsync": f"fsync policy {value!r}: expected one of every, interval, never",
        "fsync_interval": f"fsync_interval must be positive seconds, got {value!r}",
        "segment_bytes": f"segment_bytes must be at least {RECORD_HEADER_BYTES}, got {value}",
        "check": f"check {value!r}: expected 'tail', 'full' or (read-only) 'readable'",
    }[name]
    with tempfile.TemporaryDirectory() as tmp:
        with pytest.raises(ValueError) as refused:
            EventLog(Path(tmp) / "log", **{name: value})
        assert str(refused.value) == expected
        assert not (Path(tmp) / "log").exists()


def test_a_log_is_made_with_its_missing_parents_and_a_sound_one_has_no_damage(tmp_path):
    with EventLog(tmp_path / "runs" / "a" / "log") as log:
        log.append(make_batch(0, 5))
    with EventLog(tmp_path / "runs" / "a" / "log", readonly=True, check="readable") as log:
        assert log.damage is None and log.next_seq == 5
    # the smallest segment size, a header's: every record rolls to a segment of its own
    with EventLog(tmp_path / "small", segment_bytes=RECORD_HEADER_BYTES) as log:
        log.append(make_batch(0, 5))
        log.append(make_batch(5, 5))
        assert [s.first_seq for s in log.segments()] == [0, 5]


def test_one_writer_at_a_time_readers_any_time(tmp_path):
    with EventLog(tmp_path) as log:
        log.append(make_batch(0, 5))
        with pytest.raises(LogLockedError) as locked:
            EventLog(tmp_path)
        assert str(locked.value) == (f"{tmp_path} is already open for writing (lock "
                                     f"{tmp_path / eventlog.LOCK_NAME} is held by another EventLog)")
        with EventLog(tmp_path, readonly=True) as reader:
            assert reader.next_seq == 5
    with EventLog(tmp_path) as log:  # the lock went with the close
        assert log.next_seq == 5


def test_no_appends_to_a_closed_or_read_only_log(tmp_path):
    log = EventLog(tmp_path)
    log.append(make_batch(0, 5))
    log.close()
    log.close()  # closing twice is harmless
    with pytest.raises(ValueError, match="append to the closed event log"):
        log.append(make_batch(5, 5))
    with EventLog(tmp_path, readonly=True) as reader, pytest.raises(ValueError, match="read-only"):
        reader.append(make_batch(5, 5))
    assert _sizes(tmp_path) == {segment_name(0): _record_bytes(5)}


def test_readonly_open_of_a_missing_directory_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no event log at"):
        EventLog(tmp_path / "nope", readonly=True)
    with pytest.raises(FileNotFoundError, match="no event log at"):
        verify_log(tmp_path / "nope")


# --- recovery of a torn tail --------------------------------------------------------------------

TAIL_SIZES = [200, 7, 41, 3, 25]  # records of 7,864 / 344 / 1,664 / 184 / 1,040 bytes


@settings(max_examples=80, deadline=None)
@given(cut=st.integers(0, 10_000))
def test_torn_tail_at_any_point_is_cut_reported_and_appends_continue(cut):
    batches = make_batches(TAIL_SIZES)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        # two segments: the first holds the first record, the last segment the rest
        locations = write_log(directory, batches, segment_bytes=8_000)
        last = locations[-1].segment
        assert last.name != locations[0].segment.name
        size = last.stat().st_size
        cut %= size + 1
        os.truncate(last, cut)
        in_last = [loc for loc in locations if loc.segment == last]
        ends = [loc.offset + _record_bytes(loc.count) for loc in in_last]
        whole = [loc for loc, end in zip(in_last, ends, strict=True) if end <= cut]
        boundary = max([loc.offset + _record_bytes(loc.count) for loc in whole], default=0)
        next_seq = whole[-1].end_seq if whole else in_last[0].first_seq

        with EventLog(directory, readonly=True) as reader:  # reports, changes nothing
            assert reader.next_seq == next_seq
            assert last.stat().st_size == cut
            assert (reader.recovery is None) == (cut == boundary)
            if reader.recovery:
                assert not reader.recovery.truncated

        with EventLog(directory) as log:
            assert log.next_seq == next_seq
            if cut == boundary:
                assert log.recovery is None
            else:
                torn = next(loc for loc in in_last if loc.offset == boundary)
                report = log.recovery
                assert (report.segment, report.offset, report.bytes_cut) == (last, boundary, cut - boundary)
                if cut - boundary >= RECORD_HEADER_BYTES:
                    assert (report.first_seq, report.events_lost) == (torn.first_seq, torn.count)
                    seqs = f"seq {torn.first_seq}..{torn.end_seq - 1}"
                    assert f"{torn.count} events ({seqs}) lost" in str(report)
                else:
                    assert report.events_lost is None and "short header" in report.reason
                assert str(last) in str(report) and f"offset {boundary}" in str(report)
            assert last.stat().st_size == boundary
            assert OrderBatch.concat(list(log.read())).to_frame() == \
                OrderBatch.concat(batches).slice(0, next_seq).to_frame()
            # the lost events are appended again; the log carries on as if nothing happened
            for batch in rebatch_from(batches, next_seq):
                log.append(batch)
        assert read_all(directory).to_frame() == OrderBatch.concat(batches).to_frame()
        assert verify_log(directory) == []


def _record_bytes(count: int) -> int:
    payload = 24 + 39 * count
    return RECORD_HEADER_BYTES + payload + (-(RECORD_HEADER_BYTES + payload) % 8)


def rebatch_from(batches: list[OrderBatch], seq: int) -> list[OrderBatch]:
    whole = OrderBatch.concat(batches)
    return [whole.slice(seq, len(whole))] if seq < len(whole) else []


def test_bad_checksum_of_the_last_record_is_a_torn_tail(tmp_path):
    locations = write_log(tmp_path, make_batches([10, 20, 30]))
    last = locations[-1]
    flip_byte(last.segment, last.offset + RECORD_HEADER_BYTES + 100)
    with EventLog(tmp_path) as log:
        assert log.recovery.reason == "checksum mismatch in the last record"
        assert (log.recovery.offset, log.recovery.events_lost) == (last.offset, 30)
        assert log.next_seq == 30


def test_zero_filled_tail_is_a_torn_tail_of_unknown_size(tmp_path):
    locations = write_log(tmp_path, make_batches([10, 20]))
    path = locations[-1].segment
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(bytes(4096))  # a file system that extended the file but never wrote the data
    with EventLog(tmp_path) as log:
        assert (log.recovery.offset, log.recovery.bytes_cut) == (size, 4096)
        assert log.recovery.events_lost is None and "zero bytes" in log.recovery.reason
        assert log.next_seq == 30


# --- damage that is never cut: reported precisely -----------------------------------------------


def _three_segments(directory: Path) -> list:
    """Nine records of 40 events in three segments of three records each."""
    return write_log(directory, make_batches([40] * 9), segment_bytes=3 * _record_bytes(40))


def _only(problems):
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


@settings(max_examples=60, deadline=None)
@given(where=st.integers(0, _record_bytes(40) - 1), segment=st.sampled_from([0, 2]))
def test_flipped_byte_in_a_middle_record_is_named_by_segment_offset_and_seqs(where, segment):
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        locations = _three_segments(directory)
        victim = locations[3 * segment + 1]  # the middle record of the first or last segment
        flip_byte(victim.segment, victim.offset + where)

        problem = _only(verify_log(directory))
        assert (problem.segment, problem.offset, problem.first_seq) == (victim.segment, victim.offset,
                                                                           victim.first_seq)
        assert problem.kind == "corrupt"
        assert f"{victim.segment}: offset {victim.offset}: corrupt" in str(problem)

        in_header = where < RECORD_HEADER_BYTES
        if segment == 2 or in_header:  # the last segment is checksummed on open; headers always
            with pytest.raises(CorruptLogError) as caught:
                EventLog(directory)
            assert caught.value.problem == problem
        else:  # an earlier segment's payload: on a full check, and when read
            with pytest.raises(CorruptLogError) as caught:
                EventLog(directory, check="full")
            assert caught.value.problem == problem
            with EventLog(directory, readonly=True) as log:
                before = list(log.read(0, victim.first_seq))
                assert OrderBatch.concat(before).to_frame() == \
                    OrderBatch.concat(make_batches([40] * 9)).slice(0, victim.first_seq).to_frame()
                with pytest.raises(CorruptLogError) as caught:
                    list(log.read(victim.first_seq + 5))
                failure = caught.value.problem
                assert (failure.segment, failure.offset) == (victim.segment, victim.offset)
                assert (failure.first_seq, failure.end_seq) == (victim.first_seq, victim.end_seq)


def test_corrupt_header_in_the_middle_resynchronises_and_reports_once(tmp_path):
    locations = _three_segments(tmp_path)
    victim = locations[4]
    flip_byte(victim.segment, victim.offset + 9)  # payload_len
    problem = _only(verify_log(tmp_path))
    assert problem.offset == victim.offset and problem.first_seq == victim.first_seq
    assert "header checksum mismatch" in str(problem)
    assert f"next whole record at offset {locations[5].offset}" in str(problem)
    with pytest.raises(CorruptLogError, match=f"offset {victim.offset}: corrupt: header checksum"):
        EventLog(tmp_path, readonly=True)


def test_truncated_earlier_segment_is_corrupt_not_torn(tmp_path):
    locations = _three_segments(tmp_path)
    first = locations[0].segment
    os.truncate(first, first.stat().st_size - 10)
    with pytest.raises(CorruptLogError) as caught:
        EventLog(tmp_path)
    problem = caught.value.problem
    assert (problem.segment, problem.offset, problem.first_seq) == (first, locations[2].offset, 80)
    assert problem.detail == ("record of 1624 bytes runs past the end of the segment (1614 bytes "
                              "left); the 1614 bytes from here to the end of the segment hold no "
                              "whole record")
    assert _only(verify_log(tmp_path)) == problem


@pytest.mark.parametrize("where", ["middle", "tail"])
def test_duplicated_record_is_reported_with_its_seqs(tmp_path, where):
    locations = _three_segments(tmp_path)
    source = locations[7] if where == "middle" else locations[8]
    path = source.segment
    data = path.read_bytes()
    record = data[source.offset : source.offset + _record_bytes(40)]
    at = source.offset + len(record)
    path.write_bytes(data[:at] + record + data[at:])  # the record again, right after itself

    with pytest.raises(CorruptLogError) as caught:
        EventLog(tmp_path)
    problem = caught.value.problem
    assert (problem.kind, problem.segment, problem.offset) == ("duplicate", path, at)
    assert (problem.first_seq, problem.end_seq) == (source.first_seq, source.end_seq)
    assert f"seq {source.first_seq}..{source.end_seq - 1}" in str(problem)
    assert _only(verify_log(tmp_path)) == problem


def test_deleted_middle_segment_is_a_gap(tmp_path):
    locations = _three_segments(tmp_path)
    locations[3].segment.unlink()
    with pytest.raises(CorruptLogError) as caught:
        EventLog(tmp_path, readonly=True)
    problem = caught.value.problem
    assert (problem.kind, problem.segment, problem.offset) == ("gap", locations[6].segment, 0)
    assert (problem.first_seq, problem.end_seq) == (120, 240)
    assert "seq 120..239 missing after 00000000000000000000.seg" in str(problem)
    assert _only(verify_log(tmp_path)) == problem


def test_deleted_first_segment_is_a_gap(tmp_path):
    locations = _three_segments(tmp_path)
    locations[0].segment.unlink()
    with pytest.raises(CorruptLogError, match=r"seq 0..119 missing after the start of the log"):
        EventLog(tmp_path)


def test_misnamed_segment(tmp_path):
    locations = _three_segments(tmp_path)
    locations[3].segment.rename(tmp_path / "extra.seg")
    with pytest.raises(CorruptLogError, match="misnamed"):
        EventLog(tmp_path)


def _drop_record(locations, i: int) -> None:
    """Cut record ``i`` out of the middle of its segment."""
    path = locations[i].segment
    data = path.read_bytes()
    path.write_bytes(data[: locations[i].offset] + data[locations[i + 1].offset :])


def _move_record_to_the_end(locations, i: int) -> None:
    path = locations[i].segment
    data = path.read_bytes()
    lo, hi = locations[i].offset, locations[i + 1].offset
    path.write_bytes(data[:lo] + data[hi:] + data[lo:hi])


DAMAGE = {  # what is done to the three segments (records of 40 events, 1,624 bytes) -> every line
    "deleted middle segment": (lambda d, loc: loc[3].segment.unlink(), [
        "240.seg: offset 0: gap: segment starts at seq 240, expected seq 120: seq 120..239 missing "
        "after 00000000000000000000.seg (a segment deleted?) (seq 120..239)"]),
    "deleted first segment": (lambda d, loc: loc[0].segment.unlink(), [
        "120.seg: offset 0: gap: segment starts at seq 120, expected seq 0: seq 0..119 missing "
        "after the start of the log (a segment deleted?) (seq 0..119)"]),
    "segment renamed to no seq": (lambda d, loc: loc[3].segment.rename(d / "extra.seg"), [
        "extra.seg: offset 0: misnamed: segment name is not 20 digits of its first seq (expected "
        "e.g. 00000000000000000000.seg)",
        "240.seg: offset 0: gap: segment starts at seq 240, expected seq 120: seq 120..239 missing "
        "after 00000000000000000000.seg (a segment deleted?) (seq 120..239)"]),
    "segment renamed to a later seq": (lambda d, loc: loc[6].segment.rename(d / segment_name(250)), [
        "250.seg: offset 0: gap: segment starts at seq 250, expected seq 240: seq 240..249 missing "
        "after 00000000000000000120.seg (a segment deleted?) (seq 240..249)",
        "250.seg: offset 0: misnamed: segment named for seq 250 starts with seq 240..279 (seq 240..279)"]),
    "segment renamed to an earlier seq": (lambda d, loc: loc[6].segment.rename(d / segment_name(100)), [
        "100.seg: offset 0: duplicate: segment starts at seq 100, expected seq 120: seq repeats or "
        "goes backwards (seq 100..119)",
        "100.seg: offset 0: misnamed: segment named for seq 100 starts with seq 240..279 (seq 240..279)",
        "120.seg: offset 0: duplicate: segment starts at seq 120, expected seq 360: seq repeats or "
        "goes backwards (seq 120..359)"]),
    "record cut out": (lambda d, loc: _drop_record(loc, 7), [
        "240.seg: offset 1624: gap: record holds seq 320..359, expected seq 280 next: seq 280..319 "
        "missing (seq 320..359)"]),
    "record moved to the end": (lambda d, loc: _move_record_to_the_end(loc, 7), [
        "240.seg: offset 1624: gap: record holds seq 320..359, expected seq 280 next: seq 280..319 "
        "missing (seq 320..359)",
        "240.seg: offset 3248: duplicate: record holds seq 280..319, expected seq 360 next: seq "
        "repeats or goes backwards (seq 280..319)"]),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_each_kind_of_damage_is_one_exact_line(tmp_path, damage):
    """What, where (segment, offset), what was expected, and the seqs concerned: the whole line."""
    do, lines = DAMAGE[damage]
    do(tmp_path, _three_segments(tmp_path))
    problems = [re.sub("^0{17}", "", str(p).replace(f"{tmp_path}/", "")) for p in verify_log(tmp_path)]
    assert problems == lines
    assert not any(p.recoverable for p in verify_log(tmp_path))
    with pytest.raises(CorruptLogError) as caught:
        EventLog(tmp_path, readonly=True)
    assert str(caught.value.problem) == str(verify_log(tmp_path)[0])


def _lines(directory: Path) -> list[tuple[str, int | None, int | None]]:
    return [(re.sub("^0{17}", "", str(p).replace(f"{directory}/", "")), p.first_seq, p.end_seq)
            for p in verify_log(directory)]


def test_corruption_lines_say_where_the_next_whole_record_is(tmp_path):
    locations = _three_segments(tmp_path / "a")
    flip_byte(locations[1].segment, locations[1].offset + 200)  # payload: the record is skipped
    flip_byte(locations[4].segment, locations[4].offset + 2)  # magic: resynchronise on the next
    os.truncate(locations[8].segment, locations[8].offset + 50)  # and a torn tail
    assert _lines(tmp_path / "a") == [
        ("000.seg: offset 1624: corrupt: checksum mismatch (seq 40..79)", 40, 80),
        ("120.seg: offset 1624: corrupt: bad magic b'TK\\x0cG', expected b'TKLG'; bytes 1624..3247 "
         "unreadable, next whole record at offset 3248 (seq 160)", 160, None),
        ("240.seg: offset 3248: torn: 50 bytes, 40 events lost: short record (50 of 1624 bytes); "
         "cut when the log is next opened for writing (seq 320..359)", 320, 360),
    ]
    locations = _three_segments(tmp_path / "b")
    flip_byte(locations[5].segment, locations[5].offset + 200)  # the last record of a segment
    assert _lines(tmp_path / "b") == [
        ("120.seg: offset 3248: corrupt: checksum mismatch; the 1624 bytes from here to the end of "
         "the segment hold no whole record (seq 200..239)", 200, 240)]


def test_a_single_missing_seq_and_a_missing_seq_are_named(tmp_path):
    locations = write_log(tmp_path / "log", make_batches([1, 1, 1]))
    _drop_record(locations, 1)
    assert [str(p) for p in verify_log(tmp_path / "log")] == [
        f"{locations[0].segment}: offset 104: gap: record holds seq 2, expected seq 1 next: seq 1 "
        "missing (seq 2)"]
    with EventLog(tmp_path / "empty") as log, pytest.raises(IndexError) as empty:
        log.locate(3)
    assert str(empty.value) == "seq 3 is not in the log (it is empty)"
    with EventLog(tmp_path / "five") as log, pytest.raises(IndexError) as beyond:
        log.append(make_batch(0, 5))
        log.locate(7)
    assert str(beyond.value) == "seq 7 is not in the log (it holds seq 0..4)"


@pytest.mark.parametrize(("keep", "line"), [
    (50, "torn tail {verb}: 50 bytes at offset 3248, 40 events (seq 320..359) lost: short record "
         "(50 of 1624 bytes)"),
    (20, "torn tail {verb}: 20 bytes at offset 3248, an unknown number of events lost: short header "
         "(20 of 40 bytes)"),
    (40, "torn tail {verb}: 40 bytes at offset 3248, 40 events (seq 320..359) lost: short record "
         "(40 of 1624 bytes)"),  # the header whole, nothing after it
])
def test_a_torn_tail_is_reported_in_one_exact_line(tmp_path, keep, line):
    locations = _three_segments(tmp_path)
    last = locations[8]
    os.truncate(last.segment, last.offset + keep)
    with EventLog(tmp_path, readonly=True) as reader:
        assert str(reader.recovery) == f"{last.segment}: " + line.format(verb="ignored (read-only)")
        assert repr(reader) == f"EventLog('{tmp_path}', next_seq=320, read-only)"
    with EventLog(tmp_path) as log:
        assert str(log.recovery) == f"{last.segment}: " + line.format(verb="cut")


@settings(max_examples=40, deadline=None)
@given(garbage=st.binary(min_size=1, max_size=300).filter(
    lambda g: not RECORD_MAGIC.startswith(g[:4]) and any(g)))
def test_garbage_after_the_last_record_is_reported_not_cut(garbage):
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        locations = _three_segments(directory)
        last = locations[-1]
        size = last.segment.stat().st_size
        with open(last.segment, "ab") as f:
            f.write(garbage)
        with pytest.raises(CorruptLogError) as caught:
            EventLog(directory)
        problem = caught.value.problem
        assert (problem.kind, problem.segment, problem.offset) == ("garbage", last.segment, size)
        assert problem.first_seq == last.end_seq
        assert f"{len(garbage)} bytes from here to the end of the segment hold no whole record" \
            in str(problem)
        assert _only(verify_log(directory)) == problem
        assert last.segment.stat().st_size == size + len(garbage)  # nothing was cut


def test_a_log_damaged_after_it_was_opened_is_reported_when_read(tmp_path):
    locations = _three_segments(tmp_path)
    with EventLog(tmp_path, readonly=True) as log:
        data = locations[6].segment.read_bytes()  # swap the last segment's first two records
        first, second = data[: locations[7].offset], data[locations[7].offset : locations[8].offset]
        locations[6].segment.write_bytes(second + first + data[locations[8].offset :])
        with pytest.raises(CorruptLogError, match=r"offset 0: corrupt: record changed since the log "
                           r"was opened \(it now holds seq 280\.\.319\) \(seq 240\.\.279\)"):
            list(log.read(200))
        for where, detail in [(RECORD_HEADER_BYTES + 100, "checksum mismatch"),  # a payload byte
                              (2, "bad magic b'TK\\x0cG', expected b'TKLG'")]:  # the header's
            flip_byte(locations[4].segment, locations[4].offset + where)
            with pytest.raises(CorruptLogError) as caught:
                list(log.read(130))
            assert str(caught.value.problem) == \
                f"{locations[4].segment}: offset {locations[4].offset}: corrupt: {detail} (seq 160..199)"
            flip_byte(locations[4].segment, locations[4].offset + where)  # undone
        for damage in (lambda path: os.truncate(path, 100), Path.unlink):  # cut short, then gone
            damage(locations[3].segment)
            with pytest.raises(CorruptLogError) as caught:
                list(log.read(120))
            problem = caught.value.problem  # the whole line: what, where, why, which seqs
            assert (problem.kind, problem.segment, problem.offset, problem.first_seq, problem.end_seq) \
                == ("corrupt", locations[3].segment, 0, 120, 240)
            line = re.escape(f"{locations[3].segment}: offset 0: corrupt: cannot map the segment's 4872 "
                             "bytes (") + r".+\) \(seq 120\.\.239\)"
            assert re.fullmatch(line, str(problem))


def test_verify_reports_every_problem_not_just_the_first(tmp_path):
    locations = _three_segments(tmp_path)
    flip_byte(locations[1].segment, locations[1].offset + 200)
    flip_byte(locations[5].segment, locations[5].offset + 200)
    os.truncate(locations[8].segment, locations[8].offset + 50)  # and a torn tail
    problems = verify_log(tmp_path)
    assert [(p.kind, p.offset, p.first_seq) for p in problems] == [
        ("corrupt", locations[1].offset, 40),
        ("corrupt", locations[5].offset, 200),
        ("torn", locations[8].offset, 320),
    ]
    assert not problems[0].recoverable and problems[2].recoverable
    assert all("\n" not in str(p) for p in problems)


def test_a_frame_that_disagrees_with_its_record_header_is_corrupt(tmp_path):
    """A record whose checksums hold but whose frame is not its header's seqs (a writer bug)."""
    bad = make_batch(0, 5).to_frame()
    bad = bad[:16] + struct.pack("<q", 7) + bad[24:]  # the frame's own header says first seq 7
    head = eventlog._encode_header(0, 5, [bad], len(bad), bytes(eventlog._padding(len(bad))))
    (tmp_path / segment_name(0)).write_bytes(head + bad + bytes(eventlog._padding(len(bad))))
    problem = _only(verify_log(tmp_path))
    assert problem.kind == "corrupt" and "frame does not decode" in str(problem)
    with EventLog(tmp_path, readonly=True) as log, pytest.raises(CorruptLogError, match="frame"):
        list(log.read())


def test_a_frame_of_other_seqs_than_its_record_header_is_named_with_both(tmp_path):
    """The frame decodes (its own seqs are consistent) but holds seq 7..11 where the record's
    header says 0..4: the line names both."""
    frame = make_batch(7, 5).to_frame()
    pad = bytes(eventlog._padding(len(frame)))
    (tmp_path / segment_name(0)).write_bytes(eventlog._encode_header(0, 5, [frame], len(frame), pad)
                                             + frame + pad)
    assert [str(p) for p in verify_log(tmp_path)] == [
        f"{tmp_path / segment_name(0)}: offset 0: corrupt: frame does not decode: frame holds seq 7..11, "
        "record header says seq 0..4 (seq 0..4)"]


def _header(*, version=1, flags=0, payload_len=24 + 5 * 39, first_seq=0, count=5) -> bytes:
    """A record header with these fields and checksums that hold."""
    fields = eventlog._RECORD.pack(RECORD_MAGIC, version, flags, payload_len, first_seq, count, 0, 0)
    head = fields[: eventlog._CRC_FIELDS] + struct.pack("<I", 0)
    return head + struct.pack("<I", crc32c.crc32c(head))


@pytest.mark.parametrize(("fields", "reason"), [
    ({"version": 2}, "record version 2 flags 0 not supported (expected version 1)"),
    ({"flags": 1}, "record version 1 flags 1 not supported (expected version 1)"),
    ({"count": 0, "payload_len": 24}, "inconsistent header: 0 events in 24 payload bytes, first seq 0"),
    ({"first_seq": -1}, "inconsistent header: 5 events in 219 payload bytes, first seq -1"),
    ({"payload_len": 218}, "inconsistent header: 5 events in 218 payload bytes, first seq 0"),
])
def test_a_header_whose_checksum_holds_but_whose_fields_do_not_is_unreadable(fields, reason):
    assert eventlog._parse_header(_header(**fields), 0) == reason
    header = eventlog._parse_header(_header(), 0)
    assert (header.first_seq, header.count, header.payload_len) == (0, 5, 219)


# --- writes that fail, and the fsync policies -----------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 7])
def test_short_writes_are_completed(tmp_path, monkeypatch, chunk):
    real = os.pwritev

    def dribble(fd, buffers, offset):  # the kernel may write less than asked, down to one byte
        return real(fd, [memoryview(buffers[0])[:chunk]], offset)

    monkeypatch.setattr(os, "pwritev", dribble)
    write_log(tmp_path, make_batches([3, 4]))
    monkeypatch.setattr(os, "pwritev", real)
    assert read_all(tmp_path).to_frame() == OrderBatch.concat(make_batches([3, 4])).to_frame()


def test_a_write_that_makes_no_progress_fails_instead_of_spinning(tmp_path, monkeypatch):
    with EventLog(tmp_path) as log:
        log.append(make_batch(0, 10))
        size = log.segments()[-1].size
        monkeypatch.setattr(os, "pwritev", lambda fd, buffers, offset: 0)
        with pytest.raises(OSError, match=r"^write returned 0$"):
            log.append(make_batch(10, 10))
        monkeypatch.undo()
        assert log.next_seq == 10 and (tmp_path / segment_name(0)).stat().st_size == size


def test_a_failed_write_leaves_no_partial_record(tmp_path, monkeypatch):
    real = os.pwritev
    calls = 0

    def disk_full(fd, buffers, offset):
        nonlocal calls
        calls += 1
        if calls == 1:
            return real(fd, [memoryview(buffers[0])[:100]], offset)
        raise OSError(28, "No space left on device")

    with EventLog(tmp_path) as log:
        log.append(make_batch(0, 10))
        size = log.segments()[-1].size
        monkeypatch.setattr(os, "pwritev", disk_full)
        with pytest.raises(OSError, match="No space left"):
            log.append(make_batch(10, 10))
        monkeypatch.setattr(os, "pwritev", real)
        assert log.next_seq == 10 and (tmp_path / segment_name(0)).stat().st_size == size
        log.append(make_batch(10, 10))
    assert verify_log(tmp_path) == []
    assert read_all(tmp_path).to_frame() == OrderBatch.concat(make_batches([10, 10])).to_frame()


def _count_syncs(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = eventlog._fdatasync

    def counting(fd):
        calls.append(threading.current_thread().name)
        real(fd)

    monkeypatch.setattr(eventlog, "_fdatasync", counting)
    return calls


def test_fsync_every_syncs_each_append_never_syncs_never(tmp_path, monkeypatch):
    calls = _count_syncs(monkeypatch)
    with EventLog(tmp_path / "every", fsync="every") as log:
        for batch in make_batches([5, 5, 5]):
            log.append(batch)
        assert len(calls) == 3
    assert len(calls) == 3  # nothing left to sync on close
    calls.clear()
    with EventLog(tmp_path / "never", fsync="never", segment_bytes=200) as log:
        for batch in make_batches([5, 5, 5]):
            log.append(batch)
    assert calls == []


def test_fsync_interval_syncs_from_a_timer_when_appends_stop(tmp_path, monkeypatch):
    calls = _count_syncs(monkeypatch)
    delays: list[float] = []
    timers: list[threading.Timer] = []

    class PromptTimer(threading.Timer):  # fires at once: no waiting on the wall clock
        def __init__(self, interval, function):
            delays.append(interval)
            timers.append(self)
            super().__init__(0, function)

    monkeypatch.setattr(eventlog, "_Timer", PromptTimer)
    with EventLog(tmp_path, fsync="interval", fsync_interval=3600) as log:
        for i in range(3):
            log.append(make_batch(5 * i, 5))
            assert len(delays) == i + 1 and 0 < delays[i] <= 3600  # armed for the rest of it
            timers[i].join()
            assert len(calls) == i + 1  # the timer synced what the append left
        assert threading.current_thread().name not in calls
    assert len(calls) == 3  # nothing left to sync on close


def test_fsync_interval_syncs_on_close(tmp_path, monkeypatch):
    calls = _count_syncs(monkeypatch)
    monkeypatch.setattr(eventlog, "_Timer", lambda *args: _NeverTimer())
    with EventLog(tmp_path, fsync="interval", fsync_interval=3600) as log:
        log.append(make_batch(0, 5))
        assert calls == []  # within the interval: not yet
    assert len(calls) == 1


class _NeverTimer:
    daemon = False

    def start(self) -> None:
        pass

    def cancel(self) -> None:
        pass

    def join(self) -> None:
        pass


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(ValueError, match="fsync policy 'sometimes'"):
        EventLog(tmp_path, fsync="sometimes")
    with pytest.raises(ValueError, match="segment_bytes"):
        EventLog(tmp_path, segment_bytes=10)


# --- a real crash: SIGKILL a process that is appending --------------------------------------------

CHILD = """
import importlib.util, os, random, sys
spec = importlib.util.spec_from_file_location("test_eventlog", sys.argv[1])
helpers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(helpers)
from ticker.eventlog import EventLog
directory, seed, smallest = sys.argv[2], int(sys.argv[3]), int(sys.argv[5])
lockstep = sys.argv[4] == "lockstep"
sizes, chunks = random.Random(seed), random.Random(seed + 1)
write = os.pwritev

def chunked(fd, buffers, offset):  # a record in several write calls, each one reported
    view = memoryview(buffers[0])[: chunks.choice((7, 40, 4096, 65536, 300_000))]
    written = write(fd, [view], offset)
    print("w", flush=True)
    if lockstep:  # wait for the parent's go-ahead: it may kill us here instead
        sys.stdin.buffer.read(1)
    return written

os.pwritev = chunked
with EventLog(directory, fsync="every", segment_bytes=8 << 20) as log:
    while True:
        log.append(helpers.make_batch(log.next_seq, sizes.randint(smallest, 120_000)))
        print(log.next_seq, flush=True)  # acknowledged: append returned
"""


def _crash(directory: Path, seed: int, *, acks: int, writes: int, lockstep: bool, smallest: int):
    """SIGKILL an appending child after ``acks`` acknowledged appends and ``writes`` more write
    calls; reopen the log and check that no acknowledged append was lost. Returns the recovery."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(HERE), str(directory), str(seed),
         "lockstep" if lockstep else "free", str(smallest)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    acked: list[int] = []
    written = 0
    try:
        for line in child.stdout:
            if line != "w\n":
                acked.append(int(line))
                continue
            written += len(acked) >= acks
            if written >= writes:
                child.send_signal(signal.SIGKILL)  # between two write calls of a record
                break
            if lockstep:
                child.stdin.write("g")
                child.stdin.flush()
        else:
            pytest.fail(f"the appending child died: {child.stderr.read()}")
        # acks already sent; a line the kill cut short (no newline) was never acknowledged
        acked.extend(int(line) for line in child.stdout if line.endswith("\n") and line != "w\n")
    finally:
        child.kill()
        child.wait()
        for stream in (child.stdin, child.stdout, child.stderr):
            stream.close()
    assert child.returncode == -signal.SIGKILL

    last_ack = acked[-1] if acked else 0
    sizes = _sizes_for(seed, len(acked) + 1, smallest)
    expected = make_batches(sizes)
    with EventLog(directory) as log:
        # every acknowledged append survived; beyond it, at most the one that was in flight
        assert log.next_seq in (last_ack, last_ack + sizes[len(acked)])
        if log.recovery is not None:
            assert log.recovery.first_seq in (None, log.next_seq)  # what was cut was not acknowledged
            assert log.recovery.segment == log.segments()[-1].path
            assert log.recovery.offset == log.segments()[-1].size
        stored = frames(log.read())
        assert stored == frames(expected)[: len(stored)]
        assert sum(len(OrderBatch.from_frame(f)) for f in stored) == log.next_seq
        log.append(make_batch(log.next_seq, 10))  # and the log carries on
        recovery = log.recovery
    assert verify_log(directory) == []
    return recovery


def _sizes_for(seed: int, count: int, smallest: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(smallest, 120_000) for _ in range(count)]


def test_sigkill_in_the_middle_of_a_record_loses_no_acknowledged_batch(tmp_path, seed):
    """Killed between two write calls of one record (lockstep over pipes: always torn)."""
    moment = random.Random(seed + 2)
    # records of >= 50,000 events (1.95 MB) take more than 3 writes of <= 300 kB
    recovery = _crash(tmp_path, seed, acks=moment.randint(0, 3), writes=moment.randint(1, 3),
                      lockstep=True, smallest=50_000)
    assert recovery is not None and recovery.bytes_cut > 0


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(20))
def test_sigkill_at_a_random_moment_loses_no_acknowledged_batch(tmp_path, round_, seed):
    """Free-running child, killed as soon as the parent hears of its n-th write call (the
    printed seed repeats the draws; the kill's timing against the free-running child does not)."""
    seed += round_ * 3  # rounds draw apart under one TICKER_TEST_SEED (the child uses seed, seed + 1)
    moment = random.Random(seed + 2)
    _crash(tmp_path, seed, acks=moment.randint(0, 5), writes=moment.randint(1, 200),
           lockstep=False, smallest=1)


def test_columns_are_what_the_frame_holds():
    # the record-size arithmetic in these tests assumes 39 bytes an event, 24 a frame header
    assert sum(dt.itemsize for dt in COLUMNS.values()) == 39
    assert len(make_batch(0, 3).to_frame()) == 24 + 3 * 39


# --- stretches written elsewhere and adopted (a cluster's workers) ----------------------------------


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.suffix == ".seg"}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 50), min_size=2, max_size=12), data=st.data())
def test_stretches_adopted_in_order_give_the_straight_log(tmp_path_factory, sizes, data) -> None:
    """Invariant: a log cut at segment boundaries, each stretch written by its own EventLog from
    its start seq and adopted in seq order, is byte for byte the log written straight, and
    an unbroken prefix after every adoption."""
    root = tmp_path_factory.mktemp("adopt")
    batches = make_batches(sizes)
    segment_bytes = 2 * _record_bytes(50)
    write_log(root / "straight", batches, segment_bytes=segment_bytes)
    with EventLog(root / "straight", readonly=True) as straight:
        firsts = [s.first_seq for s in straight.segments()]
    cuts = sorted(data.draw(st.sets(st.sampled_from(firsts[1:]), max_size=4), label="cuts")
                  ) if len(firsts) > 1 else []
    bounds = [0, *cuts, sum(sizes)]
    whole = OrderBatch.concat(batches)
    with EventLog(root / "adopted", fsync="never", segment_bytes=segment_bytes) as log:
        for k, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            staged = root / f"staged-{k}"
            # the stretch cut into the same batches as the straight log's appends
            pieces = [b.slice(max(lo, b.first_seq) - b.first_seq, min(hi, b.end_seq) - b.first_seq)
                      for b in batches if b.first_seq < hi and b.end_seq > lo]
            write_log(staged, pieces, segment_bytes=segment_bytes, start_seq=lo)
            log.adopt(staged)
            assert log.next_seq == hi and not list(staged.glob("*.seg"))
            assert verify_log(root / "adopted") == []
        assert OrderBatch.concat(list(log.read())).to_frame() == whole.to_frame()
    assert _files(root / "adopted") == _files(root / "straight")


def test_a_stretch_that_does_not_continue_the_log_is_refused_and_nothing_moves(tmp_path) -> None:
    write_log(tmp_path / "log", make_batches([10]))
    write_log(tmp_path / "late", make_batches([5], first=12), start_seq=12)
    write_log(tmp_path / "early", make_batches([5], first=8), start_seq=8)
    with EventLog(tmp_path / "log", fsync="never") as log:
        for staged in ("late", "early"):
            with pytest.raises(CorruptLogError) as caught:
                log.adopt(tmp_path / staged)
            assert "expected seq 10" in str(caught.value)
            assert len(list((tmp_path / staged).glob("*.seg"))) == 1
        assert log.next_seq == 10
        log.append(make_batch(10, 3))  # the log goes on as before
    assert verify_log(tmp_path / "log") == []


def _index(log: EventLog, locations) -> tuple[list, list]:
    """A log's segments and where it locates each record, with file names for paths."""
    segments = [(s.path.name, s.first_seq, s.end_seq, s.records, s.size) for s in log.segments()]
    located = [log.locate(where.first_seq) for where in locations]
    return segments, [(r.segment.name, r.offset, r.first_seq, r.count) for r in located]


def test_adopted_segments_are_indexed_as_if_written_here_and_appends_go_on(tmp_path) -> None:
    """After an append left a segment open, adopting the rest gives the straight log's segments
    and record index; the next append starts a segment of its own, and everything reads back."""
    batches = make_batches([40] * 9)
    segment_bytes = 3 * _record_bytes(40)
    straight = write_log(tmp_path / "straight", batches, segment_bytes=segment_bytes)
    write_log(tmp_path / "staged", batches[3:], segment_bytes=segment_bytes, start_seq=120)
    with EventLog(tmp_path / "straight", readonly=True) as reference:
        expected = _index(reference, straight)
    with EventLog(tmp_path / "log", fsync="never", segment_bytes=segment_bytes) as log:
        for batch in batches[:3]:
            log.append(batch)
        log.adopt(tmp_path / "staged")
        assert _index(log, straight) == expected
        log.append(make_batch(360, 5))
        assert log.locate(360).segment.name == segment_name(360)
    assert verify_log(tmp_path / "log") == []
    whole = OrderBatch.concat([*batches, make_batch(360, 5)])
    assert read_all(tmp_path / "log").to_frame() == whole.to_frame()


def test_adopt_syncs_the_segment_it_closes_and_the_directory_per_segment_unless_fsync_is_never(
        tmp_path, monkeypatch) -> None:
    synced = _fd_paths(monkeypatch)
    directories: list[Path] = []
    monkeypatch.setattr(eventlog, "sync_directory", directories.append)
    monkeypatch.setattr(eventlog, "_Timer", lambda *args: _NeverTimer())  # "interval": nothing synced yet
    segment_bytes = 2 * _record_bytes(5)
    for policy in ("interval", "never"):
        write_log(tmp_path / f"staged-{policy}", make_batches([5] * 4, first=5), start_seq=5,
                  segment_bytes=segment_bytes)  # segments from seq 5 and 15
        with EventLog(tmp_path / policy, fsync=policy, segment_bytes=segment_bytes) as log:
            log.append(make_batch(0, 5))
            synced.clear()
            directories.clear()
            log.adopt(tmp_path / f"staged-{policy}")
            if policy == "interval":
                assert synced == [segment_name(0)]
                assert directories == [tmp_path / policy] * 2
            else:
                assert synced == [] and directories == []


def test_a_torn_staged_stretch_is_refused_and_left_as_it_was(tmp_path) -> None:
    write_log(tmp_path / "log", make_batches([10]))
    last = write_log(tmp_path / "staged", make_batches([5, 5], first=10), start_seq=10)[-1]
    os.truncate(last.segment, last.offset + 50)
    before = _files(tmp_path / "staged")
    with EventLog(tmp_path / "log", fsync="never") as log:
        with pytest.raises(CorruptLogError) as caught:
            log.adopt(tmp_path / "staged")
        assert str(caught.value.problem) == \
            f"{last.segment}: offset {last.offset}: torn: a staged segment is torn"
        assert log.next_seq == 10
    assert _files(tmp_path / "staged") == before


def test_nothing_is_adopted_into_a_read_only_or_closed_log(tmp_path) -> None:
    write_log(tmp_path / "log", make_batches([10]))
    write_log(tmp_path / "staged", make_batches([5], first=10), start_seq=10)
    with EventLog(tmp_path / "log", readonly=True) as log, \
            pytest.raises(ValueError, match=r"^adopt into the event log .*/log, opened read-only$"):
        log.adopt(tmp_path / "staged")
    with pytest.raises(ValueError, match="closed"):
        log.adopt(tmp_path / "staged")
    assert len(list((tmp_path / "staged").glob("*.seg"))) == 1


RECORD = 2_555_968  # bytes of a whole record of LOG_RECORD_EVENTS (65,536) events: 40 + 24 + 39 x 65,536


@given(records=st.integers(0, 64), rest=st.integers(0, RECORD - 1))
def test_segment_events_counts_the_whole_records_a_segment_holds(records, rest) -> None:
    assert eventlog.LOG_RECORD_EVENTS == 65_536
    assert eventlog.segment_events(records * RECORD + rest) == max(1, records) * 65_536


# --- what the mutation run (docs/mutation.md) found untested ---------------------------------------


def test_locate_names_the_record_append_wrote_each_seq_in(tmp_path):
    locations = _three_segments(tmp_path)
    with EventLog(tmp_path, readonly=True) as log:
        for where in locations:
            for seq in (where.first_seq, where.end_seq - 1):
                assert log.locate(seq) == where


def test_reading_from_a_later_segment_starts_there(tmp_path):
    locations = _three_segments(tmp_path)  # segments hold seq 0..119, 120..239, 240..359
    whole = OrderBatch.concat(make_batches([40] * 9))
    with EventLog(tmp_path, readonly=True) as log:
        for start, end in [(130, 150), (250, 360), (119, 241), (200, 280), (121, 160)]:
            got = OrderBatch.concat(list(log.read(start, end)))
            assert got.to_frame() == whole.slice(start, end).to_frame(), (start, end)
    assert locations[3].first_seq == 120


def test_resynchronising_skips_every_damaged_record_to_the_next_whole_one(tmp_path):
    """Record 1's header and record 2's header (or payload) are damaged: the scan resumes at
    record 3, the next record whose header and payload both check out, and reports one problem."""
    for damage_2 in (RECORD_HEADER_BYTES - 2, RECORD_HEADER_BYTES + 100):  # header crc, payload
        directory = tmp_path / str(damage_2)
        locations = write_log(directory, make_batches([40] * 5))
        flip_byte(locations[1].segment, locations[1].offset + RECORD_HEADER_BYTES - 2)
        flip_byte(locations[2].segment, locations[2].offset + damage_2)
        problem = _only(verify_log(directory))
        assert str(problem) == (
            f"{locations[1].segment}: offset {locations[1].offset}: corrupt: header checksum mismatch; "
            f"bytes {locations[1].offset}..{locations[3].offset - 1} unreadable, next whole record "
            f"at offset {locations[3].offset} (seq 40)")


def test_damage_at_the_start_of_a_segment_resynchronises_just_past_it(tmp_path):
    """The search for the next whole record starts one byte past the damage, also at offset 0:
    the segment's later damage is found too."""
    locations = _three_segments(tmp_path)
    flip_byte(locations[3].segment, locations[3].offset + 200)
    flip_byte(locations[5].segment, locations[5].offset + 200)
    assert _lines(tmp_path) == [
        ("120.seg: offset 0: corrupt: checksum mismatch (seq 120..159)", 120, 160),
        ("120.seg: offset 3248: corrupt: checksum mismatch; the 1624 bytes from here to the end of "
         "the segment hold no whole record (seq 200..239)", 200, 240)]


@settings(max_examples=30, deadline=None)
@example(record=0, garbage=b"\x01")
@example(record=4, garbage=b"\x01")
@given(record=st.integers(0, 8),
       garbage=st.binary(min_size=1, max_size=60).filter(lambda b: RECORD_MAGIC[:1] not in b))
def test_bytes_inserted_before_a_record_are_named_exactly_and_the_scan_goes_on(record, garbage):
    """Invariant: k stray bytes in front of any record are one problem naming exactly those k
    bytes and the record after them; that record and the rest then check out."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        located = _three_segments(directory)[record]
        data = located.segment.read_bytes()
        located.segment.write_bytes(data[: located.offset] + garbage + data[located.offset :])
        off, k = located.offset, len(garbage)
        problem = _only(verify_log(directory))
        assert (problem.kind, problem.segment, problem.offset) == ("corrupt", located.segment, off)
        assert problem.detail.endswith(
            f"; bytes {off}..{off + k - 1} unreadable, next whole record at offset {off + k}")
        assert (problem.first_seq, problem.end_seq) == (located.first_seq, None)


def test_after_a_damaged_record_the_next_one_must_continue_its_seqs(tmp_path):
    locations = _three_segments(tmp_path)
    flip_byte(locations[3].segment, locations[3].offset + 200)  # record 3 fails its checksum
    _drop_record(locations, 4)  # and record 5 follows it directly
    assert _lines(tmp_path) == [
        ("120.seg: offset 0: corrupt: checksum mismatch (seq 120..159)", 120, 160),
        ("120.seg: offset 1624: gap: record holds seq 200..239, expected seq 160 next: seq 160..199 "
         "missing (seq 200..239)", 200, 240)]


def test_a_damaged_last_record_still_says_where_the_next_segment_must_start(tmp_path):
    locations = _three_segments(tmp_path)
    flip_byte(locations[5].segment, locations[5].offset + 200)
    locations[6].segment.rename(tmp_path / segment_name(250))
    assert [line for line, _, _ in _lines(tmp_path)] == [
        "120.seg: offset 3248: corrupt: checksum mismatch; the 1624 bytes from here to the end of "
        "the segment hold no whole record (seq 200..239)",
        "250.seg: offset 0: gap: segment starts at seq 250, expected seq 240: seq 240..249 missing "
        "after 00000000000000000120.seg (a segment deleted?) (seq 240..249)",
        "250.seg: offset 0: misnamed: segment named for seq 250 starts with seq 240..279 (seq 240..279)"]


def test_after_a_damaged_record_and_unreadable_bytes_the_next_whole_record_re_anchors(tmp_path):
    """Bytes lost between a damaged record and the next whole one hide which seqs they held: the
    scan takes the seqs on from that record instead of reporting a gap it cannot know."""
    locations = _three_segments(tmp_path)
    flip_byte(locations[3].segment, locations[3].offset + 200)  # payload: the header still reads
    flip_byte(locations[4].segment, locations[4].offset + 2)  # magic
    assert _lines(tmp_path) == [
        ("120.seg: offset 0: corrupt: checksum mismatch; bytes 0..3247 unreadable, next whole "
         "record at offset 3248 (seq 120..159)", 120, 160)]


def test_a_readable_open_ends_the_log_before_its_first_damage(tmp_path):
    locations = write_log(tmp_path, make_batches([40] * 5))
    flip_byte(locations[2].segment, locations[2].offset + 200)
    with EventLog(tmp_path, readonly=True, check="readable") as log:
        assert log.next_seq == 80
        assert (log.damage.kind, log.damage.offset) == ("corrupt", locations[2].offset)
        assert frames(log.read()) == frames(make_batches([40, 40]))


@pytest.mark.parametrize(("damage", "kind", "line"), [
    ("rename", "misnamed", "offset 0: misnamed: segment name is not 20 digits of its first seq"),
    ("digits", "misnamed", "offset 0: misnamed: segment name is not 20 digits of its first seq"),
    ("swap", "misnamed", "offset 0: misnamed: segment named for seq 120 starts with seq 240..279"),
    ("delete", "gap", "offset 0: gap: segment starts at seq 240, expected seq 120: seq 120..239 "
                      "missing after 00000000000000000000.seg (a segment deleted?)"),
])
def test_a_readable_open_ends_the_log_before_a_misnamed_or_missing_segment(tmp_path, damage, kind, line):
    """A read-only ``check="readable"`` open serves what comes before the first segment it cannot
    place, and names that segment as the log's damage; a writable open refuses the log whole."""
    locations = _three_segments(tmp_path)
    middle, last = locations[3].segment, locations[6].segment
    if damage in ("rename", "digits"):  # the last segment: misnamed ones come after the numbered
        # "-old.seg" sorts before the numbered names, "240.seg" after them: listed last either way
        placed, served = tmp_path / ("-old.seg" if damage == "rename" else "240.seg"), 6
        last.rename(placed)
    elif damage == "swap":  # the last segment under the middle one's name
        middle.unlink()
        last.rename(middle)
        placed, served = middle, 3
    else:
        middle.unlink()
        placed, served = last, 3
    with EventLog(tmp_path, readonly=True, check="readable") as log:
        assert log.next_seq == 40 * served
        assert (log.damage.kind, log.damage.segment) == (kind, placed)
        assert str(log.damage).startswith(f"{placed}: {line}")
        assert frames(log.read()) == frames(make_batches([40] * served))
    with pytest.raises(CorruptLogError, match=kind):
        EventLog(tmp_path)


def test_a_record_magic_in_the_last_bytes_of_an_earlier_segment_is_garbage_not_a_crash(tmp_path):
    locations = _three_segments(tmp_path)
    first = locations[0].segment
    size = first.stat().st_size
    with open(first, "ab") as f:
        f.write(bytes(range(1, 5)) + RECORD_MAGIC + bytes(range(1, 9)))  # a record start? too short for one
    problem = _only(verify_log(tmp_path))
    assert (problem.kind, problem.segment, problem.offset) == ("garbage", first, size)
    assert problem.detail == ("16 bytes, too short for a record header; the 16 bytes from here to the "
                              "end of the segment hold no whole record")


def test_repr_says_where_how_far_and_how_open(tmp_path):
    with EventLog(tmp_path, fsync="never") as log:
        log.append(make_batch(0, 3))
        assert repr(log) == f"EventLog({str(tmp_path)!r}, next_seq=3, fsync=never)"
    assert repr(log) == f"EventLog({str(tmp_path)!r}, next_seq=3, closed)"
    with EventLog(tmp_path, readonly=True) as reader:
        assert repr(reader) == f"EventLog({str(tmp_path)!r}, next_seq=3, read-only)"


def test_verify_on_an_open_log_is_verify_log(tmp_path):
    locations = _three_segments(tmp_path)
    with EventLog(tmp_path, readonly=True) as log:
        assert log.verify() == []
        flip_byte(locations[4].segment, locations[4].offset + 300)
        assert log.verify() == verify_log(tmp_path) != []


def _fd_paths(monkeypatch) -> list[str]:
    """Each ``_fdatasync``, as the name of the file it synced."""
    synced: list[str] = []
    real = eventlog._fdatasync

    def recording(fd):
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")).name)
        real(fd)

    monkeypatch.setattr(eventlog, "_fdatasync", recording)
    return synced


def test_sync_flushes_what_was_appended_once_whatever_the_policy(tmp_path, monkeypatch):
    synced = _fd_paths(monkeypatch)
    with EventLog(tmp_path, fsync="never") as log:
        log.sync()
        assert synced == []  # nothing appended: nothing to sync
        log.append(make_batch(0, 5))
        log.sync()
        log.sync()
        assert synced == [segment_name(0)]


def test_a_cut_torn_tail_is_synced_unless_fsync_is_never(tmp_path, monkeypatch):
    synced = _fd_paths(monkeypatch)
    for policy, expected in [("never", []), ("every", [segment_name(0)]), ("interval", [segment_name(0)])]:
        directory = tmp_path / policy
        locations = write_log(directory, make_batches([10, 20]))
        os.truncate(locations[-1].segment, locations[-1].offset + 50)
        synced.clear()
        log = EventLog(directory, fsync=policy)
        assert log.recovery is not None and log.recovery.truncated
        assert synced == expected, policy  # the cut itself, before anything is appended
        log.close()


def test_a_roll_syncs_the_segment_it_closes_and_the_directory_unless_fsync_is_never(tmp_path, monkeypatch):
    synced = _fd_paths(monkeypatch)
    directories: list[Path] = []
    monkeypatch.setattr(eventlog, "sync_directory", directories.append)
    monkeypatch.setattr(eventlog, "_Timer", lambda *args: _NeverTimer())  # "interval": only rolls sync
    size = _record_bytes(5)
    for policy in ("interval", "never"):
        synced.clear()
        directories.clear()
        with EventLog(tmp_path / policy, fsync=policy, segment_bytes=2 * size) as log:
            for batch in make_batches([5] * 5):  # segments from seq 0, 10, 20
                log.append(batch)
            if policy == "interval":
                assert synced == [segment_name(0), segment_name(10)]
                assert directories == [tmp_path / policy] * 3
            else:
                assert synced == [] and directories == []


def _held_timers(monkeypatch) -> list:
    """The functions the log's fsync timers would call, held for the test to fire."""
    timers: list = []
    monkeypatch.setattr(eventlog, "_Timer", lambda _interval, call: timers.append(call) or _NeverTimer())
    return timers


def test_a_timer_sync_after_everything_was_synced_does_nothing(tmp_path, monkeypatch):
    synced = _fd_paths(monkeypatch)
    timers = _held_timers(monkeypatch)
    with EventLog(tmp_path, fsync="interval", fsync_interval=3600) as log:
        log.append(make_batch(0, 5))
        log.sync()
        assert synced == [segment_name(0)]
        timers[0]()  # the timer fires after an explicit sync: nothing left to sync
        assert synced == [segment_name(0)]


def test_a_failed_timer_sync_is_raised_by_the_next_append_not_lost_in_the_timer(tmp_path, monkeypatch):
    def failing(fd):
        raise OSError(5, "Input/output error")

    timers = _held_timers(monkeypatch)
    log = EventLog(tmp_path, fsync="interval", fsync_interval=3600)
    log.append(make_batch(0, 5))
    monkeypatch.setattr(eventlog, "_fdatasync", failing)
    timers[0]()  # returns: the failure is kept for the writer, not raised in the timer's thread
    with pytest.raises(OSError, match=r"unusable after a failed write or fsync: .*Input/output error"):
        log.append(make_batch(5, 5))
    with pytest.raises(OSError, match="a write or fsync failed"):
        log.close()


def test_a_write_that_fails_and_cannot_be_cut_leaves_the_log_unusable(tmp_path, monkeypatch):
    real = os.pwritev

    def half_then_fail(fd, buffers, offset):
        real(fd, [memoryview(buffers[0])[:20]], offset)
        raise OSError(28, "No space left on device")

    def cannot_cut(fd, length):
        raise OSError(5, "Input/output error")

    log = EventLog(tmp_path, fsync="never")
    log.append(make_batch(0, 5))
    monkeypatch.setattr(os, "pwritev", half_then_fail)
    monkeypatch.setattr(os, "ftruncate", cannot_cut)
    with pytest.raises(OSError, match="No space left"):
        log.append(make_batch(5, 5))
    monkeypatch.setattr(os, "pwritev", real)
    with pytest.raises(OSError, match="unusable after a failed write"):  # never after the half record
        log.append(make_batch(5, 5))
    with pytest.raises(OSError, match="a write or fsync failed"):
        log.close()


# --- the pipeline's writer thread ------------------------------------------------------------------


def test_the_log_writer_cuts_records_on_multiples_of_the_record_size_whatever_the_batches(
        tmp_path, monkeypatch):
    monkeypatch.setattr(eventlog, "LOG_RECORD_EVENTS", 8)
    sizes = [3, 1, 12, 8, 0, 7, 2]  # 33 events: records 0..7, 8..15, 16..23, 24..31, 32
    batches = make_batches(sizes)
    writer = eventlog.LogWriter(EventLog(tmp_path, fsync="never"))
    assert writer.recovery is None
    for batch in batches:
        writer.append(batch)
    writer.flush()
    assert writer.next_seq == 33
    assert OrderBatch.concat(list(writer.log.read(30))).to_frame() == \
        OrderBatch.concat(batches).slice(30, 33).to_frame()
    writer.close()
    with EventLog(tmp_path, readonly=True) as log:
        assert [(r.first_seq, r.count) for r in map(log.locate, (0, 8, 16, 24, 32))] == \
            [(0, 8), (8, 8), (16, 8), (24, 8), (32, 1)]
    assert read_all(tmp_path).to_frame() == OrderBatch.concat(batches).to_frame()


def test_the_log_writer_raises_a_failed_write_on_its_next_call_and_still_closes_the_log(
        tmp_path, monkeypatch):
    monkeypatch.setattr(eventlog, "LOG_RECORD_EVENTS", 4)
    log = EventLog(tmp_path, fsync="never")
    real = log.append
    calls = 0

    def second_fails(batch):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(28, "No space left on device")
        return real(batch)

    monkeypatch.setattr(log, "append", second_fails)
    writer = eventlog.LogWriter(log)
    writer.append(make_batch(0, 12))  # three records handed over; the second fails
    with pytest.raises(OSError, match="No space left"):
        writer.flush()
    with pytest.raises(OSError, match="No space left"):
        writer.append(make_batch(12, 1))
    with pytest.raises(OSError, match="No space left"):
        writer.close()
    assert calls == 2  # nothing was written after the failure
    assert log._closed and read_all(tmp_path).to_frame() == make_batch(0, 12).slice(0, 4).to_frame()


def test_the_log_writer_syncs_on_request(tmp_path, monkeypatch):
    synced = _fd_paths(monkeypatch)
    writer = eventlog.LogWriter(EventLog(tmp_path, fsync="never"))
    writer.append(make_batch(0, 5))
    assert synced == []
    writer.sync()  # the partial record written, then synced
    assert synced == [segment_name(0)] and writer.next_seq == 5
    writer.close()


def test_a_last_record_with_an_unreadable_header_is_a_torn_tail(tmp_path):
    locations = _three_segments(tmp_path)
    last = locations[8]
    flip_byte(last.segment, last.offset + 8)  # its payload length: the header checksum fails
    assert [str(p) for p in verify_log(tmp_path)] == [
        f"{last.segment}: offset 3248: torn: 1624 bytes, events lost unknown: unreadable header (header "
        "checksum mismatch); cut when the log is next opened for writing (seq 320)"]
    with EventLog(tmp_path) as log:
        assert str(log.recovery) == (
            f"{last.segment}: torn tail cut: 1624 bytes at offset 3248, an unknown number of events lost: "
            "unreadable header (header checksum mismatch)")
        assert log.next_seq == 320
