"""Disorder: turn the generator's ordered stream into an *arrival-ordered* one, deterministically.

Real order streams reach a ticker out of order: shops and apps send orders in little groups,
some are held up by a slow network (a long tail of delays), an at-least-once transport (MQTT
QoS 1) delivers a few twice, and a few arrive long after their time. A :class:`DisorderProfile`
says how much of each; :func:`arrive` applies it to the ordered stream.

Every order ``p`` (its position in the ordered stream, i.e. its ordered ``seq``) gets an
*arrival instant*, a pure function of ``(seed, p)`` and its event time:

* **groups** (bounded shuffle): the orders of each ``group_ms`` slice of event time are sent
  together when the slice ends, in a random order — no order moves further than ``group_ms``;
* **delayed** orders (a fraction ``delayed``) arrive a further Lomax (Pareto II) delay later,
  shape ``delay_shape``, median ``delay_median_s``, cut at ``delay_max_s``;
* **late** orders (a fraction ``late``) arrive between ``lateness_s`` + ``group_ms`` and
  ``late_max_s`` after their time: behind the aggregator's watermark;
* **duplicates** (a fraction ``duplicates``, a systematic sample so the count is exact) are
  delivered a second time, an exponential redelivery delay (mean ``duplicate_delay_s``, cut at
  ``duplicate_delay_max_s``) after the first delivery.

The arrival-ordered stream is every delivery sorted by (arrival instant, a hash of ``p`` and the
copy): a global sort, made in bounded memory by a streaming merge (a delivery can be released
once the ordered stream's event times have passed its arrival instant, since no later order can
arrive before its own event time). So the bytes do not depend on how the ordered stream was
chunked, batched or made by how many workers. ``seq`` is renumbered in arrival order;
``event_time``, ``order_id`` and every other column stay the order's own.

``lateness_s`` and ``dedup_s`` are also what the aggregator of an arrival-ordered run uses (its
watermark lag and its duplicate window): the profile defines "late" for both sides.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ticker.errors import ProblemsError
from ticker.events import COLUMNS, OrderBatch

if TYPE_CHECKING:  # generate imports the model, which imports this module
    from ticker.scenario.generate import Plan

_US = 1_000_000
_DUP_BITS = 24  # resolution of the duplicate fraction: 2^-24
_STREAM_KIND, _STREAM_DELAY, _STREAM_REDELIVERY, _STREAM_TIE = range(4)

#: Keys of a profile, with (low, high) bounds; every one is optional but ``name``.
_KNOBS: dict[str, tuple[float, float]] = {
    "lateness_s": (0.0, 3600.0),
    "dedup_s": (0.0, 3600.0),
    "group_ms": (0.0, 60_000.0),
    "delayed": (0.0, 1.0),
    "delay_median_s": (0.0, 3600.0),
    "delay_max_s": (0.0, 3600.0),
    "delay_shape": (0.1, 10.0),
    "late": (0.0, 1.0),
    "late_max_s": (0.0, 86_400.0),
    "duplicates": (0.0, 0.5),
    "duplicate_delay_s": (0.0, 3600.0),
    "duplicate_delay_max_s": (0.0, 3600.0),
}


class DisorderError(ProblemsError, ValueError):
    """A disorder profile is unreadable or has problems; one line each."""


@dataclass(frozen=True, slots=True)
class DisorderProfile:
    """How an arrival-ordered stream departs from event-time order (see the module doc)."""

    name: str
    lateness_s: float = 5.0
    dedup_s: float = 60.0
    group_ms: float = 0.0
    delayed: float = 0.0
    delay_median_s: float = 0.2
    delay_max_s: float = 4.0
    delay_shape: float = 1.5
    late: float = 0.0
    late_max_s: float = 60.0
    duplicates: float = 0.0
    duplicate_delay_s: float = 0.5
    duplicate_delay_max_s: float = 5.0

    @property
    def lateness_us(self) -> int:
        return round(self.lateness_s * _US)

    @property
    def dedup_us(self) -> int:
        return round(self.dedup_s * _US)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def max_delay_us(self) -> int:
        """No delivery arrives later than this after its order's event time: the group's end,
        then the longer of a delay and a late arrival (+1 µs), then a redelivery's wait (+1 µs)."""
        group = max(1, round(self.group_ms * 1000)) if self.group_ms > 0 else 0
        return (group + math.ceil(max(self.delay_max_s, self.late_max_s) * _US) + 1
                + math.ceil(self.duplicate_delay_max_s * _US) + 1)

    def duplicates_before(self, n: int) -> int:
        """How many of the first ``n`` ordered events are delivered twice (exact)."""
        return (n * self._dup_step()) >> _DUP_BITS

    def _dup_step(self) -> int:
        return round(self.duplicates * (1 << _DUP_BITS))


def parse_profile(data: Any, where: str, name: str) -> DisorderProfile:
    """A profile from a parsed TOML table; every problem one line naming ``where`` and the key."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise DisorderError([f"{where}: expected a table of disorder knobs, found {type(data).__name__}"])
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "name":
            if not isinstance(value, str) or not value:
                problems.append(f"{where}.name: expected a non-empty string, found {value!r}")
            else:
                name = value
            continue
        if key not in _KNOBS:
            problems.append(f"{where}.{key}: unknown key (expected one of: name, "
                            f"{', '.join(sorted(_KNOBS))})")
            continue
        low, high = _KNOBS[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            problems.append(f"{where}.{key}: expected a number, found {value!r}")
        elif not low <= value <= high:
            problems.append(f"{where}.{key}: expected a number in [{low:g}, {high:g}], found {value}")
        else:
            values[key] = float(value)
    profile = DisorderProfile(name=name, **values)
    if profile.delayed + profile.late > 1:
        problems.append(f"{where}: delayed + late: expected at most 1, found "
                        f"{profile.delayed + profile.late:g}")
    if profile.delay_median_s > profile.delay_max_s:
        problems.append(f"{where}.delay_median_s: expected at most delay_max_s "
                        f"({profile.delay_max_s:g}), found {profile.delay_median_s:g}")
    if profile.late and profile.late_max_s <= profile.lateness_s + profile.group_ms / 1000:
        problems.append(f"{where}.late_max_s: expected more than lateness_s + group_ms "
                        f"({profile.lateness_s + profile.group_ms / 1000:g} s: late orders arrive "
                        f"after the allowed lateness), found {profile.late_max_s:g}")
    if profile.duplicate_delay_s > profile.duplicate_delay_max_s:
        problems.append(f"{where}.duplicate_delay_s: expected at most duplicate_delay_max_s "
                        f"({profile.duplicate_delay_max_s:g}), found {profile.duplicate_delay_s:g}")
    if problems:
        raise DisorderError(problems)
    return profile


def _bundled_dir() -> Path:
    from ticker.scenario import bundled_dir  # the package imports the model, which imports us

    return bundled_dir("disorders")


def bundled_profiles() -> list[str]:
    return sorted(p.stem for p in _bundled_dir().glob("*.toml"))


def load_profile(name_or_path: str) -> DisorderProfile:
    """A bundled profile by name (``realistic``) or a TOML file: knobs at the top level or in a
    ``[disorder]`` table (so a scenario file with a ``[disorder]`` section also works)."""
    path = Path(name_or_path)
    if not (path.suffix == ".toml" or path.exists()):
        path = _bundled_dir() / f"{name_or_path}.toml"
        if not path.exists():
            raise DisorderError([f"--disorder {name_or_path}: no such profile (expected a bundled "
                                 f"name: {', '.join(bundled_profiles())}; or a path to a .toml file)"])
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DisorderError([f"{path}: cannot read the disorder profile ({exc.strerror})"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DisorderError([f"{path}: not valid TOML: {exc}"]) from None
    if isinstance(data.get("disorder"), dict):
        return parse_profile(data["disorder"], f"{path}: disorder", path.stem)
    return parse_profile(data, str(path), path.stem)


# --- the arrival-ordered stream -------------------------------------------------------------------


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection on uint64 that looks random."""
    x = x.copy()
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _uniform(key: np.uint64, p: np.ndarray, stream: int) -> np.ndarray:
    """Uniform [0, 1) per position, a pure function of (key, p, stream)."""
    with np.errstate(over="ignore"):
        bits = _mix(p * np.uint64(4) + np.uint64(stream) + key)
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


class Arrivals:
    """The streaming merge: feed the ordered stream chunk by chunk, get arrival-ordered batches.

    Holds only the deliveries whose arrival instant the ordered stream has not yet passed: at
    most the orders of the last ``max(delay, late, redelivery)`` seconds of event time.
    """

    def __init__(self, profile: DisorderProfile, seed: int, first_seq: int = 0):
        self.profile = profile
        self.key = _mix(np.array([seed & (2**64 - 1)], np.uint64))[0]
        self.pending = OrderBatch.empty()
        self.arrival = np.empty(0, np.int64)
        self.tie = np.empty(0, np.uint64)
        self.next_seq = first_seq
        self.max_pending = 0

    def _deliveries(self, batch: OrderBatch) -> tuple[OrderBatch, np.ndarray, np.ndarray]:
        prof = self.profile
        p = batch.seq.astype(np.uint64)
        t = batch.event_time
        arrival = t.copy()
        if prof.group_ms > 0:
            group = max(1, round(prof.group_ms * 1000))
            arrival = (t // group + 1) * group  # a group is sent when its slice of time ends
        u = _uniform(self.key, p, _STREAM_KIND)
        v = _uniform(self.key, p, _STREAM_DELAY)
        late = u < prof.late
        delayed = (u >= prof.late) & (u < prof.late + prof.delayed)
        if delayed.any():
            # Lomax: median = scale·(2^(1/a) − 1); cut at the maximum
            a = prof.delay_shape
            scale = prof.delay_median_s / (2 ** (1 / a) - 1)
            d = scale * ((1 - v[delayed]) ** (-1 / a) - 1)
            arrival[delayed] += (np.minimum(d, prof.delay_max_s) * _US).astype(np.int64)
        if late.any():
            low = prof.lateness_s + prof.group_ms / 1000
            d = low + (prof.late_max_s - low) * v[late]
            arrival[late] = t[late] + (d * _US).astype(np.int64) + 1
        tie = _mix(p * np.uint64(2) + self.key)
        step = prof._dup_step()
        if not step:
            return batch, arrival, tie
        # systematic sample: p is duplicated when floor(p·f) steps up at p + 1 — exact counts
        twice = np.flatnonzero(((p + np.uint64(1)) * np.uint64(step) >> np.uint64(_DUP_BITS))
                               > (p * np.uint64(step) >> np.uint64(_DUP_BITS)))
        if not len(twice):
            return batch, arrival, tie
        w = _uniform(self.key, p[twice], _STREAM_REDELIVERY)
        redelay = np.minimum(-np.log1p(-w) * prof.duplicate_delay_s, prof.duplicate_delay_max_s)
        copies = batch.take(twice)
        return (OrderBatch.concat([batch, copies]),
                np.concatenate([arrival, arrival[twice] + (redelay * _US).astype(np.int64) + 1]),
                np.concatenate([tie, _mix(p[twice] * np.uint64(2) + np.uint64(1) + self.key)]))

    def feed(self, batch: OrderBatch) -> OrderBatch:
        """Take the next ordered events; return the deliveries now certain to come next."""
        if not len(batch):
            return OrderBatch.empty()
        new, arrival, tie = self._deliveries(batch)
        pool = OrderBatch.concat([self.pending, new])
        arrival = np.concatenate([self.arrival, arrival])
        tie = np.concatenate([self.tie, tie])
        self.max_pending = max(self.max_pending, len(pool))
        # every later order has event time >= this one, and arrives no earlier than its time
        frontier = int(batch.event_time[-1])
        ready = arrival < frontier
        out = self._release(pool, arrival, tie, ready)
        keep = ~ready
        self.pending, self.arrival, self.tie = pool.take(np.flatnonzero(keep)), arrival[keep], tie[keep]
        return out

    def flush(self) -> OrderBatch:
        """The end of the ordered stream: everything still held, in arrival order."""
        out = self._release(self.pending, self.arrival, self.tie, np.ones(len(self.arrival), bool))
        self.pending, self.arrival, self.tie = OrderBatch.empty(), self.arrival[:0], self.tie[:0]
        return out

    def _release(self, pool: OrderBatch, arrival: np.ndarray, tie: np.ndarray,
                 ready: np.ndarray) -> OrderBatch:
        rows = np.flatnonzero(ready)
        if not len(rows):
            return OrderBatch.empty()
        rows = rows[np.lexsort((tie[rows], arrival[rows]))]
        columns = {name: getattr(pool, name)[rows] for name in COLUMNS}
        columns["seq"] = np.arange(self.next_seq, self.next_seq + len(rows), dtype=np.int64)
        self.next_seq += len(rows)
        return OrderBatch(**columns)


def arrive(ordered: Iterator[OrderBatch], profile: DisorderProfile, seed: int, first_seq: int = 0
           ) -> Iterator[OrderBatch]:
    """The arrival-ordered stream of an ordered one (see the module doc); same bytes for any
    chunking of ``ordered``. ``first_seq``: the arrival seq of ``ordered``'s first delivery
    had the stream started earlier (a resume, see :func:`resume_point`)."""
    merge = Arrivals(profile, seed, first_seq)
    for batch in ordered:
        out = merge.feed(batch)
        if len(out):
            yield out
    out = merge.flush()
    if len(out):
        yield out


def resume_point(plan: Plan, profile: DisorderProfile, start_seq: int) -> tuple[int, int]:
    """Where to start making the arrival-ordered stream to get its deliveries from arrival seq
    ``start_seq`` on: ``(chunk, first_seq)`` — merge the ordered chunks from ``chunk`` on with
    ``arrive(..., first_seq=first_seq)`` and drop what comes before ``start_seq``.

    Why it is exact: a delivery arrives at most ``max_delay_us`` (D) after its order's event time.
    Starting at chunk c, whose orders are all at or after T_c, every delivery at or after
    T = T_c + D comes from chunk c or later (an earlier order arrives before T_c + D), so the
    merge of chunks c.. releases the deliveries at or after T in the right order; and before
    them it releases exactly those of chunks c.. that arrive before T. So numbering its output
    from the count of every delivery of the chunks before c (their orders and, a systematic
    sample, their duplicates: both exact) gives every delivery at or after T its true seq. The
    chunk is the last one for which the deliveries before T surely number at most
    ``start_seq`` (at most every delivery of the orders before T), so nothing from
    ``start_seq`` on is numbered wrongly. The resume makes D of event time before its point
    again instead of the whole festival.
    """
    first_us = plan.second_us[plan.chunk_sec[:-1]]  # chunk c's orders are all at or after this
    ends = np.searchsorted(first_us, first_us + profile.max_delay_us, side="left")
    before = plan.chunk_seq[ends]  # orders of the chunks that start before T_c + D
    step = profile._dup_step()
    surely = before + ((before * step) >> _DUP_BITS)  # their deliveries, duplicates included
    c = int(np.searchsorted(surely, start_seq, side="right")) - 1
    if c <= 0:
        return 0, 0
    n = int(plan.chunk_seq[c])
    return c, n + profile.duplicates_before(n)
