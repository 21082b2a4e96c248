"""Event time: integer microseconds since the Unix epoch (UTC), shown in the festival's zone.

Every timestamp in an :class:`~ticker.events.OrderBatch` is an ``int64`` count of microseconds;
this module is the one place that converts between that and ISO-8601 text.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

US_PER_S = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")


def parse_offset(text: str) -> timezone:
    """``"+08:00"`` -> a fixed-offset timezone (China Standard Time has no DST)."""
    match = _OFFSET.match(text)
    if not match:
        raise ValueError(f"expected a UTC offset like '+08:00', found {text!r}")
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    return timezone(-delta if sign == "-" else delta)


def offset_text(zone: timezone) -> str:
    """The zone's UTC offset as ISO-8601 writes it: ``+08:00`` (whole minutes, as parsed).

    >>> offset_text(parse_offset("+08:00"))
    '+08:00'
    """
    minutes, rest = divmod(zone.utcoffset(None), timedelta(minutes=1))
    if rest:
        raise ValueError(f"UTC offset {zone.utcoffset(None)} has seconds; expected whole minutes")
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def to_us(moment: datetime) -> int:
    """An aware datetime -> microseconds since the epoch, exactly."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no UTC offset")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_S + delta.microseconds


def parse_time(text: str, zone: timezone | None = None) -> int:
    """ISO-8601 text -> microseconds; a time without an offset is read in ``zone``.

    >>> parse_time("2021-11-11T00:45+08:00")
    1636562700000000
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        if zone is None:
            raise ValueError(f"{text!r} has no UTC offset (expected e.g. '{text}+08:00')")
        moment = moment.replace(tzinfo=zone)
    return to_us(moment)


def format_time(us: int, zone: timezone, *, precision: str = "milliseconds") -> str:
    """Microseconds -> ISO-8601 with the festival's offset.

    >>> format_time(1636562700000000, parse_offset("+08:00"))
    '2021-11-11T00:45:00.000+08:00'
    """
    moment = _EPOCH + timedelta(microseconds=int(us))
    return moment.astimezone(zone).isoformat(timespec=precision)


def format_clock(us: int, zone: timezone) -> str:
    """A wall-clock label for tickers: ``Nov 11 00:45:03``."""
    moment = (_EPOCH + timedelta(microseconds=int(us))).astimezone(zone)
    return moment.strftime("%b %d %H:%M:%S")


def format_duration(us: int) -> str:
    """A short elapsed time for headlines: ``0.98 seconds``, ``14 min 52 s``, ``2 h 03 min``."""
    seconds = us / US_PER_S
    if seconds < 60:
        return f"{seconds:.2f} seconds" if seconds < 10 else f"{seconds:.0f} seconds"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
