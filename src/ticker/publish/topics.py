"""Topic names and payloads of the MQTT contract (``DESIGN.md``, "MQTT topics"): pure functions.

Nothing here touches the network, so the engine, the publisher, ``ticker watch`` and the tests
agree on every byte. Payloads are orjson bytes; money is always an integer ``*_minor`` field plus
a display string made by :func:`ticker.money.format_money` (the one place money becomes text).

======================================================  ========  ===  ==============================
topic                                                   retained  QoS  payload builder
======================================================  ========  ===  ==============================
``ticker/{run}/status``                                 yes       1    :func:`status_payload`
``ticker/{run}/gmv``                                    yes       0    :func:`tick_payload`
``ticker/{run}/leaderboard``                            yes       0    :func:`leaderboard_payload`
``ticker/{run}/milestones/{kind}/{subject}/{thresh}``   yes       1    :func:`milestone_payload`
``ticker/{run}/orders/{partition}``                     no        1    ``OrderBatch.to_frame()``
======================================================  ========  ===  ==============================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, timezone
from typing import Any, NamedTuple

import orjson

from ticker import __version__
from ticker.aggregate.milestones import Milestone, topic_safe
from ticker.clock import format_time, offset_text
from ticker.money import CNY, Currency, format_money

#: The first topic level of everything ticker publishes.
ROOT = "ticker"

#: What ``ticker/{run}/status`` may say. ``offline`` is only ever sent by the broker (the will).
STATES = ("running", "finished", "offline")

#: Milestone kinds whose numbers are counts (orders/s), not money.
RATE_KINDS = frozenset({"rate_record"})


class Delivery(NamedTuple):
    """How a topic is published: the broker keeps the last one (``retain``) and its QoS."""

    qos: int
    retain: bool


STATUS = Delivery(qos=1, retain=True)
GMV = Delivery(qos=0, retain=True)
LEADERBOARD = Delivery(qos=0, retain=True)
MILESTONE = Delivery(qos=1, retain=True)
ORDERS = Delivery(qos=1, retain=False)

#: The QoS at which ticker's own readers (``ticker watch``, ``ticker screen``) subscribe to a run's
#: retained topics. Not 1: a Mosquitto with its defaults queues at most ``max_queued_messages``
#: (1000) QoS 1 messages beyond its 20 in flight for one subscriber and silently drops the rest,
#: so a reader arriving after a run of thousands of milestones (one per brand and threshold) would
#: see about 1,020 of them. At QoS 0 the broker sends the whole retained burst. Nothing is lost
#: by it: the readers use clean sessions, every milestone is retained on its own topic, and a
#: resubscription after a reconnect delivers all of them again.
READER_QOS = 0


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What every payload of a run shares: its id, what was run, and how to show money and time.

    ``run`` becomes a topic level, so it may not contain ``/``, ``+``, ``#`` or NUL.
    """

    run: str
    scenario: str = ""
    seed: int = 0
    scale: float = 1.0
    currency: Currency = CNY
    zone: timezone = field(default=UTC)
    #: For dashboards (``ticker screen``): the festival's title, its sales windows as
    #: ``(name, start_us, end_us)``, and when the run started (ISO, UTC): the newest run is shown.
    title: str = ""
    windows: tuple[tuple[str, int, int], ...] = ()
    started: str = ""

    def __post_init__(self) -> None:
        check_run_id(self.run)


def check_run_id(run: str) -> str:
    """The run id unchanged, or ``ValueError`` if it cannot be one MQTT topic level."""
    if not run or run != topic_safe(run) or run.strip() != run:
        raise ValueError(f"run id {run!r} cannot be an MQTT topic level "
                         "(it must be non-empty, without '/', '+', '#', NUL or outer spaces)")
    return run


# --- topics -------------------------------------------------------------------------------------

def run_prefix(run: str) -> str:
    """``ticker/{run}``."""
    return f"{ROOT}/{check_run_id(run)}"


def status_topic(run: str) -> str:
    return f"{run_prefix(run)}/status"


def gmv_topic(run: str) -> str:
    return f"{run_prefix(run)}/gmv"


def leaderboard_topic(run: str) -> str:
    return f"{run_prefix(run)}/leaderboard"


def milestone_topic(run: str, milestone: Milestone) -> str:
    """``ticker/{run}/milestones/{kind}/{subject}/{threshold}``: one retained topic per milestone."""
    return f"{run_prefix(run)}/{milestone.topic_suffix}"


def milestones_filter(run: str | None = None) -> str:
    """The filter that gets every milestone of one run (or of every run): ``.../milestones/#``."""
    return f"{ROOT}/{'+' if run is None else check_run_id(run)}/milestones/#"


def orders_topic(run: str, partition: int | str) -> str:
    """``ticker/{run}/orders/{partition}``: raw order frames, not retained."""
    return f"{run_prefix(run)}/orders/{topic_safe(str(partition))}"


def narrow_filter(topic_filter: str, run: str | None) -> str:
    """A ``ticker watch`` filter made absolute and, with ``run``, narrowed to that run.

    A filter that does not start with ``ticker/`` is relative to a run (``gmv``,
    ``milestones/#``); ``run`` replaces the run level of an absolute one.

    >>> narrow_filter("milestones/#", None)
    'ticker/+/milestones/#'
    >>> narrow_filter("ticker/+/gmv", "r1")
    'ticker/r1/gmv'
    >>> narrow_filter("ticker/#", "r1")
    'ticker/r1/#'
    """
    level = "+" if run is None else check_run_id(run)
    if not topic_filter or "\0" in topic_filter:
        raise ValueError(f"topic filter {topic_filter!r} is empty or contains NUL")
    if topic_filter == ROOT or topic_filter.startswith(ROOT + "/"):
        parts = topic_filter.split("/")
        if run is None:
            return topic_filter
        if len(parts) == 1:
            return f"{ROOT}/{level}"
        if parts[1] == "#":
            return f"{ROOT}/{level}/#"
        parts[1] = level
        return "/".join(parts)
    if topic_filter == "#":
        return f"{ROOT}/{level}/#"
    return f"{ROOT}/{level}/{topic_filter}"


def parse_topic(topic: str) -> tuple[str, str]:
    """``ticker/{run}/{rest}`` -> ``(run, rest)``; ``ValueError`` for a foreign topic."""
    root, _, tail = topic.partition("/")
    run, _, rest = tail.partition("/")
    if root != ROOT or not run or not rest:
        raise ValueError(f"{topic!r} is not a ticker topic")
    return run, rest


# --- payloads -----------------------------------------------------------------------------------

def dumps(payload: Mapping[str, Any]) -> bytes:
    """The wire form of a payload: compact JSON by orjson (numpy ints allowed)."""
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


def status_json(info: RunInfo, state: str, **extra: Any) -> dict[str, Any]:
    """The status a dashboard shows for a run, and where to find the rest of it.

    ``extra`` adds fields (say ``orders`` or ``gmv_minor`` at the end of a run).
    """
    if state not in STATES:
        raise ValueError(f"status state {state!r} is not one of {', '.join(STATES)}")

    out: dict[str, Any] = {
        "run": info.run,
        "state": state,
        "scenario": info.scenario,
        "seed": info.seed,
        "scale": info.scale,
        "currency": info.currency.code,
        "zone": offset_text(info.zone),
        "title": info.title,
        "windows": [{"name": name, "start": format_time(start, info.zone),
                     "end": format_time(end, info.zone)} for name, start, end in info.windows],
        "started": info.started,
        "topics": {
            "gmv": gmv_topic(info.run),
            "leaderboard": leaderboard_topic(info.run),
            "milestones": milestones_filter(info.run),
        },
        "version": __version__,
    }
    out.update(extra)
    return out


def status_payload(info: RunInfo, state: str, **extra: Any) -> bytes:
    return dumps(status_json(info, state, **extra))


def tick_json(info: RunInfo, *, event_time_us: int, seq: int, gmv_minor: int, orders: int,
              orders_per_s: float, watermark_us: int | None = None) -> dict[str, Any]:
    """The running tick: event time, GMV (minor units and display text), orders and orders/s.

    Event times are ISO-8601 to the microsecond with the festival's offset, as in milestones.

    Costs two string formats (time and money), a few microseconds: the publisher accepts this
    dict as it is and serialises only the ticks it actually sends (at most ``tick_hz`` a second).
    An arrival-ordered run's tick also carries its ``watermark`` (``event_time`` is then the
    largest event time seen).
    """
    out = {
        "run": info.run,
        "event_time": format_time(event_time_us, info.zone, precision="microseconds"),
        "seq": int(seq),
        "gmv_minor": int(gmv_minor),
        "gmv": format_money(int(gmv_minor), info.currency),
        "orders": int(orders),
        "orders_per_s": orders_per_s if isinstance(orders_per_s, int) else float(orders_per_s),
    }
    if watermark_us is not None:
        out["watermark"] = format_time(watermark_us, info.zone, precision="microseconds")
    return out


def tick_payload(info: RunInfo, **fields: Any) -> bytes:
    """:func:`tick_json` as bytes."""
    return dumps(tick_json(info, **fields))


def leaderboard_json(info: RunInfo, *, event_time_us: int,
                     brands: Iterable[tuple[str, int]]) -> dict[str, Any]:
    """Top brands by GMV. ``brands`` is ``(name, gmv_minor)`` best first; ranks start at 1."""
    return {
        "run": info.run,
        "event_time": format_time(event_time_us, info.zone, precision="microseconds"),
        "brands": [
            {"rank": rank, "brand": name, "gmv_minor": int(gmv),
             "gmv": format_money(int(gmv), info.currency)}
            for rank, (name, gmv) in enumerate(brands, start=1)
        ],
    }


def leaderboard_payload(info: RunInfo, **fields: Any) -> bytes:
    """:func:`leaderboard_json` as bytes."""
    return dumps(leaderboard_json(info, **fields))


def milestone_value(milestone: Milestone, currency: Currency) -> str:
    """The milestone's value as text: money for money kinds, ``583,000 orders/s`` for records."""
    if milestone.kind in RATE_KINDS:
        return f"{milestone.value_minor:,} orders/s"
    return format_money(milestone.value_minor, currency)


def milestone_json(info: RunInfo, milestone: Milestone, *,
                   folded_us: int | None = None) -> dict[str, Any]:
    """``Milestone.to_json(zone)`` plus ``value``, its display string, and with ``folded_us``
    that field: the wall-clock time (UTC µs since the epoch) at which the publishing process's
    fold found the milestone, so a subscriber can measure the latency from fold to itself. It
    is not part of the milestone (not in milestones.jsonl, not deterministic): a resumed run
    re-publishes the milestones it had already reached without it."""
    out = milestone.to_json(info.zone)
    out["value"] = milestone_value(milestone, info.currency)
    if folded_us is not None:
        out["folded_us"] = int(folded_us)
    return out


def milestone_payload(info: RunInfo, milestone: Milestone, *, folded_us: int | None = None) -> bytes:
    return dumps(milestone_json(info, milestone, folded_us=folded_us))
