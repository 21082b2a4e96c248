"""What the chart plots, read from the run directory: the run's final state (restored), and one
pass over the log for the top brands' curves in fixed time buckets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ticker.report.model import Report, ReportError


@dataclass
class ChartData:
    """What the chart plots, all read from the run directory."""

    BUCKETS = 3000  # time buckets per window for the brand curves: finer than the plot's pixels

    second_orders: np.ndarray  # placed orders per event-time second
    cum_gmv: np.ndarray  # GMV at the end of each second (minor units)
    brands: list[tuple[str, int]]  # the top brands: (name, final GMV)
    brand_cum: np.ndarray  # int64[top brands, windows, BUCKETS]: GMV at each bucket's end

    @classmethod
    def load(cls, report: Report, top: int) -> ChartData:
        """The run's final state, and one pass over the log for the top brands' curves.

        Memory is fixed (top × windows × BUCKETS totals), whatever the number of events.
        """
        from ticker.rundir import RunDir, RunDirError

        assert report.path is not None  # write_png refuses a report without its run directory
        rd = RunDir(report.path)
        events = int(report.summary["events"])
        sc = report.scenario
        try:
            restored = rd.restore(before_seq=events, scenario=sc)
            names = rd.brand_names(sc)
        except RunDirError as exc:
            raise ReportError(str(exc)) from None
        restored.aggregator.finish()  # the run's end: its last second closed
        state = restored.aggregator.state
        order = np.argsort(-state.brand_gmv, kind="stable")[:top]
        order = order[state.brand_gmv[order] > 0]
        lookup = np.full(len(state.brand_gmv), -1, np.int32)
        lookup[order] = np.arange(len(order))
        starts = np.array([w.start_us for w in sc.windows], np.int64)
        lengths = np.array([w.end_us - w.start_us for w in sc.windows], np.int64)
        grid = np.zeros((len(order), len(sc.windows) * cls.BUCKETS), np.int64)
        try:
            for batch in rd.events():
                which = lookup[batch.brand]
                keep = np.flatnonzero(which >= 0)
                if not len(keep):
                    continue
                t = batch.event_time[keep]
                win = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(starts) - 1)
                inside = np.clip((t - starts[win]) * cls.BUCKETS // lengths[win], 0,
                                 cls.BUCKETS - 1)
                np.add.at(grid, (which[keep], win * cls.BUCKETS + inside),
                          batch.amount_minor[keep])
        except RunDirError as exc:
            raise ReportError(str(exc)) from None
        return cls(state.second_orders, np.cumsum(state.second_gmv),
                   [(names[b], int(state.brand_gmv[b])) for b in order.tolist()],
                   np.cumsum(grid, axis=1).reshape(len(order), len(sc.windows), cls.BUCKETS))

