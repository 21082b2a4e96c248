"""Scenario files: the TOML a festival is described in, read and checked into a :class:`Scenario`
(the model, :mod:`ticker.scenario.model`).

Every problem in a file is reported as one line naming the file, the key, what was expected and
what was found; a misspelt key is an error, never a silent default. Money is written in the
currency's major units (``gmv = 540_300_000_000`` is RMB 540.3 billion) and held in minor units.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ticker.clock import format_time, parse_offset, to_us
from ticker.money import CURRENCIES, Currency
from ticker.scenario.curves import window_rates
from ticker.scenario.dimensions import check_dimensions
from ticker.scenario.disorder import DisorderError, DisorderProfile, parse_profile
from ticker.scenario.model import (
    BrandTier,
    Bump,
    Burst,
    Dimension,
    DimensionValue,
    MilestoneRules,
    NamedBrand,
    SalesWindow,
    Scenario,
    ScenarioError,
    Target,
    TimeToValue,
)
from ticker.validate import SCALE, SEED, Range

# Ranges of a scenario's numbers (every number has one; NaN and infinity are in none).
BRANDS = Range(1, 10_000_000, integer=True)  # arrays are sized by brands (2021: 290,000)
WINDOW_ORDERS = Range(1, 10**12, integer=True)  # 2021's biggest window: 1.9 billion
RATE_MAX = 1e9  # orders/s at scale 1 (the record: 583,000)
SECONDS = Range(0, 10**8, low_open=True)  # durations: positive, and under three years
# The rate curve's shapes (a gala peak's width, the opening rush's decay) are divided into every
# second's offset: below the curve's one-second resolution they mean nothing, and near zero the
# division overflows.
CURVE_SECONDS = Range(1, 10**8)
MAX_AMOUNT_MINOR = 10**17  # money in int64 minor units, with room to sum (RMB 1 trillion = 10^14)


# --- reading -----------------------------------------------------------------------------------

_SUBJECT_KINDS = ("all", "brand", "platform", "region")
_METRICS = {
    "gmv": set(),
    "orders": {"scaled"},
    "peak_orders_per_s": {"scaled"},
    "brands_over": {"threshold", "at"},
    "first_brands_over": {"threshold"},
    # brands taking part: the run's catalogue (the report says how many sold)
    "brands": set(),
    "time_to_value": {"subject", "threshold", "at_most"},
    # sellers of a per-order dimension ("channel"), or brands of a per-brand value
    # ("tmall_global"), past a threshold of the dimension's races
    "dimension_over": {"subject", "threshold", "at"},
    # brands that sold in the run with a per-brand dimension's value ("overseas_new"), or with
    # any of its values but rest (the dimension's name: "origin")
    "dimension_brands": {"subject"},
    # year on year (festival.baseline): a value's brands past a threshold, as a change on the
    # baseline run's count (0.46 = up 46 %)
    "dimension_over_change": {"subject", "threshold"},
    # seconds from ``at`` until a subject's GMV since then passes its GMV in the baseline run's
    # window [baseline_from, baseline_to) ("within 4 minutes, more than the whole first day of 2020")
    "time_to_baseline": {"subject", "at", "baseline_from", "baseline_to", "at_most"},
}


class _Reader:
    """Walks the parsed TOML, collecting one problem line per mistake."""

    def __init__(self, path: str):
        self.path = path
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path}: {key}: {message}")

    def table(self, data: Any, key: str, required: set[str], optional: set[str]) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.problem(key, f"expected a table, found {_kind(data)}")
            return {}
        for name in sorted(set(data) - required - optional):
            allowed = ", ".join(sorted(required | optional))
            self.problem(f"{key}.{name}" if key else name, f"unknown key (expected one of: {allowed})")
        for name in sorted(required - set(data)):
            self.problem(f"{key}.{name}" if key else name, "missing required key")
        return data

    def array(self, data: dict[str, Any], key: str, name: str, *, required: bool = True) -> list[Any]:
        value = data.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(f"{key}.{name}", f"expected an array, found {_kind(value)}")
            return []
        if required and not value:
            self.problem(f"{key}.{name}", "expected at least one entry, found an empty array")
        return value

    def string(self, data: dict[str, Any], key: str, name: str, default: str | None = None) -> str:
        value = data.get(name, default)
        if not isinstance(value, str) or not value:
            if name in data:
                self.problem(f"{key}.{name}", f"expected a non-empty string, found {_kind(value)}")
            return default or ""
        return value

    def number(self, data: dict[str, Any], key: str, name: str, valid: Range, *,
               default: float | None = None) -> float:
        """The number at ``key.name``, checked against ``valid`` (finite, in range: NaN and
        infinity are never numbers here); a problem is recorded and a harmless value returned."""
        value: float | None = data.get(name, default)  # a TOML value: checked below
        full = f"{key}.{name}" if key else name
        if value is None:
            return 0
        if valid.problem(value) is not None:
            self.problem(full, f"expected {valid.describe()}, found {_kind(value)}")
            return default if default is not None else 0  # reported: only keeps the walk going
        return value

    def money(self, data: dict[str, Any], key: str, name: str, currency: Currency) -> int:
        value = data.get(name)
        full = f"{key}.{name}" if key else name
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int | str):
            self.problem(full, f"expected an amount in {currency.code} major units (an integer or "
                         f"a decimal string), found {_kind(value)}")
            return 0
        try:
            minor = currency.to_minor(value)
        except ValueError:
            self.problem(full, f"expected an amount like 540_300_000_000 or \"11.5\", found {value!r}")
            return 0
        if not 0 < minor <= MAX_AMOUNT_MINOR:
            self.problem(full, f"expected a positive amount up to "
                         f"{MAX_AMOUNT_MINOR // currency.minor_per_major:_}, found {value!r}")
            return 0
        return minor

    def moment(self, data: dict[str, Any], key: str, name: str) -> int:
        value = data.get(name)
        full = f"{key}.{name}" if key else name
        if value is None:
            return 0
        if not isinstance(value, datetime):
            self.problem(full, f"expected a TOML date-time with offset like "
                         f"2021-11-11T00:00:00+08:00, found {_kind(value)}")
            return 0
        if value.tzinfo is None:
            self.problem(full, f"expected a date-time with a UTC offset (e.g. "
                         f"{value.isoformat()}+08:00), found {value.isoformat()}")
            return 0
        return to_us(value)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, datetime):
        return f"date-time {value.isoformat()}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file; raises :class:`ScenarioError` listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot read the scenario file ({exc.strerror})"]) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError([f"{path}: offset {exc.start}: expected UTF-8 text, found byte "
                             f"0x{exc.object[exc.start]:02x}"]) from None
    return parse_scenario(text, str(path))


def parse_scenario(text: str, path: str = "<scenario>") -> Scenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError([f"{path}: not valid TOML: {exc}"]) from None
    r = _Reader(path)
    top = r.table(data, "", {"festival", "windows", "brands", "platforms", "regions"},
                  {"orders", "bursts", "milestones", "targets", "disorder", "dimensions"})
    fest = r.table(top.get("festival", {}), "festival",
                   {"name", "title", "currency", "utc_offset", "seed", "gmv", "brands"},
                   {"refund_rate", "refund_delay_s", "default_scale", "baseline"})
    code = r.string(fest, "festival", "currency")
    currency = CURRENCIES.get(code)
    if currency is None:
        if "currency" in fest:
            r.problem("festival.currency", f"expected one of {', '.join(CURRENCIES)}, found {code!r}")
        raise ScenarioError(r.problems)
    zone: timezone = parse_offset("+00:00")
    offset = r.string(fest, "festival", "utc_offset")
    try:
        zone = parse_offset(offset)
    except ValueError:
        if offset:
            r.problem("festival.utc_offset", f"expected an offset like '+08:00', found {offset!r}")

    brand_count = int(r.number(fest, "festival", "brands", BRANDS))
    orders_tbl = r.table(top.get("orders", {}), "orders", set(), {"sigma"})
    sigma = r.number(orders_tbl, "orders", "sigma", Range(0, 3), default=1.0)

    windows = tuple(_window(r, w, f"windows[{i}]", zone) for i, w in
                    enumerate(r.array(top, "", "windows")))
    for i, (a, b) in enumerate(itertools.pairwise(windows)):
        if b.start_us < a.end_us:
            r.problem(f"windows[{i + 1}].start", f"expected a time at or after windows[{i}].end "
                      f"({_iso(a.end_us, zone)}: windows in time order, without overlap), "
                      f"found {_iso(b.start_us, zone)}")
        elif windows[0].start_us and b.start_us and (b.start_us - windows[0].start_us) % 1_000_000:
            # the folds count festival seconds from the first window's start: a window off that
            # grid would end the festival a fraction of a second past its last whole second,
            # where no per-second series has a place for its orders
            r.problem(f"windows[{i + 1}].start", "expected a whole number of seconds after "
                      f"windows[0].start (the festival's seconds count from it), found "
                      f"{format_time(b.start_us, zone, precision='microseconds')}")

    platforms = _shares(r, top, "platforms")
    regions = _shares(r, top, "regions")
    brands = r.table(top.get("brands", {}), "brands", {"named", "tail"}, {"tiers"})
    named = tuple(_named(r, b, f"brands.named[{i}]", currency)
                  for i, b in enumerate(r.array(brands, "brands", "named")))
    tiers = tuple(_tier(r, t, f"brands.tiers[{i}]", currency)
                  for i, t in enumerate(r.array(brands, "brands", "tiers", required=False)))
    tail = r.table(brands.get("tail", {}), "brands.tail", {"max_gmv", "exponent"}, set())
    tail_max = r.money(tail, "brands.tail", "max_gmv", currency)
    tail_exp = r.number(tail, "brands.tail", "exponent", Range(0, 4))
    names = [b.name for b in named] + [n for t in tiers for n in t.names]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            r.problem("brands", f"expected unique brand names, found {name!r} twice")
        seen.add(name)
    listed = len(named) + sum(t.count for t in tiers)
    if brand_count and listed >= brand_count:
        r.problem("festival.brands", f"expected more brands than the {listed} named and tiered "
                  f"ones (the long tail needs some), found {brand_count}")

    dimensions = _dimensions(r, top, currency, seen, brand_count)
    bursts = tuple(_burst(r, b, f"bursts[{i}]", currency, seen, windows)
                   for i, b in enumerate(r.array(top, "", "bursts", required=False)))
    rules = _milestones(r, top.get("milestones", {}), currency, seen, platforms, regions)
    targets = tuple(_target(r, t, f"targets[{i}]", currency, seen, platforms, regions, rules,
                            dimensions, fest.get("baseline"))
                    for i, t in enumerate(r.array(top, "", "targets", required=False)))

    refund_rate = r.number(fest, "festival", "refund_rate", Range(0, 0.5), default=0.0)
    scenario = Scenario(
        name=r.string(fest, "festival", "name"),
        title=r.string(fest, "festival", "title"),
        path=path,
        text=text,
        currency=currency,
        zone=zone,
        seed=int(r.number(fest, "festival", "seed", SEED)),
        gmv_minor=r.money(fest, "festival", "gmv", currency),
        refund_rate=float(refund_rate),
        default_scale=float(r.number(fest, "festival", "default_scale", SCALE,
                                     default=0.001)),
        refund_delay_s=float(r.number(fest, "festival", "refund_delay_s", SECONDS,
                                      default=1800)),
        brand_count=brand_count,
        order_value_sigma=float(sigma),
        windows=windows,
        platforms=platforms,
        regions=regions,
        named_brands=named,
        tiers=tiers,
        tail_max_gmv_minor=tail_max,
        tail_exponent=float(tail_exp),
        bursts=bursts,
        milestones=rules,
        targets=targets,
        disorder=_disorder(r, top.get("disorder")),
        dimensions=dimensions,
        baseline=r.string(fest, "festival", "baseline") or None,
    )
    if dimensions and not r.problems:
        check_dimensions(r.problems, scenario)
    if not r.problems:
        _check_curves(r, scenario)
    if r.problems:
        raise ScenarioError(r.problems)
    return scenario


def _disorder(r: _Reader, data: Any) -> DisorderProfile | None:
    if data is None:
        return None
    try:
        return parse_profile(data, f"{r.path}: disorder", "scenario")
    except DisorderError as exc:
        r.problems += exc.problems
        return None


def _check_curves(r: _Reader, scenario: Scenario) -> None:
    """Every window's rate curve must be solvable, so that a bad file fails on load, not mid-run."""

    offset_s = int(scenario.zone.utcoffset(None).total_seconds())
    for i, window in enumerate(scenario.windows):
        try:
            window_rates(window, offset_s, f"{r.path}: windows[{i}].orders: ")
        except ScenarioError as exc:
            r.problems.extend(exc.problems)


def _iso(us: int, zone: timezone) -> str:
    return format_time(us, zone, precision="seconds")


def _window(r: _Reader, data: Any, key: str, zone: timezone) -> SalesWindow:
    w = r.table(data, key, {"name", "start", "end", "orders", "opening_peak", "opening_decay_s",
                            "daily_shape"}, {"peaks"})
    start, end = r.moment(w, key, "start"), r.moment(w, key, "end")
    if start and end and end <= start:
        r.problem(f"{key}.end", f"expected a time after the window's start "
                  f"({_iso(start, zone)}), found {_iso(end, zone)}")
    if start and end and (end - start) % 1_000_000:
        r.problem(f"{key}.end", "expected the window to last a whole number of seconds")
    shape = r.array(w, key, "daily_shape")
    weight = Range(0, 1e6)
    shape_bad = any(weight.problem(x) for x in shape)
    if shape and (len(shape) != 24 or shape_bad):
        r.problem(f"{key}.daily_shape", f"expected 24 non-negative hourly weights, found {len(shape)} "
                  "entries" if len(shape) != 24 else f"expected 24 hourly weights, each {weight.describe()}")
    elif shape and not any(shape):
        r.problem(f"{key}.daily_shape", "expected at least one positive hourly weight")
    bumps = []
    for i, b in enumerate(r.array(w, key, "peaks", required=False)):
        bk = f"{key}.peaks[{i}]"
        bt = r.table(b, bk, {"at", "extra", "width_s"}, set())
        at = r.moment(bt, bk, "at")
        if at and start < end and not start <= at < end:  # (a reversed window is reported once)
            r.problem(f"{bk}.at", f"expected a time inside its window ({_iso(start, zone)} to "
                      f"{_iso(end, zone)}), found {_iso(at, zone)}")
        bumps.append(Bump(at, float(r.number(bt, bk, "extra", Range(0, RATE_MAX))),
                          float(r.number(bt, bk, "width_s", CURVE_SECONDS))))
    return SalesWindow(
        name=r.string(w, key, "name"),
        start_us=start,
        end_us=end,
        orders=int(r.number(w, key, "orders", WINDOW_ORDERS)),
        opening_peak=float(r.number(w, key, "opening_peak", Range(0, RATE_MAX, low_open=True))),
        opening_decay_s=float(r.number(w, key, "opening_decay_s", CURVE_SECONDS)),
        daily_shape=(tuple(float(x) for x in shape) if len(shape) == 24 and not shape_bad
                     else (1.0,) * 24),
        bumps=tuple(bumps),
    )


def _shares(r: _Reader, top: dict[str, Any], name: str) -> tuple[tuple[str, float], ...]:
    out = []
    entries = r.array(top, "", name)
    if len(entries) > 255:
        r.problem(name, f"expected at most 255 entries, found {len(entries)}")
    for i, entry in enumerate(entries):
        key = f"{name}[{i}]"
        e = r.table(entry, key, {"name", "share"}, set())
        out.append((r.string(e, key, "name"), float(r.number(e, key, "share", Range(0, 1)))))
    total = sum(s for _, s in out)
    if out and abs(total - 1.0) > 1e-9:
        r.problem(name, f"expected shares that sum to 1, found {total:.6g}")
    return tuple(out)


def _named(r: _Reader, data: Any, key: str, currency: Currency) -> NamedBrand:
    b = r.table(data, key, {"name", "gmv", "avg_order"}, set())
    return NamedBrand(r.string(b, key, "name"), r.money(b, key, "gmv", currency),
                      r.money(b, key, "avg_order", currency))


def _tier(r: _Reader, data: Any, key: str, currency: Currency) -> BrandTier:
    t = r.table(data, key, {"count", "gmv_min", "gmv_max"}, {"names"})
    count = int(r.number(t, key, "count", BRANDS))
    lo, hi = r.money(t, key, "gmv_min", currency), r.money(t, key, "gmv_max", currency)
    if lo and hi and lo > hi:
        r.problem(f"{key}.gmv_min", f"expected at most gmv_max ({hi // currency.minor_per_major:,}),"
                  f" found {lo // currency.minor_per_major:,}")
    names = r.array(t, key, "names", required=False)
    if len(names) > count:
        r.problem(f"{key}.names", f"expected at most count={count} names, found {len(names)}")
    if not all(isinstance(n, str) and n for n in names):
        r.problem(f"{key}.names", "expected an array of non-empty strings")
        names = []
    return BrandTier(count, lo, hi, tuple(names))


def _burst(r: _Reader, data: Any, key: str, currency: Currency, brands: set[str],
           windows: tuple[SalesWindow, ...]) -> Burst:
    b = r.table(data, key, {"brand", "start", "seconds", "gmv"}, set())
    brand = r.string(b, key, "brand")
    if brand and brand not in brands:
        r.problem(f"{key}.brand", f"expected a named or tiered brand, found {brand!r}")
    start = r.moment(b, key, "start")
    seconds = int(r.number(b, key, "seconds", Range(1, 31 * 86_400, integer=True)))
    if start and start % 1_000_000:
        r.problem(f"{key}.start", "expected a whole second")
    end = start + seconds * 1_000_000
    ordered = all(w.start_us < w.end_us for w in windows)  # else already reported
    if start and ordered and not any(w.start_us <= start and end <= w.end_us for w in windows):
        r.problem(f"{key}.start", "expected the burst to lie inside one sales window")
    return Burst(brand, start, seconds, r.money(b, key, "gmv", currency))


def _subject(r: _Reader, key: str, subject: str, brands: set[str],
             platforms: tuple[tuple[str, float], ...] = (),
             regions: tuple[tuple[str, float], ...] = ()) -> None:
    kind, _, name = subject.partition(":")
    if kind not in _SUBJECT_KINDS or (kind == "all") != (name == ""):
        r.problem(key, f"expected 'all', 'brand:NAME', 'platform:NAME' or 'region:NAME', "
                  f"found {subject!r}")
        return
    known = {"brand": brands, "platform": {p for p, _ in platforms},
             "region": {g for g, _ in regions}}.get(kind)
    if known is not None and (platforms or regions or kind == "brand") and name not in known:
        r.problem(key, f"expected a known {kind}, found {name!r}")


def _milestones(r: _Reader, data: Any, currency: Currency, brands: set[str],
                platforms: tuple[tuple[str, float], ...],
                regions: tuple[tuple[str, float], ...]) -> MilestoneRules:
    key = "milestones"
    m = r.table(data, key, set(), {"gmv_every", "brand_thresholds", "rate_record_min_gain",
                                   "leaderboard", "time_to_value"})
    gmv_every = r.money(m, key, "gmv_every", currency) if "gmv_every" in m else 0
    thresholds = []
    for i, _ in enumerate(r.array(m, key, "brand_thresholds", required=False)):
        thresholds.append(r.money({"t": m["brand_thresholds"][i]}, f"{key}.brand_thresholds[{i}]",
                                  "t", currency))
    if thresholds != sorted(set(thresholds)):
        r.problem(f"{key}.brand_thresholds", "expected strictly increasing amounts")
    rules = []
    for i, entry in enumerate(r.array(m, key, "time_to_value", required=False)):
        k = f"{key}.time_to_value[{i}]"
        t = r.table(entry, k, {"subject", "start", "value"}, {"within_s", "label"})
        subject = r.string(t, k, "subject")
        _subject(r, f"{k}.subject", subject, brands, platforms, regions)
        within = t.get("within_s")
        if within is not None:
            within = float(r.number(t, k, "within_s", SECONDS))
        rules.append(TimeToValue(subject, r.moment(t, k, "start"), r.money(t, k, "value", currency),
                                 within, r.string(t, k, "label", default="")))
    return MilestoneRules(
        gmv_every_minor=gmv_every,
        brand_thresholds_minor=tuple(thresholds),
        rate_record_min_gain=float(r.number(m, key, "rate_record_min_gain", Range(0, 100), default=0.05)),
        leaderboard_size=int(r.number(m, key, "leaderboard", Range(1, 100, integer=True),
                                      default=10)),
        time_to_value=tuple(rules),
    )


def _target(r: _Reader, data: Any, key: str, currency: Currency, brands: set[str],
            platforms: tuple[tuple[str, float], ...], regions: tuple[tuple[str, float], ...],
            rules: MilestoneRules, dimensions: tuple[Dimension, ...] = (),
            baseline: str | None = None) -> Target:
    t = r.table(data, key, {"fact", "metric", "value", "tolerance", "source"},
                {"threshold", "at", "subject", "scaled", "at_most", "baseline_from",
                 "baseline_to"})
    metric = r.string(t, key, "metric")
    if metric and metric not in _METRICS:
        r.problem(f"{key}.metric", f"expected one of {', '.join(_METRICS)}, found {metric!r}")
    allowed = _METRICS.get(metric, {"threshold", "at", "subject", "scaled", "at_most"})
    for extra in ("threshold", "at", "subject", "scaled", "at_most", "baseline_from",
                  "baseline_to"):
        if extra in t and extra not in allowed:
            r.problem(f"{key}.{extra}", f"not used by metric {metric!r}")
    value = t.get("value")
    if metric == "gmv":
        value = r.money(t, key, "value", currency)
    elif metric == "first_brands_over":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            r.problem(f"{key}.value", f"expected an array of brand names, found {_kind(value)}")
        elif unknown := [v for v in value if v not in brands]:
            r.problem(f"{key}.value", f"expected named brands, found {unknown!r}")
    elif metric:
        value = r.number(t, key, "value", Range(0, 1e18))
    threshold = r.money(t, key, "threshold", currency) if "threshold" in t else None
    if metric in ("brands_over", "first_brands_over", "time_to_value", "dimension_over",
                  "dimension_over_change") \
            and threshold is None:
        r.problem(f"{key}.threshold", f"missing required key for metric {metric!r}")
    subject = None
    if metric == "dimension_brands":
        subject = r.string(t, key, "subject")
        groups = {d.name for d in dimensions if d.per == "brand"}
        groups |= {v.name for d in dimensions if d.per == "brand" for v in d.values}
        if subject not in groups:
            r.problem(f"{key}.subject", "expected a per-brand dimension or one of its values "
                      f"({', '.join(sorted(groups)) or 'none declared'}), found {subject!r}")
    window = None
    if metric in ("dimension_over_change", "time_to_baseline") and baseline is None:
        r.problem(f"{key}.metric", f"expected festival.baseline (the scenario {metric!r} compares "
                  "with), found none")
    if metric == "time_to_baseline":
        subject = r.string(t, key, "subject")
        if subject and (not subject.startswith("brand:") or subject[6:] not in brands):
            r.problem(f"{key}.subject", f"expected 'brand:NAME' of a named or tiered brand, found "
                      f"{subject!r}")
        for name in ("at", "baseline_from", "baseline_to"):
            if name not in t:
                r.problem(f"{key}.{name}", f"missing required key for metric {metric!r}")
        window = (r.moment(t, key, "baseline_from"), r.moment(t, key, "baseline_to"))
        if all(window) and window[1] <= window[0]:
            r.problem(f"{key}.baseline_to", "expected a time after baseline_from")
    if metric in ("dimension_over", "dimension_over_change"):
        subject = r.string(t, key, "subject")
        races = {d.name: d.thresholds_minor for d in dimensions if d.per == "order"}
        races |= {v.name: d.thresholds_minor for d in dimensions if d.per == "brand"
                  for v in d.values}
        if subject not in races:
            r.problem(f"{key}.subject", "expected a per-order dimension or a per-brand dimension's "
                      f"value ({', '.join(races) or 'none declared'}), found {subject!r}")
        elif threshold and threshold not in races[subject] and metric == "dimension_over":
            r.problem(f"{key}.threshold", f"expected one of the dimension's thresholds "
                      f"({', '.join(str(x // currency.minor_per_major) for x in races[subject])}"
                      f"), found {threshold // currency.minor_per_major}")
    if metric == "time_to_value":
        subject = r.string(t, key, "subject")
        known = len(r.problems)
        _subject(r, f"{key}.subject", subject, brands, platforms, regions)
        # The seconds are counted from the start of the milestone rule this target measures.
        if subject and threshold and len(r.problems) == known and not any(
                rule.subject == subject and rule.value_minor == threshold
                for rule in rules.time_to_value):
            r.problem(f"{key}.threshold", f"expected a milestones.time_to_value rule with subject "
                      f"{subject!r} and this value (its start is where the seconds count from), "
                      "found none")
    scaled, at_most = t.get("scaled", False), t.get("at_most", False)
    for name, flag in (("scaled", scaled), ("at_most", at_most)):
        if not isinstance(flag, bool):
            r.problem(f"{key}.{name}", f"expected true or false, found {_kind(flag)}")
    return Target(
        fact=r.string(t, key, "fact"),
        metric=metric,
        value=value,
        tolerance=float(r.number(t, key, "tolerance", Range(0, 10))),
        source=r.string(t, key, "source"),
        threshold_minor=threshold,
        at_us=r.moment(t, key, "at") if "at" in t else None,
        subject=subject,
        scaled=scaled is True,
        at_most=at_most is True,
        baseline_window_us=window,
    )


_DIMENSION_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def _dimensions(r: _Reader, top: dict[str, Any], currency: Currency, brands: set[str],
                brand_count: int) -> tuple[Dimension, ...]:
    """``[[dimensions]]``: their shape and names; whether the brands can be calibrated to the
    published counts is checked once the catalogue exists (:func:`check_dimensions`)."""
    out: list[Dimension] = []
    names: set[str] = set()
    for i, entry in enumerate(r.array(top, "", "dimensions", required=False)):
        key = f"dimensions[{i}]"
        d = r.table(entry, key, {"name", "per", "rest"},
                    {"label", "thresholds", "values", "count", "gmv", "named", "tiers", "tail"})
        per = d.get("per")
        if per not in ("order", "brand"):
            if "per" in d:
                r.problem(f"{key}.per", f"expected 'order' or 'brand', found {_kind(d['per'])}")
            continue
        extra = sorted(set(d) & ({"values"} if per == "order" else
                                 {"count", "gmv", "named", "tiers", "tail"}))
        if extra:  # one line for a dimension declared as the other kind
            r.problem(f"{key}.{extra[0]}" if len(extra) == 1 else key,
                      f"{', '.join(extra)} not used by a per-{per} dimension (expected "
                      f"{'count, gmv, named, tiers, tail' if per == 'order' else 'values'})")
            continue
        name = _identifier(r, d, key, "name", names)
        rest = _identifier(r, d, key, "rest", names)
        thresholds = [r.money({f"thresholds[{j}]": x}, key, f"thresholds[{j}]", currency)
                      for j, x in enumerate(r.array(d, key, "thresholds", required=False))]
        if 0 not in thresholds and thresholds != sorted(set(thresholds)):
            r.problem(f"{key}.thresholds", "expected strictly increasing amounts")
        if len(thresholds) > 100:
            r.problem(f"{key}.thresholds", f"expected at most 100, found {len(thresholds)}")
        label = r.string(d, key, "label", default=name.replace("_", " "))
        if per == "brand":
            member_of: dict[str, str] = {}
            values = tuple(_dimension_value(r, v, f"{key}.values[{j}]", currency, brands, names,
                                            member_of)
                           for j, v in enumerate(r.array(d, key, "values")))
            listed = sum(v.brands for v in values)
            if brand_count and listed > brand_count:
                r.problem(f"{key}.values", f"expected at most festival.brands ({brand_count:,}) "
                          f"brands in all, found {listed:,}")
            out.append(Dimension(name, per, rest, label, tuple(thresholds), values))
            continue
        count = int(r.number(d, key, "count", BRANDS))
        named = []
        for j, n in enumerate(r.array(d, key, "named", required=False)):
            nk = f"{key}.named[{j}]"
            nt = r.table(n, nk, {"name", "gmv"}, set())
            named.append((r.string(nt, nk, "name"), r.money(nt, nk, "gmv", currency)))
        tiers = tuple(_tier(r, t, f"{key}.tiers[{j}]", currency)
                      for j, t in enumerate(r.array(d, key, "tiers", required=False)))
        sellers = [n for n, _ in named] + [n for t in tiers for n in t.names]
        if len(set(sellers)) != len(sellers):
            r.problem(key, "expected unique seller names in named and tiers")
        listed = len(named) + sum(t.count for t in tiers)
        tail_max, tail_exp = 0, 1.0
        if "tail" in d:
            tail = r.table(d["tail"], f"{key}.tail", {"max_gmv", "exponent"}, set())
            tail_max = r.money(tail, f"{key}.tail", "max_gmv", currency)
            tail_exp = float(r.number(tail, f"{key}.tail", "exponent", Range(0, 4)))
            if count and listed >= count:
                r.problem(f"{key}.count", f"expected more sellers than the {listed:,} named and "
                          f"tiered ones (the tail needs some), found {count:,}")
        elif count and listed != count:
            r.problem(f"{key}.count", f"expected the {listed:,} named and tiered sellers (no "
                      f"tail declared), found {count:,}")
        out.append(Dimension(name, per, rest, label, tuple(thresholds), (), count,
                             r.money(d, key, "gmv", currency), tuple(named), tiers, tail_max,
                             tail_exp))
    return tuple(out)


def _identifier(r: _Reader, data: dict[str, Any], key: str, name: str, seen: set[str]) -> str:
    """A dimension's or value's name: it names milestone kinds and topic levels, so it is a
    lower-case identifier, unique across every dimension of the scenario."""
    value = data.get(name)
    if value is None:  # reported as missing
        return ""
    if not (isinstance(value, str) and _DIMENSION_NAME.fullmatch(value)):
        r.problem(f"{key}.{name}", f"expected a lower-case identifier like 'tmall_global' "
                  f"(a-z, 0-9, _; at most 40), found {_kind(value)}")
        return ""
    if value in seen:
        r.problem(f"{key}.{name}", f"expected a name unused by any other dimension or value, "
                  f"found {value!r} again")
    seen.add(value)
    return value


def _dimension_value(r: _Reader, data: Any, key: str, currency: Currency, brands: set[str],
                     names: set[str], member_of: dict[str, str]) -> DimensionValue:
    v = r.table(data, key, {"name", "brands"}, {"label", "over", "members"})
    name = _identifier(r, v, key, "name", names)
    count = int(r.number(v, key, "brands", BRANDS))
    over = []
    for j, o in enumerate(r.array(v, key, "over", required=False)):
        ok = f"{key}.over[{j}]"
        ot = r.table(o, ok, {"threshold", "brands"}, set())
        threshold = r.money(ot, ok, "threshold", currency)
        n = int(r.number(ot, ok, "brands", Range(0, 10_000_000, integer=True)))
        if count and n > count:
            r.problem(f"{ok}.brands", f"expected at most the value's {count:,} brands, found {n:,}")
        over.append((threshold, n))
    if [t for t, _ in over] != sorted({t for t, _ in over}):
        r.problem(f"{key}.over", "expected strictly increasing thresholds")
    elif any(a[1] < b[1] for a, b in itertools.pairwise(over)):
        r.problem(f"{key}.over", "expected no more brands over a higher threshold than a lower one")
    members = r.array(v, key, "members", required=False)
    if not all(isinstance(m, str) for m in members):
        r.problem(f"{key}.members", "expected an array of brand names")
        members = []
    for m in members:
        if m not in brands:
            r.problem(f"{key}.members", f"expected named or tiered brands, found {m!r}")
        elif m in member_of:
            r.problem(f"{key}.members", f"expected a brand in one value of a dimension, found "
                      f"{m!r} in {member_of[m]!r} too")
        member_of.setdefault(m, name)
    if count and len(members) > count:
        r.problem(f"{key}.members", f"expected at most the value's {count:,} brands, found "
                  f"{len(members):,}")
    return DimensionValue(name, r.string(v, key, "label", default=name.replace("_", " ")),
                          count, tuple(over), tuple(members))
