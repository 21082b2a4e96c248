"""Milestones: derived events with stable ids, exact attribution, and a headline.

A milestone is derived from the order log, never stored as truth: re-deriving it gives the same
``id``, so a replay, a resume or a re-publish never duplicates one. It names the ``seq`` and
``event_time`` of the very order that crossed it.

Kinds and what their two numbers mean:

===============  ==========================  ====================================================
kind             subject                     threshold_minor / value_minor
===============  ==========================  ====================================================
``gmv``          ``all``                     the festival GMV threshold / GMV at the crossing
``brand_gmv``    the brand's name            the brand threshold / the brand's GMV at crossing;
                                             ``rank`` is the brand's place in the race
``time_to_value`` ``brand:Apple``, ``all``…  the value to reach / the value at the crossing
``rate_record``  ``orders_per_s``            orders/s: the previous record / the new record
===============  ==========================  ====================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timezone
from typing import Any

import orjson

from ticker.clock import US_PER_S, format_clock, format_duration, format_time
from ticker.money import Currency, money_label


@dataclass(frozen=True, slots=True)
class Milestone:
    id: str
    kind: str
    subject: str
    threshold_minor: int
    value_minor: int
    seq: int
    event_time_us: int
    rank: int | None
    headline: str
    #: an arrival-ordered run's milestones say which they are: ``live`` (first in arrival
    #: order), ``final`` (first in event-time order, announced when the watermark passes it) or
    #: ``correction`` (a late order would have moved the final one named by ``corrects``).
    #: None in an ordered run, where live and final coincide: its files keep today's bytes.
    timing: str | None = None
    corrects: str | None = None

    def to_json(self, zone: timezone) -> dict[str, Any]:
        """The payload of the MQTT and milestones.jsonl contract (``DESIGN.md``)."""
        out = self.to_json_us()
        del out["event_time_us"]
        out["event_time"] = format_time(self.event_time_us, zone, precision="microseconds")
        return out

    def to_json_us(self) -> dict[str, Any]:
        """Every field as stored in snapshots (event time as integer microseconds)."""
        out = asdict(self)
        for optional in ("timing", "corrects"):
            if out[optional] is None:
                del out[optional]
        return out

    def to_bytes(self, zone: timezone) -> bytes:
        return orjson.dumps(self.to_json(zone))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Milestone:
        from ticker.clock import parse_time

        fields = {k: v for k, v in data.items() if k != "event_time"}
        return cls(event_time_us=parse_time(data["event_time"]), **fields)

    @property
    def topic_suffix(self) -> str:
        """``milestones/{kind}/{subject}/{threshold}``, with MQTT-unsafe characters replaced; a
        live or correction milestone one level below its final one (``.../live``)."""
        suffix = f"/{self.timing}" if self.timing in ("live", "correction") else ""
        return f"milestones/{self.kind}/{topic_safe(self.subject)}/{self.threshold_minor}{suffix}"


def topic_safe(text: str) -> str:
    """A topic level: no ``/``, ``+``, ``#`` or NUL, which MQTT reserves."""
    return "".join("_" if ch in "/+#\0" else ch for ch in text)


def milestone_id(run: str, kind: str, subject: str, threshold: int) -> str:
    return f"{run}:{kind}:{subject}:{threshold}"


def ordinal(n: int) -> str:
    """``first``, ``second``, ... ``tenth``, then ``11th``, ``22nd``, ``103rd``."""
    words = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
             "ninth", "tenth")
    if 1 <= n <= len(words):
        return words[n - 1]
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# --- the four kinds, built one way for the aggregator and the reference fold alike -------------


def gmv_milestone(run: str, threshold: int, value: int, seq: int, time_us: int,
                  currency: Currency) -> Milestone:
    return Milestone(milestone_id(run, "gmv", "all", threshold), "gmv", "all", threshold, value,
                     seq, time_us, None, f"Festival GMV passes {money_label(threshold, currency)}")


def brand_milestone(run: str, brand: str, threshold: int, value: int, seq: int, time_us: int,
                    rank: int, currency: Currency) -> Milestone:
    return Milestone(milestone_id(run, "brand_gmv", brand, threshold), "brand_gmv", brand,
                     threshold, value, seq, time_us, rank,
                     f"{brand} is the {ordinal(rank)} brand to pass {money_label(threshold, currency)}")


def time_to_value_milestone(run: str, subject: str, name: str, label: str, threshold: int,
                            value: int, seq: int, time_us: int, took_us: int,
                            currency: Currency) -> Milestone:
    note = f" ({label})" if label else ""
    return Milestone(milestone_id(run, "time_to_value", subject, threshold), "time_to_value",
                     subject, threshold, value, seq, time_us, None,
                     f"{name} reaches {money_label(threshold, currency)} in "
                     f"{format_duration(took_us)}{note}")


def rate_record_milestone(run: str, previous: int, count: int, seq: int, second_start_us: int,
                          zone: timezone) -> Milestone:
    """A completed second's order count; dated at the second's last microsecond."""
    # the id names the threshold, as every kind's does (DESIGN.md): here the record it beat
    return Milestone(milestone_id(run, "rate_record", "orders_per_s", previous), "rate_record",
                     "orders_per_s", previous, count, seq, second_start_us + US_PER_S - 1, None,
                     f"New peak: {count:,} orders per second at "
                     f"{format_clock(second_start_us, zone)}")
