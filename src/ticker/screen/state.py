"""What the screen knows: every run the broker holds, folded from its MQTT messages.

Pure (no network): :meth:`Festival.ingest` takes a topic and a payload and returns what changed,
as an :class:`Update` the server forwards to the browsers watching that run. A payload is checked
against the topic contract (``ticker.publish.topics``) and reduced to the fields the page shows;
anything else — not JSON, a wrong type, a number out of range, an over-long string — is dropped
and counted by topic kind (``malformed``), so a bad publisher can neither break the page nor
smuggle an unexpected field into it. Strings are passed on as data: the page renders them as
text, never as HTML.

Retained topics make the state complete: a screen (re)connecting to the broker receives every
run's status, last tick, leaderboard and milestones again, and folding them is idempotent. An
empty retained payload is MQTT's way of deleting a retained topic: the run or milestone goes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NotRequired, TypedDict

import orjson

from ticker.errors import TickerError
from ticker.publish import topics

#: What the screen subscribes to: everything a run publishes except the raw order frames.
FILTERS = (
    f"{topics.ROOT}/+/status",
    f"{topics.ROOT}/+/gmv",
    f"{topics.ROOT}/+/leaderboard",
    f"{topics.ROOT}/+/milestones/#",
)

#: Longest string accepted from the broker (brand names, headlines, titles).
MAX_TEXT = 400
#: Most brands of a leaderboard, windows of a festival, milestones of a run kept.
MAX_BRANDS = 50
MAX_WINDOWS = 64
MAX_MILESTONES = 20_000
#: Most runs remembered (the oldest finished ones are forgotten first).
MAX_RUNS = 500

_INT64 = 2**63
_ZONE = re.compile(r"[+-]\d\d:\d\d|Z")


class Malformed(TickerError, ValueError):
    """A payload that does not follow the topic contract."""


# --- what the page receives: each topic's payload reduced to the fields it shows ---------------


class Window(TypedDict):
    name: str
    start: str
    end: str


class Status(TypedDict):
    state: str
    scenario: str
    title: str
    seed: int | None
    scale: float
    currency: str
    zone: str
    windows: list[Window]
    started: str
    gmv_minor: NotRequired[int | None]  # the run's totals, once it has finished
    orders: NotRequired[int | None]
    events: NotRequired[int | None]
    milestones: NotRequired[int | None]


class Tick(TypedDict):
    event_time: str
    seq: int | None
    gmv_minor: int | None
    gmv: str
    orders: int | None
    orders_per_s: float


class Entry(TypedDict):
    rank: int | None
    brand: str
    gmv_minor: int | None
    gmv: str


class Leaderboard(TypedDict):
    event_time: str
    brands: list[Entry]


class Milestone(TypedDict):
    id: str
    kind: str
    subject: str
    threshold_minor: int | None
    value_minor: int | None
    seq: int | None
    rank: int | None
    headline: str
    event_time: str
    value: str


class RunSnapshot(TypedDict):
    run: str | None  # None: no run yet
    status: Status | None
    tick: Tick | None
    leaderboard: Leaderboard | None
    milestones: list[Milestone]


class RunLine(TypedDict):
    run: str
    state: str
    scenario: str
    started: str


class Diagnostics(TypedDict):
    malformed: dict[str, int]
    ignored: int


def _text(data: dict[str, Any], key: str, *, required: bool = True, default: str = "") -> str:
    value = data.get(key, None if required else default)
    if not isinstance(value, str) or len(value) > MAX_TEXT or "\0" in value:
        raise Malformed(f"{key}: expected a string of at most {MAX_TEXT} characters")
    return value


def _int(data: dict[str, Any], key: str, *, minimum: int = -_INT64, required: bool = True,
         default: int | None = None) -> int | None:
    value = data.get(key, None if required else default)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value < _INT64:
        raise Malformed(f"{key}: expected an integer >= {minimum}")
    return value


def _number(data: dict[str, Any], key: str, *, minimum: float = 0.0) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < minimum or abs(value) >= 2**63:
        raise Malformed(f"{key}: expected a finite number >= {minimum}")
    return value


def _time(data: dict[str, Any], key: str) -> str:
    """An ISO-8601 event time with its offset, normalised to milliseconds for the page."""
    text = _text(data, key)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Malformed(f"{key}: expected an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise Malformed(f"{key}: expected a time with its UTC offset")
    return moment.isoformat(timespec="milliseconds")


def clean_status(data: Any) -> Status:
    if not isinstance(data, dict):
        raise Malformed("expected a JSON object")
    state = _text(data, "state")
    if state not in topics.STATES:
        raise Malformed(f"state: expected one of {', '.join(topics.STATES)}")
    zone = _text(data, "zone", required=False, default="+00:00")
    if not _ZONE.fullmatch(zone):
        raise Malformed("zone: expected an offset such as +08:00")
    scale = _number(data, "scale")
    if scale <= 0:
        raise Malformed("scale: expected a positive number")
    windows = data.get("windows", [])
    if not isinstance(windows, list) or len(windows) > MAX_WINDOWS:
        raise Malformed(f"windows: expected a list of at most {MAX_WINDOWS}")
    clean_windows: list[Window] = []
    for window in windows:
        if not isinstance(window, dict):
            raise Malformed("windows: expected objects")
        clean_windows.append({"name": _text(window, "name"), "start": _time(window, "start"),
                              "end": _time(window, "end")})
    out: Status = {
        "state": state,
        "scenario": _text(data, "scenario", required=False),
        "title": _text(data, "title", required=False),
        "seed": _int(data, "seed", required=False, default=0),
        "scale": scale,
        "currency": _text(data, "currency", required=False, default="CNY"),
        "zone": zone,
        "windows": clean_windows,
        "started": _text(data, "started", required=False),
    }
    key: Literal["gmv_minor", "orders", "events", "milestones"]
    for key in ("gmv_minor", "orders", "events", "milestones"):
        if key in data:
            out[key] = _int(data, key, minimum=0 if key != "gmv_minor" else -_INT64)
    return out


def clean_tick(data: Any) -> Tick:
    if not isinstance(data, dict):
        raise Malformed("expected a JSON object")
    return {
        "event_time": _time(data, "event_time"),
        "seq": _int(data, "seq", minimum=0),
        "gmv_minor": _int(data, "gmv_minor"),
        "gmv": _text(data, "gmv"),
        "orders": _int(data, "orders", minimum=0),
        "orders_per_s": _number(data, "orders_per_s"),
    }


def clean_leaderboard(data: Any) -> Leaderboard:
    if not isinstance(data, dict):
        raise Malformed("expected a JSON object")
    brands = data.get("brands")
    if not isinstance(brands, list) or len(brands) > MAX_BRANDS:
        raise Malformed(f"brands: expected a list of at most {MAX_BRANDS}")
    clean: list[Entry] = []
    for entry in brands:
        if not isinstance(entry, dict):
            raise Malformed("brands: expected objects")
        clean.append({"rank": _int(entry, "rank", minimum=1), "brand": _text(entry, "brand"),
                      "gmv_minor": _int(entry, "gmv_minor"), "gmv": _text(entry, "gmv")})
    return {"event_time": _time(data, "event_time"), "brands": clean}


def clean_milestone(data: Any) -> Milestone:
    if not isinstance(data, dict):
        raise Malformed("expected a JSON object")
    return {
        "id": _text(data, "id"),
        "kind": _text(data, "kind"),
        "subject": _text(data, "subject"),
        "threshold_minor": _int(data, "threshold_minor"),
        "value_minor": _int(data, "value_minor"),
        "seq": _int(data, "seq", minimum=0),
        "rank": _int(data, "rank", minimum=1, required=False),
        "headline": _text(data, "headline"),
        "event_time": _time(data, "event_time"),
        "value": _text(data, "value", required=False),
    }


@dataclass
class Run:
    """One run as the page sees it."""

    run: str
    status: Status | None = None
    tick: Tick | None = None
    leaderboard: Leaderboard | None = None
    milestones: dict[str, Milestone] = field(default_factory=dict)  # by topic suffix

    def snapshot(self) -> RunSnapshot:
        """Everything the page needs to draw this run from nothing; milestones in seq order."""
        return {"run": self.run, "status": self.status, "tick": self.tick,
                "leaderboard": self.leaderboard,
                "milestones": sorted(self.milestones.values(), key=lambda m: (m["seq"], m["id"]))}

    def summary(self) -> RunLine:
        """The run picker's line."""
        if self.status is None:
            return {"run": self.run, "state": "unknown", "scenario": "", "started": ""}
        return {"run": self.run, "state": self.status["state"], "scenario": self.status["scenario"],
                "started": self.status["started"]}


@dataclass(frozen=True)
class Update:
    """What one message changed: ``kind`` is status/tick/leaderboard/milestone/forget, or
    ``runs`` when only the run list changed. ``data`` is what the page receives."""

    run: str
    kind: str
    data: Any


@dataclass
class Festival:
    """Every run heard of, and how many messages were refused, by topic kind."""

    runs: dict[str, Run] = field(default_factory=dict)
    malformed: dict[str, int] = field(default_factory=lambda: {
        "status": 0, "gmv": 0, "leaderboard": 0, "milestones": 0})
    ignored: int = 0  # foreign topics (an amqtt quirk can send them), and overflow

    def ingest(self, topic: str, payload: bytes) -> Update | None:
        """Fold one message; ``None`` when it changed nothing the page shows (or was refused)."""
        try:
            run_id, rest = topics.parse_topic(topic)
        except ValueError:
            self.ignored += 1
            return None
        kind = rest.split("/", 1)[0]
        if kind not in self.malformed or (kind != "milestones" and "/" in rest):
            self.ignored += 1
            return None
        if not payload:  # a retained topic deleted
            return self._forget(run_id, kind, rest)
        try:
            data = orjson.loads(payload)
            status = clean_status(data) if kind == "status" else None
            tick = clean_tick(data) if kind == "gmv" else None
            board = clean_leaderboard(data) if kind == "leaderboard" else None
            milestone = clean_milestone(data) if kind == "milestones" else None
        except (orjson.JSONDecodeError, Malformed, RecursionError):
            self.malformed[kind] += 1
            return None
        run = self.runs.get(run_id)
        if run is None:
            if len(self.runs) >= MAX_RUNS and not self._evict():
                self.ignored += 1
                return None
            run = self.runs[run_id] = Run(run_id)
        if status is not None:
            run.status = status
            return Update(run_id, "status", status)
        if tick is not None:
            run.tick = tick
            return Update(run_id, "tick", tick)
        if board is not None:
            run.leaderboard = board
            return Update(run_id, "leaderboard", board)
        assert milestone is not None  # the kinds are the four above
        if rest not in run.milestones and len(run.milestones) >= MAX_MILESTONES:
            self.ignored += 1
            return None
        if run.milestones.get(rest) == milestone:
            return None  # the same retained milestone again (a reconnect): nothing new
        run.milestones[rest] = milestone
        return Update(run_id, "milestone", milestone)

    def _forget(self, run_id: str, kind: str, rest: str) -> Update | None:
        run = self.runs.get(run_id)
        if run is None:
            return None
        if kind == "status":
            del self.runs[run_id]
            return Update(run_id, "forget", None)
        if kind == "milestones" and run.milestones.pop(rest, None) is not None:
            return Update(run_id, "snapshot", run.snapshot())
        return None

    def _evict(self) -> bool:
        """Forget the oldest run that is over (finished or offline); False if every run is running.

        A run with no status yet ("unknown") goes last: a publisher's milestones can reach the
        broker before its "running" status, so a new run's first milestones often arrive, in a
        subscriber's retained burst, before its status. Taken as the oldest (it has no start
        time), it was forgotten at the next unknown run, and its status then made an empty run.
        """
        done = [r for r in self.runs.values() if r.summary()["state"] != "running"]
        if not done:
            return False
        oldest = min(done, key=lambda r: (r.summary()["state"] == "unknown", r.summary()["started"]))
        del self.runs[oldest.run]
        return True

    def newest(self) -> str | None:
        """The run a screen shows by default: the one started last (runs that say nothing of
        when they started, from older publishers, come before any that do)."""
        if not self.runs:
            return None
        return max(self.runs.values(), key=lambda r: (r.summary()["started"], r.run)).run

    def run_list(self) -> list[RunLine]:
        """The run picker: newest first."""
        return sorted((r.summary() for r in self.runs.values()),
                      key=lambda s: (s["started"], s["run"]), reverse=True)

    def diagnostics(self) -> Diagnostics:
        return {"malformed": dict(self.malformed), "ignored": self.ignored}
