"""The event log: an append-only, segmented, checksummed store of :class:`OrderBatch` records.

The log is the truth of a run (``DESIGN.md``, invariant 3): state is a fold over it. It lives in a
directory (the run directory's ``log/``) as segment files named by the first sequence number they
hold, zero-padded so names sort in seq order (``00000000000001048576.seg``); segments written
elsewhere (a cluster's workers) join the log whole, in seq order (:meth:`EventLog.adopt`). A segment is closed
before a record would take it past ``segment_bytes`` (default 64 MiB); a lone record larger than
that gets a segment of its own. The log always starts at seq 0 and its seqs are contiguous.

Record format (little-endian; every record starts at a multiple of 8 bytes)::

    offset size field
    0      4    magic         b"TKLG"
    4      2    version       1
    6      2    flags         0 (reserved)
    8      8    payload_len   bytes of payload, = 24 + 39 × count (the frame)
    16     8    first_seq     seq of the record's first event
    24     8    count         events in the record (≥ 1)
    32     4    crc           CRC-32C of bytes [0, 32), then payload and padding
    36     4    header_crc    CRC-32C of bytes [0, 36)
    40     …    payload       OrderBatch.to_frame(), exactly
    …      0–7  padding       zero bytes, up to the next multiple of 8

``header_crc`` makes the length trustworthy before it is used: a flipped length in the middle of a
segment is reported as a corrupt header, never mistaken for a record that runs off the end of
the file (which would look like a torn tail and be cut). The 40-byte header and the padding keep
the frame's first columns 8-byte aligned in a memory map.

**Durability** (``fsync=``): an append is one ``pwritev`` of the whole record; what a crash of the
*machine* can lose depends on the policy (a crash of the *process* loses only a record being
written, since written bytes are in the page cache):

* ``"every"`` — ``fdatasync`` before ``append`` returns: a crash loses no acknowledged append,
  at the cost of one device flush per batch (milliseconds on SSDs: use big batches).
* ``"interval"`` — ``fdatasync`` at most every ``fsync_interval`` seconds (default 1 s), from the
  appending thread when an interval has passed, else from a timer thread, and on :meth:`close`:
  a crash loses at most the appends of the last interval.
* ``"never"`` — the OS writes back when it likes (typically within 30 s): a crash loses whatever
  it had not yet written, possibly including tails of earlier segments (found on open or by
  :func:`verify_log`, never misread).

A new segment is synced (and its directory entry) before the next one is created unless the
policy is ``"never"``.

**Recovery** on open: a torn final record (crash mid-write) in the *last* segment is cut off and
reported in :attr:`EventLog.recovery`. The tail is torn when, from some record boundary to the end
of the file, there is no whole record that passes its checksum and the bytes begin as an append
would (a prefix of the magic, a record running past the end of the file, the last record with a
bad checksum) or are all zeros (a file system that extended the file but never wrote the data).
Anything else — a bad record with good records after it, a record in an earlier segment, bytes
that are not a record, a seq gap (a missing segment), a seq that repeats or goes backwards, a
segment whose name disagrees with its first record — raises :class:`CorruptLogError` naming the
segment, the byte offset and the seqs concerned. Nothing is skipped silently.

**Costs.** ``append``: one copy into the frame, CRC-32C (hardware, ~10 GB/s), one write syscall,
plus the fsync policy. Opening: reads every record *header* (O(records) small reads, no payload)
and checksums the whole last segment (≤ ``segment_bytes``); ``check="full"`` checksums every
record. ``read``: per record, one CRC-32C and a zero-copy decode of a memory-mapped segment;
throughput is bounded by memory bandwidth (see ``benchmarks/bench_eventlog.py``). The in-memory
index costs 16 bytes per record (a 2.3-billion-event festival in 1-million-event batches: 37 KB).
"""

from __future__ import annotations

import bisect
import contextlib
import mmap
import os
import queue
import struct
import threading
import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import crc32c
import numpy as np

from ticker.errors import TickerError
from ticker.events import EVENT_BYTES, FRAME_HEADER_BYTES, FrameError, OrderBatch, rebatch

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_SEGMENT_BYTES",
    "RECORD_HEADER_BYTES",
    "RECORD_MAGIC",
    "CorruptLogError",
    "EventLog",
    "FsyncPolicy",
    "LogLockedError",
    "LogProblem",
    "RecordLocation",
    "Recovery",
    "SegmentInfo",
    "SequenceError",
    "segment_events",
    "segment_name",
    "sync_directory",
    "verify_log",
]

RECORD_MAGIC = b"TKLG"
RECORD_VERSION = 1
_RECORD = struct.Struct("<4sHHQqQII")
RECORD_HEADER_BYTES = _RECORD.size  # 40
_CRC_FIELDS = 32  # header bytes covered by ``crc`` (all fields before it)
_HEADER_CRC_FIELDS = 36  # header bytes covered by ``header_crc``
_ALIGN = 8
DEFAULT_SEGMENT_BYTES = 64 << 20
SEGMENT_SUFFIX = ".seg"
_SEQ_DIGITS = 20
LOCK_NAME = "LOCK"

FsyncPolicy = Literal["every", "interval", "never"]
_POLICIES = ("every", "interval", "never")
_fdatasync = getattr(os, "fdatasync", os.fsync)
_Timer = threading.Timer
#: a segment's bytes as read: a read-only memory map (``b""`` for an empty file)
_Bytes = bytes | mmap.mmap


class SequenceError(TickerError, ValueError):
    """An append whose seqs do not continue the log exactly; nothing was written."""


class CorruptLogError(TickerError):
    """The log on disk is damaged somewhere a crash cannot explain; see :attr:`problem`."""

    def __init__(self, problem: LogProblem):
        super().__init__(str(problem))
        self.problem = problem


class LogLockedError(TickerError, RuntimeError):
    """Another :class:`EventLog` (in this or another process) has the log open for writing."""


def segment_name(first_seq: int) -> str:
    """The file name of the segment whose first record starts at ``first_seq``."""
    return f"{first_seq:0{_SEQ_DIGITS}d}{SEGMENT_SUFFIX}"


def _seqs(first: int | None, end: int | None) -> str:
    if first is None:
        return ""
    if end is None:
        return f"seq {first}"
    return f"seq {first}" if end == first + 1 else f"seq {first}..{end - 1}"


@dataclass(frozen=True, slots=True)
class LogProblem:
    """One thing wrong with a log, precise enough to find it: ``str()`` is one line.

    ``kind`` is one of ``torn`` (a torn tail: recoverable, cut on the next open for writing),
    ``corrupt`` (a record or header fails its checksum or does not decode), ``garbage`` (bytes
    that are not a record), ``gap`` (seqs missing, e.g. a deleted segment), ``duplicate`` (seqs
    repeat or go backwards), ``misnamed`` (a segment's name is not its first seq).
    ``first_seq``/``end_seq`` are the seqs concerned (``end_seq`` exclusive), when known.
    """

    kind: str
    segment: Path
    offset: int
    detail: str
    first_seq: int | None = None
    end_seq: int | None = None

    @property
    def recoverable(self) -> bool:
        return self.kind == "torn"

    def __str__(self) -> str:
        seqs = _seqs(self.first_seq, self.end_seq)
        where = f"{self.segment}: offset {self.offset}"
        return f"{where}: {self.kind}: {self.detail}" + (f" ({seqs})" if seqs else "")


@dataclass(frozen=True, slots=True)
class Recovery:
    """What opening the log cut off its last segment: a torn final record.

    ``events_lost`` and ``first_seq`` are ``None`` when the torn record's header is unreadable
    (its seqs are then ``first_seq``-less: they start at the log's new ``next_seq``).
    """

    segment: Path
    offset: int
    bytes_cut: int
    events_lost: int | None
    first_seq: int | None
    reason: str
    truncated: bool

    def __str__(self) -> str:
        if self.events_lost is None or self.first_seq is None:
            lost = "an unknown number of events"
        else:
            lost = f"{self.events_lost} events ({_seqs(self.first_seq, self.first_seq + self.events_lost)})"
        verb = "cut" if self.truncated else "ignored (read-only)"
        return (f"{self.segment}: torn tail {verb}: {self.bytes_cut} bytes at offset {self.offset}, "
                f"{lost} lost: {self.reason}")


@dataclass(frozen=True, slots=True)
class RecordLocation:
    """Where one record is: its segment file, byte offset, and seqs ``[first_seq, first_seq + count)``."""

    segment: Path
    offset: int
    first_seq: int
    count: int

    @property
    def end_seq(self) -> int:
        return self.first_seq + self.count


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    path: Path
    first_seq: int
    end_seq: int
    records: int
    size: int


class _Segment:
    """One segment's index: record offsets and first seqs (``array('q')``: 16 bytes a record)."""

    __slots__ = ("end_seq", "first_seq", "offsets", "path", "seqs", "size")

    def __init__(self, path: Path, first_seq: int):
        self.path = path
        self.first_seq = first_seq
        self.end_seq = first_seq
        self.size = 0
        self.offsets = array("q")
        self.seqs = array("q")

    def add(self, offset: int, first_seq: int, count: int, length: int) -> None:
        self.offsets.append(offset)
        self.seqs.append(first_seq)
        self.end_seq = first_seq + count
        self.size = offset + length


# --- record encoding and scanning --------------------------------------------------------------


def _padding(payload_len: int) -> int:
    return -(RECORD_HEADER_BYTES + payload_len) % _ALIGN


def _encode_header(first_seq: int, count: int, payload: list[bytes | memoryview], size: int,
                   pad: bytes) -> bytes:
    fields = _RECORD.pack(RECORD_MAGIC, RECORD_VERSION, 0, size, first_seq, count, 0, 0)
    crc = crc32c.crc32c(fields[:_CRC_FIELDS])
    for part in payload:
        crc = crc32c.crc32c(part, crc)
    crc = crc32c.crc32c(pad, crc)
    head = fields[:_CRC_FIELDS] + struct.pack("<I", crc)
    return head + struct.pack("<I", crc32c.crc32c(head))


@dataclass(frozen=True, slots=True)
class _Header:
    payload_len: int
    first_seq: int
    count: int
    crc: int

    @property
    def length(self) -> int:
        return RECORD_HEADER_BYTES + self.payload_len + _padding(self.payload_len)

    @property
    def end_seq(self) -> int:
        return self.first_seq + self.count


def _parse_header(buf: _Bytes, off: int) -> _Header | str:
    """The header at ``off`` (``buf`` holds at least 40 bytes there), or why it is unreadable."""
    magic, version, flags, payload_len, first_seq, count, crc, header_crc = _RECORD.unpack_from(buf, off)
    if magic != RECORD_MAGIC:
        return f"bad magic {bytes(magic)!r}, expected {RECORD_MAGIC!r}"
    if crc32c.crc32c(memoryview(buf)[off : off + _HEADER_CRC_FIELDS]) != header_crc:
        return "header checksum mismatch"
    if version != RECORD_VERSION or flags != 0:
        return f"record version {version} flags {flags} not supported (expected version 1)"
    if count < 1 or first_seq < 0 or payload_len != FRAME_HEADER_BYTES + count * EVENT_BYTES:
        return f"inconsistent header: {count} events in {payload_len} payload bytes, first seq {first_seq}"
    return _Header(payload_len, first_seq, count, crc)


def _payload_ok(buf: _Bytes, off: int, header: _Header) -> bool:
    view = memoryview(buf)
    crc = crc32c.crc32c(view[off : off + _CRC_FIELDS])
    crc = crc32c.crc32c(view[off + RECORD_HEADER_BYTES : off + header.length], crc)
    return crc == header.crc


def _decode(buf: _Bytes, off: int, header: _Header) -> OrderBatch:
    start = off + RECORD_HEADER_BYTES
    batch = OrderBatch.from_frame(memoryview(buf)[start : start + header.payload_len])
    if batch.first_seq != header.first_seq or len(batch) != header.count:
        raise FrameError(f"frame holds {_seqs(batch.first_seq, batch.end_seq)}, "
                         f"record header says {_seqs(header.first_seq, header.end_seq)}")
    return batch


def _whole_record_at(buf: _Bytes, off: int, size: int) -> _Header | None:
    if size - off < RECORD_HEADER_BYTES:
        return None
    header = _parse_header(buf, off)
    if isinstance(header, str) or off + header.length > size or not _payload_ok(buf, off, header):
        return None
    return header


def _next_whole_record(buf: _Bytes, start: int, size: int) -> int | None:
    """The offset of the first whole, checksum-valid record at or after ``start``, if any."""
    pos = start
    while True:
        pos = buf.find(RECORD_MAGIC, pos, size)
        if pos < 0:
            return None
        if _whole_record_at(buf, pos, size) is not None:
            return pos
        pos += 1


def _all_zero(buf: _Bytes, start: int, size: int) -> bool:
    return not np.frombuffer(buf, np.uint8, size - start, start).any()


def _torn_reason(buf: _Bytes, off: int, size: int, header: _Header | str | None) -> str | None:
    """Why ``buf[off:size]`` (no whole record in it) is the debris of an interrupted append, or None."""
    rest = size - off
    if _all_zero(buf, off, size):
        return f"{rest} zero bytes where a record should start"
    if rest < RECORD_HEADER_BYTES:
        got = bytes(buf[off : off + min(rest, len(RECORD_MAGIC))])
        if not RECORD_MAGIC.startswith(got):
            return None
        return f"short header ({rest} of {RECORD_HEADER_BYTES} bytes)"
    if isinstance(header, _Header):
        if off + header.length > size:
            return f"short record ({rest} of {header.length} bytes)"
        if off + header.length == size:
            return "checksum mismatch in the last record"
        return None
    if bytes(buf[off : off + len(RECORD_MAGIC)]) == RECORD_MAGIC:
        return f"unreadable header ({header})"
    return None


class _Scan:
    """Walks one segment's records, yielding ``(offset, header)`` and recording problems.

    ``check_payload`` verifies every record's checksum (and, with ``decode``, its frame); else
    only headers are read. In the last segment a torn tail becomes :attr:`torn`; everything else
    wrong becomes a :class:`LogProblem` in :attr:`problems`. With ``stop_at_first`` the walk ends
    at the first problem (opening); otherwise it resynchronises on the next whole record and
    carries on from its seq (verifying), so each fault is reported once.
    """

    def __init__(self, path: Path, buf: _Bytes, size: int, expected: int | None, *, last: bool,
                 check_payload: bool, decode: bool = False, stop_at_first: bool = True):
        self.path, self.buf, self.size = path, buf, size
        #: the seq the next record must start with; None after unreadable bytes (re-anchor)
        self.expected: int | None = expected
        self.named = expected
        self.last, self.check_payload, self.decode = last, check_payload, decode
        self.stop_at_first = stop_at_first
        self.problems: list[LogProblem] = []
        self.torn: tuple[int, str, _Header | None] | None = None

    def _problem(self, kind: str, off: int, detail: str, first: int | None = None,
                 end: int | None = None) -> None:
        self.problems.append(LogProblem(kind, self.path, off, detail, first, end))

    def _damaged(self, off: int, header: _Header | str | None, detail: str) -> int | None:
        """Classify bad bytes at ``off``: torn tail or problem. Where to go on, or None to stop."""
        buf, size = self.buf, self.size
        nxt = _next_whole_record(buf, off + 1, size)
        if nxt is None and self.last:
            reason = _torn_reason(buf, off, size, header)
            if reason is not None:
                self.torn = (off, reason, header if isinstance(header, _Header) else None)
                return None
        readable = header if isinstance(header, _Header) else None
        first = readable.first_seq if readable is not None else self.expected
        end = readable.end_seq if readable is not None else None
        kind = "corrupt" if readable is not None or nxt is not None else "garbage"
        if nxt is None:
            detail += f"; the {size - off} bytes from here to the end of the segment hold no whole record"
        elif not (readable is not None and nxt == off + readable.length):
            detail += f"; bytes {off}..{nxt - 1} unreadable, next whole record at offset {nxt}"
        self._problem(kind, off, detail, first, end)
        whole = readable is not None and (nxt is None or nxt == off + readable.length)
        self.expected = readable.end_seq if readable is not None and whole else None  # None: re-anchor
        return None if nxt is None or self.stop_at_first else nxt

    def __iter__(self) -> Iterator[tuple[int, _Header]]:
        buf, size = self.buf, self.size
        off = 0
        while off < size:
            if size - off < RECORD_HEADER_BYTES:
                nxt = self._damaged(off, None, f"{size - off} bytes, too short for a record header")
            else:
                header = _parse_header(buf, off)
                if isinstance(header, str):
                    nxt = self._damaged(off, header, header)
                elif self.expected is not None and header.first_seq != self.expected:
                    self._seq_problem(off, header)
                    if self.stop_at_first:
                        return
                    self.expected = header.first_seq  # re-anchor: report each break once
                    continue
                elif off + header.length > size:
                    nxt = self._damaged(off, header, f"record of {header.length} bytes runs past "
                                        f"the end of the segment ({size - off} bytes left)")
                elif self.check_payload and not _payload_ok(buf, off, header):
                    nxt = self._damaged(off, header, "checksum mismatch")
                else:
                    if self.decode:
                        try:
                            _decode(buf, off, header)
                        except FrameError as exc:
                            self._problem("corrupt", off, f"frame does not decode: {exc}",
                                          header.first_seq, header.end_seq)
                            if self.stop_at_first:
                                return
                    yield off, header
                    self.expected = header.end_seq
                    off += header.length
                    continue
            if nxt is None:
                return
            off = nxt

    def _seq_problem(self, off: int, header: _Header) -> None:
        expected = self.expected
        assert expected is not None
        if off == 0:
            self._problem("misnamed", off, f"segment named for seq {self.named} starts with "
                          f"{_seqs(header.first_seq, header.end_seq)}", header.first_seq, header.end_seq)
            return
        kind = "gap" if header.first_seq > expected else "duplicate"
        detail = f"record holds {_seqs(header.first_seq, header.end_seq)}, expected seq {expected} next"
        if kind == "gap":
            detail += f": {_seqs(expected, header.first_seq)} missing"
        else:
            detail += ": seq repeats or goes backwards"
        self._problem(kind, off, detail, header.first_seq, header.end_seq)


def _list_segments(directory: Path) -> list[tuple[Path, int | None]]:
    """Segment files in seq order, with the seq their name says (None if the name is not one)."""
    out = []
    for path in directory.iterdir():
        if path.suffix != SEGMENT_SUFFIX:
            continue
        stem = path.stem
        out.append((path, int(stem) if stem.isdigit() and len(stem) == _SEQ_DIGITS else None))
    out.sort(key=lambda item: (item[1] is None, item[1] or 0, item[0].name))
    return out


def _map(path: Path, size: int, *, whole: bool = True) -> _Bytes:
    """A read-only memory map of a file's first ``size`` bytes (``b""`` when empty).

    ``whole``: every byte will be read, in order (aggressive read-ahead); otherwise only record
    headers are (no read-ahead: a header walk of a cold log reads a page per record, not the log).
    Never closed explicitly: batches decoded from it are views that keep it alive; it is
    unmapped when the last of them is dropped.
    """
    if size == 0:
        return b""
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
    if hasattr(mapped, "madvise"):
        mapped.madvise(mmap.MADV_SEQUENTIAL if whole else mmap.MADV_RANDOM)
    return mapped


def verify_log(directory: str | os.PathLike[str]) -> list[LogProblem]:
    """Check every record of the log in ``directory``: a list of problems, empty if it is sound.

    Reads every byte (checksums and decodes every record); opens nothing for writing and takes no
    lock, so it can run beside a writer (whose record in flight may then show as a torn tail).
    Cost: one pass over the log at checksum speed. Raises ``FileNotFoundError`` if there is no
    such directory; everything wrong inside it is returned, never raised.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no event log at {directory} (expected a directory of "
                                f"*{SEGMENT_SUFFIX} segment files)")
    problems: list[LogProblem] = []
    segments = _list_segments(directory)
    problems.extend(_misnamed(path) for path, named in segments if named is None)
    segments = [(path, named) for path, named in segments if named is not None]
    expected: int | None = 0
    for i, (path, named) in enumerate(segments):
        if expected is not None and named != expected:
            problems.append(_segment_seq_problem(segments, i, expected))
        size = path.stat().st_size
        scan = _Scan(path, _map(path, size), size, named, last=i == len(segments) - 1,
                     check_payload=True, decode=True, stop_at_first=False)
        for _record in scan:
            pass
        problems.extend(scan.problems)
        if scan.torn is not None:
            off, reason, header = scan.torn
            lost = f"{header.count} events lost" if header else "events lost unknown"
            problems.append(LogProblem(
                "torn", path, off, f"{size - off} bytes, {lost}: {reason}; cut when the log is next "
                "opened for writing",
                header.first_seq if header else scan.expected, header.end_seq if header else None))
        expected = scan.expected
    return problems


def _misnamed(path: Path) -> LogProblem:
    return LogProblem("misnamed", path, 0, f"segment name is not {_SEQ_DIGITS} digits of its first "
                      f"seq (expected e.g. {segment_name(0)})")


def _segment_seq_problem(segments: list[tuple[Path, int | None]], i: int, expected: int) -> LogProblem:
    path, named = segments[i]
    assert named is not None
    if named > expected:
        prev = segments[i - 1][0].name if i else "the start of the log"
        return LogProblem("gap", path, 0, f"segment starts at seq {named}, expected seq {expected}: "
                          f"{_seqs(expected, named)} missing after {prev} (a segment deleted?)",
                          expected, named)
    return LogProblem("duplicate", path, 0, f"segment starts at seq {named}, expected seq "
                      f"{expected}: seq repeats or goes backwards", named, expected)


# --- the log ------------------------------------------------------------------------------------


class EventLog:
    """An append-only, segmented, checksummed log of order batches in one directory.

    ``EventLog(directory)`` opens (creating it if needed) for appending, recovering a torn tail
    (see :attr:`recovery`) and raising :class:`CorruptLogError` for anything worse; only one
    writer at a time (``LogLockedError``). ``readonly=True`` opens without locking or changing
    anything: a torn tail is reported and ignored. ``check="full"`` checksums every record on
    open instead of just the last segment (one pass over the whole log); ``check="readable"``
    (read-only) does too, but ends the log before the first damage (:attr:`damage`) instead of
    raising: ``replay --partial``. ``start_seq`` opens a stretch of a log written elsewhere
    for :meth:`adopt` (a cluster worker's segments): it starts at that seq instead of 0.
    """

    def __init__(self, directory: str | os.PathLike[str], *, fsync: FsyncPolicy = "every",
                 fsync_interval: float = 1.0, segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 readonly: bool = False, check: Literal["tail", "full", "readable"] = "tail",
                 start_seq: int = 0):
        if fsync not in _POLICIES:
            raise ValueError(f"fsync policy {fsync!r}: expected one of {', '.join(_POLICIES)}")
        if not fsync_interval > 0:
            raise ValueError(f"fsync_interval must be positive seconds, got {fsync_interval!r}")
        if segment_bytes < RECORD_HEADER_BYTES:
            raise ValueError(f"segment_bytes must be at least {RECORD_HEADER_BYTES}, got {segment_bytes}")
        if check not in ("tail", "full", "readable") or (check == "readable" and not readonly):
            raise ValueError(f"check {check!r}: expected 'tail', 'full' or (read-only) 'readable'")
        self.directory = Path(directory)
        self.fsync: FsyncPolicy = fsync
        self.fsync_interval = float(fsync_interval)
        self.segment_bytes = int(segment_bytes)
        self.readonly = readonly
        #: What the open cut off (or, read-only, ignored) as a torn tail; ``None`` if nothing.
        self.recovery: Recovery | None = None
        #: ``check="readable"``: the first damage found; the log then ends before it
        self.damage: LogProblem | None = None
        self._segments: list[_Segment] = []
        self._firsts: list[int] = []  # first seq of each segment, for bisect
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._dirty = False
        self._last_sync = time.monotonic()
        self._failed: BaseException | None = None
        self._closed = False
        #: the log's first seq: 0, but for a stretch of a log staged elsewhere (:meth:`adopt`)
        self.start_seq = start_seq
        self._next_seq = start_seq
        if readonly:
            if not self.directory.is_dir():
                raise FileNotFoundError(f"no event log at {self.directory} (expected a directory "
                                        f"of *{SEGMENT_SUFFIX} segment files)")
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._take_lock()
        try:
            self._open_segments(check)
        except BaseException:
            self._release_lock()
            raise

    # --- opening ------------------------------------------------------------------------------

    def _take_lock(self) -> None:
        path = self.directory / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise LogLockedError(f"{self.directory} is already open for writing (lock {path} "
                                     "is held by another EventLog)") from None
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def _open_segments(self, check: str) -> None:
        files = _list_segments(self.directory)
        readable = check == "readable"  # read-only: stop at the first damage instead of raising
        for path, named in files:
            if named is None and not readable:
                raise CorruptLogError(_misnamed(path))
        expected = self.start_seq
        for i, (path, named) in enumerate(files):
            if named is None:
                self.damage = _misnamed(path)
                break
            if named != expected:
                if not readable:
                    raise CorruptLogError(_segment_seq_problem(files, i, expected))
                self.damage = _segment_seq_problem(files, i, expected)
                break
            last = i == len(files) - 1
            size = path.stat().st_size
            segment = _Segment(path, named)
            check_payload = last or check != "tail"
            scan = _Scan(path, _map(path, size, whole=check_payload), size, expected, last=last,
                         check_payload=check_payload)
            for off, header in scan:
                segment.add(off, header.first_seq, header.count, header.length)
            if scan.problems and readable:
                self.damage = scan.problems[0]
                if segment.offsets:
                    self._segments.append(segment)
                    self._firsts.append(segment.first_seq)
                    expected = segment.end_seq
                break
            if scan.problems:
                raise CorruptLogError(scan.problems[0])
            if scan.torn is not None:
                self._recover(path, size, scan.torn)
            self._segments.append(segment)
            self._firsts.append(segment.first_seq)
            expected = segment.end_seq
        self._next_seq = expected

    def _recover(self, path: Path, size: int, torn: tuple[int, str, _Header | None]) -> None:
        off, reason, header = torn
        self.recovery = Recovery(path, off, size - off, header.count if header else None,
                                 header.first_seq if header else None, reason,
                                 truncated=not self.readonly)
        if self.readonly:
            return
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, off)
            if self.fsync != "never":
                _fdatasync(fd)
        finally:
            os.close(fd)

    # --- properties -----------------------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        """The seq the next appended batch must start with (= events in the log)."""
        return self._next_seq

    def __len__(self) -> int:
        return self._next_seq

    def segments(self) -> list[SegmentInfo]:
        """The segments in seq order, with their seqs, record counts and sizes in bytes."""
        return [SegmentInfo(s.path, s.first_seq, s.end_seq, len(s.seqs), s.size) for s in self._segments]

    def locate(self, seq: int) -> RecordLocation:
        """The record holding ``seq``. Cost: two binary searches, O(log records)."""
        if not 0 <= seq < self._next_seq:
            raise IndexError(f"seq {seq} is not in the log (it holds seq 0..{self._next_seq - 1})"
                             if self._next_seq else f"seq {seq} is not in the log (it is empty)")
        segment = self._segments[bisect.bisect_right(self._firsts, seq) - 1]
        ri = bisect.bisect_right(segment.seqs, seq) - 1
        end = segment.seqs[ri + 1] if ri + 1 < len(segment.seqs) else segment.end_seq
        return RecordLocation(segment.path, segment.offsets[ri], segment.seqs[ri], end - segment.seqs[ri])

    # --- appending ------------------------------------------------------------------------------

    def append(self, batch: OrderBatch) -> RecordLocation | None:
        """Append one batch as one record; ``None`` (nothing written) for an empty batch.

        Raises :class:`SequenceError`, writing nothing, unless the batch starts at
        :attr:`next_seq` and its seqs are contiguous. Durable on return with ``fsync="every"``.
        Cost: O(batch bytes) (frame copy, CRC-32C, one write) plus the fsync policy. Safe to call
        from several threads (one append at a time), though a log has one writer by design.
        """
        if self.readonly:
            raise ValueError(f"append to the event log {self.directory}, opened read-only")
        if self._failed is not None:
            raise OSError(f"event log {self.directory} is unusable after a failed write or fsync: "
                          f"{self._failed}") from self._failed
        n = len(batch)
        if n == 0:
            return None
        first = batch.first_seq
        self._check_next(first, n)  # refuse early, before the copy; again under the lock
        seq = batch.seq
        if n > 1 and (int(seq[-1]) != first + n - 1 or not (np.diff(seq) == 1).all()):
            bad = int(np.flatnonzero(np.diff(seq) != 1)[0]) + 1
            raise SequenceError(f"append to {self.directory} refused: the batch's seqs are not "
                                f"contiguous at row {bad} (seq {int(seq[bad])} after {int(seq[bad - 1])})")
        payload = batch.frame_parts()  # views of the columns: no copy before the write
        size = sum(len(part) for part in payload)
        pad = bytes(_padding(size))
        header = _encode_header(first, n, payload, size, pad)
        length = len(header) + size + len(pad)
        with self._lock:
            self._check_next(first, n)
            segment = self._segments[-1] if self._segments else None
            if segment is None or (segment.size and segment.size + length > self.segment_bytes):
                segment = self._roll(first)
            elif self._fd is None:
                self._fd = os.open(segment.path, os.O_WRONLY)
            offset = segment.size
            try:
                _write_all(self._active_fd(), [header, *payload, pad], offset)
            except BaseException as exc:
                self._undo_write(segment, offset, exc)
                raise
            segment.add(offset, first, n, length)
            self._next_seq = first + n
            self._dirty = True
            self._after_write()
        return RecordLocation(segment.path, offset, first, n)

    def _check_next(self, first: int, n: int) -> None:
        if self._closed:
            raise ValueError(f"append to the closed event log {self.directory}")
        if first != self._next_seq:
            end = first + n
            if first < self._next_seq:
                what = f"duplicate: seq {first}..{min(end, self._next_seq) - 1} already in the log"
            else:
                what = f"gap: seq {self._next_seq}..{first - 1} missing"
            raise SequenceError(f"append of {_seqs(first, end)} to {self.directory} refused: "
                                f"the log expects seq {self._next_seq} next ({what})")

    def _roll(self, first_seq: int) -> _Segment:
        """Close the active segment (synced unless ``fsync="never"``) and start one at ``first_seq``."""
        if self._fd is not None:
            if self.fsync != "never" and self._dirty:
                self._sync_now()
            os.close(self._fd)
            self._fd = None
        segment = _Segment(self.directory / segment_name(first_seq), first_seq)
        self._fd = os.open(segment.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        if self.fsync != "never":
            sync_directory(self.directory)
        self._segments.append(segment)
        self._firsts.append(first_seq)
        return segment

    def _undo_write(self, segment: _Segment, offset: int, exc: BaseException) -> None:
        """Cut a partly written record so the file ends on a whole one, or mark the log failed."""
        try:
            os.ftruncate(self._active_fd(), offset)
        except OSError:
            self._failed = exc

    def _after_write(self) -> None:
        if self.fsync == "every":
            self._sync_now()
        elif self.fsync == "interval":
            waited = time.monotonic() - self._last_sync
            if waited >= self.fsync_interval:
                self._sync_now()
            elif self._timer is None:
                self._timer = _Timer(self.fsync_interval - waited, self._timer_sync)
                self._timer.daemon = True
                self._timer.start()

    def _active_fd(self) -> int:
        """The descriptor of the segment being appended to (open from the first append on)."""
        assert self._fd is not None
        return self._fd

    def _sync_now(self) -> None:
        try:
            _fdatasync(self._active_fd())
        except OSError as exc:  # after a failed fsync the page cache cannot be trusted
            self._failed = exc
            raise
        self._dirty = False
        self._last_sync = time.monotonic()

    def _timer_sync(self) -> None:
        with self._lock:
            self._timer = None
            if self._closed or not self._dirty or self._fd is None:
                return
            with contextlib.suppress(OSError):  # kept in self._failed: append and close raise it
                self._sync_now()

    def sync(self) -> None:
        """Flush appended records to the device now, whatever the policy."""
        with self._lock:
            if self._fd is not None and self._dirty:
                self._sync_now()

    def adopt(self, directory: str | os.PathLike[str]) -> None:
        """Move the segments of the log stretch in ``directory`` (written by another
        :class:`EventLog` from ``start_seq`` = this log's :attr:`next_seq`, and closed) to the
        end of this log, in seq order, each synced into place before the next: the log is an
        unbroken prefix throughout. Its headers (and the last segment's checksums) are checked
        first, as on any open; :class:`CorruptLogError` or :class:`SequenceError` and nothing
        moved if it does not continue this log exactly. Cost: a header walk, renames.
        """
        stretch = EventLog(directory, readonly=True, start_seq=self._next_seq)
        if stretch.recovery is not None:
            raise CorruptLogError(LogProblem("torn", stretch.recovery.segment,
                                             stretch.recovery.offset, "a staged segment is torn"))
        with self._lock:
            self._check_next(self._next_seq, 0)  # closed or read-only: refused before any move
            if self.readonly:
                raise ValueError(f"adopt into the event log {self.directory}, opened read-only")
            if self._fd is not None:  # the active segment is complete: the stretch starts anew
                if self.fsync != "never" and self._dirty:
                    self._sync_now()
                os.close(self._fd)
                self._fd = None
            for staged in stretch._segments:
                segment = _Segment(self.directory / staged.path.name, staged.first_seq)
                os.rename(staged.path, segment.path)
                for i, (offset, first) in enumerate(zip(staged.offsets, staged.seqs, strict=True)):
                    end = staged.seqs[i + 1] if i + 1 < len(staged.seqs) else staged.end_seq
                    nxt = staged.offsets[i + 1] if i + 1 < len(staged.offsets) else staged.size
                    segment.add(offset, first, end - first, nxt - offset)
                if self.fsync != "never":
                    sync_directory(self.directory)
                self._segments.append(segment)
                self._firsts.append(segment.first_seq)
                self._next_seq = segment.end_seq

    # --- reading --------------------------------------------------------------------------------

    def read(self, from_seq: int = 0, to_seq: int | None = None) -> Iterator[OrderBatch]:
        """The events ``[from_seq, to_seq)`` as the stored batches, the first and last sliced.

        ``to_seq`` defaults to (and is clipped to) :attr:`next_seq` as of this call. Each record
        is checksummed and decoded zero-copy from a memory map (the batches are read-only views;
        a segment's map is released when no batch from it is alive). Memory: one record at a
        time. Raises :class:`CorruptLogError` at a record that fails its checksum.
        """
        end = self._next_seq if to_seq is None else min(to_seq, self._next_seq)
        if from_seq < 0 or from_seq > self._next_seq:
            raise ValueError(f"read from seq {from_seq}: the log holds seq 0..{self._next_seq - 1}"
                             if self._next_seq else f"read from seq {from_seq}: the log is empty")
        if from_seq >= end:
            return iter(())
        return self._read(from_seq, end)

    def _read(self, start: int, end: int) -> Iterator[OrderBatch]:
        si = bisect.bisect_right(self._firsts, start) - 1
        while start < end:
            segment = self._segments[si]
            si += 1
            if segment.end_seq <= start:
                continue
            ri = bisect.bisect_right(segment.seqs, start) - 1
            count = len(segment.seqs)
            size = segment.size
            try:
                buf = _map(segment.path, size)
            except (OSError, ValueError) as exc:  # deleted or cut short since the log was opened
                raise CorruptLogError(LogProblem(
                    "corrupt", segment.path, 0, f"cannot map the segment's {size} bytes ({exc})",
                    segment.first_seq, segment.end_seq)) from None
            while ri < count and start < end:
                off = segment.offsets[ri]
                ri += 1
                header = _parse_header(buf, off) if off + RECORD_HEADER_BYTES <= size else "short header"
                problem = None
                if isinstance(header, str):
                    problem = header
                elif header.first_seq != segment.seqs[ri - 1]:
                    now = _seqs(header.first_seq, header.end_seq)
                    problem = f"record changed since the log was opened (it now holds {now})"
                elif not _payload_ok(buf, off, header):
                    problem = "checksum mismatch"
                else:
                    try:
                        batch = _decode(buf, off, header)
                    except FrameError as exc:
                        problem = f"frame does not decode: {exc}"
                if problem is not None:
                    first = segment.seqs[ri - 1]
                    nxt = segment.seqs[ri] if ri < count else segment.end_seq
                    raise CorruptLogError(LogProblem("corrupt", segment.path, off, problem, first, nxt))
                assert not isinstance(header, str)  # an unreadable header is a problem, raised above
                lo = start - header.first_seq
                hi = min(end, header.end_seq) - header.first_seq
                yield batch if lo == 0 and hi == header.count else batch.slice(lo, hi)
                start = header.first_seq + hi
            del buf

    def verify(self) -> list[LogProblem]:
        """:func:`verify_log` on this log's directory."""
        return verify_log(self.directory)

    # --- closing --------------------------------------------------------------------------------

    def close(self) -> None:
        """Sync (unless ``fsync="never"``), close the active segment and release the lock."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            timer, self._timer = self._timer, None
            try:
                if (self._fd is not None and self.fsync != "never" and self._dirty
                        and self._failed is None):
                    self._sync_now()
            finally:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                self._release_lock()
        if timer is not None:
            timer.cancel()
            timer.join()
        if self._failed is not None:
            raise OSError(f"event log {self.directory}: a write or fsync failed, appends since the "
                          f"last successful fsync may be lost: {self._failed}") from self._failed

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("read-only" if self.readonly else f"fsync={self.fsync}")
        return f"EventLog({str(self.directory)!r}, next_seq={self._next_seq}, {state})"


def _write_all(fd: int, parts: Sequence[bytes | memoryview], offset: int) -> None:
    """``pwritev`` all of ``parts`` at ``offset``, looping over short writes."""
    views = [memoryview(p) for p in parts if len(p)]
    while views:
        written = os.pwritev(fd, views, offset)
        if written <= 0:
            raise OSError(f"write returned {written}")
        offset += written
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]


def sync_directory(directory: Path) -> None:
    """Make a new file's directory entry durable (a new segment is lost on a crash without it)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the pipeline's writer thread ----------------------------------------------------------------

#: Events per event-log record. Records start at multiples of it whatever the batch size, so
#: the same (scenario, seed, scale) writes the same log bytes however the stream was batched.
LOG_RECORD_EVENTS = 1 << 16
_QUEUED_RECORDS = 16  # records waiting for the log writer thread: 16 × 2.5 MB


def segment_events(segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> int:
    """Events in every segment but the last of a log written by :class:`LogWriter`: as many
    whole records of :data:`LOG_RECORD_EVENTS` as fit in ``segment_bytes`` (at least one). Its
    multiples are the log's segment boundaries, whoever writes the segments."""
    payload = FRAME_HEADER_BYTES + LOG_RECORD_EVENTS * EVENT_BYTES
    record = RECORD_HEADER_BYTES + payload + _padding(payload)
    return max(1, segment_bytes // record) * LOG_RECORD_EVENTS


class LogWriter:
    """Appends to the event log in records of :data:`LOG_RECORD_EVENTS` aligned on seq, on a
    writer thread, so the copy into the page cache overlaps generating and folding (the second
    core). At most :data:`_QUEUED_RECORDS` records wait; a write error is raised on the next call.

    Holds back at most one partial record; :meth:`flush` writes it and waits for the thread.
    """

    def __init__(self, log: EventLog):
        self.log = log
        self.pending: list[OrderBatch] = []
        self.held = 0
        self._queue: queue.Queue[OrderBatch | None] = queue.Queue(maxsize=_QUEUED_RECORDS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._write, name="ticker-log-writer", daemon=True)
        self._thread.start()

    @property
    def recovery(self) -> Recovery | None:
        return self.log.recovery

    @property
    def next_seq(self) -> int:
        return self.log.next_seq

    def _write(self) -> None:
        while (record := self._queue.get()) is not None:
            try:
                if self._error is None:
                    self.log.append(record)
            except BaseException as exc:  # handed to the pipeline's thread
                self._error = exc
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def append(self, batch: OrderBatch) -> None:
        self._check()
        for piece in rebatch([batch], every=LOG_RECORD_EVENTS):
            self.pending.append(piece)
            self.held += len(piece)
            if piece.end_seq % LOG_RECORD_EVENTS == 0:
                self._hand_over()

    def _hand_over(self) -> None:
        if self.held:
            self._queue.put(OrderBatch.concat(self.pending))  # batches are never mutated
            self.pending, self.held = [], 0

    def flush(self) -> None:
        """Write everything handed over so far, the partial record included; wait for it."""
        self._hand_over()
        self._queue.join()
        self._check()

    def sync(self) -> None:
        self.flush()
        self.log.sync()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._queue.put(None)
            self._thread.join()
            self.log.close()
