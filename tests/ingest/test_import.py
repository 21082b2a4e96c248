"""``ticker import``: each format, the column mapping, bad rows (generated), and the round trip
``ticker export | ticker import`` giving back the very same log bytes."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticker.cli import main
from ticker.eventlog import EventLog
from ticker.events import OrderBatch

SMOKE_SCALE = "0.2"  # ~50,000 events: the whole festival's shape, quick to import


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A recorded smoke replay."""
    path = tmp_path_factory.mktemp("src") / "source-run"
    assert main(["replay", "smoke", "--scale", SMOKE_SCALE, "--mqtt", "none", "--quiet",
                 "--run-dir", str(path)]) == 0
    return path


def segments(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "log").glob("*.seg"))}


def events(run_dir: Path) -> OrderBatch:
    with EventLog(run_dir / "log", readonly=True) as log:
        return OrderBatch.concat(list(log.read(0)))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_then_import_is_the_same_log(source, tmp_path, fmt, capsys):
    exported = tmp_path / f"orders.{fmt}"
    assert main(["export", str(source), "--format", fmt, "--out", str(exported)]) == 0
    target = tmp_path / "imported"
    assert main(["import", str(exported), "--scenario", "smoke", "--scale", SMOKE_SCALE,
                 "--run-dir", str(target)]) == 0
    out = capsys.readouterr().out
    assert "0 rejected" in out
    assert segments(target) == segments(source)
    summary, original = (orjson.loads((d / "summary.json").read_bytes()) for d in (target, source))
    for key in ("gmv_minor", "orders", "refunds", "events", "peak_orders_per_s", "brands_over"):
        assert summary[key] == original[key]
    strip = lambda ms: [{k: v for k, v in m.items() if k != "id"} for m in ms]  # noqa: E731
    assert strip(summary["milestones"]) == strip(original["milestones"])
    # everything that reads a run works on the imported one
    assert main(["verify", str(target)]) == 0
    assert main(["report", str(target)]) == 0
    assert main(["replay", str(target), "--mqtt", "none", "--quiet"]) == 0
    assert main(["state", str(target), "--at", "2021-11-11T00:01:00+08:00", "--json"]) == 0
    again = tmp_path / "again.jsonl"
    assert main(["export", str(target), "--format", "jsonl", "--out", str(again)]) == 0
    assert main(["export", str(source), "--format", "jsonl", "--out", str(tmp_path / "src.jsonl")]) == 0
    assert again.read_bytes() == (tmp_path / "src.jsonl").read_bytes()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_piped_into_import_from_stdin(source, tmp_path, fmt):
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    export = subprocess.Popen([sys.executable, "-m", "ticker", "export", str(source), "--format", fmt],
                              stdout=subprocess.PIPE)
    target = tmp_path / "piped"
    done = subprocess.run([sys.executable, "-m", "ticker", "import", "-", "--scenario", "smoke",
                           "--run-dir", str(target), "--quiet"], stdin=export.stdout,
                          capture_output=True, env=env, timeout=240)
    export.stdout.close()
    assert export.wait(60) == 0
    assert done.returncode == 0, done.stderr
    assert segments(target) == segments(source)


def test_an_arrival_ordered_run_round_trips_with_its_disorder(tmp_path):
    """replay --disorder realistic: out of order, duplicated, late; its export imports into the
    same log, and the event-time fold gives the same live, final and correction milestones."""
    source = tmp_path / "disordered"
    assert main(["replay", "smoke", "--scale", "0.1", "--disorder", "realistic", "--mqtt", "none",
                 "--quiet", "--run-dir", str(source)]) == 0
    exported = tmp_path / "orders.csv"
    assert main(["export", str(source), "--format", "csv", "--out", str(exported)]) == 0
    target = tmp_path / "imported"
    assert main(["import", str(exported), "--scenario", "smoke", "--scale", "0.1", "--disorder",
                 "realistic", "--run-dir", str(target), "--quiet"]) == 0
    assert segments(target) == segments(source)
    summary, original = (orjson.loads((d / "summary.json").read_bytes()) for d in (target, source))
    assert original["event_time"]["late_orders"] > 0 and original["event_time"]["duplicates_dropped"] > 0
    for key in ("gmv_minor", "orders", "refunds", "events", "event_time", "brands_over"):
        assert summary[key] == original[key], key
    strip = lambda ms: [{k: v for k, v in m.items() if k not in ("id", "corrects")}  # noqa: E731
                        for m in ms]
    assert strip(summary["milestones"]) == strip(original["milestones"])
    assert {m["timing"] for m in summary["milestones"]} >= {"live", "final"}
    assert main(["verify", str(target)]) == 0
    # without --disorder the ordered fold refuses what goes back in time, one reason each
    ordered = tmp_path / "ordered"
    assert main(["import", str(exported), "--scenario", "smoke", "--run-dir", str(ordered), "--quiet"]) == 1
    dead = (ordered / "dead-letters.jsonl").read_text()
    assert "this fold needs event-time order" in dead and "duplicate" in dead


SHOP = [  # a shop's export: its own column names, decimal yuan, epoch milliseconds, string ids
    {"id": "T-1", "shop_name": "Lumen", "price": "199.00", "paid_at": "1636560000123", "status": "placed"},
    {"id": "T-2", "shop_name": "Pebble & Co", "price": "0.01", "paid_at": "1636560000124",
     "status": "placed"},
    {"id": "T-3", "shop_name": "Lumen", "price": "1000000.5", "paid_at": "1636560001000", "status": "placed"},
    {"id": "T-1", "shop_name": "Lumen", "price": "199.00", "paid_at": "1636560002000",
     "status": "refunded"},
]
SHOP_MAP = "order_id=id,brand=shop_name,amount=price,event_time=paid_at,kind=status"


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_column_mapping_and_the_default_festival(tmp_path, capsys):
    shop = tmp_path / "shop.csv"
    write_csv(shop, SHOP)
    target = tmp_path / "shop-run"
    assert main(["import", str(shop), "--map", SHOP_MAP, "--run-dir", str(target)]) == 0
    summary = orjson.loads((target / "summary.json").read_bytes())
    assert summary["gmv_minor"] == 19900 + 1 + 100000050 - 19900
    assert (summary["orders"], summary["refunds"]) == (3, 1)
    names = [orjson.loads(line) for line in (target / "catalogue.jsonl").read_bytes().splitlines()]
    assert names == ["Lumen", "Pebble & Co"]  # in order of arrival
    batch = events(target)
    assert batch.brand.tolist() == [0, 1, 0, 0]
    assert batch.event_time.tolist() == [1636560000123000, 1636560000124000, 1636560001000000,
                                         1636560002000000]
    headlines = [m["headline"] for m in summary["milestones"]]
    assert any("Lumen" in h and "1 million" in h for h in headlines), headlines
    assert main(["verify", str(target)]) == 0
    assert main(["replay", str(target), "--mqtt", "none", "--quiet"]) == 0
    assert main(["report", str(target), "--json"]) == 0
    csv_out = tmp_path / "out.csv"
    assert main(["export", str(target), "--format", "csv", "--out", str(csv_out)]) == 0
    assert "Pebble & Co" in csv_out.read_text()


def test_a_missing_column_is_one_line(tmp_path, capsys):
    shop = tmp_path / "shop.csv"
    write_csv(shop, SHOP)
    assert main(["import", str(shop), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no column for order_id, brand, event_time" in err[0] and "--map" in err[0]
    assert main(["import", str(shop), "--map", "colour=red"]) == 2
    assert "unknown field 'colour'" in capsys.readouterr().err


GOOD = {"order_id": "1", "brand": "Acme", "amount": "10.00", "event_time": "2021-11-11T00:00:00Z",
        "kind": "placed", "currency": "CNY"}
#: (field, a bad value, the start of the reason it must be refused with)
BAD = [
    ("amount", "12.345", "amount: 12.345 has 3 decimals"),
    ("amount", "-5.00", "amount: a placed order needs a positive amount"),
    ("amount", "lots", "amount: expected a decimal"),
    ("amount", "", "amount: missing"),
    ("currency", "XYZ", "currency: unknown currency 'XYZ'"),
    ("currency", "USD", "currency: USD, but this run's festival is in CNY"),
    ("event_time", "soon", "event_time: expected ISO-8601"),
    ("event_time", "2031-11-11T00:00:00Z", "event_time: 2031-11-11"),
    ("event_time", "", "event_time: missing"),
    ("kind", "cancelled", "kind: expected placed or refunded"),
    ("brand", "", "brand: missing"),
    ("order_id", "", "order_id: missing"),
    ("platform", "Mars", "platform: 'Mars' is not one of the festival's platforms"),
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.none(), st.sampled_from(range(len(BAD)))), min_size=1, max_size=40),
       st.sampled_from(["csv", "jsonl"]))
def test_every_bad_row_is_rejected_with_its_line_and_reason_and_the_rest_imported(tmp_path, plan, fmt):
    rows, expected, good = [], {}, 0
    plan = [None, *plan]  # the first order places the default festival's window (the day before it +32)
    for i, bad in enumerate(plan):
        row = {**GOOD, "order_id": str(i + 1),
               "event_time": f"2021-11-11T00:00:{i // 10:02d}.{i % 10}Z", "platform": ""}
        if bad is not None:
            field, value, reason = BAD[bad]
            row[field] = value
            expected[i + 2 if fmt == "csv" else i + 1] = reason
        else:
            good += 1
        rows.append(row)
    path = tmp_path / f"mixed-{len(plan)}-{hash(tuple(plan)) & 0xffff}.{fmt}"
    if fmt == "csv":
        write_csv(path, rows)
    else:
        path.write_bytes(b"".join(orjson.dumps({k: v for k, v in r.items() if v != ""}) + b"\n"
                                  for r in rows))
    target = tmp_path / f"run-{path.stem}"
    code = main(["import", str(path), "--run-dir", str(target), "--quiet"])
    assert code == (1 if expected else 0)
    dead = [orjson.loads(line) for line in (target / "dead-letters.jsonl").read_bytes().splitlines()]
    assert {d["line"]: d["reason"][: len(expected[d["line"]])] for d in dead} == expected
    summary = orjson.loads((target / "summary.json").read_bytes())
    assert summary["ingest"]["accepted"] == good == summary["orders"]
    assert summary["ingest"]["rejected"] == len(expected)
    assert summary["gmv_minor"] == 1000 * good


def test_malformed_lines_and_duplicates(tmp_path):
    path = tmp_path / "mixed.jsonl"
    lines = [orjson.dumps(GOOD), b"{not json", b"[1, 2]", orjson.dumps(GOOD),
             orjson.dumps({**GOOD, "order_id": 2, "amount_minor": 5, "amount": None}),
             orjson.dumps({**GOOD, "order_id": 3, "amount": 10.5})]
    path.write_bytes(b"\n".join(lines) + b"\n")
    target = tmp_path / "run"
    assert main(["import", str(path), "--run-dir", str(target), "--quiet"]) == 1
    dead = [orjson.loads(line) for line in (target / "dead-letters.jsonl").read_bytes().splitlines()]
    assert [d["line"] for d in dead] == [2, 3, 4, 6]
    assert dead[0]["reason"].startswith("not JSON") and dead[0]["raw"] == "{not json\n"
    assert "duplicate" in dead[2]["reason"]
    assert "JSON number is a binary float" in dead[3]["reason"]
    summary = orjson.loads((target / "summary.json").read_bytes())
    assert (summary["orders"], summary["gmv_minor"], summary["ingest"]["duplicates"]) == (2, 1005, 1)


def test_parquet_with_a_mapping(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"id": [r["id"] for r in SHOP], "shop_name": [r["shop_name"] for r in SHOP],
                      "price": [r["price"] for r in SHOP], "paid_at": [int(r["paid_at"]) for r in SHOP],
                      "status": [r["status"] for r in SHOP]})
    path = tmp_path / "shop.parquet"
    pq.write_table(table, path, row_group_size=2)
    target = tmp_path / "pq-run"
    assert main(["import", str(path), "--map", SHOP_MAP, "--run-dir", str(target), "--quiet"]) == 0
    assert events(target).amount_minor.tolist() == [19900, 1, 100000050, -19900]


def test_an_unreadable_file_is_one_line(tmp_path, capsys):
    assert main(["import", str(tmp_path / "nope.csv")]) == 2
    assert "cannot open" in capsys.readouterr().err
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    assert main(["import", str(bad), "--run-dir", str(tmp_path / "r")]) == 2
    assert "not a Parquet file" in capsys.readouterr().err
    _ = io  # (io kept for readers of this file: rows are written as real files, never buffers)
