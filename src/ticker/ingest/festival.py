"""The festival an ingested stream is folded against when no ``--scenario`` is given.

A scenario gives the aggregator its currency, its sales windows (whose seconds size the
per-second series), platforms, regions and milestone rules. Without one, ``import`` and
``follow`` make this one and store it as the run's ``scenario.toml``, so a replay of the run
reads the same rules:

* currency: ``--currency`` (default CNY), UTC offset ``+00:00``;
* one sales window of 32 days, from 00:00 UTC of the day before the first order's date
  (``follow``: before the day it starts) — orders outside it are rejected with that reason;
* platform ``all`` and region ``all`` (orders naming another are rejected);
* milestones: festival GMV every 10 million, brands passing 1 million, 10 million, 100 million
  and 1 billion (major units), orders/s records that beat the last by 5 %, top 10 leaderboard.

The generator's keys (orders, brands, tail) must be present for the file to be a scenario; they
only matter to ``ticker replay SCENARIO``, which an ingested run is not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ticker.clock import US_PER_S
from ticker.money import CURRENCIES
from ticker.scenario import Scenario, parse_scenario

WINDOW_DAYS = 32

_TEMPLATE = """\
# Made by ticker {command} (no --scenario): the rules an ingested stream is folded against.
# Only the currency, the window, the platforms, the regions and [milestones] are used; the
# generator's keys are placeholders.
[festival]
name = "{name}"
title = "{title}"
currency = "{currency}"
utc_offset = "+00:00"
seed = 0
default_scale = 1
gmv = 1
brands = 2

[[windows]]
name = "ingested orders"
start = {start}
end = {end}
orders = {orders}
opening_peak = 3
opening_decay_s = 1
daily_shape = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
               1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]

[[platforms]]
name = "all"
share = 1.0

[[regions]]
name = "all"
share = 1.0

[[brands.named]]
name = "(placeholder)"
gmv = 1
avg_order = 1

[brands.tail]
max_gmv = 1
exponent = 1.0

[milestones]
gmv_every = 10_000_000
brand_thresholds = [1_000_000, 10_000_000, 100_000_000, 1_000_000_000]
rate_record_min_gain = 0.05
leaderboard = 10
"""


def default_scenario(first_us: int, *, currency: str = "CNY", name: str = "ingested",
                     command: str = "import") -> Scenario:
    """The default festival for a stream whose first order (or start) is at ``first_us``."""
    if currency not in CURRENCIES:
        raise ValueError(f"--currency: expected one of {', '.join(CURRENCIES)}, found {currency!r}")
    day = datetime.fromtimestamp(first_us // US_PER_S, UTC).replace(hour=0, minute=0, second=0)
    start = day - timedelta(days=1)
    end = start + timedelta(days=WINDOW_DAYS)
    text = _TEMPLATE.format(command=command, name=name, title=f"{name} ({command})", currency=currency,
                            start=start.isoformat().replace("+00:00", "Z"),
                            end=end.isoformat().replace("+00:00", "Z"),
                            orders=WINDOW_DAYS * 86_400 * 2)
    return parse_scenario(text, f"<default festival of ticker {command}>")
