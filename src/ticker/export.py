"""Export a run's orders and milestones to CSV, JSON Lines or Parquet, streaming.

Orders come from an :class:`~ticker.eventlog.EventLog` one stored batch at a time and are written
per chunk (text) or per row group (Parquet), so exporting a festival of billions of events holds
one chunk in memory, never the run. Columns, in order::

    seq, event_time, order_id, brand, platform, region, amount_minor, kind[, dimension, ...]

then one column per ``[[dimensions]]`` of the scenario, named after it (``channel``, ``origin``,
``segment``), holding the value's name: per brand the brand's value, per order the seller the
order went through (``storefront`` for none). Each value is derived as the fold derives it
(:meth:`~ticker.scenario.dimensions.DimensionTable.codes`: a per-order seller is a hash of the
order id), so an export's channel totals are the aggregator's; a scenario without dimensions
keeps the eight columns.
``event_time`` is ISO-8601 with the festival's UTC offset and microseconds
(``2021-11-11T00:00:00.123456+08:00``); ``brand``, ``platform`` and ``region`` are names;
``kind`` is ``placed`` or ``refunded``; money stays integer minor units. In Parquet the columns
are typed instead of text: ``event_time`` is ``timestamp[us, tz=+08:00]`` (readers show it in the
festival's zone), the names are dictionary-encoded strings (pandas reads them as categoricals,
DuckDB as VARCHAR), and each row group holds about ``row_group_events`` orders (default 1 Mi).

Milestones come from a ``milestones.jsonl`` file (one JSON object per line, the contract of
``DESIGN.md``) and are written with the same columns as that contract; the text formats keep
``event_time`` as written there, Parquet makes it a ``timestamp[us]`` in ``zone``.

**How the text is made, and what it costs.** A Python value per cell is slow: f-strings joined
format about 1.5 M rows/s, ``csv.writer`` 0.6 M, one ``orjson.dumps`` per row 0.9 M. Here each
column becomes a fixed-width byte matrix with numpy: integers three digits at a time through a
1000-entry table; timestamps from a date table (one entry per day in the chunk), an 86,400-entry
``HH:MM:SS`` table and the digit table; names by indexing a table of pre-escaped names. The
columns and separators are laid side by side in one ``uint8`` matrix whose unused cells are NUL;
dropping the NULs (``flat[flat != 0]``) leaves the rows, variable-width, back to back. Names
therefore must not contain NUL (checked). Cost per row: about 30 vector passes over 150–250
bytes; formatting alone runs at about 2.5 M rows/s (CSV) and 2 M (JSON Lines) on one core, end
to end (read, format, write a file) 1.3–2 M and 1–1.5 M on a shared two-core VM; Parquet about
4 M (``benchmarks/bench_eventlog.py``). The ISO kernel alone does ~20 M timestamps/s, 3× numpy's
``datetime_as_string``.

Writing to a path goes through ``PATH.part``, renamed over ``PATH`` when complete, so a failed
export never leaves a plausible-looking truncated file.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import timedelta, timezone
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np
import orjson

from ticker.aggregate.milestones import Milestone
from ticker.clock import offset_text, parse_time
from ticker.errors import TickerError
from ticker.eventlog import CorruptLogError, EventLog
from ticker.events import OrderBatch, OrderKind, rebatch
from ticker.scenario.dimensions import DimensionTable

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "FORMATS",
    "MILESTONE_COLUMNS",
    "ORDER_COLUMNS",
    "ExportError",
    "OrderFormatter",
    "export_milestones",
    "export_orders",
    "format_times",
    "int_text",
    "read_milestones",
    "utc_offset_text",
]

Format = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")
ORDER_COLUMNS = ("seq", "event_time", "order_id", "brand", "platform", "region", "amount_minor", "kind")
#: The milestone contract's keys, in order (``Milestone.to_json``: ``event_time`` replaces ``_us``).
#: an arrival-ordered run's milestones also carry these (``timing``; ``corrects`` on corrections)
EVENT_TIME_COLUMNS = ("timing", "corrects")
MILESTONE_COLUMNS = tuple("event_time" if f.name == "event_time_us" else f.name for f in fields(Milestone)
                          if f.name not in EVENT_TIME_COLUMNS)
KIND_NAMES = tuple(kind.name.lower() for kind in sorted(OrderKind))  # ("placed", "refunded")
TEXT_CHUNK_EVENTS = 1 << 14
ROW_GROUP_EVENTS = 1 << 20
_US_PER_DAY = 86_400_000_000
PARQUET_HINT = "pip install 'ticker[parquet]'"


class ExportError(TickerError, ValueError):
    """The export cannot be written as asked (bad input data, unknown format, missing pyarrow)."""


# --- vectorised text kernels ----------------------------------------------------------------------


@cache
def _digit_tables() -> tuple[np.ndarray, np.ndarray]:
    """``DIGITS[i]`` is ``i`` as 3 zero-padded digits; ``GROUPS`` stacks NUL, lead, padded forms."""
    padded = np.array([f"{i:03d}".encode() for i in range(1000)], dtype="S3")
    lead = np.array([str(i).encode() for i in range(1000)], dtype="S3")  # NUL-padded: no zeros
    return padded, np.concatenate([np.zeros(1000, "S3"), lead, padded])


@cache
def _clock_table() -> np.ndarray:
    """``HH:MM:SS`` for every second of a day (86,400 × 8 bytes, built once)."""
    return np.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}".encode() for s in range(86_400)],
                    dtype="S8")


_THOUSAND = np.uint64(1000)


def _u8(strings: np.ndarray) -> np.ndarray:
    """An ``S``-dtype array as its ``(n, itemsize)`` byte matrix (a view)."""
    return strings.view(np.uint8).reshape(len(strings), strings.dtype.itemsize)


def int_text(values: np.ndarray) -> np.ndarray:
    """Decimal text of integers as an ``(n, w)`` uint8 matrix, NUL where there is no character.

    Exact for all of int64 (``-9223372036854775808`` included). Cost: per group of three digits
    one ``divmod`` by 1000, a comparison and a table gather; groups stop at the largest magnitude.
    """
    v = np.asarray(values).astype(np.int64, copy=False)
    n = len(v)
    negative = v < 0
    unsigned = v.astype(np.uint64)
    rest = np.where(negative, np.negative(unsigned), unsigned)  # 2**63 for int64 min: exact
    top = int(rest.max()) if n else 0
    groups = 1
    while groups < 7 and top >= 1000**groups:
        groups += 1
    _, table = _digit_tables()
    out = np.empty((n, 1 + 3 * groups), np.uint8)
    out[:, 0] = np.where(negative, ord("-"), 0)
    shown = np.ones(n, bool)  # this group has a digit to show (the units always do)
    for k in range(groups):
        rest, group = np.divmod(rest, _THOUSAND)
        above = rest != 0  # a higher group follows: this one is zero-padded
        # table rows: 0 NUL (not shown), 1 the leading group (unpadded), 2 zero-padded
        index = group.astype(np.intp)
        index += 1000 * (shown.astype(np.intp) + above)
        column = 1 + 3 * (groups - 1 - k)
        out[:, column : column + 3] = _u8(table[index])
        shown = above
    return out


def utc_offset_text(zone: timezone) -> str:
    """``+08:00``: :func:`ticker.clock.offset_text`, as an :class:`ExportError` if it has seconds."""
    try:
        return offset_text(zone)
    except ValueError as exc:
        raise ExportError(str(exc)) from None


def _time_text(us: np.ndarray, zone: timezone) -> np.ndarray:
    """ISO-8601 of microsecond timestamps in ``zone``, as an ``(n, w)`` uint8 matrix (NUL-padded)."""
    suffix = utc_offset_text(zone).encode()
    local = np.asarray(us, dtype=np.int64) + zone.utcoffset(None) // timedelta(microseconds=1)
    n = len(local)
    days = local // _US_PER_DAY
    in_day = local - days * _US_PER_DAY
    seconds = in_day // 1_000_000
    micros = in_day - seconds * 1_000_000
    if n and int(days.max()) - int(days.min()) < 4096:  # festivals: a few days a chunk
        first = int(days.min())
        day_values = np.arange(first, int(days.max()) + 1)
        day_index = days - first
    else:
        day_values, day_index = np.unique(days, return_inverse=True)
    dates = np.char.encode(np.datetime_as_string(day_values.astype("datetime64[D]")))
    if not n:
        dates = np.zeros(0, "S10")
    digits, _ = _digit_tables()
    width = dates.dtype.itemsize
    out = np.empty((n, width + 1 + 8 + 1 + 6 + len(suffix)), np.uint8)
    out[:, :width] = _u8(dates)[day_index]
    out[:, width] = ord("T")
    out[:, width + 1 : width + 9] = _u8(_clock_table()[seconds])
    out[:, width + 9] = ord(".")
    out[:, width + 10 : width + 13] = _u8(digits[micros // 1000])
    out[:, width + 13 : width + 16] = _u8(digits[micros % 1000])
    out[:, width + 16 :] = np.frombuffer(suffix, np.uint8)
    return out


def format_times(us: np.ndarray, zone: timezone) -> np.ndarray:
    """ISO-8601 text (``bytes``, microseconds, with the zone's offset) of microsecond timestamps.

    ``format_times(us, zone)[i].decode()`` equals ``clock.format_time(us[i], zone,
    precision="microseconds")`` for years 1–9999. Cost: ~10 vector operations per timestamp,
    tens of millions a second.
    """
    matrix = _time_text(us, zone)
    if matrix.all():  # every row the same width (years 0000-9999): the matrix is the strings
        return np.ascontiguousarray(matrix).view(f"S{matrix.shape[1]}").reshape(len(matrix))
    return np.array([bytes(row[row != 0]) for row in matrix], dtype=f"S{matrix.shape[1]}")


def _assemble(pieces: Sequence[np.ndarray | bytes], n: int) -> bytes:
    """Lay byte matrices and constant separators side by side; drop the NULs: the rows' bytes."""
    widths = [p.shape[1] if isinstance(p, np.ndarray) else len(p) for p in pieces]
    matrix = np.empty((n, sum(widths)), np.uint8)
    column = 0
    for piece, width in zip(pieces, widths, strict=True):
        matrix[:, column : column + width] = (piece if isinstance(piece, np.ndarray)
                                              else np.frombuffer(piece, np.uint8))
        column += width
    flat = matrix.reshape(-1)
    rows: bytes = flat[flat != 0].tobytes()  # numpy's stubs: a masked array is Any
    return rows


def _name_table(names: Sequence[str], what: str, fmt: str) -> np.ndarray:
    """Names as cells of ``fmt``, an ``S`` array indexed by id. Cost: ~0.1 µs a plain name."""
    special = (_CSV_SPECIAL if fmt == "csv" else _JSON_SPECIAL).search
    try:  # the common case inline (290,000 brands); the rare name that needs escaping below
        if fmt == "csv":
            encoded = [_csv_field(n) if special(n) else n.encode() for n in names]
        else:
            encoded = [_json_string(n) if special(n) else b'"' + n.encode() + b'"' for n in names]
    except (TypeError, AttributeError, UnicodeEncodeError, ValueError):
        encoded = None
    if encoded is None:  # say which name and why
        for i, name in enumerate(names):
            if not isinstance(name, str) or "\0" in name:
                raise ExportError(f"{what} name {i} ({name!r}) must be a string without NUL characters")
            try:
                name.encode()
            except UnicodeEncodeError as exc:
                raise ExportError(f"{what} name {i} ({name!r}) is not valid Unicode: {exc}") from None
        raise ExportError(f"{what} names cannot be written as {fmt}")  # pragma: no cover
    return np.array(encoded, dtype=f"S{max((len(e) for e in encoded), default=1) or 1}")


_CSV_SPECIAL = re.compile(r'[,"\r\n\0]')
_JSON_SPECIAL = re.compile(r'["\\\x00-\x1f\u2028\u2029]')


def _csv_field(text: str) -> bytes:
    """A CSV cell (RFC 4180): quoted, quotes doubled, only when it has a comma, quote, CR or LF.

    Not ``csv.writer``: with a ``"\n"`` line terminator it leaves a lone ``"\r"`` unquoted.
    """
    if "\0" in text:
        raise ValueError("NUL in a name")
    if _CSV_SPECIAL.search(text):
        text = '"' + text.replace('"', '""') + '"'
    return text.encode()


def _json_string(text: str) -> bytes:
    """A JSON string literal (quoted, escaped); orjson only for the names that need escaping."""
    if "\0" in text:
        raise ValueError("NUL in a name")
    return orjson.dumps(text) if _JSON_SPECIAL.search(text) else b'"' + text.encode() + b'"'


class OrderFormatter:
    """Turns :class:`OrderBatch` es into CSV or JSON Lines bytes, or Arrow record batches.

    Holds the name tables (brand names indexed by brand id, platform and region names indexed
    by their ids), the scenario's dimension tables (one column each, after ``kind``) and the
    zone. Raises :class:`ExportError` naming the first seq whose brand, platform, region or kind
    has no name.
    """

    def __init__(self, brands: Sequence[str], platforms: Sequence[str], regions: Sequence[str],
                 zone: timezone, dimensions: Sequence[DimensionTable] = ()):
        self.brands, self.platforms, self.regions = list(brands), list(platforms), list(regions)
        self.dimensions = tuple(dimensions)
        self.columns = ORDER_COLUMNS + tuple(t.dimension.name for t in self.dimensions)
        self.zone = zone
        utc_offset_text(zone)  # fail early on an offset with seconds
        self._tables: dict[str, tuple[np.ndarray, ...]] = {}

    def _table(self, fmt: str) -> tuple[np.ndarray, ...]:
        if fmt not in self._tables:
            self._tables[fmt] = tuple(_name_table(names, what, fmt) for names, what in (
                (self.brands, "brand"), (self.platforms, "platform"), (self.regions, "region"),
                (KIND_NAMES, "kind"),
                *((t.names, t.dimension.name) for t in self.dimensions)))
        return self._tables[fmt]

    def _codes(self, batch: OrderBatch) -> list[np.ndarray]:
        """Each dimension's value code of every event (as the fold derives it)."""
        return [t.codes(batch.brand, batch.order_id) for t in self.dimensions]

    def check(self, batch: OrderBatch) -> None:
        """Raise :class:`ExportError` if any id of ``batch`` has no name."""
        for column, names in (("brand", self.brands), ("platform", self.platforms),
                              ("region", self.regions), ("kind", KIND_NAMES)):
            ids = getattr(batch, column)
            if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= len(names)):
                row = int(np.flatnonzero((ids < 0) | (ids >= len(names)))[0])
                raise ExportError(f"seq {int(batch.seq[row])}: {column} id {int(ids[row])} has no name "
                                  f"({len(names)} {column} names given, ids 0..{len(names) - 1})")

    def header(self, fmt: str) -> bytes:
        return (",".join(self.columns) + "\n").encode() if fmt == "csv" else b""

    def text(self, batch: OrderBatch, fmt: str) -> bytes:
        """The rows of ``batch`` as CSV (no header) or JSON Lines, one line per order."""
        self.check(batch)
        n = len(batch)
        if n == 0:
            return b""
        brands, platforms, regions, kinds, *values = self._table(fmt)
        cells = [int_text(batch.seq), _time_text(batch.event_time, self.zone), int_text(batch.order_id),
                 _u8(brands[batch.brand]), _u8(platforms[batch.platform]), _u8(regions[batch.region]),
                 int_text(batch.amount_minor), _u8(kinds[batch.kind]),
                 *(_u8(names[codes]) for names, codes in zip(values, self._codes(batch), strict=True))]
        if fmt == "csv":
            pieces: list[np.ndarray | bytes] = []
            for cell in cells:
                pieces += [cell, b","]
            pieces[-1] = b"\n"
        elif fmt == "jsonl":
            quoted = {"event_time"}  # the names come JSON-encoded (quoted and escaped) already
            pieces = []
            for i, (name, cell) in enumerate(zip(self.columns, cells, strict=True)):
                quote = '"' if name in quoted else ""
                pieces += [f'{"{" if i == 0 else ","}"{name}":{quote}'.encode(), cell]
                if quote:
                    pieces.append(quote.encode())
            pieces.append(b"}\n")
        else:
            raise ExportError(f"format {fmt!r} is not a text format (csv or jsonl)")
        return _assemble(pieces, n)

    def arrow(self, batch: OrderBatch) -> pa.RecordBatch:
        """``batch`` as a ``pyarrow.RecordBatch`` with typed columns (see the module docstring)."""
        _require_pyarrow()
        import pyarrow as pa

        self.check(batch)
        return pa.RecordBatch.from_arrays([
            pa.array(batch.seq),
            pa.array(batch.event_time).view(pa.timestamp("us", tz=utc_offset_text(self.zone))),
            pa.array(batch.order_id),
            _dictionary(batch.brand, self.brands),
            _dictionary(batch.platform, self.platforms),
            _dictionary(batch.region, self.regions),
            pa.array(batch.amount_minor),
            _dictionary(batch.kind, KIND_NAMES),
            *(_dictionary(codes, t.names)
              for t, codes in zip(self.dimensions, self._codes(batch), strict=True)),
        ], schema=self.arrow_schema())

    def arrow_schema(self) -> pa.Schema:
        _require_pyarrow()
        import pyarrow as pa

        names = pa.string()
        return pa.schema([
            ("seq", pa.int64()),
            ("event_time", pa.timestamp("us", tz=utc_offset_text(self.zone))),
            ("order_id", pa.int64()),
            ("brand", pa.dictionary(pa.int32(), names)),
            ("platform", pa.dictionary(pa.uint8(), names)),
            ("region", pa.dictionary(pa.uint8(), names)),
            ("amount_minor", pa.int64()),
            ("kind", pa.dictionary(pa.uint8(), names)),
            *((t.dimension.name, pa.dictionary(pa.int32(), names)) for t in self.dimensions),
        ])


def _dictionary(ids: np.ndarray, names: Sequence[str]) -> pa.DictionaryArray[Any, Any]:
    """Ids as a dictionary array of just the names they use (a row group's dictionary stays small).

    Cost: O(rows + names), no sort: mark the ids present, renumber them by a prefix sum.
    """
    import pyarrow as pa

    present = np.zeros(len(names), bool)
    present[ids] = True
    used = np.flatnonzero(present)
    renumber = (np.cumsum(present) - 1).astype(ids.dtype)
    array: pa.DictionaryArray[Any, Any] = pa.DictionaryArray.from_arrays(
        pa.array(renumber[ids]), pa.array([names[i] for i in used.tolist()], pa.string()))
    return array


def _require_pyarrow() -> None:
    """pyarrow (and its parquet module) imported, else one line saying how to install it."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ExportError(f"parquet export needs pyarrow, which is not installed: {PARQUET_HINT}") from None


# --- destinations --------------------------------------------------------------------------------


@contextmanager
def _destination(out: str | os.PathLike[str] | IO[bytes]) -> Iterator[IO[bytes]]:
    """A binary file to write; for a path, ``PATH.part`` renamed over ``PATH`` on success."""
    if hasattr(out, "write"):
        yield out  # type: ignore[misc]  # hasattr does not narrow the union to IO[bytes]
        return
    path = Path(out)
    part = path.with_name(path.name + ".part")
    try:
        with open(part, "wb") as f:
            yield f
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"export format {fmt!r}: expected one of {', '.join(FORMATS)}")


# --- orders --------------------------------------------------------------------------------------


def export_orders(log: EventLog | str | os.PathLike[str], out: str | os.PathLike[str] | IO[bytes],
                  fmt: Format, *,
                  brands: Sequence[str], platforms: Sequence[str], regions: Sequence[str],
                  zone: timezone, from_seq: int = 0, to_seq: int | None = None,
                  row_group_events: int = ROW_GROUP_EVENTS,
                  dimensions: Sequence[DimensionTable] = ()) -> int:
    """Write the orders ``[from_seq, to_seq)`` of ``log`` (an EventLog or its directory) to ``out``.

    ``brands[i]`` is the name of brand id ``i`` (likewise platforms, regions); ``dimensions``
    (``scenario.dimensions.tables(scenario)``) adds a column per dimension. Returns the number
    of orders written. Memory: one chunk of 16 Ki orders (text) or one row group (Parquet).
    A damaged or missing log raises :class:`ExportError` (its cause the ``CorruptLogError``);
    nothing is left at a path ``out`` then.
    """
    _check_format(fmt)
    formatter = OrderFormatter(brands, platforms, regions, zone, dimensions)
    if fmt == "parquet":
        _require_pyarrow()
    try:
        if isinstance(log, EventLog):
            return _export_orders(log, out, fmt, formatter, from_seq, to_seq, row_group_events)
        with EventLog(log, readonly=True) as opened:
            return _export_orders(opened, out, fmt, formatter, from_seq, to_seq, row_group_events)
    except (CorruptLogError, FileNotFoundError) as exc:
        where = log.directory if isinstance(log, EventLog) else log
        if isinstance(exc, FileNotFoundError) and Path(exc.filename or where) != Path(where):
            raise  # not the log: e.g. the output's directory
        raise ExportError(f"cannot export the orders of {where}: {exc}") from exc


def _export_orders(log: EventLog, out: str | os.PathLike[str] | IO[bytes], fmt: str,
                   formatter: OrderFormatter, from_seq: int,
                   to_seq: int | None, row_group_events: int) -> int:
    written = 0
    batches = log.read(from_seq, to_seq)
    with _destination(out) as f:
        if fmt == "parquet":
            _require_pyarrow()
            import pyarrow.parquet as pq

            with pq.ParquetWriter(f, formatter.arrow_schema(), compression="zstd") as writer:
                for batch in rebatch(batches, row_group_events):
                    writer.write_batch(formatter.arrow(batch), row_group_size=len(batch))
                    written += len(batch)
            return written
        f.write(formatter.header(fmt))
        for chunk in rebatch(batches, every=TEXT_CHUNK_EVENTS):  # views: no copy
            f.write(formatter.text(chunk, fmt))
            written += len(chunk)
    return written


# --- milestones ----------------------------------------------------------------------------------

_MILESTONE_INTS = ("threshold_minor", "value_minor", "seq")


def read_milestones(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The milestones of a ``milestones.jsonl``, checked, one at a time.

    Each is the line's object plus ``event_time_us`` (its ``event_time`` parsed; the text is kept
    as written). Raises :class:`ExportError` naming the file and line of anything that is not a
    milestone of the contract.
    """
    expected = set(MILESTONE_COLUMNS)
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ExportError(f"{where}: not JSON: {exc}") from None
            if not isinstance(data, dict) or set(data) - {"timing", "corrects"} != expected or (
                    "corrects" in data and "timing" not in data):
                keys = sorted(data) if isinstance(data, dict) else type(data).__name__
                raise ExportError(f"{where}: expected a milestone object with keys "
                                  f"{', '.join(MILESTONE_COLUMNS)}; found {keys}")
            for key in _MILESTONE_INTS:
                if type(data[key]) is not int:
                    raise ExportError(f"{where}: {key} must be an integer, found {data[key]!r}")
            if data["rank"] is not None and type(data["rank"]) is not int:
                raise ExportError(f"{where}: rank must be an integer or null, found {data['rank']!r}")
            try:
                data["event_time_us"] = parse_time(data["event_time"])
            except (TypeError, ValueError) as exc:
                raise ExportError(f"{where}: event_time: {exc}") from None
            yield data


def export_milestones(milestones: str | os.PathLike[str], out: str | os.PathLike[str] | IO[bytes],
                      fmt: Format, *, zone: timezone, row_group_rows: int = 65_536) -> int:
    """Write the milestones of a ``milestones.jsonl`` file to ``out``; returns how many."""
    _check_format(fmt)
    rows = read_milestones(milestones)
    first = next(rows, None)
    rows = iter(()) if first is None else itertools.chain([first], rows)
    # an arrival-ordered run's file: every milestone has a timing, so its first says
    columns_out = MILESTONE_COLUMNS + (EVENT_TIME_COLUMNS if first and "timing" in first else ())
    rows = ({**row, "corrects": row.get("corrects"), "timing": row.get("timing")} for row in rows)
    written = 0
    if fmt == "parquet":
        _require_pyarrow()
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns_typed: list[tuple[str, pa.DataType]] = [
            ("id", pa.string()), ("kind", pa.string()), ("subject", pa.string()),
            ("threshold_minor", pa.int64()), ("value_minor", pa.int64()), ("seq", pa.int64()),
            ("event_time", pa.timestamp("us", tz=utc_offset_text(zone))), ("rank", pa.int64()),
            ("headline", pa.string()),
            *[(name, pa.string()) for name in columns_out[len(MILESTONE_COLUMNS):]],
        ]
        schema = pa.schema(columns_typed)
        assert tuple(schema.names) == columns_out
        with _destination(out) as f, pq.ParquetWriter(f, schema, compression="zstd") as writer:
            for group in _groups(rows, row_group_rows):
                columns = {name: [row[name] for row in group] for name in columns_out}
                columns["event_time"] = [row["event_time_us"] for row in group]
                writer.write_table(pa.Table.from_pydict(columns, schema=schema))
                written += len(group)
        return written
    with _destination(out) as f:
        if fmt == "csv":
            f.write(",".join(columns_out).encode() + b"\n")
            for row in rows:
                cells = (b"" if row[name] is None else _csv_field(row[name]) if isinstance(row[name], str)
                         else str(row[name]).encode() for name in columns_out)
                f.write(b",".join(cells) + b"\n")
                written += 1
        else:
            for row in rows:
                f.write(orjson.dumps({name: row[name] for name in columns_out
                                      if row[name] is not None or name not in EVENT_TIME_COLUMNS})
                        + b"\n")
                written += 1
    return written


def _groups(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    group: list[dict[str, Any]] = []
    for row in rows:
        group.append(row)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group
