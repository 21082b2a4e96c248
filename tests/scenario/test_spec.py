"""Scenario files: the bundled ones load, and each kind of mistake is one exact, located line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ticker.scenario
from ticker.cli import main
from ticker.scenario import ScenarioError, bundled_names, load_scenario, parse_scenario, resolve

BUNDLED = ["aliexpress-2021", "double11-2017", "double11-2020", "double11-2021", "lazada-1111-2020",
           "singles-day-2016", "smoke"]
SMOKE = resolve("smoke").text
DAILY = ("daily_shape = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,\n"
         "               1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]\n[[windows.peaks]]")


def test_every_bundled_scenario_loads_with_targets() -> None:
    assert bundled_names() == BUNDLED
    for name in BUNDLED:
        s = resolve(name)
        assert s.name == name
        assert s.targets, name
        assert s.milestones.brand_thresholds_minor, name


def test_currencies_of_the_bundled_scenarios() -> None:
    codes = {name: resolve(name).currency.code for name in BUNDLED}
    assert codes == {"aliexpress-2021": "USD", "double11-2017": "CNY", "double11-2020": "CNY",
                     "double11-2021": "CNY",
                     "lazada-1111-2020": "USD", "singles-day-2016": "CNY", "smoke": "CNY"}


def test_smoke_parses_as_written() -> None:
    s = parse_scenario(SMOKE, "smoke.toml")
    assert [w.seconds for w in s.windows] == [180, 120]
    assert s.gmv_minor == 6_000_000_000
    assert [b.brand for b in s.bursts] == ["Aurora", "Bamboo"]
    assert s.targets[2].scaled is True
    assert s.targets[5].at_us == s.windows[0].end_us


BAD = [
    ("toml syntax", "seed = 1111", "seed = = 1111",
     "bad.toml: not valid TOML: Invalid value (at line 14, column 8)"),
    ("missing key", "seed = 1111\n", "",
     "bad.toml: festival.seed: missing required key"),
    ("misspelt key", "refund_rate = 0.05", "refund_rat = 0.05",
     "bad.toml: festival.refund_rat: unknown key (expected one of: baseline, brands, currency, "
     "default_scale, "
     "gmv, name, refund_delay_s, refund_rate, seed, title, utc_offset)"),
    ("wrong type", "brands = 3_000", 'brands = "3000"',
     "bad.toml: festival.brands: expected an integer in [1, 10_000_000], found string '3000'"),
    ("money as a float", "gmv = 60_000_000", "gmv = 60_000_000.5",
     "bad.toml: festival.gmv: expected an amount in CNY major units (an integer or a decimal "
     "string), found number 60000000.5"),
    ("unknown currency", 'currency = "CNY"', 'currency = "EUR"',
     "bad.toml: festival.currency: expected one of CNY, USD, found 'EUR'"),
    ("bad utc_offset", 'utc_offset = "+08:00"', 'utc_offset = "+8"',
     "bad.toml: festival.utc_offset: expected an offset like '+08:00', found '+8'"),
    ("window ends before it starts", "end = 2021-11-11T00:03:00+08:00",
     "end = 2021-11-10T23:59:00+08:00",
     "bad.toml: windows[0].end: expected a time after the window's start "
     "(2021-11-11T00:00:00+08:00), found 2021-11-10T23:59:00+08:00"),
    ("overlapping windows", "start = 2021-11-11T20:00:00+08:00\nend",
     "start = 2021-11-11T00:02:00+08:00\nend",
     "bad.toml: windows[1].start: expected a time at or after windows[0].end "
     "(2021-11-11T00:03:00+08:00: windows in time order, without overlap), "
     "found 2021-11-11T00:02:00+08:00"),
    ("window off the festival's seconds", "start = 2021-11-11T20:00:00+08:00\nend = 2021-11-11T20:02:00",
     "start = 2021-11-11T20:00:00.5+08:00\nend = 2021-11-11T20:02:00.5",
     "bad.toml: windows[1].start: expected a whole number of seconds after windows[0].start (the "
     "festival's seconds count from it), found 2021-11-11T20:00:00.500000+08:00"),
    ("time without offset", "start = 2021-11-11T00:00:00+08:00\nend = 2021-11-11T00:03",
     "start = 2021-11-11T00:00:00\nend = 2021-11-11T00:03",
     "bad.toml: windows[0].start: expected a date-time with a UTC offset (e.g. "
     "2021-11-11T00:00:00+08:00), found 2021-11-11T00:00:00"),
    ("daily shape of the wrong length", DAILY, "daily_shape = [1.0, 2.0]\n[[windows.peaks]]",
     "bad.toml: windows[0].daily_shape: expected 24 non-negative hourly weights, found 2 entries"),
    ("peak outside its window", "at = 2021-11-11T00:02:00+08:00", "at = 2021-11-11T00:04:00+08:00",
     "bad.toml: windows[0].peaks[0].at: expected a time inside its window "
     "(2021-11-11T00:00:00+08:00 to 2021-11-11T00:03:00+08:00), found 2021-11-11T00:04:00+08:00"),
    ("opening peak impossible for the window's orders", "opening_peak = 3_000",
     "opening_peak = 30_000",
     "bad.toml: windows[0].orders: expected more orders than the opening rush and peaks alone "
     "sell (925,348), found 150,000; raise orders or lower opening_peak, opening_decay_s or the "
     "peaks"),
    ("shares not summing to 1", "share = 0.6", "share = 0.5",
     "bad.toml: platforms: expected shares that sum to 1, found 0.9"),
    ("tier gmv_min above gmv_max", "gmv_min = 1_100_000", "gmv_min = 2_000_000",
     "bad.toml: brands.tiers[0].gmv_min: expected at most gmv_max (1,900,000), found 2,000,000"),
    ("too few brands", "brands = 3_000", "brands = 72",
     "bad.toml: festival.brands: expected more brands than the 72 named and tiered ones (the "
     "long tail needs some), found 72"),
    ("burst for an unknown brand", 'brand = "Bamboo"', 'brand = "Nobody"',
     "bad.toml: bursts[1].brand: expected a named or tiered brand, found 'Nobody'"),
    ("unknown target metric", 'metric = "orders"', 'metric = "revenue"',
     "bad.toml: targets[1].metric: expected one of gmv, orders, peak_orders_per_s, brands_over, "
     "first_brands_over, brands, time_to_value, dimension_over, dimension_brands, dimension_over_change, "
     "time_to_baseline, found 'revenue'"),
    ("scaled that is not a boolean", "scaled = true\ntolerance = 0.001",
     'scaled = "yes"\ntolerance = 0.001',
     "bad.toml: targets[1].scaled: expected true or false, found string 'yes'"),
    ("time_to_value target for an unknown brand", 'subject = "brand:Aurora"\nthreshold',
     'subject = "brand:Zed"\nthreshold',
     "bad.toml: targets[7].subject: expected a known brand, found 'Zed'"),
    ("time_to_value target without its rule", "threshold = 600_000\nvalue = 1\n",
     "threshold = 700_000\nvalue = 1\n",
     "bad.toml: targets[7].threshold: expected a milestones.time_to_value rule with subject "
     "'brand:Aurora' and this value (its start is where the seconds count from), found none"),
]


@pytest.mark.parametrize("old,new,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_each_mistake_is_one_exact_line(old: str, new: str, message: str) -> None:
    assert SMOKE.count(old) >= 1
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(SMOKE.replace(old, new, 1), "bad.toml")
    assert caught.value.problems == [message]


@given(seconds=st.integers(0, 29), micros=st.integers(0, 999_999))
def test_a_window_starts_a_whole_number_of_seconds_after_the_first(seconds: int, micros: int) -> None:
    """Smoke's second window moved later by any time under 30 s (its length kept): on the first
    window's grid of seconds it loads, off it it is refused in one line naming its start."""
    start = f"2021-11-11T20:00:{seconds:02d}.{micros:06d}"
    end = f"2021-11-11T20:02:{seconds:02d}.{micros:06d}"
    text = SMOKE.replace("start = 2021-11-11T20:00:00+08:00\nend = 2021-11-11T20:02:00",
                         f"start = {start}+08:00\nend = {end}", 1)
    assert start in text
    if micros == 0:
        assert parse_scenario(text, "moved.toml").windows[1].start_us % 1_000_000 == 0
        return
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "moved.toml")
    assert caught.value.problems == [
        "moved.toml: windows[1].start: expected a whole number of seconds after windows[0].start "
        f"(the festival's seconds count from it), found {start}+08:00"]


def test_every_mistake_in_a_file_is_reported_at_once() -> None:
    text = SMOKE.replace('utc_offset = "+08:00"', 'utc_offset = "+8"').replace(
        "share = 0.6", "share = 0.5").replace('brand = "Bamboo"', 'brand = "Nobody"')
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "bad.toml")
    assert [p.split(": ")[1] for p in caught.value.problems] == [
        "festival.utc_offset", "platforms", "bursts[1].brand"]


def test_unreadable_and_unknown_scenarios(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ScenarioError) as caught:
        load_scenario(missing)
    assert caught.value.problems == [f"{missing}: cannot read the scenario file (No such file or "
                                     "directory)"]
    with pytest.raises(ScenarioError) as caught:
        resolve("double12")
    assert caught.value.problems == [
        f"double12: no such scenario (expected a bundled name: {', '.join(BUNDLED)}; or a path "
        "to a .toml file)"]


# --- the CLI path ------------------------------------------------------------------------------

def test_cli_lists_the_bundled_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == BUNDLED
    assert "GMV RMB 498.2 billion" in out[2]
    assert "USD" in out[4]


def test_python_m_ticker_scenarios_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "ticker", "scenarios"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("aliexpress-2021")


def test_cli_reports_a_bad_scenario_file_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Until `ticker replay PATH` exists, `ticker scenarios` is the command that reads files:
    # point it at a folder holding one broken scenario.
    (tmp_path / "broken.toml").write_text(SMOKE.replace('currency = "CNY"', 'currency = "EUR"'),
                                          encoding="utf-8")
    monkeypatch.setattr(ticker.scenario, "bundled_dir", lambda folder="scenarios": tmp_path)
    assert main(["scenarios"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"ticker: {tmp_path / 'broken.toml'}: festival.currency: expected "
                            "one of CNY, USD, found 'EUR'\n")
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.parametrize("which", ["broken", "missing"])
def test_replay_of_a_bad_scenario_path_is_one_line_and_exit_2(tmp_path: Path, which: str) -> None:
    path = tmp_path / f"{which}.toml"
    if which == "broken":
        path.write_text(SMOKE.replace("share = 0.6", "share = 0.5"), encoding="utf-8")
        want = f"ticker: {path}: platforms: expected shares that sum to 1, found 0.9\n"
    else:
        want = f"ticker: {path}: cannot read the scenario file (No such file or directory)\n"
    done = subprocess.run([sys.executable, "-m", "ticker", "replay", str(path), "--quiet",
                           "--run-dir", str(tmp_path / "run")], capture_output=True, text=True,
                          timeout=120, check=False)
    assert (done.returncode, done.stderr, done.stdout) == (2, want, "")
    assert not (tmp_path / "run").exists()


def _leaving(fen: int, cap_fen: int = 1) -> str:
    """The unit scenario with its festival GMV ``fen`` above what its named brands take (Apple's
    10,000 and L'Oréal's 9,000): the tail's ten brands share the rest, none above ``cap_fen``."""
    from tests.aggregate.unit_scenario import UNIT_TOML

    gmv = f"{19_000 + fen // 100}.{fen % 100:02d}"
    cap = f'max_gmv = "{cap_fen // 100}.{cap_fen % 100:02d}"'
    return UNIT_TOML.replace("gmv = 100_000", f'gmv = "{gmv}"').replace("max_gmv = 8_000", cap)


def test_named_brands_that_take_the_whole_festival_leave_no_tail_and_are_refused() -> None:
    scenario = parse_scenario(_leaving(0), "unit.toml")
    with pytest.raises(ScenarioError) as caught:
        ticker.scenario.brands.build_catalogue(scenario)
    assert str(caught.value) == ("unit.toml: brands: expected the named and tiered brands' GMV (19,000) "
                                 "to leave some of festival.gmv for the tail, found none left")


@given(cap_fen=st.integers(1, 10**6), above=st.integers(0, 10**9))
def test_a_tail_capped_at_its_average_or_below_is_refused_with_both_amounts(cap_fen: int,
                                                                             above: int) -> None:
    # ten tail brands share `fen` fen under a cap of `cap_fen`: from 10 caps on, the average reaches it
    fen = 10 * cap_fen + above
    with pytest.raises(ScenarioError) as caught:
        ticker.scenario.brands.build_catalogue(parse_scenario(_leaving(fen, cap_fen), "unit.toml"))
    line = str(caught.value)
    assert line.startswith("unit.toml: brands.tail.max_gmv: expected more than the tail's average ("), line
    average, found = (float(x.replace(",", "")) for x in re.findall(r"[\d,]+\.\d\d", line))
    assert round(found * 100) == cap_fen and abs(average * 100 - fen / 10) <= 0.5 + 1e-6, line  # to the fen


def _channel_tail(table: str) -> str:
    """The unit scenario with dimensions, the livestream channels' tail table replaced by
    ``table`` ("" for none)."""
    from tests.aggregate.unit_scenario import UNIT_DIMS_TOML

    tail = "[dimensions.tail]\nmax_gmv = 8_000\nexponent = 1.0\n\n[[dimensions]]"
    assert UNIT_DIMS_TOML.count(tail) == 1
    return UNIT_DIMS_TOML.replace(tail, f"{table}[[dimensions]]")


def test_a_dimensions_tail_is_refused_under_its_own_key() -> None:
    """A dimension's sellers come from the brands' catalogue builder; its refusals name the
    dimension's keys, not the brands'."""
    text = _channel_tail('[dimensions.tail]\nmax_gmv = "0.01"\nexponent = 1.0\n\n')
    with pytest.raises(ScenarioError) as caught:  # refused as the file is read
        parse_scenario(text, "unit.toml")
    assert str(caught.value).startswith(
        "unit.toml: dimensions[0].tail.max_gmv: expected more than the tail's average ("), str(caught.value)


@pytest.mark.parametrize("tail", [0, 1, 2])
def test_a_sellers_catalogue_is_its_listed_sellers_and_a_tail_of_exactly_the_rest(tail: int) -> None:
    """A dimension's ``count`` is its catalogue's length: the named seller (Viya, 20,000 of the
    dimension's 40,000) and ``tail`` more, which share the rest; with no tail the listed sellers
    are the catalogue, and the rest is left to the storefront."""
    text = _channel_tail("[dimensions.tail]\nmax_gmv = 30_000\nexponent = 1.0\n\n" if tail
                         else "")  # no tail declared: the listed sellers only
    text = text.replace("count = 5", f"count = {1 + tail}")
    table = ticker.scenario.dimensions.tables(parse_scenario(text, "unit.toml"))[0]
    assert table.names[:2] == ("storefront", "Viya") and len(table.names) == 2 + tail
    assert table.gmv_target[:2].tolist() == [0.0, 2_000_000.0]
    assert table.gmv_target.sum() == pytest.approx(2_000_000 if tail == 0 else 4_000_000)


@pytest.mark.parametrize("fen", [1, 2])
def test_one_fen_left_is_a_tail(fen: int) -> None:
    catalogue = ticker.scenario.brands.build_catalogue(parse_scenario(_leaving(fen), "unit.toml"))
    assert len(catalogue.names) == 12
    assert catalogue.gmv_target[2:].sum() == pytest.approx(fen)
    assert catalogue.gmv_target.sum() == pytest.approx(1_900_000 + fen)


def test_the_catalogue_is_built_once_per_scenario() -> None:
    """Kept with the (immutable) scenario: every fold, plan and dimension shares one catalogue."""
    scenario = parse_scenario(SMOKE, "smoke.toml")
    first = ticker.scenario.brands.catalogue(scenario)
    assert ticker.scenario.brands.catalogue(scenario) is first
    assert ticker.scenario.brands.catalogue(parse_scenario(SMOKE, "smoke.toml")) is not first


def _three_brands(avg_fen: tuple[int, int, int]) -> ticker.scenario.brands.BrandCatalogue:
    # targets of 900, 600 and 300 fen; a brand with an average order is a named one
    return ticker.scenario.brands.BrandCatalogue(("A", "B", "C"), np.array([900.0, 600.0, 300.0]),
                                                 np.array(avg_fen, dtype=np.float64))


@pytest.mark.parametrize("a_avg", [1, 3])
def test_order_law_gives_named_brands_their_orders_and_the_rest_an_even_split(a_avg: int) -> None:
    """No refunds, no bursts: A (named, an average order of ``a_avg`` fen) needs 900 / a_avg
    orders; B and C share the other orders of the curve's 1,000 at one value (their 900 fen
    over them), so each brand's orders are its target over its order value."""
    share, value = ticker.scenario.brands.order_law(_three_brands((a_avg, 0, 0)), "unit.toml",
                                                    1_000.0, 0.0, np.zeros(3))
    a_orders = 900 / a_avg
    other = 1_000 - a_orders
    assert value.tolist() == pytest.approx([a_avg, 900 / other, 900 / other], rel=1e-12)
    assert (share * 1_000).tolist() == pytest.approx([a_orders, other * 2 / 3, other / 3], rel=1e-12)


@pytest.mark.parametrize("bought", [600, 599.99])
def test_order_law_refuses_a_burst_that_takes_a_brands_whole_target_and_names_it(bought) -> None:
    """B's bursts sell ``bought`` fen of its 600 (no refunds), A's all but half a fen of its 900:
    at B's whole target it is refused, naming B (not A, whose curve keeps half a fen); a
    hundredth of a fen less leaves B's curve some, and A's half fen is a share too."""
    law = ticker.scenario.brands.order_law
    burst = np.array([899.5, bought, 0.0])
    if bought < 600:
        share, _ = law(_three_brands((3, 0, 0)), "unit.toml", 1_000.0, 0.0, burst)
        assert (share > 0).all()
        return
    with pytest.raises(ScenarioError) as caught:
        law(_three_brands((3, 0, 0)), "unit.toml", 1_000.0, 0.0, burst)
    assert str(caught.value) == ("unit.toml: bursts: expected 'B' to sell less in its bursts than "
                                 "its whole GMV target, found more")


@pytest.mark.parametrize("curve", [600.0, 400.0])
def test_order_law_refuses_named_brands_that_need_all_the_curves_orders(curve: float) -> None:
    """A and B (averages of 3 and 2 fen) need 300 + 300 orders of 600: a curve of 600 orders or
    fewer leaves none for C; stated with both counts. One order more is C's."""
    law = ticker.scenario.brands.order_law
    with pytest.raises(ScenarioError) as caught:
        law(_three_brands((3, 2, 0)), "unit.toml", curve, 0.0, np.zeros(3))
    assert str(caught.value) == ("unit.toml: brands.named: expected the named brands to need fewer "
                                 f"orders than the curves' {curve:,.0f}, found 600")
    share, _ = law(_three_brands((3, 2, 0)), "unit.toml", 601.0, 0.0, np.zeros(3))
    assert share[2] * 601 == pytest.approx(1.0, rel=1e-12)


@given(count=st.integers(1, 50), exponent=st.floats(0.1, 3), total=st.integers(1_000, 10**12))
def test_a_tail_whose_cap_does_not_bind_is_plain_zipf(count: int, exponent: float, total: int) -> None:
    """Values along i^-exponent (i = 1..count) sharing ``total``: with a cap above the plain
    law's largest, no shift is needed and none is made."""
    plain = np.arange(1, count + 1, dtype=np.float64) ** -exponent
    plain *= total / plain.sum()
    shares = ticker.scenario.brands._zipf_tail(count, float(total), plain[0] * 1.5, exponent,
                                                "unit.toml", "brands.tail")
    assert shares.tolist() == pytest.approx(plain.tolist(), rel=1e-12)
