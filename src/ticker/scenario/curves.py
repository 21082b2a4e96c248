"""Rate curves: how many orders each second of a sales window expects, at scale 1.

Inside a window the rate is a daily rhythm (24 hourly weights, interpolated between hour
centres, in the festival's local time) times a base level, plus the opening rush (the window's
first second at exactly ``opening_peak`` orders/s, then an exponential decay) and any evening
gala peaks. The base level is solved so that the window sums to its ``orders``, which keeps the
published peak and the published order count both exact.
"""

from __future__ import annotations

import numpy as np

from ticker.scenario.model import SalesWindow, ScenarioError

_DAY_S = 86_400


def window_rates(window: SalesWindow, utc_offset_s: int, where: str = "") -> np.ndarray:
    """Expected orders in each second of ``window`` at scale 1; O(seconds).

    The first second expects exactly ``opening_peak`` orders (plus any gala peak placed there).
    ``where`` prefixes the error line, e.g. ``"file.toml: windows[1].orders: "``.
    """
    n = window.seconds
    mid = np.arange(n, dtype=np.float64) + 0.5
    local_s = (window.start_us // 1_000_000 + utc_offset_s) % _DAY_S
    hour = ((local_s + mid) % _DAY_S) / 3600.0
    shape = np.asarray(window.daily_shape, dtype=np.float64)
    centres = np.arange(25, dtype=np.float64) - 0.5
    daily = np.interp(hour, np.concatenate([centres, [24.5]]),
                      np.concatenate([shape[-1:], shape, shape[:1]]))
    rush = np.exp(-np.arange(n, dtype=np.float64) / window.opening_decay_s)
    rush[0] = 1.0
    bumps = np.zeros(n)
    for bump in window.bumps:
        at = (bump.at_us - window.start_us) / 1e6
        bumps += bump.extra * np.exp(-0.5 * ((mid - at) / bump.width_s) ** 2)
    # rate = base*daily + (peak - base*daily[0])*rush + bumps, summing to `orders`
    denominator = daily.sum() - daily[0] * rush.sum()
    if denominator <= 0:  # the rush lasts the whole window (a window of one second, a long decay)
        raise ScenarioError([
            f"{where}expected a window that outlasts its opening rush, found {n:,} s with "
            f"opening_decay_s = {window.opening_decay_s:g}; lengthen the window or lower opening_decay_s"
        ])
    base = (window.orders - window.opening_peak * rush.sum() - bumps.sum()) / denominator
    amplitude = window.opening_peak - base * daily[0]
    # an opening peak equal to the rhythm's own first second (a flat window) is no rush at all,
    # whatever the last bits of the float arithmetic say
    if 0 > amplitude >= -1e-12 * window.opening_peak:
        amplitude = 0.0
    if base <= 0:
        raise ScenarioError([
            f"{where}expected more orders than the opening rush and peaks alone sell "
            f"({window.opening_peak * rush.sum() + bumps.sum():,.0f}), found {window.orders:,}; "
            "raise orders or lower opening_peak, opening_decay_s or the peaks"
        ])
    if amplitude < 0:  # the opening second would sell less than the rhythm it opens
        most = window.opening_peak / daily[0] * denominator + window.opening_peak * rush.sum() + bumps.sum()
        raise ScenarioError([
            f"{where}expected at most {most:,.0f} orders (more would put the daily rhythm above "
            f"the opening peak of {window.opening_peak:,g}/s at the start), found {window.orders:,}; "
            "lower orders or raise opening_peak"
        ])
    rates: np.ndarray = base * daily + amplitude * rush + bumps  # base: numpy's sum() is Any
    return rates
