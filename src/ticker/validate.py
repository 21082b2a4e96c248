"""The one place where inputs are checked: numbers (finite, in range) and paths (writable, the
right kind), for scenario files and command-line arguments alike.

A check returns the problem as text (``"expected a number in (0, 1000], got 0"``) or raises
:class:`InputError` with it; callers add where the value came from (``--tick-hz``, ``festival.gmv``
in a file) so every rejection is one line: what, where, what was expected, what was found.

Why one place: ``x < 0`` is false for NaN, so a check written per call site lets NaN through
the first time somebody forgets ``math.isfinite``; and a path checked only when the run ends
loses the run.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ticker.errors import TickerError


class InputError(TickerError, ValueError):
    """An input value is outside what it may be; ``str()`` is the one line for the user."""


# --- numbers ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Range:
    """An interval of allowed values; ``integer`` for whole numbers only.

    >>> Range(0, 1000, low_open=True).problem(0)
    'expected a number in (0, 1000], got 0'
    >>> Range(0, 10, integer=True).problem(float("nan"))
    'expected an integer in [0, 10], got nan'
    """

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        return (f"{kind} in {'(' if self.low_open else '['}{_num(self.low)}, "
                f"{_num(self.high)}{')' if self.high_open else ']'}")

    def contains(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def problem(self, value: object) -> str | None:
        """None when ``value`` is a number (an integer if asked) inside the range."""
        ok_types = (int,) if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_types) or not self.contains(value):
            return f"expected {self.describe()}, got {_shown(value)}"
        return None

    def check(self, value: object) -> float:
        if (message := self.problem(value)) is not None:
            raise InputError(message)
        return value  # type: ignore[return-value]  # problem() found it an int or a float


def _num(x: float) -> str:
    if isinstance(x, int) or (float(x).is_integer() and abs(x) < 1e15):
        return f"{int(x):,}".replace(",", "_") if abs(x) >= 100_000 else str(int(x))
    return f"{x:g}"


def _shown(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) and len(str(abs(value))) > 24:
        return f"an integer of {len(str(abs(value)))} digits"
    return str(value) if isinstance(value, int | float) else type(value).__name__


def parse_number(text: str, valid: Range) -> float:
    """``text`` as a number in ``valid`` (``_`` allowed as a digit separator, like Python/TOML)."""
    cleaned = text.strip().replace("_", "")
    value: float
    try:
        value = int(cleaned)
    except ValueError:
        try:
            value = float(cleaned)
        except ValueError:
            raise InputError(f"expected {valid.describe()}, got {text!r}") from None
        if valid.integer and value.is_integer():
            value = int(value)  # 1e6 is a fine integer
    if not valid.integer and isinstance(value, int) and abs(value) < 2**1023:
        value = float(value)  # --scale 1 is 1.0, as run.json has always said
    if (message := valid.problem(value)) is not None:
        raise InputError(message.rsplit(", got ", 1)[0] + f", got {text}")
    return value


def numbers_arg(valid: Range) -> Callable[[str], list[float]]:
    """An argparse ``type=`` for a comma-separated list of numbers, each in ``valid``
    (``--factors 1,2,4``); a bad item is the same one-line usage error as :func:`number_arg`'s."""

    def parse(text: str) -> list[float]:
        items = text.split(",")
        try:
            return [parse_number(item, valid) for item in items]
        except InputError as exc:
            raise argparse.ArgumentTypeError(f"{exc} (a comma-separated list)") from None

    parse.__name__ = "numbers"
    return parse


def number_arg(valid: Range, *, words: dict[str, float | None] | None = None
               ) -> Callable[[str], float | None]:
    """An argparse ``type=`` that parses a number in ``valid`` (or one of ``words``), so a bad
    value is argparse's one-line usage error: ``--tick-hz: expected a number in (0, 1000], got 0``."""

    def parse(text: str) -> float | None:
        if words and text in words:
            return words[text]
        try:
            return parse_number(text, valid)
        except InputError as exc:
            message = str(exc)
            if words:
                message = message.replace("expected ", f"expected {', '.join(words)} or ", 1)
            raise argparse.ArgumentTypeError(message) from None

    parse.__name__ = "number"  # argparse names the type in some messages
    parse.range = valid  # type: ignore[attr-defined]  # for the tests that generate arguments
    parse.words = dict(words or {})  # type: ignore[attr-defined]
    return parse


# Ranges of the command-line numbers (scenario numbers are ranged in scenario/spec.py).
SCALE = Range(1e-6, 10)  # below a millionth every bundled festival is a handful of orders
SEED = Range(0, 2**64 - 1, integer=True)  # numpy's SeedSequence wants a non-negative integer
SPEED = Range(0, 1e9, low_open=True)  # a festival's 11 days in under a millisecond: max
TICK_HZ = Range(0, 1000, low_open=True)
EVENTS_PER_BATCH = Range(1, 1 << 24, integer=True)  # 16.7 M events = 650 MB of columns
SNAPSHOT_EVERY = Range(1, 10**12, integer=True)
WORKERS = Range(1, 256, integer=True)
TOP = Range(1, 10_000, integer=True)
LAST = Range(0, 1_000_000, integer=True)
BENCH_EVENTS = Range(1_000, 500_000_000, integer=True)  # held in memory: ~20 GB at the top
REPEATS = Range(1, 1_000, integer=True)
PORT = Range(0, 65_535, integer=True)  # 0: any free port
PARTS = Range(1, 1_000_000, integer=True)  # --cluster parts of the stream
IDLE_S = Range(0, 7 * 86_400)  # follow --idle-exit: up to a week
RUNG_S = Range(0.1, 3_600)  # bench --sustain: wall seconds per rung
SALE_S = Range(0.1, 86_400)  # bench --sustain --latency-s: sale seconds of Nov 11 (one day)


# --- paths --------------------------------------------------------------------------------------


def os_problem(path: os.PathLike[str] | str, exc: OSError, doing: str = "cannot write") -> str:
    """One line for an OSError at ``path``: what failed, why, in the OS's words."""
    import errno

    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        reason = "no space left on the device"
    return f"{path}: {doing} ({reason})"


def _nearest_existing(path: Path) -> Path:
    here = path.absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    return here


def _writable_dir(directory: Path) -> str | None:
    if not directory.is_dir():
        return f"{directory} is not a directory"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"{directory} is not writable"
    return None


def output_file_problem(path: Path) -> str | None:
    """Why a file cannot be written at ``path`` (None if it can, as far as can be told first);
    missing parent directories are fine: the writer makes them."""
    if path.is_dir():
        return "expected a file path, found a directory"
    if path.exists() and not path.is_file():
        return "expected a regular file path, found a special file"
    parent = path.absolute().parent
    if not parent.exists():  # made when the file is written, as --run-dir's are
        return output_dir_problem(parent)
    if (problem := _writable_dir(parent)) is not None:
        return problem
    existed = path.exists()
    try:  # the only sure test (root passes os.access everywhere, /proc refuses new files)
        with open(path, "ab"):
            pass
    except OSError as exc:
        return f"cannot write it ({exc.strerror})"
    if not existed:
        path.unlink(missing_ok=True)
    return None


def output_dir_problem(path: Path) -> str | None:
    """Why a directory cannot be made or written at ``path`` (its missing parents are made)."""
    if path.exists() and not path.is_dir():
        return "expected a directory, found a file"
    ancestor = _nearest_existing(path)
    if not ancestor.is_dir():
        return f"{ancestor} is a file, not a directory"
    if (problem := _writable_dir(ancestor)) is not None:
        return problem
    try:  # the only sure test (root passes os.access everywhere, /proc refuses new entries)
        os.rmdir(tempfile.mkdtemp(prefix=".ticker-probe-", dir=ancestor))
    except OSError as exc:
        return f"cannot create a directory in {ancestor} ({exc.strerror})"
    return None


def _path_arg(problem: Callable[[Path], str | None]) -> Callable[[str], Path]:
    def parse(text: str) -> Path:
        if not text:
            raise argparse.ArgumentTypeError("expected a path, got ''")
        path = Path(text)
        if (message := problem(path)) is not None:
            raise argparse.ArgumentTypeError(f"{message} ({text})")
        return path

    parse.__name__ = "path"
    return parse


#: argparse ``type=`` for a file ``ticker`` writes (``--summary``, ``--out``, ``--png``).
output_file_arg = _path_arg(output_file_problem)
#: argparse ``type=`` for a directory ``ticker`` creates or fills (``--run-dir``).
output_dir_arg = _path_arg(output_dir_problem)


def input_file_arg(text: str) -> Path:
    """argparse ``type=`` for a file ``ticker`` reads (``--ca-file``)."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"expected a readable file, found "
                                         f"{'a directory' if path.is_dir() else 'nothing'} ({text})")
    return path
