"""``ticker report``: a recorded run held against the published record, as a table and a chart.

The package, one job per module: ``model`` (:class:`Report`, :class:`FactCheck`,
:class:`ReportError`), ``load`` (reading a run directory), ``facts`` (checking the targets),
``table`` (the text), ``chart_data`` and ``chart`` (the PNG). Callers import from here.

A scenario's ``[[targets]]`` are the facts of ``FACTS.md`` it must reproduce. :func:`load_report`
reads a run directory (``summary.json`` and ``scenario.toml``; the final snapshot and the log only
when a fact needs them) and checks every target within its tolerance into a :class:`Report`;
:func:`render` prints it as a table followed by the run's milestone headlines, and
:func:`write_png` draws the run (``matplotlib``, the optional ``ticker[plot]`` extra).

What a target's metric measures (the scenario files rely on these meanings):

=====================  ==============================================================================
metric                 measured, and when it holds
=====================  ==============================================================================
``gmv``                the run's net GMV; ``|measured - value| <= tolerance * value``
``orders``             placed orders; against ``value * scale`` when ``scaled``
``peak_orders_per_s``  placed orders in the busiest event-time second; ``scaled`` as above
``brands_over``        brands that passed ``threshold`` (before ``at`` when given), within tolerance
``first_brands_over``  the set of the first ``len(value)`` brands (by rank) past ``threshold``
``brands``             brands taking part: the run's catalogue (how many sold is shown beside)
``time_to_value``      seconds from the rule's ``start`` to its milestone; missing milestone: fails
=====================  ==============================================================================

Cost: a report reads ``summary.json`` only (milliseconds), unless a ``brands_over`` threshold is
not one of the scenario's milestone thresholds: then it folds the event log once (about 50 ms per
million events). The chart restores the run's final state and reads the log once more, keeping only the
top brands' events (a few seconds for a default-scale run, most of it matplotlib).

Facts on a scenario's ``[[dimensions]]`` and against a baseline run (the previous year) are
measured by :mod:`ticker.comparisons` (its docstring says what each metric means).
"""

from __future__ import annotations

from ticker.report.chart import PLOT_HINT, require_plotting, write_png
from ticker.report.facts import build_report
from ticker.report.load import brand_gmv_before, load_report
from ticker.report.model import FactCheck, Report, ReportError
from ticker.report.table import print_report, render, shown_milestones

__all__ = [
    "PLOT_HINT",
    "FactCheck",
    "Report",
    "ReportError",
    "brand_gmv_before",
    "build_report",
    "load_report",
    "print_report",
    "render",
    "require_plotting",
    "shown_milestones",
    "write_png",
]
