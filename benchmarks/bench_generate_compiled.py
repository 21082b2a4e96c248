"""Would a compiled kernel make the generator's per-order columns faster? Measured, not adopted.

Usage: pip install numba; python benchmarks/bench_generate_compiled.py [--chunks N]

Brand (cell table, guide table, step), amount, order id, platform and region of the orders of
double11-2021's chunks at scale 0.01, 65,536 orders at a time, on one core: today's numpy passes
against the same lookups compiled by numba, once fused into one loop per order and once split
into one loop per lookup (as numpy's passes are). Every column is checked equal to numpy's.
numba is not a dependency of ticker; this script only informs the choice (docs/benchmarks.md,
goal 2).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
from _common import one_core

from ticker.scenario import make_plan, resolve

gen = sys.modules["ticker.scenario.generate"]

try:
    import numba
except ImportError:  # pragma: no cover - an optional measurement
    sys.exit("this measurement needs numba: pip install numba")

_U53 = 1.0 / 9007199254740992.0


@numba.njit(nogil=True)
def fused(p, offsets, incs, cell, guide, start, records, values, amounts, platforms, regions,
          brand_out, amount_out, id_out, platform_out, region_out):  # pragma: no cover
    for i in range(p.shape[0]):
        q = p[i]
        bits = q * incs[0] + offsets[0]
        u = np.float64(bits >> np.uint64(11)) * _U53
        b = cell[bits >> np.uint64(48)]
        if b < 0:
            b = guide[bits >> np.uint64(44)]
            while u >= start[b + 1]:
                b += 1
        lo, hi = records[b, 0], records[b, 1]
        k = min(np.int64(((u - lo) * 4096.0) / (hi - lo)), 4095)
        brand_out[i] = b
        amount_out[i] = (values[b] * amounts[k]) >> 16
        y = q * incs[3] + offsets[3]
        y ^= y >> np.uint64(30)
        y *= np.uint64(0xBF58476D1CE4E5B9)
        y ^= y >> np.uint64(27)
        y *= np.uint64(0x94D049BB133111EB)
        y ^= y >> np.uint64(31)
        id_out[i] = np.int64(y >> np.uint64(1))
        platform_out[i] = platforms[(q * incs[1] + offsets[1]) >> np.uint64(54)]
        region_out[i] = regions[(q * incs[2] + offsets[2]) >> np.uint64(54)]


@numba.njit(nogil=True)
def split(p, offsets, incs, cell, guide, start, records, values, amounts, platforms, regions,
          brand_out, amount_out, id_out, platform_out, region_out):  # pragma: no cover
    n = p.shape[0]
    for i in range(n):
        brand_out[i] = cell[(p[i] * incs[0] + offsets[0]) >> np.uint64(48)]
    for i in range(n):
        if brand_out[i] < 0:
            brand_out[i] = guide[(p[i] * incs[0] + offsets[0]) >> np.uint64(44)]
    for i in range(n):
        u = np.float64((p[i] * incs[0] + offsets[0]) >> np.uint64(11)) * _U53
        b = brand_out[i]
        while u >= start[b + 1]:
            b += 1
        brand_out[i] = b
        lo, hi = records[b, 0], records[b, 1]
        k = min(np.int64(((u - lo) * 4096.0) / (hi - lo)), 4095)
        amount_out[i] = (values[b] * amounts[k]) >> 16
    for i in range(n):
        q = p[i]
        y = q * incs[3] + offsets[3]
        y ^= y >> np.uint64(30)
        y *= np.uint64(0xBF58476D1CE4E5B9)
        y ^= y >> np.uint64(27)
        y *= np.uint64(0x94D049BB133111EB)
        y ^= y >> np.uint64(31)
        id_out[i] = np.int64(y >> np.uint64(1))
        platform_out[i] = platforms[(q * incs[1] + offsets[1]) >> np.uint64(54)]
        region_out[i] = regions[(q * incs[2] + offsets[2]) >> np.uint64(54)]


def with_numpy(plan, p: np.ndarray) -> tuple[np.ndarray, ...]:
    brand, quantile, value = gen._pick_brand(plan, gen._weyl(plan, p, gen._BRAND))
    amount = np.multiply(value, plan.amount_table.take(quantile))
    amount >>= 16
    return (brand, amount, gen._order_ids(plan, p),
            gen._lookup(plan.platform_table, gen._weyl(plan, p, gen._PLATFORM)),
            gen._lookup(plan.region_table, gen._weyl(plan, p, gen._REGION)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=160)
    args = parser.parse_args(argv)
    one_core()
    plan = make_plan(resolve("double11-2021"), scale=0.01)
    tables = (plan.offsets, gen._INCREMENTS, plan.brand_cell, plan.brand_guide, plan.brand_start,
              np.ascontiguousarray(plan.brand_record[:, :2]), plan.order_value, plan.amount_table,
              plan.platform_table, plan.region_table)
    n = 1 << 16
    out = (np.empty(n, np.int32), np.empty(n, np.int64), np.empty(n, np.int64),
           np.empty(n, np.uint8), np.empty(n, np.uint8))
    warm = np.arange(n, dtype=np.uint64)
    fused(warm, *tables, *out)  # compile
    split(warm, *tables, *out)
    kernels = {"numpy passes": None, "numba, fused": fused, "numba, split": split}
    cpu: dict[str, list[float]] = {k: [] for k in kernels}
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for c in range(40, 40 + args.chunks):
        first = int(plan.chunk_placed[c])
        p = np.arange(first, first + n, dtype=np.uint64)
        t = time.process_time()
        want = with_numpy(plan, p)
        cpu["numpy passes"].append(time.process_time() - t)
        for name, kernel in kernels.items():
            if kernel is None:
                continue
            t = time.process_time()
            kernel(p, *tables, *out)
            cpu[name].append(time.process_time() - t)
            if not all(np.array_equal(a, b) for a, b in zip(want, out, strict=True)):
                print(f"{name}: columns DIFFERENT from numpy's at chunk {c}")
                return 1
    base = statistics.mean(cpu["numpy passes"])
    for name, times in cpu.items():
        mean = statistics.mean(times)
        print(f"{name:>14}: {mean / n * 1e9:6.2f} ns of CPU per order (mean of {len(times)} chunks), "
              f"{base / mean:.2f}x numpy; columns identical")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
