"""A tiny scenario whose thresholds are low enough that random streams cross them often."""

from ticker.scenario import Scenario, parse_scenario

UNIT_TOML = """
[festival]
name = "unit"
title = "Unit Fest"
currency = "CNY"
utc_offset = "+08:00"
seed = 7
gmv = 100_000
brands = 12

[[windows]]
name = "opening"
start = 2021-11-01T00:00:00+08:00
end = 2021-11-01T01:00:00+08:00
orders = 5000
opening_peak = 10
opening_decay_s = 60
daily_shape = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
               1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
[[windows]]
name = "main day"
start = 2021-11-11T00:00:00+08:00
end = 2021-11-11T01:00:00+08:00
orders = 5000
opening_peak = 10
opening_decay_s = 60
daily_shape = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
               1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]

[[platforms]]
name = "Tmall"
share = 0.5
[[platforms]]
name = "Taobao"
share = 0.5
[[regions]]
name = "East"
share = 0.5
[[regions]]
name = "West"
share = 0.5

[[brands.named]]
name = "Apple"
gmv = 10_000
avg_order = 20
[[brands.named]]
name = "L'Oréal"
gmv = 9_000
avg_order = 10
[brands.tail]
max_gmv = 8_000
exponent = 1.0

[milestones]
gmv_every = "5.00"
brand_thresholds = ["1.00", "2.00", "4.00"]
rate_record_min_gain = 0.0
leaderboard = 3
[[milestones.time_to_value]]
subject = "brand:Apple"
start = 2021-11-01T00:00:00+08:00
value = "1.50"
within_s = 2
label = "the first two seconds"
[[milestones.time_to_value]]
subject = "region:West"
start = 2021-11-11T00:00:00+08:00
value = "3.00"
[[milestones.time_to_value]]
subject = "all"
start = 2021-11-01T00:00:01+08:00
value = "2.50"
"""

UNIT = parse_scenario(UNIT_TOML, "unit.toml")


def unit_with_gain(gain: float) -> Scenario:
    """The unit festival whose rate records must beat the record before by more than ``gain``
    (UNIT's is 0: any higher count is a record)."""
    return parse_scenario(UNIT_TOML.replace("rate_record_min_gain = 0.0", f"rate_record_min_gain = {gain}"),
                          "unit.toml")


NAMES = ["Apple", "L'Oréal"] + [f"brand-{i}" for i in range(3, 13)]

# The same festival with a per-order dimension (livestream channels, a second catalogue of
# sellers) and a per-brand one (segments), thresholds low enough to be crossed often. Its brand
# tail fits festival.gmv, so the catalogue the per-brand dimension is assigned from exists.
DIMENSIONS_TOML = """
[[dimensions]]
name = "channel"
per = "order"
rest = "storefront"
label = "livestream channel"
count = 5
gmv = 40_000
thresholds = ["1.00", "3.00"]
[[dimensions.named]]
name = "Viya"
gmv = 20_000
[dimensions.tail]
max_gmv = 8_000
exponent = 1.0

[[dimensions]]
name = "segment"
per = "brand"
rest = "domestic"
thresholds = ["1.00", "2.00"]
[[dimensions.values]]
name = "tmall_global"
label = "Tmall Global brand"
brands = 4
members = ["L'Oréal"]
[[dimensions.values]]
name = "emerging"
label = "emerging brand"
brands = 3
"""
UNIT_DIMS_TOML = UNIT_TOML.replace("max_gmv = 8_000", "max_gmv = 9_000") + DIMENSIONS_TOML
UNIT_DIMS = parse_scenario(UNIT_DIMS_TOML, "unit.toml")

#: Three layouts: a second per-order dimension (members' clubs), after the per-brand one, so
#: each dimension's slice of the state starts past the ones before it, whatever their kinds.
UNIT_DIMS3 = parse_scenario(UNIT_DIMS_TOML + """
[[dimensions]]
name = "club"
per = "order"
rest = "walk_in"
label = "members' club"
count = 2
gmv = 20_000
thresholds = ["0.50", "2.00"]
[[dimensions.named]]
name = "Gold"
gmv = 12_000
[[dimensions.named]]
name = "Silver"
gmv = 8_000
""", "unit.toml")

#: A dimension without thresholds (totals, no races) declared before the raced ones: the races
#: after it are corrected by late orders all the same.
UNIT_DIMS_UNRACED_FIRST = parse_scenario(UNIT_DIMS_TOML.replace(DIMENSIONS_TOML, """
[[dimensions]]
name = "club"
per = "order"
rest = "walk_in"
count = 1
gmv = 10_000
[[dimensions.named]]
name = "Gold"
gmv = 10_000
""" + DIMENSIONS_TOML), "unit.toml")
