"""Dimensions beyond brand, platform and region: who has which value, calibrated to the record.

A scenario's ``[[dimensions]]`` come in two kinds (:class:`~ticker.scenario.model.Dimension`):

* **per brand** — a segment (Tmall Global, emerging brands) or an attribute (overseas, new). A
  brand has one value of each such dimension, so an order's value is its brand's: the event log
  needs nothing new, the catalogue decides. Brands are assigned here, deterministically, so that
  the published counts hold: the ``members`` named in the file, then for each ``over``
  (threshold, n) — highest threshold first — brands whose GMV target is clear of the threshold
  (at least :data:`MARGIN` above it, and clear below the next higher one) until n members are
  over it, then the rest of the value's ``brands``. Picks are spread evenly over each pool (by
  catalogue rank), so a segment has big and small brands alike — except the rest of a value
  with ``over`` counts: those are the catalogue's smallest brands, because at the default scales
  one order is worth hundreds of thousands of RMB and a brand a few orders short of a threshold
  may pass it with one large order. Brands the file names (named, tiered with a name) join a
  value only as its ``members``. Everything else is the dimension's ``rest``.
* **per order** — a second catalogue of sellers an order is placed *through*: livestream
  channels, each with its own GMV target (named, tiers and a Zipf tail, built exactly like the
  brands'), and ``rest`` (code 0: placed through none, "storefront"). The channel of an order is
  a pure function of its order id: a hash of the id through the channels' CDF, whose intervals
  are their shares of the festival's GMV. So it needs no new log column and round-trips through
  everything that carries the order id — the log, a resume, ``verify``, the cluster's regenerated
  chunks, an export — and a refund (which carries its order's id) goes back to its order's
  channel. Orders of every brand and value go through channels alike (the hash is independent of
  the brand draw), so a channel's expected GMV is its share of the festival's.

:func:`tables` builds both once per scenario and keeps them with it (like the catalogue).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np

from ticker.scenario.brands import BrandCatalogue, catalogue, seller_targets
from ticker.scenario.model import Dimension, Scenario, ScenarioError

#: A brand counted over (or under) a threshold is placed at least this far from it, relative,
#: and at least :data:`MARGIN_ORDERS` average orders at the scenario's default scale: a brand's
#: realised GMV is within about an order of its target at any scale.
MARGIN = 0.35
MARGIN_ORDERS = 4
_GUIDE_BITS = 16
_K1 = np.uint64(0xBF58476D1CE4E5B9)
_K2 = np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True, slots=True, eq=False)
class DimensionTable:
    """One dimension, ready to fold: its value names (code 0 is ``rest``) and how a code is found."""

    dimension: Dimension
    #: code -> name: ``rest``, then the values (per brand) or the sellers (per order)
    names: tuple[str, ...]
    #: per brand: every brand's value code (int32[brands]); per order: empty
    brand_value: np.ndarray
    #: per order: each seller's festival GMV target (float: a calibration target), rest first
    gmv_target: np.ndarray
    #: per order: code c owns the 63-bit hashes in [bounds[c], bounds[c + 1]) (bounds[-1] = 2^63)
    bounds: np.ndarray
    guide: np.ndarray
    salt: np.uint64

    @property
    def per_order(self) -> bool:
        return self.dimension.per == "order"

    def order_codes(self, order_id: np.ndarray) -> np.ndarray:
        """Each order's seller (int32 code; 0 = ``rest``): O(1) per order but for hashes that
        land in a guide cell shared by sellers (a binary search each), no Python loop."""
        x = order_id.view(np.uint64) ^ self.salt
        x *= _K1
        x ^= x >> np.uint64(31)
        x *= _K2
        x ^= x >> np.uint64(29)
        x >>= np.uint64(1)  # 63 bits: the last bound, 2^63, is above every hash
        code = self.guide.take((x >> np.uint64(63 - _GUIDE_BITS)).view(np.int64))
        # hashes past their guide cell's first seller (a cell shared by sellers): a binary
        # search over the bounds for those alone; bounds[1:] is each code's upper bound
        ahead = np.flatnonzero(x >= self.bounds[1:].take(code))
        if len(ahead):
            code[ahead] = np.searchsorted(self.bounds, x[ahead], side="right") - 1
        return code

    def codes(self, brand: np.ndarray, order_id: np.ndarray) -> np.ndarray:
        """Each event's value code (int32; 0 = ``rest``), as the fold sees it: per order the
        seller of its order id (:meth:`order_codes`), per brand its brand's value — ``rest`` for
        a brand beyond the catalogue (one an ingested stream added)."""
        if self.per_order:
            return self.order_codes(order_id)
        known = brand < len(self.brand_value)
        if known.all():
            return self.brand_value.take(brand)
        return np.where(known, self.brand_value.take(np.where(known, brand, 0)), 0).astype(np.int32)


def tables(scenario: Scenario) -> tuple[DimensionTable, ...]:
    """The scenario's dimension tables, built once and kept with the scenario."""
    found = scenario.derived.get("dimensions")
    if found is None:
        found = scenario.derived["dimensions"] = tuple(
            _build(scenario, i, d) for i, d in enumerate(scenario.dimensions))
    return found


def check_dimensions(problems: list[str], scenario: Scenario) -> None:
    """Whether the catalogue can hold the dimensions' published counts: one line per problem."""
    try:
        tables(scenario)
    except ScenarioError as exc:
        problems.extend(exc.problems)


def _build(scenario: Scenario, i: int, d: Dimension) -> DimensionTable:
    key = f"{scenario.path}: dimensions[{i}]"
    salt = np.uint64(int.from_bytes(hashlib.blake2b(d.name.encode(), digest_size=8).digest(),
                                    "little"))
    empty = np.zeros(0)
    if d.per == "brand":
        named = {b.name for b in scenario.named_brands} | {n for t in scenario.tiers for n in t.names}
        order = scenario.gmv_minor / max(scenario.orders, 1) / scenario.default_scale
        codes = _assign(d, catalogue(scenario), named, MARGIN_ORDERS * order, key)
        return DimensionTable(d, (d.rest, *(v.name for v in d.values)), codes, empty,
                              empty.astype(np.uint64), empty.astype(np.int32), salt)
    names, gmv = seller_targets(list(d.named), d.tiers, d.count, d.gmv_minor,
                                d.tail_max_gmv_minor, d.tail_exponent, scenario.path,
                                f"dimensions[{i}]", d.name, f"dimensions[{i}].gmv")
    if gmv.sum() >= scenario.gmv_minor:
        raise ScenarioError([f"{key}: expected the sellers' GMV ({gmv.sum() / 100:,.0f}) to be "
                             f"less than festival.gmv ({scenario.gmv_minor / 100:,.0f}), found more"])
    share = np.concatenate([[scenario.gmv_minor - gmv.sum()], gmv]) / scenario.gmv_minor
    cdf = np.concatenate([[0.0], np.cumsum(share)])
    cdf /= cdf[-1]
    bounds = np.floor(cdf * 2.0**63).astype(np.uint64)
    bounds[0], bounds[-1] = 0, 1 << 63
    cells = np.arange(1 << _GUIDE_BITS, dtype=np.uint64) << np.uint64(63 - _GUIDE_BITS)
    guide = (np.searchsorted(bounds, cells, side="right") - 1).astype(np.int32)
    return DimensionTable(d, (d.rest, *names), np.zeros(0, np.int32),
                          np.concatenate([[0.0], gmv]), bounds, guide, salt)


def _assign(d: Dimension, cat: BrandCatalogue, named: set[str], margin: float, key: str
            ) -> np.ndarray:
    """Every brand's value code for a per-brand dimension (0: ``rest``); see the module doc."""
    target = cat.gmv_target
    code = np.zeros(len(cat), np.int32)
    free = np.fromiter((name not in named for name in cat.names), bool, len(cat))

    def pick(k: int, pool: np.ndarray, need: int, what: str, smallest: bool = False) -> None:
        if need > len(pool):
            raise ScenarioError([f"{key}: values[{k - 1}]: expected {need:,} more brands "
                                 f"{what} for it, found {len(pool):,} left in the catalogue"])
        if smallest:
            chosen = pool[np.argsort(target[pool], kind="stable")[:need]]
        else:
            chosen = pool[(np.arange(need, dtype=np.int64) * len(pool)) // max(need, 1)]
        code[chosen] = k
        free[chosen] = False

    for k, value in enumerate(d.values, start=1):
        members = np.array([cat.index(m) for m in value.members], dtype=np.int64)
        code[members] = k
        free[members] = False
        higher = np.inf
        for threshold, n in sorted(value.over, reverse=True):
            clear = target >= max(threshold * (1 + MARGIN), threshold + margin)
            have = int(np.count_nonzero((code == k) & clear))
            if have > n:
                raise ScenarioError([f"{key}: values[{k - 1}].members: expected at most {n:,} "
                                     f"members over {threshold / 100:,.0f}, found {have:,}"])
            pool = np.flatnonzero(free & clear & (target < min(higher * (1 - MARGIN),
                                                                higher - margin)))
            pick(k, pool, n - have, f"over {threshold / 100:,.0f}")
            higher = threshold
        lowest = min((t for t, _ in value.over), default=np.inf)
        rest = value.brands - int(np.count_nonzero(code == k))
        # (the smallest brands: a few orders' margin below is more than some catalogues have)
        pool = np.flatnonzero(free & (target < lowest * (1 - MARGIN)))
        pick(k, pool, max(rest, 0), f"under {lowest / 100:,.0f}" if value.over else "",
             smallest=bool(value.over))
    return code


def without_dimensions(scenario: Scenario) -> Scenario:
    """The scenario with no ``[[dimensions]]`` (its catalogue kept): its brand, platform and
    region fold alone (``bench_dimensions`` measures what the dimensions add to it)."""
    if not scenario.dimensions:
        return scenario
    plain = dataclasses.replace(scenario, dimensions=())
    if "catalogue" in scenario.derived:
        plain.derived["catalogue"] = scenario.derived["catalogue"]
    return plain
