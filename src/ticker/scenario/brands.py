"""The brand catalogue: every brand's name, GMV target and average order, calibrated to the record.

Brand ids are positions in the catalogue: the named brands first (Apple, L'Oréal, ...), then the
tiers (brands whose count over a threshold is published, with GMV targets log-spaced inside the
tier's range), then the long tail. The tail shares what GMV is left along a shifted Zipf law,
``g_i ∝ (i + k)^-exponent``, with the shift ``k`` solved so its biggest brand sits exactly at
``tail.max_gmv``: the published counts of brands over each threshold then hold by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ticker.scenario.model import BrandTier, Scenario, ScenarioError


@dataclass(frozen=True, slots=True, eq=False)
class BrandCatalogue:
    names: tuple[str, ...]
    #: festival GMV target per brand, minor units (float: a calibration target, not money held)
    gmv_target: np.ndarray
    #: average order value per brand, minor units
    avg_order: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)


def catalogue(scenario: Scenario) -> BrandCatalogue:
    """The scenario's catalogue, built once and kept with the scenario (it is immutable)."""
    found = scenario.derived.get("catalogue")
    if found is None:
        found = scenario.derived["catalogue"] = build_catalogue(scenario)
    return found


def build_catalogue(scenario: Scenario) -> BrandCatalogue:
    """Every brand's name and festival GMV target; average orders for the named brands only."""
    names, gmv = seller_targets(
        [(b.name, b.gmv_minor) for b in scenario.named_brands], scenario.tiers,
        scenario.brand_count, scenario.gmv_minor, scenario.tail_max_gmv_minor,
        scenario.tail_exponent, scenario.path, "brands", "brand", "festival.gmv")
    avg = np.zeros(len(names))
    avg[:len(scenario.named_brands)] = [b.avg_order_minor for b in scenario.named_brands]
    return BrandCatalogue(names, gmv, avg)


def seller_targets(named: list[tuple[str, int]], tiers: tuple[BrandTier, ...], count: int,
                   total_minor: int, tail_max_minor: int, tail_exponent: float, path: str,
                   key: str, prefix: str, total_key: str) -> tuple[tuple[str, ...], np.ndarray]:
    """A catalogue of sellers (the brands, a dimension's livestream channels): the named ones,
    the tiers log-spaced inside their ranges, and a Zipf tail sharing what is left of
    ``total_minor`` with its biggest at ``tail_max_minor``. With no tail (``count`` = named +
    tiered), nothing is left over: the listed sellers are the catalogue."""
    names = [n for n, _ in named]
    gmv = [float(g) for _, g in named]
    for tier in tiers:
        values = np.geomspace(tier.gmv_max_minor, tier.gmv_min_minor, tier.count)
        for i, value in enumerate(values):
            names.append(tier.names[i] if i < len(tier.names) else f"{prefix}-{len(names) + 1:06d}")
            gmv.append(float(value))
    tail_count = count - len(names)
    if tail_count <= 0:
        return tuple(names), np.asarray(gmv)
    left = total_minor - sum(gmv)
    if left <= 0:
        raise ScenarioError([f"{path}: {key}: expected the named and tiered {prefix}s' GMV "
                             f"({sum(gmv) / 100:,.0f}) to leave some of {total_key} for the "
                             "tail, found none left"])
    tail = _zipf_tail(tail_count, left, tail_max_minor, tail_exponent, path, f"{key}.tail")
    names += [f"{prefix}-{i:06d}" for i in range(len(names) + 1, count + 1)]
    return tuple(names), np.concatenate([np.asarray(gmv), tail])


def order_law(catalogue: BrandCatalogue, path: str, base_orders: float, refund_rate: float,
              burst_gmv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each brand's share of the curve's orders and its average order value (minor units).

    Placed orders are grossed up so that, once ``refund_rate`` of them are refunded, every brand
    nets its target; a brand's flash-sale (burst) GMV comes out of its share of the curve.
    Brands without a published average order split the orders the named ones leave.
    """
    gross = catalogue.gmv_target / (1.0 - refund_rate) - burst_gmv
    if (gross <= 0).any():
        bad = catalogue.names[int(np.argmax(gross <= 0))]
        raise ScenarioError([f"{path}: bursts: expected {bad!r} to sell less in its bursts than its "
                             "whole GMV target, found more"])
    named = catalogue.avg_order > 0
    orders = np.zeros(len(catalogue))
    orders[named] = gross[named] / catalogue.avg_order[named]
    other_orders = base_orders - orders[named].sum()
    if other_orders <= 0:
        raise ScenarioError([f"{path}: brands.named: expected the named brands to need fewer orders "
                             f"than the curves' {base_orders:,.0f}, found "
                             f"{orders[named].sum():,.0f}"])
    value = catalogue.avg_order.copy()
    value[~named] = gross[~named].sum() / other_orders
    orders[~named] = gross[~named] / value[~named]
    return orders / orders.sum(), value

def _zipf_tail(count: int, total: float, cap: float, exponent: float, path: str,
               key: str) -> np.ndarray:
    """``count`` values summing to ``total`` along (i+k)^-exponent, the largest equal to ``cap``."""
    if total / count >= cap:
        # to the fen, not the yuan: a small tail's average and cap are both under RMB 1
        raise ScenarioError([f"{path}: {key}.max_gmv: expected more than the tail's "
                             f"average ({total / count / 100:,.2f}), found {cap / 100:,.2f}"])
    ranks = np.arange(1, count + 1, dtype=np.float64)

    def top_share(shift: float) -> float:
        w = (ranks + shift) ** -exponent
        return float(w[0] / w.sum())

    want = cap / total
    lo, hi = 0.0, 1e12
    if top_share(lo) <= want:
        shift = lo
    else:
        for _ in range(200):  # top_share falls as the shift grows: bisect on it
            mid = (lo + hi) / 2 if hi < 1e6 else np.sqrt(max(lo, 1e-9) * hi)
            if mid in (lo, hi):  # converged to adjacent floats: nothing left to halve
                break
            lo, hi = (mid, hi) if top_share(mid) > want else (lo, mid)
        shift = hi
    w = (ranks + shift) ** -exponent
    shares: np.ndarray = w / w.sum() * total
    return shares
