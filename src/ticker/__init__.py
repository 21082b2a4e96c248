"""ticker: an event-sourced festival sales ticker, as a library and a command line.

A scenario engine replays a shopping festival's sales windows as a stream of order events, an
aggregator folds them into running GMV, rates, leaderboards and milestones, and the results are
published over MQTT. See ``docs/architecture.md``; README.md's "Use it from Python" shows the
library.

>>> import ticker
>>> scenario = ticker.resolve("smoke")
>>> agg = ticker.Aggregator(scenario)
>>> for batch in ticker.generate(scenario, seed=1, scale=0.01):
...     found = agg.apply(batch)
>>> found = agg.finish()
>>> agg.gmv == agg.snapshot().gmv_minor > 0
True
"""

__version__ = "0.1.0"

from ticker.aggregate import Aggregator, BatchRejected, Milestone
from ticker.api import replay, replay_async
from ticker.errors import TickerError
from ticker.events import OrderBatch, OrderKind
from ticker.money import CNY, USD, Currency, format_money
from ticker.scenario import Scenario, ScenarioError, generate, make_plan, resolve
from ticker.sink import OrderSink, RunStart, Sink
from ticker.views import BrandGMV, Delivery, Peak, Snapshot, Summary, Tick

__all__ = [
    "CNY",
    "USD",
    "Aggregator",
    "BatchRejected",
    "BrandGMV",
    "Currency",
    "Delivery",
    "Milestone",
    "OrderBatch",
    "OrderKind",
    "OrderSink",
    "Peak",
    "RunStart",
    "Scenario",
    "ScenarioError",
    "Sink",
    "Snapshot",
    "Summary",
    "Tick",
    "TickerError",
    "format_money",
    "generate",
    "make_plan",
    "replay",
    "replay_async",
    "resolve",
]
