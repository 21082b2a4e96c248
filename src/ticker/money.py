"""Currencies, minor units, and the one place where money becomes text.

Money is always an integer number of minor units (fen for CNY, cents for USD) held in
``int`` or ``numpy.int64``; a float never holds an amount. Only :func:`format_money`
turns an amount into words, so every headline, table and log line agrees.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Currency:
    """A currency as the festival's press releases write it."""

    code: str
    symbol: str
    minor_per_major: int

    def to_minor(self, major: int | str) -> int:
        """Exact conversion of a whole or decimal-string major amount to minor units.

        >>> CNY.to_minor("540.3")
        54030
        """
        if isinstance(major, int):
            return major * self.minor_per_major
        whole, _, frac = major.partition(".")
        digits = len(str(self.minor_per_major)) - 1
        if len(frac) > digits:
            raise ValueError(f"{major!r} has more decimals than {self.code} minor units")
        return int(whole) * self.minor_per_major + int(frac.ljust(digits, "0") or 0)


CNY = Currency("CNY", "RMB", 100)
USD = Currency("USD", "US$", 100)
CURRENCIES: dict[str, Currency] = {c.code: c for c in (CNY, USD)}

_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand"))


def format_money(amount_minor: int, currency: Currency, *, digits: int = 1) -> str:
    """The amount as a live blog writes it: ``RMB 540.3 billion``, ``US$ 11.0 million``.

    Rounds half away from zero on integers only, so the text never drifts from the fen.

    >>> format_money(54030000000000, CNY)
    'RMB 540.3 billion'
    >>> format_money(1100000000, USD)
    'US$ 11.0 million'
    >>> format_money(123456, CNY)
    'RMB 1,234.56'
    """
    sign = "-" if amount_minor < 0 else ""
    minor = abs(int(amount_minor))
    per = currency.minor_per_major
    for unit, word in _SCALES[:3]:
        if minor >= unit * per:
            step = unit * per // 10**digits
            rounded = (minor + step // 2) // step
            whole, frac = divmod(rounded, 10**digits)
            text = f"{whole:,}.{frac:0{digits}d}" if digits else f"{whole:,}"
            return f"{sign}{currency.symbol} {text} {word}"
    whole, frac = divmod(minor, per)
    return f"{sign}{currency.symbol} {whole:,}.{frac:02d}"


@functools.lru_cache(maxsize=256)  # headlines name a few thresholds many times
def money_label(amount_minor: int, currency: Currency) -> str:
    """A compact threshold label for headlines: ``RMB 10 billion``, ``US$ 1 million``.

    Drops a trailing ``.0`` so round thresholds read as the press wrote them.

    >>> money_label(1_000_000_000_000, CNY)
    'RMB 10 billion'
    """
    text = format_money(amount_minor, currency)
    return text.replace(".0 ", " ").removesuffix(".00")
