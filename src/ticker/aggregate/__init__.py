"""The aggregate: state arrays, the vectorised fold, milestone rules and their detection."""

from ticker.aggregate.aggregator import Aggregator, BatchRejected, milestone_sort_key
from ticker.aggregate.eventtime import EventTimeAggregator, EventTimeConfig, EventTimeState
from ticker.aggregate.milestones import Milestone
from ticker.aggregate.state import AggregateState, SnapshotError

__all__ = [
    "AggregateState",
    "Aggregator",
    "BatchRejected",
    "EventTimeAggregator",
    "EventTimeConfig",
    "EventTimeState",
    "Milestone",
    "SnapshotError",
    "milestone_sort_key",
]
