"""The order event: its columns, :class:`OrderBatch`, and the binary frame that carries a batch.

One order event is a row of eight columns. A batch keeps them as a struct of numpy arrays
(one contiguous array per column) so the aggregator folds each column with one vector
operation. A refund is a compensating event: kind ``REFUNDED``, the refunded order's id,
brand, platform and region, and the negative of its amount.

The frame is the batch's wire and disk form: a fixed little-endian header, then each column's
bytes back to back in :data:`COLUMNS` order. It round-trips exactly and is what the event log
stores and ``ticker/{run}/orders/{partition}`` carries.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from ticker.errors import TickerError


class OrderKind(IntEnum):
    """What an event does to the totals."""

    PLACED = 0
    REFUNDED = 1


#: Column name -> dtype, in frame order. ``event_time`` is microseconds since the epoch (UTC).
COLUMNS: dict[str, np.dtype] = {
    "seq": np.dtype("<i8"),
    "event_time": np.dtype("<i8"),
    "order_id": np.dtype("<i8"),
    "brand": np.dtype("<i4"),
    "platform": np.dtype("<u1"),
    "region": np.dtype("<u1"),
    "amount_minor": np.dtype("<i8"),
    "kind": np.dtype("<u1"),
}
EVENT_BYTES = sum(dt.itemsize for dt in COLUMNS.values())

FRAME_MAGIC = b"TKOB"
FRAME_VERSION = 1
_HEADER = struct.Struct("<4sHHqq")  # magic, version, column count, event count, first seq
FRAME_HEADER_BYTES = _HEADER.size


class FrameError(TickerError, ValueError):
    """A byte string is not a whole, well-formed order frame."""


@dataclass(frozen=True, slots=True, eq=False)
class OrderBatch:
    """A run of consecutive order events, one numpy array per column.

    Events are in ``seq`` order, ``seq`` is contiguous, and ``event_time`` never decreases:
    the generator and the event log guarantee it, and the aggregator checks it.
    """

    seq: np.ndarray
    event_time: np.ndarray
    order_id: np.ndarray
    brand: np.ndarray
    platform: np.ndarray
    region: np.ndarray
    amount_minor: np.ndarray
    kind: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.seq)
        for name, dtype in COLUMNS.items():
            column = getattr(self, name)
            if column.dtype != dtype or column.ndim != 1 or len(column) != n:
                raise ValueError(
                    f"column {name}: expected 1-d {dtype} of length {n}, "
                    f"found {column.ndim}-d {column.dtype} of length {len(column)}"
                )

    def __len__(self) -> int:
        return len(self.seq)

    @property
    def first_seq(self) -> int:
        return int(self.seq[0]) if len(self.seq) else -1

    @property
    def end_seq(self) -> int:
        """One past the last sequence number."""
        return int(self.seq[-1]) + 1 if len(self.seq) else -1

    @classmethod
    def empty(cls) -> OrderBatch:
        return cls(**{name: np.empty(0, dtype) for name, dtype in COLUMNS.items()})

    def columns(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in COLUMNS}

    def slice(self, start: int, stop: int) -> OrderBatch:
        """Rows ``[start, stop)`` as views (no copy)."""
        return OrderBatch(**{name: col[start:stop] for name, col in self.columns().items()})

    def take(self, index: np.ndarray) -> OrderBatch:
        return OrderBatch(**{name: col[index] for name, col in self.columns().items()})

    @classmethod
    def concat(cls, batches: Iterable[OrderBatch]) -> OrderBatch:
        parts = [b for b in batches if len(b)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls(**{name: np.concatenate([getattr(b, name) for b in parts]) for name in COLUMNS})

    def equals(self, other: OrderBatch) -> bool:
        return all(np.array_equal(getattr(self, n), getattr(other, n)) for n in COLUMNS)

    # --- frame codec -------------------------------------------------------------------------

    def to_frame(self) -> bytes:
        """Header + columns back to back; ``from_frame(b.to_frame())`` equals ``b``."""
        return b"".join(self.frame_parts())

    def frame_parts(self) -> list[bytes | memoryview]:
        """The frame as a header and one zero-copy view per column, for ``os.pwritev``: the
        event log writes a record without assembling it first."""
        header = _HEADER.pack(FRAME_MAGIC, FRAME_VERSION, len(COLUMNS), len(self), self.first_seq)
        # (an ndarray is a buffer; numpy's stubs do not say so)
        return [header, *(memoryview(np.ascontiguousarray(getattr(self, n))).cast("B")  # type: ignore[arg-type]
                          for n in COLUMNS)]

    @classmethod
    def from_frame(cls, frame: bytes | bytearray | memoryview) -> OrderBatch:
        """Decode a frame; raises :class:`FrameError` naming what is wrong."""
        view = memoryview(frame)
        if len(view) < FRAME_HEADER_BYTES:
            raise FrameError(f"frame of {len(view)} bytes is shorter than its header")
        magic, version, ncols, count, first_seq = _HEADER.unpack_from(view)
        if magic != FRAME_MAGIC:
            raise FrameError(f"bad frame magic {magic!r}, expected {FRAME_MAGIC!r}")
        if version != FRAME_VERSION or ncols != len(COLUMNS):
            raise FrameError(f"frame version {version} with {ncols} columns is not supported")
        expected = FRAME_HEADER_BYTES + count * EVENT_BYTES
        if count < 0 or len(view) != expected:
            raise FrameError(f"frame of {count} events should be {expected} bytes, is {len(view)}")
        offset = FRAME_HEADER_BYTES
        columns = {}
        for name, dtype in COLUMNS.items():
            size = count * dtype.itemsize
            columns[name] = np.frombuffer(view[offset : offset + size], dtype=dtype)
            offset += size
        batch = cls(**columns)
        if count and batch.first_seq != first_seq:
            raise FrameError(f"frame header says first seq {first_seq}, rows start at {batch.first_seq}")
        return batch


def rebatch(batches: Iterable[OrderBatch], size: int | None = None, *, every: int | None = None,
            at: Iterable[int] = (), from_seq: int | None = None, before_time: int | None = None,
            span_us: int | None = None) -> Iterator[OrderBatch]:
    """The one cutter: a stream of batches cut into other batches; the events, and their order,
    are unchanged, which is what makes results batch-invariant.

    * ``size``: batches of exactly ``size`` events (merged across the stream's batches), the
      last one, and any that ends at a boundary below, shorter;
    * ``every``: a boundary where seq crosses a multiple of ``every`` (snapshot points, log
      records);
    * ``at``: a boundary at each of these seqs;
    * ``span_us``: pieces holding at most ``span_us`` of event time from their first event, and
      at least one event, each within one of the stream's batches (pacing);
    * ``from_seq``: leave out the events before this seq;
    * ``before_time``: end the stream before its first event at or after this event time (an
      arrival-ordered stream too: the events after that one are left out even if earlier).

    Without ``size`` a piece is a view into one of the stream's batches (no copy), and an
    untouched batch comes out as itself.
    """
    if size is not None and size <= 0:
        raise ValueError(f"batch size must be positive, got {size}")
    if every is not None and every <= 0:
        raise ValueError(f"boundary interval must be positive, got {every}")
    if span_us is not None and span_us <= 0:
        raise ValueError(f"time span must be positive, got {span_us}")
    marks = iter(sorted(set(at)))
    mark = next(marks, None)
    pending: list[OrderBatch] = []
    held = 0
    for batch in batches:
        if from_seq is not None and len(batch) and batch.first_seq < from_seq:
            batch = batch.slice(min(len(batch), from_seq - batch.first_seq), len(batch))
        last = False
        if before_time is not None and len(batch):
            reached = batch.event_time >= before_time
            if reached.any():
                batch, last = batch.slice(0, int(np.argmax(reached))), True
        lo, n = 0, len(batch)
        while lo < n:
            seq = batch.first_seq + lo
            hi = n
            if every is not None:
                hi = min(hi, lo + every - seq % every)
            while mark is not None and mark <= seq:
                mark = next(marks, None)
            if mark is not None:
                hi = min(hi, mark - batch.first_seq)
            if span_us is not None:
                times = batch.event_time
                edge = int(times[lo]) + span_us
                hi = min(hi, max(lo + 1, lo + int(np.searchsorted(times[lo:hi], edge, side="left"))))
            if size is not None:
                hi = min(hi, lo + size - held)
            piece = batch if lo == 0 and hi == n else batch.slice(lo, hi)
            lo = hi
            if size is None:
                yield piece
                continue
            pending.append(piece)
            held += len(piece)
            end = piece.end_seq
            if (held == size or span_us is not None or end == mark
                    or (every is not None and end % every == 0)):
                yield OrderBatch.concat(pending)
                pending, held = [], 0
        if last:
            break
    if held:
        yield OrderBatch.concat(pending)
