"""ticker: an event-sourced festival sales ticker.

A scenario engine replays a shopping festival's sales windows as a stream of order events, an
aggregator folds them into running GMV, rates, leaderboards and milestones, and the results are
published over MQTT. See ``docs/architecture.md``.
"""

from ticker.errors import TickerError
from ticker.events import OrderBatch, OrderKind
from ticker.money import CNY, USD, Currency, format_money
from ticker.scenario import Scenario, ScenarioError, generate, make_plan, resolve

__all__ = [
    "CNY",
    "USD",
    "Currency",
    "OrderBatch",
    "OrderKind",
    "Scenario",
    "ScenarioError",
    "TickerError",
    "format_money",
    "generate",
    "make_plan",
    "resolve",
]
__version__ = "0.1.0"
