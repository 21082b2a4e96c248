"""One order field at a time, from the text (or JSON value) a shop or a stream wrote, exactly.

Every parser returns the value in ticker's units or raises :class:`RowError` with one line saying
what was found and what was expected. Money never passes through a float: a decimal string is
split at its point and read as integers.

**Event time** is read as follows (the rule ``ticker import --help`` and the README state):

* ISO-8601 text (``2021-11-11T00:00:00.123+08:00``, ``…Z``); without an offset, the festival's;
* an epoch number (JSON number or digit string, optionally with a fraction), whose unit is chosen
  by the magnitude of its integer part: below 10¹¹ seconds, below 10¹⁴ milliseconds, below 10¹⁷
  microseconds — unambiguous for every date from 1973 to 5138. Digits finer than a microsecond
  are refused, never rounded.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

from ticker.clock import US_PER_S, to_us
from ticker.errors import TickerError
from ticker.events import OrderKind
from ticker.money import CURRENCIES, Currency

_DECIMAL = re.compile(r"^([+-]?)(\d*)(?:\.(\d*))?$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_INT64 = 1 << 63
#: epoch unit by the size of the integer part: (exclusive bound, µs per unit, fraction digits)
_EPOCH_UNITS = ((10**11, US_PER_S, 6), (10**14, 1_000, 3), (10**17, 1, 0))
KINDS = {kind.name.lower(): int(kind) for kind in OrderKind}


class RowError(TickerError, ValueError):
    """One field of one row or payload is unusable: the reason, for the dead-letter file.

    ``raw`` is what was read when there is no row to show (a line that is not JSON)."""

    def __init__(self, reason: str, raw: object = None):
        super().__init__(reason)
        self.raw = raw


def _text(value: object, field: str) -> str:
    if isinstance(value, str):
        text = value.strip()
        if text:
            return text
    elif isinstance(value, bytes):
        return _text(value.decode("utf-8", "replace"), field)
    raise RowError(f"{field}: expected text, found {_show(value)}")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def minor_digits(currency: Currency) -> int:
    """Decimal places of the currency's minor unit: 2 for fen and cents."""
    return len(str(currency.minor_per_major)) - 1


def parse_major(value: object, currency: Currency, field: str = "amount") -> int:
    """A decimal amount in major units (``"129.90"``) -> minor units, exactly.

    More decimals than the currency has (``"1.234"`` yuan) is an error, never a rounding.

    >>> from ticker.money import CNY
    >>> parse_major("129.9", CNY)
    12990
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        hint = " (write it as a string: a JSON number is a binary float)" if isinstance(value, float) else ""
        raise RowError(f"{field}: expected a decimal string like \"129.90\", found {_show(value)}{hint}")
    text = str(value).strip().replace("_", "x")  # '1_0' is not an amount
    match = _DECIMAL.match(text)
    if not match or not (match.group(2) or match.group(3)):
        raise RowError(f"{field}: expected a decimal number like 129.90, found {_show(value)}")
    sign, whole, frac = match.group(1), match.group(2) or "0", match.group(3) or ""
    digits = minor_digits(currency)
    if len(frac) > digits:
        raise RowError(f"{field}: {text} has {len(frac)} decimals, {currency.code} has {digits}")
    minor = int(whole) * currency.minor_per_major + int(frac.ljust(digits, "0") or 0)
    minor = -minor if sign == "-" else minor
    if abs(minor) >= _INT64:
        raise RowError(f"{field}: {text} is beyond the range of int64 minor units")
    return minor


def parse_minor(value: object, field: str = "amount_minor") -> int:
    """An integer count of minor units (JSON integer or digit string)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RowError(f"{field}: expected an integer number of minor units, found {_show(value)}")
    text = str(value).strip()
    if not _INTEGER.match(text):
        raise RowError(f"{field}: expected an integer number of minor units, found {_show(value)}")
    minor = int(text)
    if abs(minor) >= _INT64:
        raise RowError(f"{field}: {text} is beyond the range of int64 minor units")
    return minor


def parse_currency(value: object, run_currency: Currency) -> Currency:
    code = _text(value, "currency").upper()
    currency = CURRENCIES.get(code)
    if currency is None:
        raise RowError(f"currency: unknown currency {code!r} (expected one of {', '.join(CURRENCIES)})")
    if currency is not run_currency:
        raise RowError(f"currency: {code}, but this run's festival is in {run_currency.code}")
    return currency


def parse_event_time(value: object, zone: timezone) -> int:
    """ISO-8601 text or an epoch number (see the module's rule) -> µs since the epoch (UTC)."""
    if isinstance(value, datetime):  # Parquet timestamps
        return to_us(value if value.tzinfo is not None else value.replace(tzinfo=zone))
    if isinstance(value, float):
        value = repr(value)  # the shortest text that reads back as this float: what was written
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text = _text(value, "event_time")
    match = _DECIMAL.match(text)
    if match and match.group(2):
        return _epoch(text, match.group(1), match.group(2), match.group(3) or "")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RowError(f"event_time: expected ISO-8601 like 2021-11-11T00:00:00+08:00 or an epoch "
                       f"number, found {_show(value)}") from None
    return to_us(moment if moment.tzinfo is not None else moment.replace(tzinfo=zone))


def _epoch(text: str, sign: str, whole: str, frac: str) -> int:
    magnitude = int(whole)
    for bound, unit_us, max_frac in _EPOCH_UNITS:
        if magnitude < bound:
            if len(frac.rstrip("0")) > max_frac:
                raise RowError(f"event_time: {text} has digits finer than a microsecond")
            us = magnitude * unit_us + (int(frac[:max_frac].ljust(max_frac, "0")) if max_frac else 0)
            return -us if sign == "-" else us
    raise RowError(f"event_time: epoch {text} is too large (seconds, ms or µs before the year 5138)")


def parse_order_id(value: object) -> int:
    """A non-negative integer below 2**63 as given; any other text -> a stable 63-bit number
    (BLAKE2b of its UTF-8), so string ids such as ``"T2021-0042"`` still detect duplicates."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < _INT64:
            return value
        raise RowError(f"order_id: expected 0 <= id < 2**63, found {value}")
    text = _text(value, "order_id")
    if text.isascii() and text.isdigit() and int(text) < _INT64:
        return int(text)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def parse_kind(value: object) -> int:
    if value is None or value == "":
        return int(OrderKind.PLACED)
    kind = KINDS.get(_text(value, "kind").lower())
    if kind is None:
        raise RowError(f"kind: expected placed or refunded, found {_show(value)}")
    return kind


def parse_name(value: object, field: str) -> str:
    name = _text(value, field)
    if "\x00" in name:
        raise RowError(f"{field}: a name cannot contain NUL")
    return name
