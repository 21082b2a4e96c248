"""``ticker history``: the bundled festivals side by side and the record's yearly figures — every
figure as the scenario models it, and marked sourced exactly when the record holds it."""

from __future__ import annotations

import orjson
import pytest

from tests.scenario.stream_facts import measure
from ticker.cli import main
from ticker.report.years import ASSUMED, DERIVED, SERIES, SOURCED, festival, festivals
from ticker.scenario import bundled_names, resolve


@pytest.fixture(scope="module")
def found():
    return festivals()


def test_every_bundled_festival_but_smoke_by_year(found):
    assert sorted(f.name for f in found) == sorted(n for n in bundled_names() if n != "smoke")
    assert [f.year for f in found] == sorted(f.year for f in found)
    by_name = {f.name: f for f in found}
    assert by_name["double11-2017"].days == 24 and by_name["double11-2017"].year == 2017
    assert by_name["double11-2020"].peak_orders_per_s.value == 583_000


def test_figures_are_the_scenarios_and_sourced_exactly_when_the_record_holds_them(found):
    for f in found:
        s = resolve(f.name)
        assert f.gmv_minor.value == s.gmv_minor
        # the curves' orders, and a flash sale's on top
        assert f.orders.value == s.orders if not s.bursts else f.orders.value > s.orders
        assert f.brands.value == s.brand_count
        for figure, metric in ((f.gmv_minor, "gmv"), (f.orders, "orders"),
                               (f.peak_orders_per_s, "peak_orders_per_s"), (f.brands, "brands")):
            targeted = any(t.metric == metric and t.at_us is None for t in s.targets)
            in_series = any(x.year == str(f.year) and x.value == figure.value
                            and x.basis == SOURCED for x in SERIES)
            assert (figure.basis == SOURCED) == (targeted or in_series), (f.name, metric)
            assert figure.basis in (SOURCED, ASSUMED) and figure.source
        for threshold, figure in f.brands_over:
            target = next((t for t in s.targets if t.metric == "brands_over"
                           and t.threshold_minor == threshold and t.at_us is None), None)
            assert (figure.basis == SOURCED) == (target is not None)
            if target is not None:  # the catalogue's count is the one the report checks
                assert abs(figure.value - target.value) <= target.tolerance * target.value


def test_peak_and_orders_are_the_generated_streams():
    """At scale 1 (smoke: a curve and two flash-sale bursts on top, one in the opening second)."""
    smoke = resolve("smoke")
    facts = measure(smoke, 1.0)
    got = festival(smoke)
    assert got.peak_orders_per_s.value == facts.peak_orders_per_s == 3_200
    assert got.orders.value == facts.orders


def test_the_series_is_sourced_or_derived_never_recalled():
    assert all(s.basis in (SOURCED, DERIVED) for s in SERIES)
    assert all(s.source.startswith("FACTS.md") for s in SERIES if s.basis == SOURCED)
    years = [s.year[:4] for s in SERIES]
    assert years == sorted(years) and years[0] == "2009"
    gmv = {s.year: s for s in SERIES if s.unit == "CNY"}
    assert gmv["2019"].basis == DERIVED and gmv["2019"].value == gmv["2020"].value * 100 // 126
    assert {s.text() for s in SERIES} >= {"27 merchants", "35% a year", "RMB 120.7 billion",
                                          "more than 140,000 brands", "RMB 540.3 billion"}


def test_cli_prints_both_tables_and_json(capsys, found):
    assert main(["history"]) == 0
    out = capsys.readouterr().out
    assert "The bundled festivals" in out and "The record, year by year" in out
    for f in found:
        assert f.name in out
    assert main(["history", "--json"]) == 0
    data = orjson.loads(capsys.readouterr().out)
    assert [f["scenario"] for f in data["festivals"]] == [f.name for f in found]
    assert len(data["series"]) == len(SERIES)
    d17 = next(f for f in data["festivals"] if f["scenario"] == "double11-2017")
    assert d17["gmv_minor"]["basis"] == ASSUMED and d17["brands"]["basis"] == SOURCED


def test_cli_draws_the_chart(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib is the optional extra ticker[plot]")
    png = tmp_path / "years.png"
    assert main(["history", "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert f"wrote the chart to {png}" in capsys.readouterr().err
