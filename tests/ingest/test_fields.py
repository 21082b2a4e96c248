"""Exact parsing of one field: money never through a float, event times by the stated rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker.clock import to_us
from ticker.ingest.fields import (
    RowError,
    parse_currency,
    parse_event_time,
    parse_kind,
    parse_major,
    parse_minor,
    parse_order_id,
)
from ticker.money import CNY, USD

MINOR = st.integers(min_value=-(10**17), max_value=10**17)


def major_text(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 100)
    return f"{sign}{whole}.{frac:02d}"


@given(MINOR)
def test_major_text_round_trips_to_the_fen(minor):
    assert parse_major(major_text(minor), CNY) == minor
    assert parse_minor(str(minor)) == minor
    assert parse_minor(minor) == minor


@given(st.integers(min_value=0, max_value=10**15), st.integers(min_value=0, max_value=99),
       st.sampled_from(["", "0", "1", "10"]))
def test_fewer_decimals_are_exact(whole, cents, _):
    text = f"{whole}.{cents:02d}".rstrip("0").rstrip(".") or "0"
    assert parse_major(text, USD) == int(Decimal(text) * 100)


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=1, max_value=9),
       st.integers(min_value=3, max_value=8))
def test_more_decimals_than_the_currency_are_refused_never_rounded(whole, last, places):
    text = f"{whole}." + "0" * (places - 1) + str(last)
    with pytest.raises(RowError, match="decimals, CNY has 2"):
        parse_major(text, CNY)


@given(st.text(min_size=1, max_size=12).filter(lambda t: not _is_decimal(t)))
def test_anything_not_a_decimal_is_one_reason(text):
    with pytest.raises(RowError, match=r"^amount: "):
        parse_major(text, CNY)


def _is_decimal(text: str) -> bool:
    import re

    return bool(re.fullmatch(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*", text)) and text.isascii()


@pytest.mark.parametrize("value", [12.5, True, None, [1], {"a": 1}, "1e3", "NaN", "inf", "1,000.00", "1_000"])
def test_amount_values_that_are_not_exact_decimals(value):
    with pytest.raises(RowError):
        parse_major(value, CNY)


def test_beyond_int64_is_refused():
    with pytest.raises(RowError, match="int64"):
        parse_major("92233720368547758.08", CNY)
    with pytest.raises(RowError, match="int64"):
        parse_minor(str(1 << 63))


MOMENTS = st.datetimes(min_value=datetime(1974, 1, 1), max_value=datetime(5000, 1, 1),
                       timezones=st.just(UTC))


@given(MOMENTS)
def test_epochs_in_each_unit_and_iso_agree(moment):
    us = to_us(moment)
    assert parse_event_time(str(us), UTC) == us
    assert parse_event_time(us, UTC) == us
    assert parse_event_time(moment.isoformat(), UTC) == us
    seconds, micro = divmod(us, 1_000_000)
    assert parse_event_time(f"{seconds}.{micro:06d}", UTC) == us
    if micro % 1000 == 0:
        assert parse_event_time(f"{us // 1000}", UTC) == us
    assert parse_event_time(moment.astimezone(timezone(timedelta(hours=8))).isoformat(), UTC) == us


def test_a_time_without_offset_is_in_the_festivals_zone():
    cst = timezone(timedelta(hours=8))
    assert parse_event_time("2021-11-11T00:00:00", cst) == parse_event_time("2021-11-10T16:00:00Z", UTC)


@pytest.mark.parametrize("value", ["1636560000.0000001", "1636560000000.0001", "10" * 10, "yesterday",
                                   "2021-13-01T00:00:00Z", "", None, [1]])
def test_unreadable_times(value):
    with pytest.raises(RowError, match=r"^event_time: "):
        parse_event_time(value, UTC)


def test_currency_must_be_known_and_the_festivals():
    assert parse_currency("cny", CNY) is CNY
    with pytest.raises(RowError, match="unknown currency 'XYZ'"):
        parse_currency("XYZ", CNY)
    with pytest.raises(RowError, match="USD, but this run's festival is in CNY"):
        parse_currency("USD", CNY)


@given(st.text(min_size=1, max_size=30).filter(str.strip))
def test_order_ids_are_stable_63_bit_numbers(text):
    a, b = parse_order_id(text), parse_order_id(text)
    assert a == b and 0 <= a < 1 << 63


def test_integer_ids_are_kept_and_kinds_named():
    assert parse_order_id(42) == 42 and parse_order_id("42") == 42
    with pytest.raises(RowError):
        parse_order_id(-1)
    assert parse_kind(None) == 0 and parse_kind("Refunded") == 1
    with pytest.raises(RowError, match="placed or refunded"):
        parse_kind("cancelled")
