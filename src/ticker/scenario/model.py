"""The scenario model: a festival as the generator and the aggregator need it.

Plain frozen dataclasses, all money in minor units, all times in UTC microseconds. Reading and
checking a TOML file into these is :mod:`ticker.scenario.spec`'s job; the rate curves
(:mod:`ticker.scenario.curves`) need only the model, so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timezone
from typing import Any

from ticker.errors import ProblemsError
from ticker.money import Currency
from ticker.scenario.disorder import DisorderProfile


class ScenarioError(ProblemsError, ValueError):
    """A scenario file has problems; ``problems`` holds one line for each."""


@dataclass(frozen=True, slots=True)
class Bump:
    """An evening gala peak: ``extra`` orders/s at ``at_us``, a Gaussian of ``width_s``."""

    at_us: int
    extra: float
    width_s: float


@dataclass(frozen=True, slots=True)
class SalesWindow:
    """One sales window and the shape of its rate curve (orders/s at scale 1)."""

    name: str
    start_us: int
    end_us: int
    orders: int
    opening_peak: float
    opening_decay_s: float
    daily_shape: tuple[float, ...]
    bumps: tuple[Bump, ...]

    @property
    def seconds(self) -> int:
        return (self.end_us - self.start_us) // 1_000_000


@dataclass(frozen=True, slots=True)
class NamedBrand:
    name: str
    gmv_minor: int
    avg_order_minor: int


@dataclass(frozen=True, slots=True)
class BrandTier:
    """``count`` brands with GMV targets log-spaced from ``gmv_max`` down to ``gmv_min``."""

    count: int
    gmv_min_minor: int
    gmv_max_minor: int
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Burst:
    """A flash sale on top of the curve: ``gmv`` of ``brand`` sold within ``seconds``."""

    brand: str
    start_us: int
    seconds: int
    gmv_minor: int


@dataclass(frozen=True, slots=True)
class TimeToValue:
    """A milestone rule: ``subject``'s GMV since ``start`` reaching ``value`` (by ``within_s``)."""

    subject: str
    start_us: int
    value_minor: int
    within_s: float | None
    label: str


@dataclass(frozen=True, slots=True)
class MilestoneRules:
    gmv_every_minor: int
    brand_thresholds_minor: tuple[int, ...]
    rate_record_min_gain: float
    leaderboard_size: int
    time_to_value: tuple[TimeToValue, ...]


@dataclass(frozen=True, slots=True)
class Target:
    """A published fact the scenario must reproduce (``FACTS.md``), checked by ``ticker report``."""

    fact: str
    metric: str
    value: Any
    tolerance: float
    source: str
    threshold_minor: int | None = None
    at_us: int | None = None
    subject: str | None = None
    scaled: bool = False
    #: time_to_value: the fact is a deadline ("in the first second"): pass when measured <= value
    at_most: bool = False
    #: a comparison with the baseline run: its window [from, to) (``baseline_from``/``_to``)
    baseline_window_us: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class DimensionValue:
    """A value of a per-brand dimension (a segment such as Tmall Global, an attribute such as
    overseas) and what the record says about it: how many brands have it, how many of them end
    over a threshold (``over``: (threshold_minor, brands) pairs), which named brands are in it."""

    name: str
    label: str
    brands: int
    over: tuple[tuple[int, int], ...] = ()
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Dimension:
    """A further dimension of an order beyond brand, platform and region (``[[dimensions]]``).

    ``per = "brand"``: an attribute of the brand (segment, overseas/new), so every order of a
    brand has its brand's value; ``values`` lists them and ``rest`` names the brands in none.
    ``per = "order"``: a second catalogue of sellers an order is placed through (livestream
    channels), each with its own GMV like a brand; ``rest`` names orders placed through none.
    ``thresholds`` are races: per seller (order), or per brand within each value (brand).
    """

    name: str
    per: str
    rest: str
    label: str
    thresholds_minor: tuple[int, ...] = ()
    values: tuple[DimensionValue, ...] = ()
    #: per order: the sellers' catalogue, built like the brands' (named, tiers, Zipf tail)
    count: int = 0
    gmv_minor: int = 0
    named: tuple[tuple[str, int], ...] = ()
    tiers: tuple[BrandTier, ...] = ()
    tail_max_gmv_minor: int = 0
    tail_exponent: float = 1.0


@dataclass(frozen=True, slots=True)
class Scenario:
    """A festival as the generator and the aggregator need it, all money in minor units."""

    name: str
    title: str
    path: str
    text: str
    currency: Currency
    zone: timezone
    seed: int
    gmv_minor: int
    refund_rate: float
    refund_delay_s: float
    brand_count: int
    order_value_sigma: float
    windows: tuple[SalesWindow, ...]
    platforms: tuple[tuple[str, float], ...]
    regions: tuple[tuple[str, float], ...]
    named_brands: tuple[NamedBrand, ...]
    tiers: tuple[BrandTier, ...]
    tail_max_gmv_minor: int
    tail_exponent: float
    bursts: tuple[Burst, ...]
    milestones: MilestoneRules
    targets: tuple[Target, ...] = field(default=())
    #: the scale ``ticker replay`` uses when none is given: the smallest at which the
    #: scenario's targets hold (small thresholds blur when each order is worth 1/scale more)
    default_scale: float = 0.001
    #: values built from the scenario once and kept (the brand catalogue, ``scenario/brands.py``);
    #: not a constructor argument, not compared, and fresh in a ``dataclasses.replace`` copy
    derived: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)
    #: ``[disorder]``: replay the festival as an arrival-ordered stream (``scenario/disorder.py``)
    disorder: DisorderProfile | None = None
    #: ``[[dimensions]]`` beyond brand, platform and region (``scenario/dimensions.py``)
    dimensions: tuple[Dimension, ...] = ()
    #: ``festival.baseline``: the previous year's scenario (a bundled name, or a path relative
    #: to this file) that year-on-year targets compare with
    baseline: str | None = None

    @property
    def start_us(self) -> int:
        return self.windows[0].start_us

    @property
    def end_us(self) -> int:
        return self.windows[-1].end_us

    @property
    def orders(self) -> int:
        """Orders at scale 1 on the rate curves (bursts come on top)."""
        return sum(w.orders for w in self.windows)
