"""``ticker bench --sustain`` at a tiny scale against a real Mosquitto: the report's structure and
its invariants (never its speed: that is measured in docs/benchmarks.md, not asserted)."""

from __future__ import annotations

import contextlib
import io
import math

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker.cli import build_parser, main
from ticker.clock import parse_time
from ticker.sustain import LAG_BOUND_S, PEAK_ORDERS_PER_S, main_day


def test_the_main_day_is_nov_11_alone() -> None:
    day = main_day()
    assert [w.start_us for w in day.windows] == [parse_time("2020-11-11T00:00+08:00")]
    assert day.windows[0].opening_peak == PEAK_ORDERS_PER_S
    assert day.name == "double11-2020-main-day"


@pytest.mark.network
def test_a_tiny_sustain_run_reports_both_ladders_and_the_latency_at_the_held_rate(
        mosquitto_binary, capsys: pytest.CaptureFixture[str]) -> None:
    # its own private Mosquitto (no --mqtt): the one the command starts for a user
    code = main(["bench", "--sustain", "--scale", "0.001", "--factors", "16,8", "--rung-s", "1",
                 "--latency-s", "20", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = orjson.loads(out)
    assert report["scale"] == 0.001 and report["peak_orders_per_s"] == 583_000
    assert report["broker"].startswith("mqtt://127.0.0.1:")
    assert set(report["modes"]) == {"ticks", "orders"}
    assert len(err.splitlines()) == sum(len(m["rungs"]) + (m["latency"] is not None)
                                        for m in report["modes"].values())
    for mode, ladder in report["modes"].items():
        rungs = ladder["rungs"]
        factors = [r["factor"] for r in rungs]
        assert factors == sorted(factors) and set(factors) <= {8.0, 16.0}  # climbed in order
        held = [r for r in rungs if r["held"]]
        if ladder["held_factor"] is None:
            assert not held
        else:  # the held rate is one of the rungs, the fastest that held
            assert ladder["held_factor"] == max(r["factor"] for r in held)
            assert ladder["held_events_per_s"] in {r["events_per_s"] for r in held
                                                   if r["factor"] == ladder["held_factor"]}
        for r in rungs:
            assert r["sale_s"] == pytest.approx(1.0 * r["factor"])
            assert r["events_per_s"] == pytest.approx(r["events"] / r["wall_s"], rel=0.01)
            assert r["of_peak"] == pytest.approx(r["events_per_s"] / PEAK_ORDERS_PER_S, abs=0.001)
            assert 0 <= r["milestones_received"] <= r["milestones_folded"]
            assert (r["orders_received"] is None) == (mode == "ticks")
            if r["held"]:
                assert r["why"] == "" and r["lag_max_s"] <= LAG_BOUND_S
                assert r["milestones_received"] == r["milestones_delivered"] == r["milestones_folded"]
                assert r["orders_received"] in (None, r["events"])
            else:
                assert r["why"]
        lat = ladder["latency"]
        if ladder["held_factor"] is None:  # no held rate, no latency at it
            assert lat is None
            continue
        assert lat["factor"] == ladder["held_factor"]
        assert lat["sale_s"] == max(20.0, lat["factor"])
        # every milestone the subscriber received is measured, none twice; at least one fell
        # inside the first 20 s of Nov 11
        assert lat["milestones"] == lat["milestones_received"] > 0
        if lat["held"]:  # every milestone acknowledged by the broker and heard by the subscriber
            assert lat["milestones"] == lat["milestones_delivered"] == lat["milestones_folded"]
        assert 0 <= lat["min_ms"] <= lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"]
        assert all(math.isfinite(lat[k]) for k in ("min_ms", "p50_ms", "p99_ms", "max_ms"))


@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                          st.sampled_from(["0", "-1", "", " ", "x", "1e10", "nan"])),
                min_size=1, max_size=4))
def test_a_bad_factor_list_is_one_line(items: list[str]) -> None:
    text = ",".join(items)

    def ok(item: str) -> bool:
        try:
            value = float(item)
        except ValueError:
            return False
        return item.strip() == item and 0 < value <= 1e9 and math.isfinite(value)

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = build_parser().parse_args(["bench", "--sustain", "--factors", text])
    except SystemExit as exc:
        assert exc.code == 2
        assert not all(ok(i) for i in items), text
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ticker bench: --factors: expected "), lines
        return
    assert all(ok(i) for i in items), text
    assert args.factors == [pytest.approx(float(i)) for i in items]


def test_a_broker_that_is_not_there_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from ticker.publish.mosquitto import free_port

    url = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens on it
    assert main(["bench", "--sustain", "--mqtt", url, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"ticker: the benchmark's subscriber could not subscribe: cannot "
                                f"connect to MQTT broker {url}: Connection refused"]
