"""Export of orders and milestones: every format loads in a standard reader and says, row by row,
what a plain-Python reference says; the vectorised text kernels agree with ``ticker.clock``."""

from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ticker.aggregate.milestones import Milestone
from ticker.clock import format_time, parse_offset
from ticker.eventlog import EventLog
from ticker.events import OrderBatch
from ticker.export import (
    MILESTONE_COLUMNS,
    ORDER_COLUMNS,
    ExportError,
    OrderFormatter,
    export_milestones,
    export_orders,
    format_times,
    int_text,
)

CST = parse_offset("+08:00")
PLATFORMS = ["Tmall", "Taobao", "Tmall Global"]
REGIONS = ["East China", "South China", "North China", "Central China", "Southwest China",
           "Northeast China", "Northwest China"]
KINDS = ["placed", "refunded"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A small recorded festival: its log directory, brand names and zone."""
    from ticker.scenario import generate, resolve
    from ticker.scenario.brands import catalogue

    scenario = resolve("double11-2021")
    directory = tmp_path_factory.mktemp("run") / "log"
    with EventLog(directory, fsync="never") as log:
        for batch in generate(scenario, seed=None, scale=0.00003, batch_size=30_000):
            log.append(batch)
    names = dict(brands=catalogue(scenario).names, platforms=[p for p, _ in scenario.platforms],
                 regions=[r for r, _ in scenario.regions], zone=scenario.zone)
    return directory, names


def all_orders(directory: Path) -> OrderBatch:
    with EventLog(directory, readonly=True) as log:
        return OrderBatch.concat(list(log.read()))


def reference_rows(batch: OrderBatch, brands, platforms, regions, zone) -> list[list]:
    """The export's rows the slow, obvious way: one Python value per cell."""
    return [[int(s), format_time(int(t), zone, precision="microseconds"), int(o), brands[b],
             platforms[p], regions[r], int(a), KINDS[k]]
            for s, t, o, b, p, r, a, k in zip(*(getattr(batch, c).tolist() for c in ORDER_COLUMNS),
                                              strict=True)]


def make_batch(first: int, n: int, brands: int, seed: int = 0) -> OrderBatch:
    rng = np.random.default_rng(seed)
    return OrderBatch(
        seq=np.arange(first, first + n, dtype=np.int64),
        event_time=np.sort(rng.integers(1_636_560_000_000_000, 1_636_646_400_000_000, n)),
        order_id=rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64),
        brand=rng.integers(0, brands, n, dtype=np.int32),
        platform=rng.integers(0, 3, n, dtype=np.uint8),
        region=rng.integers(0, 7, n, dtype=np.uint8),
        amount_minor=rng.integers(-10**12, 10**12, n, dtype=np.int64),
        kind=rng.integers(0, 2, n, dtype=np.uint8),
    )


# --- kernels against their references ------------------------------------------------------------

# years 2..9998 in any zone stay inside what datetime can show
MOMENTS = st.integers(-62_100_000_000_000_000, 253_370_000_000_000_000)
ZONES = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@settings(max_examples=200, deadline=None)
@given(us=st.lists(MOMENTS, max_size=50), zone=ZONES)
def test_format_times_agrees_with_clock_format_time(us, zone):
    got = format_times(np.array(us, dtype=np.int64), zone)
    assert [t.decode() for t in got] == [format_time(u, zone, precision="microseconds") for u in us]


def test_format_times_in_a_festival_and_utc():
    us = np.array([1_636_560_000_123_456, 1_636_560_000_000_000 - 1])
    assert format_times(us, CST).tolist() == [b"2021-11-11T00:00:00.123456+08:00",
                                              b"2021-11-10T23:59:59.999999+08:00"]
    assert format_times(us[:1], UTC).tolist() == [b"2021-11-10T16:00:00.123456+00:00"]


@settings(max_examples=200, deadline=None)
@given(values=hnp.arrays(np.int64, st.integers(0, 40)))
def test_int_text_agrees_with_str(values):
    matrix = int_text(values)
    assert [bytes(row[row != 0]).decode() for row in matrix] == [str(v) for v in values.tolist()]


def test_int_text_edges():
    edges = np.array([0, -1, 999, 1000, -1000, 10**18, -(2**63), 2**63 - 1], dtype=np.int64)
    assert [bytes(r[r != 0]).decode() for r in int_text(edges)] == [str(v) for v in edges.tolist()]


# --- orders: each format read back by a standard reader ------------------------------------------


def test_csv_reads_back_as_the_reference_rows(run, tmp_path):
    directory, names = run
    out = tmp_path / "orders.csv"
    count = export_orders(directory, out, "csv", **names)
    orders = all_orders(directory)
    assert count == len(orders) > 30_000
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(ORDER_COLUMNS)
    expected = reference_rows(orders, **names)
    assert rows[1:] == [[str(cell) for cell in row] for row in expected]
    assert not (tmp_path / "orders.csv.part").exists()


def test_jsonl_reads_back_as_the_reference_rows(run, tmp_path):
    directory, names = run
    out = tmp_path / "orders.jsonl"
    export_orders(directory, out, "jsonl", **names)
    with open(out, "rb") as f:
        rows = [orjson.loads(line) for line in f]
    expected = reference_rows(all_orders(directory), **names)
    assert rows == [dict(zip(ORDER_COLUMNS, row, strict=True)) for row in expected]


def test_parquet_reads_back_typed_in_row_groups(run, tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow is the optional extra ticker[parquet]")
    import pyarrow.parquet as pq

    directory, names = run
    out = tmp_path / "orders.parquet"
    count = export_orders(directory, out, "parquet", row_group_events=10_000, **names)
    orders = all_orders(directory)
    meta = pq.ParquetFile(out).metadata
    assert meta.num_rows == count == len(orders)
    assert meta.num_row_groups == -(-len(orders) // 10_000)
    table = pq.read_table(out)
    assert table.column_names == list(ORDER_COLUMNS)
    assert table.schema.field("event_time").type == pa.timestamp("us", tz="+08:00")
    for column in ("seq", "order_id", "amount_minor"):
        assert np.array_equal(table.column(column).to_numpy(), getattr(orders, column))
    assert np.array_equal(table.column("event_time").cast(pa.int64()).to_numpy(), orders.event_time)
    brands = np.array(names["brands"], dtype=object)
    assert table.column("brand").to_pylist() == brands[orders.brand].tolist()
    assert table.column("platform").to_pylist() == [names["platforms"][p] for p in orders.platform]
    assert table.column("region").to_pylist() == [names["regions"][r] for r in orders.region]
    assert table.column("kind").to_pylist() == [KINDS[k] for k in orders.kind]
    first = table.slice(0, 1).to_pylist()[0]["event_time"]
    assert first.isoformat() == format_time(int(orders.event_time[0]), names["zone"],
                                            precision="microseconds")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_a_seq_range_exports_just_that_range(run, tmp_path, fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow", reason="pyarrow is the optional extra ticker[parquet]")
    directory, names = run
    with EventLog(directory, readonly=True) as log:
        count = export_orders(log, tmp_path / f"part.{fmt}", fmt, from_seq=29_990, to_seq=30_015, **names)
    assert count == 25
    seqs = _seqs_in(tmp_path / f"part.{fmt}", fmt)
    assert seqs == list(range(29_990, 30_015))


def _seqs_in(path: Path, fmt: str) -> list[int]:
    if fmt == "csv":
        with open(path, newline="") as f:
            return [int(row["seq"]) for row in csv.DictReader(f)]
    if fmt == "jsonl":
        return [orjson.loads(line)["seq"] for line in path.read_bytes().splitlines()]
    import pyarrow.parquet as pq

    return pq.read_table(path).column("seq").to_pylist()


NAMES = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0"), max_size=12)


@settings(max_examples=60, deadline=None)
@given(brands=st.lists(NAMES, min_size=1, max_size=8), seed=st.integers(0, 2**32 - 1),
       n=st.integers(0, 60))
def test_any_names_survive_csv_and_jsonl(brands, seed, n):
    """Commas, quotes, newlines, backslashes, non-ASCII, empty names: the readers get them back."""
    batch = make_batch(100, n, len(brands), seed)
    formatter = OrderFormatter(brands, PLATFORMS, REGIONS, CST)
    expected = reference_rows(batch, brands, PLATFORMS, REGIONS, CST)
    text = (formatter.header("csv") + formatter.text(batch, "csv")).decode()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows == [list(ORDER_COLUMNS)] + [[str(cell) for cell in row] for row in expected]
    lines = formatter.text(batch, "jsonl").splitlines()
    assert [orjson.loads(line) for line in lines] == [dict(zip(ORDER_COLUMNS, r, strict=True))
                                                     for r in expected]


def test_writes_to_a_binary_stream(run):
    directory, names = run
    sink = io.BytesIO()
    count = export_orders(directory, sink, "jsonl", to_seq=10, **names)
    assert count == 10 and len(sink.getvalue().splitlines()) == 10


def test_export_streams_in_bounded_memory(tmp_path):
    """Peak memory does not grow with the number of orders (text formats; numpy is traced)."""
    brands = [f"brand-{i}" for i in range(50)]

    def peak(batches: int) -> int:
        directory = tmp_path / f"log{batches}"
        with EventLog(directory, fsync="never") as log:
            for i in range(batches):
                log.append(make_batch(log.next_seq, 40_000, len(brands), seed=i))
        tracemalloc.start()
        try:
            export_orders(directory, tmp_path / "out.csv", "csv", brands=brands, platforms=PLATFORMS,
                          regions=REGIONS, zone=CST)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(2), peak(12)  # 80,000 and 480,000 orders (~100 MB of CSV)
    assert large < 1.5 * small, (small, large)
    assert large < 64 << 20


# --- errors: one clear line ----------------------------------------------------------------------


def test_a_brand_without_a_name_is_refused_and_leaves_no_file(tmp_path):
    directory = tmp_path / "log"
    with EventLog(directory, fsync="never") as log:
        log.append(make_batch(0, 100, 5))
        bad = make_batch(100, 100, 5, seed=1)
        bad.brand[37] = 5
        log.append(bad)
    out = tmp_path / "orders.csv"
    with pytest.raises(ExportError, match=r"seq 137: brand id 5 has no name \(5 brand names given"):
        export_orders(directory, out, "csv", brands=list("abcde"), platforms=PLATFORMS,
                      regions=REGIONS, zone=CST)
    assert not out.exists() and not (tmp_path / "orders.csv.part").exists()


def test_a_damaged_or_missing_log_is_an_export_error(tmp_path):
    directory = tmp_path / "log"
    with EventLog(directory, fsync="never") as log:
        log.append(make_batch(0, 100, 5))
        where = log.append(make_batch(100, 100, 5, seed=1))
    with open(where.segment, "ab") as f:
        f.write(b"not a record")
    out = tmp_path / "orders.csv"
    names = dict(brands=list("abcde"), platforms=PLATFORMS, regions=REGIONS, zone=CST)
    with pytest.raises(ExportError, match=r"cannot export the orders of .*log: .*garbage") as caught:
        export_orders(directory, out, "csv", **names)
    assert type(caught.value.__cause__).__name__ == "CorruptLogError"
    assert not out.exists()
    with pytest.raises(ExportError, match="no event log at"):
        export_orders(tmp_path / "nothing", out, "csv", **names)
    with EventLog(tmp_path / "good", fsync="never") as log:
        log.append(make_batch(0, 10, 5))
    with pytest.raises(FileNotFoundError):  # the output's directory is the caller's problem
        export_orders(tmp_path / "good", tmp_path / "no" / "such" / "dir.csv", "csv", **names)


def test_names_with_nul_and_unknown_formats_are_refused(tmp_path):
    formatter = OrderFormatter(["ok", "bad\0name"], PLATFORMS, REGIONS, CST)
    with pytest.raises(ExportError, match=r"brand name 1 \('bad\\x00name'\)"):
        formatter.text(make_batch(0, 3, 2), "csv")
    with pytest.raises(ExportError, match=r"platform name 1 \('\\ud800'\) is not valid Unicode"):
        OrderFormatter(["ok"], ["fine", "\ud800", "x"], REGIONS, CST).text(make_batch(0, 3, 1), "jsonl")
    with pytest.raises(ExportError, match="export format 'xlsx': expected one of csv, jsonl, parquet"):
        export_orders(tmp_path, tmp_path / "x", "xlsx", brands=[], platforms=[], regions=[], zone=CST)
    with pytest.raises(ExportError, match=r"UTC offset .* has seconds"):
        OrderFormatter([], [], [], timezone(timedelta(seconds=30)))


def test_parquet_without_pyarrow_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ExportError, match=r"pip install 'ticker\[parquet\]'"):
        export_orders(tmp_path, tmp_path / "o.parquet", "parquet", brands=[], platforms=[],
                      regions=[], zone=CST)
    milestones = tmp_path / "milestones.jsonl"
    milestones.write_bytes(b"")
    with pytest.raises(ExportError, match=r"pip install 'ticker\[parquet\]'"):
        export_milestones(milestones, tmp_path / "m.parquet", "parquet", zone=CST)
    assert not (tmp_path / "m.parquet").exists()


# --- milestones ----------------------------------------------------------------------------------


def _milestones() -> list[Milestone]:
    return [
        Milestone("r:gmv:all:1000", "gmv", "all", 1000, 1042, 17, 1_636_560_000_123_000, None,
                  "GMV passes RMB 10"),
        Milestone("r:brand_gmv:L'Oréal:500", "brand_gmv", "L'Oréal", 500, 512, 23,
                  1_636_560_001_000_000, 2, 'L\'Oréal, "second", passes\nRMB 5'),
    ]


@pytest.fixture
def milestones_file(tmp_path) -> Path:
    path = tmp_path / "milestones.jsonl"
    path.write_bytes(b"".join(m.to_bytes(CST) + b"\n" for m in _milestones()) + b"\n")
    return path


def _expected_milestones() -> list[dict]:
    """What the file says (event_time to the millisecond, as ``Milestone.to_json`` writes it)."""
    return [{name: m.to_json(CST)[name] for name in MILESTONE_COLUMNS} for m in _milestones()]


def test_milestones_to_csv(milestones_file, tmp_path):
    out = tmp_path / "m.csv"
    assert export_milestones(milestones_file, out, "csv", zone=CST) == 2
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    expected = [{k: "" if v is None else str(v) for k, v in row.items()} for row in _expected_milestones()]
    assert rows == expected
    assert list(rows[0]) == list(MILESTONE_COLUMNS)


def test_milestones_to_jsonl(milestones_file, tmp_path):
    out = tmp_path / "m.jsonl"
    export_milestones(milestones_file, out, "jsonl", zone=CST)
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert rows == _expected_milestones()
    assert [Milestone.from_json(r) for r in rows] == _milestones()


def test_milestones_to_parquet(milestones_file, tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow is the optional extra ticker[parquet]")
    import pyarrow.parquet as pq

    out = tmp_path / "m.parquet"
    export_milestones(milestones_file, out, "parquet", zone=CST)
    table = pq.read_table(out)
    assert table.column_names == list(MILESTONE_COLUMNS)
    assert table.schema.field("event_time").type == pa.timestamp("us", tz="+08:00")
    rows = table.to_pylist()
    expected = _expected_milestones()
    for row, want in zip(rows, expected, strict=True):
        assert row.pop("event_time") == datetime.fromisoformat(want.pop("event_time"))
    assert rows == expected


@pytest.mark.parametrize(("line", "match"), [
    (b"{not json", "milestones.jsonl:2: not JSON"),
    (b'{"id": "x"}', "milestones.jsonl:2: expected a milestone object with keys id, kind"),
    (b"[1, 2]", "milestones.jsonl:2: expected a milestone object"),
])
def test_a_bad_milestone_line_is_named(tmp_path, line, match):
    path = tmp_path / "milestones.jsonl"
    path.write_bytes(_milestones()[0].to_bytes(CST) + b"\n" + line + b"\n")
    with pytest.raises(ExportError, match=match):
        export_milestones(path, tmp_path / "m.csv", "csv", zone=CST)
    assert not (tmp_path / "m.csv").exists()


def test_a_milestone_with_float_money_is_refused(tmp_path):
    data = _milestones()[0].to_json(CST)
    data["value_minor"] = 10.5
    path = tmp_path / "milestones.jsonl"
    path.write_bytes(orjson.dumps(data) + b"\n")
    with pytest.raises(ExportError, match=r":1: value_minor must be an integer, found 10\.5"):
        export_milestones(path, io.BytesIO(), "jsonl", zone=CST)


def test_parquet_to_a_pipe(run):
    """``ticker export ... --format parquet > file`` or ``| duckdb``: a stream that cannot seek."""
    pytest.importorskip("pyarrow", reason="pyarrow is the optional extra ticker[parquet]")
    import pyarrow.parquet as pq

    directory, names = run
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryFile() as got:
        import threading

        def drain():
            with os.fdopen(read_fd, "rb") as pipe:
                got.write(pipe.read())

        reader = threading.Thread(target=drain)
        reader.start()
        with os.fdopen(write_fd, "wb") as pipe:
            export_orders(directory, pipe, "parquet", to_seq=1000, **names)
        reader.join()
        got.seek(0)
        assert pq.read_table(got).column("seq").to_pylist() == list(range(1000))


# --- dimension columns: the fold's values, in every format ---------------------------------------


@pytest.fixture(scope="module")
def dimension_run(tmp_path_factory):
    """A small recorded double11-2020 (Taobao Live channels per order; origin and segment per
    brand), its aggregator's totals per dimension value, and the export's arguments."""
    from ticker.aggregate import Aggregator
    from ticker.scenario import generate, resolve
    from ticker.scenario.brands import catalogue
    from ticker.scenario.dimensions import tables

    scenario = resolve("double11-2020")
    directory = tmp_path_factory.mktemp("dims") / "log"
    agg = Aggregator(scenario)
    with EventLog(directory, fsync="never") as log:
        for batch in generate(scenario, seed=3, scale=0.00002, batch_size=20_000):
            log.append(batch)
            agg.apply(batch)
    names = dict(brands=catalogue(scenario).names, platforms=[p for p, _ in scenario.platforms],
                 regions=[r for r, _ in scenario.regions], zone=scenario.zone,
                 dimensions=tables(scenario))
    totals = {d.name: {t.value: (t.gmv_minor, t.orders) for t in agg.dimension_totals(d.name)}
              for d in scenario.dimensions}
    return directory, names, totals


def _rows(path: Path, fmt: str) -> list[dict]:
    if fmt == "csv":
        with open(path, newline="", encoding="utf-8") as f:
            return [{**row, "amount_minor": int(row["amount_minor"]),
                     "order_id": int(row["order_id"])} for row in csv.DictReader(f)]
    if fmt == "jsonl":
        return [orjson.loads(line) for line in path.read_bytes().splitlines()]
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_dimension_columns_sum_to_the_folds_totals(dimension_run, tmp_path, fmt):
    """Each declared dimension is a column after ``kind``; grouping the exported rows by it gives
    exactly the aggregator's per-value GMV and orders, and each row's channel is its order id's
    seller by an independent statement of the hash (plain integers, a binary search)."""
    if fmt == "parquet":
        pytest.importorskip("pyarrow", reason="pyarrow is the optional extra ticker[parquet]")
    from collections import defaultdict

    from tests.aggregate.test_dimensions import channel_of

    directory, names, totals = dimension_run
    out = tmp_path / f"orders.{fmt}"
    count = export_orders(directory, out, fmt, **names)
    rows = _rows(out, fmt)
    assert count == len(rows) > 40_000
    assert list(rows[0]) == [*ORDER_COLUMNS, "channel", "origin", "segment"]
    for name, expected in totals.items():
        got: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for row in rows:
            got[row[name]][0] += row["amount_minor"]
            got[row[name]][1] += row["kind"] == "placed"
        assert {v: tuple(t) for v, t in got.items()} == {
            v: t for v, t in expected.items() if t != (0, 0)}, name
    channels = names["dimensions"][0]
    assert channels.dimension.name == "channel"
    for row in rows[::97]:
        assert row["channel"] == channels.names[channel_of(channels, row["order_id"])]
    assert {row["channel"] for row in rows} > {"storefront", "Viya"}


def test_a_scenario_without_dimensions_keeps_eight_columns(run, tmp_path):
    directory, names = run
    out = tmp_path / "plain.csv"
    export_orders(directory, out, "csv", to_seq=5, **names, dimensions=())
    assert out.read_text().splitlines()[0] == ",".join(ORDER_COLUMNS)
