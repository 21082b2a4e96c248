"""The aggregate's state: plain numpy arrays and counters, and their snapshot file.

The state is never the truth (the order log is); it is a fold of the log, checkpointed by
snapshots so a resume or a time-travel query need not re-read everything. A snapshot is one
compressed ``.npz`` stamped with :data:`SCHEMA_VERSION` and the run; the run directory writes it
atomically (:meth:`ticker.rundir.RunDir.write_snapshot`).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ticker.aggregate.milestones import Milestone
from ticker.errors import TickerError

if TYPE_CHECKING:
    from ticker.aggregate.eventtime import EventTimeState

SCHEMA_VERSION = 1


class SnapshotError(TickerError, ValueError):
    """A snapshot file is unreadable, from another schema, or for another run."""


@dataclass(eq=False)
class AggregateState:
    """Running totals after folding events ``[0, next_seq)``. Money in int64 minor units."""

    next_seq: int
    last_time_us: int
    gmv_minor: int
    orders: int  # placed orders
    refunds: int  # refund events
    brand_gmv: np.ndarray  # int64[brands]
    brand_orders: np.ndarray  # int64[brands], placed orders
    mix_gmv: np.ndarray  # int64[platforms, regions]
    mix_orders: np.ndarray  # int64[platforms, regions]
    second_orders: np.ndarray  # int64[festival seconds], placed orders per event-time second
    second_gmv: np.ndarray  # int64[festival seconds]
    brand_level: np.ndarray  # int8[brands]: how many brand thresholds each brand has passed
    race_count: np.ndarray  # int64[thresholds]: brands past each threshold so far
    gmv_level: int  # festival GMV thresholds passed
    open_second: int  # index of the event-time second still filling (-1 before any event)
    open_second_last_seq: int
    rate_record: int  # the last orders/s record announced
    rule_value: np.ndarray  # int64[time-to-value rules]: value since each rule's start
    rule_done: np.ndarray  # bool[rules]: reached, or its window closed
    milestones: list[Milestone] = field(default_factory=list)
    # [[dimensions]] (aggregate/dimensions.py), None when the scenario declares none, so that
    # such a run's snapshots keep their bytes: per-order dimensions' sellers (code 0 = rest first)
    dim_gmv: np.ndarray | None = None  # int64[sellers of every per-order dimension]
    dim_orders: np.ndarray | None = None  # int64[same], placed orders
    dim_level: np.ndarray | None = None  # int8[those sellers, then brands per per-brand dimension]
    dim_race: np.ndarray | None = None  # int64[races]: sellers/brands past each threshold so far

    @classmethod
    def empty(cls, brands: int, platforms: int, regions: int, seconds: int, thresholds: int,
              rules: int) -> AggregateState:
        return cls(
            next_seq=0, last_time_us=np.iinfo(np.int64).min, gmv_minor=0, orders=0, refunds=0,
            brand_gmv=np.zeros(brands, np.int64), brand_orders=np.zeros(brands, np.int64),
            mix_gmv=np.zeros((platforms, regions), np.int64),
            mix_orders=np.zeros((platforms, regions), np.int64),
            second_orders=np.zeros(seconds, np.int64), second_gmv=np.zeros(seconds, np.int64),
            brand_level=np.zeros(brands, np.int8), race_count=np.zeros(thresholds, np.int64),
            gmv_level=0, open_second=-1, open_second_last_seq=-1, rate_record=0,
            rule_value=np.zeros(rules, np.int64), rule_done=np.zeros(rules, bool),
        )

    def copy(self) -> AggregateState:
        values: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = value.copy() if isinstance(value, np.ndarray | list) else value
        return AggregateState(**values)

    def equals(self, other: AggregateState | EventTimeState) -> bool:
        if not isinstance(other, AggregateState):
            return False
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            same = np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
            if not same:
                return False
        return True

    def differences(self, other: AggregateState | EventTimeState) -> list[str]:
        """Names of the fields that differ, for ``ticker verify`` (a snapshot may hold the other
        kind of state when run.json was changed since)."""
        if not isinstance(other, AggregateState):
            return ["kind of state (ordered against arrival-ordered)"]
        out = []
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if not (np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b):
                out.append(f.name)
        return out

    # --- snapshots ----------------------------------------------------------------------------

    def parts(self) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """The state's arrays and its scalars (everything but the milestone list)."""
        arrays = {f.name: getattr(self, f.name) for f in fields(self)
                  if isinstance(getattr(self, f.name), np.ndarray)}
        scalars = {f.name: getattr(self, f.name) for f in fields(self)
                   if isinstance(getattr(self, f.name), int) and f.name not in arrays}
        return arrays, scalars

    def to_snapshot(self, run: str) -> bytes:
        """The state as a compressed ``.npz`` stamped with the schema version and the run."""
        arrays, scalars = self.parts()
        meta = {"schema": SCHEMA_VERSION, "run": run, "scalars": scalars,
                "milestones": [m.to_json_us() for m in self.milestones]}
        return write_npz(arrays, meta)

    @classmethod
    def from_snapshot(cls, data: bytes, where: str, run: str | None = None
                      ) -> AggregateState | EventTimeState:
        """The state a snapshot holds; an arrival-ordered run's snapshot gives its
        :class:`~ticker.aggregate.eventtime.EventTimeState`."""
        meta, arrays = read_npz(data, where)
        if meta.get("schema") != SCHEMA_VERSION:
            raise SnapshotError(f"{where}: snapshot schema {meta.get('schema')}, "
                                f"expected {SCHEMA_VERSION}")
        if run is not None and meta.get("run") != run:
            raise SnapshotError(f"{where}: snapshot of run {meta.get('run')!r}, expected {run!r}")
        try:
            if "event_time" in meta:
                from ticker.aggregate.eventtime import EventTimeState

                return EventTimeState.from_parts(meta, arrays)
            return cls.from_parts(meta["scalars"], arrays, meta["milestones"])
        except (TypeError, KeyError, ValueError) as exc:
            raise SnapshotError(f"{where}: snapshot fields do not match this ticker ({exc})") from None

    @classmethod
    def from_parts(cls, scalars: dict[str, Any], arrays: Mapping[str, np.ndarray],
                   milestones: list[dict[str, Any]]) -> AggregateState:
        # fields by name, as the snapshot holds them: a missing, extra or repeated one raises
        # TypeError, which from_snapshot reports as a SnapshotError
        columns: dict[str, Any] = dict(arrays)
        return cls(**columns, **scalars, milestones=[Milestone(**m) for m in milestones])


def write_npz(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> bytes:
    """Arrays and a JSON ``meta`` member as one zip of ``.npy`` files."""
    arrays = {**arrays, "meta": np.frombuffer(orjson.dumps(meta), np.uint8)}
    buffer = io.BytesIO()
    # np.load reads any zip of .npy files; deflate level 1 is 5x faster than savez_compressed's
    # level 6 on these mostly-zero arrays and within 15 % of its size.
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    return buffer.getvalue()


def read_npz(data: bytes, where: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            meta = orjson.loads(npz["meta"].tobytes())
            arrays = {k: npz[k] for k in npz.files if k != "meta"}
    except Exception as exc:  # damaged bytes raise zlib, zip, struct and numpy errors alike
        raise SnapshotError(f"{where}: unreadable snapshot ({exc})") from None
    if not isinstance(meta, dict):
        raise SnapshotError(f"{where}: unreadable snapshot (its meta is not a table)")
    return meta, arrays
