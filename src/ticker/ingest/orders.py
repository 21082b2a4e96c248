"""The order schema ticker ingests, the column mapping, and rows -> :class:`OrderBatch`.

One order, whatever carried it (a CSV row, a JSON Lines line, a Parquet row, a JSON payload on
MQTT), has these fields; ``ticker export`` writes them too, so an export imports back as is:

============== ======== ======================================================================
field          required meaning
============== ======== ======================================================================
order_id       yes      integer 0 <= id < 2**63, or any text (hashed to a stable 63-bit id)
brand          yes      the brand's name; a brand never seen before joins the catalogue
amount         one of   decimal string in major units, ``"129.90"``, at most the currency's
amount_minor   the two  integer minor units, ``12990`` (fen, cents)
currency       no       ISO code; must be the festival's (default: the festival's)
event_time     yes      ISO-8601 (no offset: the festival's) or epoch s / ms / µs by magnitude
platform       no       one of the festival's platforms (default: its first)
region         no       one of the festival's regions (default: its first)
kind           no       ``placed`` (default) or ``refunded``
============== ======== ======================================================================

A placed order's amount must be positive; a refund's amount may be written positive (the money
given back) or negative (as ``ticker export`` writes it) and is stored negative. Other columns
(``seq`` of an export, a shop's own extras) are ignored. Each rejected row or payload has one
reason; :class:`OrderParser` never lets through a row the aggregator would refuse.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ticker.errors import TickerError
from ticker.events import COLUMNS, OrderBatch, OrderKind
from ticker.ingest.fields import (
    RowError,
    parse_currency,
    parse_event_time,
    parse_kind,
    parse_major,
    parse_minor,
    parse_name,
    parse_order_id,
)
from ticker.scenario import Scenario

FIELDS = ("order_id", "brand", "amount", "amount_minor", "currency", "event_time", "platform",
          "region", "kind")
_PLACED, _REFUNDED = int(OrderKind.PLACED), int(OrderKind.REFUNDED)  # plain ints: cheap compares
#: how many recent (order id, kind) pairs duplicate detection remembers
DEDUP_WINDOW = 1 << 20


class DuplicateOrder(RowError):
    """The same order id and kind was already accepted (within :data:`DEDUP_WINDOW`)."""


class MappingError(TickerError, ValueError):
    """A ``--map`` argument is malformed (one line for the user)."""


def parse_mapping(text: str | None) -> dict[str, str]:
    """``"brand=shop_name,amount=price"`` -> ``{"brand": "shop_name", "amount": "price"}``."""
    mapping: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        field, eq, column = part.partition("=")
        field, column = field.strip(), column.strip()
        if not eq or not column:
            raise MappingError(f"--map: expected FIELD=COLUMN, found {part.strip()!r}")
        if field not in FIELDS:
            raise MappingError(f"--map: unknown field {field!r} (expected one of {', '.join(FIELDS)})")
        if field in mapping:
            raise MappingError(f"--map: field {field!r} mapped twice")
        mapping[field] = column
    return mapping


class Catalogue:
    """Brand name -> id, growing as new brands arrive; :meth:`take_new` hands over the additions
    (for the run directory's catalogue file and the aggregator) before they are logged."""

    def __init__(self, names: Iterable[str]):
        self.names = list(names)
        self.ids = {name: i for i, name in enumerate(self.names)}
        self.new: list[str] = []

    def id(self, name: str) -> int:
        found = self.ids.get(name)
        if found is None:
            found = self.ids[name] = len(self.names)
            self.names.append(name)
            self.new.append(name)
        return found

    def take_new(self) -> list[str]:
        new, self.new = self.new, []
        return new


class RecentOrders:
    """The last :data:`DEDUP_WINDOW` accepted (order id, kind) pairs: a redelivered order (QoS 1
    after a reconnect, a file listing a row twice) is recognised and counted once."""

    def __init__(self, size: int = DEDUP_WINDOW):
        self.size = size
        self.keys: set[int] = set()
        self.order: deque[int] = deque()

    @staticmethod
    def key(order_id: int, kind: int) -> int:
        return order_id * 2 + kind

    def seen(self, key: int) -> bool:
        return key in self.keys

    def add(self, key: int) -> None:
        self.keys.add(key)
        self.order.append(key)
        if len(self.order) > self.size:
            self.keys.discard(self.order.popleft())

    def add_batch(self, batch: OrderBatch) -> None:
        """Remember a logged batch's orders (rebuilding the window from the log on resume)."""
        keys = (batch.order_id.astype(object) * 2 + batch.kind.astype(object)).tolist()
        for key in keys[-self.size:]:
            self.add(key)


@dataclass
class Rows:
    """Accepted rows as columns (Python lists until :meth:`batch`)."""

    event_time: list[int]
    order_id: list[int]
    brand: list[int]
    platform: list[int]
    region: list[int]
    amount_minor: list[int]
    kind: list[int]

    @classmethod
    def empty(cls) -> Rows:
        return cls([], [], [], [], [], [], [])

    def __len__(self) -> int:
        return len(self.event_time)

    def batch(self, first_seq: int) -> OrderBatch:
        n = len(self)
        columns = {name: np.asarray(getattr(self, name), dtype=COLUMNS[name])
                   for name in COLUMNS if name != "seq"}
        return OrderBatch(seq=np.arange(first_seq, first_seq + n, dtype=np.int64), **columns)


class OrderParser:
    """Checks one order (a mapping of field -> value) against the schema and the festival.

    ``ordered=True`` (for the ordered fold) also refuses an order whose event time is before the
    previous accepted one's, and drops a duplicate (the same order id and kind within
    :data:`DEDUP_WINDOW`). With ``ordered=False`` the event-time fold (``--disorder``) takes any
    arrival order and drops duplicates itself, so each delivery is logged as it arrived.
    """

    def __init__(self, scenario: Scenario, catalogue: Catalogue,
                 mapping: Mapping[str, str] | None = None, *, recent: RecentOrders | None = None,
                 ordered: bool = True, last_time_us: int | None = None):
        self.scenario = scenario
        self.catalogue = catalogue
        self.source = {field: (mapping or {}).get(field, field) for field in FIELDS}
        self.platforms = {name: i for i, (name, _) in enumerate(scenario.platforms)}
        self.regions = {name: i for i, (name, _) in enumerate(scenario.regions)}
        self.windows = [(w.start_us, w.end_us) for w in scenario.windows]
        self.recent = recent if recent is not None else RecentOrders()
        self.ordered = ordered
        self.last_time_us = last_time_us if last_time_us is not None else np.iinfo(np.int64).min
        self.duplicates = 0

    def missing(self, row: Mapping[str, object]) -> list[str]:
        """Required fields whose column is absent (for a file: checked once on its header)."""
        need = [f for f in ("order_id", "brand", "event_time") if self.source[f] not in row]
        if self.source["amount"] not in row and self.source["amount_minor"] not in row:
            need.append("amount or amount_minor")
        return need

    def _get(self, row: Mapping[str, object], field: str) -> object:
        value = row.get(self.source[field])
        return None if value == "" else value

    def parse(self, row: Mapping[str, object], into: Rows) -> None:
        """Append the order to ``into``, or raise :class:`RowError` (nothing appended)."""
        sc = self.scenario
        get = self._get
        if not isinstance(row, dict) and not isinstance(row, Mapping):  # dict: the fast check
            raise RowError(f"expected a JSON object with the order's fields, found {type(row).__name__}")
        for field in ("order_id", "brand", "event_time"):
            if get(row, field) is None:
                raise RowError(f"{field}: missing (column {self.source[field]!r})")
        order_id = parse_order_id(get(row, "order_id"))
        kind = parse_kind(get(row, "kind"))
        if get(row, "currency") is not None:
            parse_currency(get(row, "currency"), sc.currency)
        major, minor = get(row, "amount"), get(row, "amount_minor")
        if (major is None) == (minor is None):
            raise RowError("amount: expected exactly one of amount (decimal major units) and "
                           "amount_minor (integer minor units)" if major is not None else
                           f"amount: missing (column {self.source['amount']!r} or "
                           f"{self.source['amount_minor']!r})")
        amount = parse_major(major, sc.currency) if major is not None else parse_minor(minor)
        if kind == _PLACED and amount <= 0:
            raise RowError(f"amount: a placed order needs a positive amount, found {amount} minor units")
        if kind == _REFUNDED:
            if amount == 0:
                raise RowError("amount: a refund of nothing (0)")
            amount = -abs(amount)
        t = parse_event_time(get(row, "event_time"), sc.zone)
        if not any(start <= t < end for start, end in self.windows):
            raise RowError(f"event_time: {_iso(t, sc)} is outside every sales window of {sc.name}")
        platform = self._choice(row, "platform", self.platforms)
        region = self._choice(row, "region", self.regions)
        brand_name = parse_name(get(row, "brand"), "brand")
        key = RecentOrders.key(order_id, kind)
        if self.ordered and self.recent.seen(key):
            self.duplicates += 1
            raise DuplicateOrder(f"order_id: duplicate of an order already accepted ({order_id}, "
                                 f"{OrderKind(kind).name.lower()})")
        if self.ordered and t < self.last_time_us:
            raise RowError(f"event_time: {_iso(t, sc)} is before the previous order's "
                           f"({_iso(self.last_time_us, sc)}); this fold needs event-time order")
        if self.ordered:
            self.recent.add(key)
        self.last_time_us = max(t, self.last_time_us)
        into.event_time.append(t)
        into.order_id.append(order_id)
        into.brand.append(self.catalogue.id(brand_name))
        into.platform.append(platform)
        into.region.append(region)
        into.amount_minor.append(amount)
        into.kind.append(kind)

    def _choice(self, row: Mapping[str, object], field: str, names: dict[str, int]) -> int:
        value = self._get(row, field)
        if value is None:
            return 0
        name = parse_name(value, field)
        found = names.get(name)
        if found is None:
            shown = ", ".join(list(names)[:8])
            raise RowError(f"{field}: {name!r} is not one of the festival's {field}s ({shown})")
        return found


def _iso(us: int, scenario: Scenario) -> str:
    from ticker.clock import format_time

    return format_time(us, scenario.zone, precision="microseconds")
