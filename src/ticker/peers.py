"""``ticker bench --peers``: the same fold written with polars, DuckDB and pandas.

What a user would write instead of ticker, each the way its documentation recommends, given the
whole stream at once as columns in memory (an advantage ticker, which folds batch by batch, does
not take):

* **per-brand totals**: GMV per brand (sum of amounts, refunds negative);
* **threshold crossings**: for each brand threshold of the scenario, per brand, the first event
  (lowest seq) at which the brand's running total reaches it — a window ``cum_sum`` over brand
  in seq order, then the minimum seq per brand among rows at or over the threshold;
* **orders per second**: placed orders per event-time second.

polars: a lazy query (``cum_sum().over("brand")``, one ``group_by`` with a filtered ``min``
per threshold, ``unpivot``) run with ``collect_all``. DuckDB: SQL over the Arrow table (zero
copy), ``SUM(...) OVER (PARTITION BY brand ORDER BY seq)``, one ``GROUP BY`` with
``MIN(seq) FILTER (WHERE total >= t)`` per threshold. pandas: ``groupby(...).cumsum()`` and
``groupby(...).min()`` per threshold. polars and DuckDB keep only the rows at or above the
lowest threshold before one grouping for all thresholds (filter early, one aggregation context:
their documentation's advice; measured 10–25 % faster for polars than a grouping per threshold,
the same for DuckDB, and no gain for pandas, which keeps the plain form). Each answer is checked
equal to ticker's fold of the same events (its brand GMV, its ``brand_gmv`` milestones, its
per-second counts). The peers are an optional extra: ``pip install 'ticker[peers]'``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np

if TYPE_CHECKING:
    from ticker.aggregate import Aggregator
    from ticker.events import OrderBatch

US_PER_S = 1_000_000


@dataclass
class Answers:
    """One fold's answers, in a canonical form to compare."""

    brand_gmv: dict[int, int]  # brand -> GMV, brands with any event
    crossings: dict[tuple[int, int], int]  # (brand, threshold) -> seq of the crossing event
    per_second: dict[int, int]  # event-time second (since the epoch) -> placed orders

    def differences(self, other: Answers) -> list[str]:
        return [name for name in ("brand_gmv", "crossings", "per_second")
                if getattr(self, name) != getattr(other, name)]


@dataclass
class PeerResult:
    name: str
    version: str
    runs_s: list[float]
    same: bool | None  # None: not installed
    note: str = ""


def ticker_answers(agg: Aggregator, names: tuple[str, ...]) -> Answers:
    """The aggregator's state in the peers' terms."""
    st = agg.state
    index = {name: b for b, name in enumerate(names)}
    touched = np.flatnonzero((st.brand_gmv != 0) | (st.brand_orders != 0))
    crossings = {(index[m.subject], m.threshold_minor): m.seq for m in st.milestones
                 if m.kind == "brand_gmv"}
    seconds = np.flatnonzero(st.second_orders)
    start_s = agg.start_us // US_PER_S
    return Answers({int(b): int(st.brand_gmv[b]) for b in touched}, crossings,
                   {int(start_s + s): int(st.second_orders[s]) for s in seconds})


def _polars(columns: dict[str, np.ndarray], thresholds: list[int]) -> Answers:
    import polars as pl

    # polars takes numpy columns; its stubs name only sequences and Series
    lf = pl.from_dict(columns).lazy()  # type: ignore[arg-type]
    totals = lf.group_by("brand").agg(pl.col("amount_minor").sum())
    running = lf.select("seq", "brand", pl.col("amount_minor").cum_sum().over("brand").alias("total"))
    # one aggregation context with an expression per threshold (polars evaluates them in
    # parallel), over the rows at or above the lowest threshold, then long form
    crossings = (running.filter(pl.col("total") >= min(thresholds)).group_by("brand")
                 .agg(pl.col("seq").filter(pl.col("total") >= t).min().alias(str(t))
                      for t in thresholds)
                 .unpivot(index="brand", variable_name="threshold", value_name="seq")
                 .drop_nulls("seq").with_columns(pl.col("threshold").cast(pl.Int64)))
    per_second = (lf.filter(pl.col("kind") == 0)
                  .group_by((pl.col("event_time") // US_PER_S).alias("second")).agg(pl.len()))
    totals_df, crossings_df, seconds_df = pl.collect_all([totals, crossings, per_second])
    return Answers(
        dict(zip(totals_df["brand"].to_list(), totals_df["amount_minor"].to_list(), strict=True)),
        {(b, t): s for b, t, s in zip(crossings_df["brand"].to_list(),
                                      crossings_df["threshold"].to_list(),
                                      crossings_df["seq"].to_list(), strict=True)},
        dict(zip(seconds_df["second"].to_list(), seconds_df["len"].to_list(), strict=True)))


def _duckdb(columns: dict[str, np.ndarray], thresholds: list[int]) -> Answers:
    import duckdb
    import pyarrow as pa

    # zero copy over the numpy columns (pyarrow's stubs name only sequences and Arrow arrays)
    events = pa.table(columns)  # type: ignore[arg-type]
    con = duckdb.connect()
    try:
        con.register("events", events)
        totals = con.sql("SELECT brand, SUM(amount_minor)::BIGINT AS gmv FROM events "
                         "GROUP BY brand").fetchall()
        # a conditional aggregate per threshold (FILTER), one GROUP BY over the rows at or above
        # the lowest threshold
        firsts = ", ".join(f"MIN(seq) FILTER (WHERE total >= {int(t)})" for t in thresholds)
        rows = con.sql(f"""
            WITH running AS (
                SELECT brand, seq, SUM(amount_minor) OVER (
                    PARTITION BY brand ORDER BY seq
                    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS total
                FROM events)
            SELECT brand, {firsts} FROM running WHERE total >= {int(min(thresholds))}
            GROUP BY brand""").fetchall()
        crossings = [(row[0], t, s) for row in rows for t, s in zip(thresholds, row[1:], strict=True)
                     if s is not None]
        seconds = con.sql(f"SELECT event_time // {US_PER_S} AS second, COUNT(*) FROM events "
                          "WHERE kind = 0 GROUP BY second").fetchall()
    finally:
        con.close()
    return Answers({b: g for b, g in totals}, {(b, t): s for b, t, s in crossings},
                   {s: n for s, n in seconds})


def _pandas(columns: dict[str, np.ndarray], thresholds: list[int]) -> Answers:
    import pandas as pd

    df = pd.DataFrame(columns, copy=False)
    by_brand = df.groupby("brand", sort=False)["amount_minor"]
    totals = by_brand.sum()
    running = by_brand.cumsum()
    crossings: dict[tuple[int, int], int] = {}
    for t in thresholds:
        first = df["seq"][running >= t].groupby(df["brand"]).min()
        # pandas-stubs type an index label as Hashable; these are int64 brands and seconds
        crossings.update({(int(cast(int, b)), t): int(s) for b, s in first.items()})
    seconds = (df["event_time"][df["kind"] == 0] // US_PER_S).value_counts()
    return Answers({int(cast(int, b)): int(g) for b, g in totals.items()}, crossings,
                   {int(cast(int, s)): int(n) for s, n in seconds.items()})


PEERS: dict[str, tuple[str, Callable[[dict[str, np.ndarray], list[int]], Answers]]] = {
    "polars": ("polars", _polars),
    "DuckDB": ("duckdb", _duckdb),
    "pandas": ("pandas", _pandas),
}


def run_peers(batches: Sequence[OrderBatch], answers: Answers, thresholds: list[int],
              repeats: int) -> list[PeerResult]:
    """Fold the concatenated batches with every installed peer ``repeats`` times; each peer's
    answers are compared with ticker's."""
    import importlib

    from ticker.events import OrderBatch

    whole = OrderBatch.concat(batches)
    columns = {name: getattr(whole, name)
               for name in ("seq", "event_time", "brand", "amount_minor", "kind")}
    out: list[PeerResult] = []
    for name, (module, fold) in PEERS.items():
        try:
            version = importlib.import_module(module).__version__
        except ImportError:
            out.append(PeerResult(name, "", [], None, "not installed: pip install 'ticker[peers]'"))
            continue
        runs: list[float] = []
        got: Answers | None = None
        for _ in range(repeats):
            start = time.perf_counter()
            got = fold(columns, thresholds)
            runs.append(time.perf_counter() - start)
        assert got is not None, "repeats >= 1"
        wrong = answers.differences(got)
        out.append(PeerResult(name, version, runs, not wrong,
                              f"differs: {', '.join(wrong)}" if wrong else ""))
    return out
