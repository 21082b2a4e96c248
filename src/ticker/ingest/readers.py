"""Streaming readers for order files: CSV, JSON Lines, Parquet; one chunk of rows at a time.

Each reader yields lists of ``(line, row)`` pairs: ``line`` is where the row starts in the file
(CSV and JSON Lines: the physical line, 1-based, the CSV header being line 1; Parquet: the row's
1-based index), ``row`` a mapping of column -> value, or, for a line that is not a JSON object,
a :class:`RowError`. Memory holds one chunk, whatever the file's size: CSV and JSON Lines are
read line by line from the stream, Parquet one record batch at a time (``iter_batches``), so a
file larger than memory imports.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from ticker.errors import TickerError
from ticker.ingest.fields import RowError

if TYPE_CHECKING:
    import _csv

CHUNK_ROWS = 1 << 14
FORMATS = ("csv", "jsonl", "parquet")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
             ".parquet": "parquet", ".pq": "parquet"}

Chunk = list[tuple[int, "dict[str, Any] | RowError"]]  # (line, a row by column name, or why not)


class InputError(TickerError, ValueError):
    """The input file cannot be read at all (one line for the user)."""


def detect_format(path: str, head: bytes) -> str:
    """By suffix; for stdin or an unknown suffix, by the first bytes (``PAR1``, ``{``, else CSV)."""
    found = _SUFFIXES.get(Path(path).suffix.lower()) if path != "-" else None
    if found:
        return found
    if head.startswith(b"PAR1"):
        return "parquet"
    return "jsonl" if head.lstrip()[:1] in (b"{", b"[") else "csv"


@contextmanager
def open_input(path: str) -> Iterator[IO[bytes]]:
    """The file (or stdin for ``-``) as a buffered binary stream."""
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        fh = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror})") from None
    with fh:
        yield fh


def read_chunks(stream: IO[bytes], fmt: str, where: str) -> Iterator[Chunk]:
    if fmt == "csv":
        return _csv_chunks(stream, where)
    if fmt == "jsonl":
        return _jsonl_chunks(stream)
    if fmt == "parquet":
        return _parquet_chunks(stream, where)
    raise InputError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")


def _csv_chunks(stream: IO[bytes], where: str) -> Iterator[Chunk]:
    """CSV rows in chunks (``where`` names the file in errors)."""
    # a BOM is not a column; newline="" lets csv see quoted line breaks
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
    try:
        yield from _csv_rows(csv.reader(text), where)
    finally:
        text.detach()  # the stream is the caller's (stdin included): do not close it


def _csv_rows(reader: _csv.Reader, where: str) -> Iterator[Chunk]:
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise InputError(f"{where}: line 1: not CSV ({exc})") from None
    names = [h.strip() for h in header]
    width = len(names)
    chunk: Chunk = []
    start = reader.line_num + 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            chunk.append((start, RowError(f"not a CSV row ({exc})", raw=None)))
            start = reader.line_num + 1
            continue
        if fields:  # a blank line is not a row
            if len(fields) != width:
                chunk.append((start, RowError(f"expected {width} fields (the header's), found "
                                              f"{len(fields)}", raw=fields)))
            else:
                chunk.append((start, dict(zip(names, fields, strict=True))))
        start = reader.line_num + 1
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _jsonl_chunks(stream: IO[bytes]) -> Iterator[Chunk]:
    chunk: Chunk = []
    for line_no, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            row = RowError(f"not JSON ({exc})", raw=line)
        if not isinstance(row, dict | RowError):
            row = RowError(f"expected a JSON object, found {type(row).__name__}", raw=line)
        chunk.append((line_no, row))
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _parquet_chunks(stream: IO[bytes], where: str) -> Iterator[Chunk]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("reading Parquet needs pyarrow: pip install 'ticker[parquet]'") from None
    spool = None
    if not stream.seekable():  # a pipe: Parquet's footer is at the end, so spool it to disk first
        spool = tempfile.NamedTemporaryFile(prefix="ticker-import-", suffix=".parquet")  # noqa: SIM115
        shutil.copyfileobj(stream, spool, 1 << 20)
        spool.flush()
        stream = open(spool.name, "rb")  # noqa: SIM115
    try:
        try:
            parquet = pq.ParquetFile(stream)
        except Exception as exc:  # pyarrow raises ArrowInvalid and friends
            raise InputError(f"{where}: not a Parquet file ({exc})") from None
        row = 1
        for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
            rows = batch.to_pylist()
            yield [(row + i, r) for i, r in enumerate(rows)]
            row += len(rows)
    finally:
        if spool is not None:
            stream.close()
            spool.close()


def size_hint(path: str) -> int | None:
    try:
        return os.path.getsize(path) if path != "-" else None
    except OSError:
        return None
