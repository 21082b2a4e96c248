"""The dead-letter file: every row or payload ingest refused, with its reason and what it was.

``dead-letters.jsonl`` in the run directory, one JSON object per line, appended and flushed as
they come (``follow`` syncs it before acknowledging the messages it holds, so a refused payload
is never lost either)::

    {"where": "orders.csv:17", "reason": "amount: 1.234 has 3 decimals, CNY has 2", "raw": {...}}

``raw`` is the row as read (an object of column -> text) or, when it could not be read as one,
the payload's text (or ``{"base64": ...}`` for bytes that are not UTF-8).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import orjson


def raw_json(raw: object) -> object:
    """A JSON-able form of a raw payload or row."""
    if isinstance(raw, bytes | bytearray | memoryview):
        data = bytes(raw)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(data).decode()}
    return raw


class DeadLetters:
    def __init__(self, path: Path, *, append: bool = True):
        self.path = path
        self.fh = open(path, "ab" if append else "wb")  # noqa: SIM115 (closed in close)
        self.count = 0

    def add(self, where: str, reason: str, raw: object, **extra: object) -> bytes:
        record = {"where": where, "reason": reason, **extra, "raw": raw_json(raw)}
        line = orjson.dumps(record, default=str, option=orjson.OPT_NON_STR_KEYS)
        self.fh.write(line + b"\n")
        self.count += 1
        return line

    def flush(self, durable: bool = False) -> None:
        self.fh.flush()
        if durable:
            os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.flush()
        self.fh.close()


def count_lines(path: Path) -> int:
    if not path.is_file():
        return 0
    with open(path, "rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
