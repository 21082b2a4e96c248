"""Where a run's results go: the :class:`Sink` protocol.

The pipeline (:func:`ticker.replay`, ``ticker replay``) hands every sink the same calls, in this
order, on the pipeline's thread:

1. ``start(run)`` once, before the first event (``run.milestones`` holds those a resumed run had
   already reached);
2. ``milestones(found)`` after each folded batch that crossed any, in canonical order, at once;
3. ``tick(tick)`` at most ``tick_hz`` times a wall-clock second, and once after the last event;
4. ``finish(summary)`` once, after the last event (a sink may record what it alone knows in the
   summary, as the MQTT publisher records what was not delivered);
5. ``close()`` always — after ``finish``, or after an error stopped the run — to release what the
   sink holds. It must be safe to call more than once.

A sink must not block for long: the fold waits for it. The terminal ticker
(:class:`ticker.publish.terminal.TerminalTicker`) and the MQTT publisher
(:class:`ticker.publish.sink.MqttSink`) are sinks; so is anything with these five methods — no
base class to inherit. A sink that also wants the raw order batches implements
:class:`OrderSink` (``orders(batch)``, called with every folded batch before its milestones).

A user-written sink that keeps the brand races::

    >>> import ticker
    >>> class Races:
    ...     def __init__(self):
    ...         self.firsts = []
    ...     def start(self, run): pass
    ...     def tick(self, tick): pass
    ...     def milestones(self, found):
    ...         self.firsts += [m.subject for m in found if m.kind == "brand_gmv" and m.rank == 1]
    ...     def finish(self, summary): pass
    ...     def close(self): pass
    >>> races = Races()
    >>> isinstance(races, ticker.Sink)
    True
    >>> summary = ticker.replay("smoke", scale=0.1, sinks=[races])
    >>> races.firsts[:3]
    ['Aurora', 'Aurora', 'Aurora']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ticker.aggregate.milestones import Milestone
from ticker.events import OrderBatch
from ticker.scenario.model import Scenario
from ticker.views import Summary, Tick


@dataclass(frozen=True, slots=True)
class RunStart:
    """What a sink learns when a run starts."""

    run: str  # the run id, e.g. double11-2021-seed20211111-x0.001
    scenario: Scenario
    seed: int
    scale: float
    total_events: int  # the stream's length when the run is done
    milestones: tuple[Milestone, ...] = ()  # already reached (a resumed run), canonical order


@runtime_checkable
class Sink(Protocol):
    """Receives a run's start, milestones, ticks and summary; see the module's docstring."""

    def start(self, run: RunStart) -> None: ...

    def tick(self, tick: Tick) -> None: ...

    def milestones(self, found: Sequence[Milestone]) -> None: ...

    def finish(self, summary: Summary) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class OrderSink(Protocol):
    """A sink that also receives every folded batch of raw orders (``--publish-orders``)."""

    def orders(self, batch: OrderBatch) -> None: ...
