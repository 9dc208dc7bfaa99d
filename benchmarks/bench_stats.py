"""Benchmark: one vectorized call for 1,000,000 comparisons against a per-comparison loop.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_stats.py [--comparisons N] [--loop-sample M]

Each comparison is a full Welch result (absolute and relative lift, both intervals,
p-value, result code). The Python-loop baseline (scipy's ``ttest_ind_from_stats`` plus a
t quantile per comparison, the usual hand-written approach) is timed on a subsample
(default 10,000) in the same run and extrapolated linearly to the full count; the output
says so. Also timed: Holm over 1,000,000 p-values in 100,000 families.
"""

from __future__ import annotations

import os

os.environ.setdefault(
    "OMP_NUM_THREADS", "1"
)  # one core: numpy's elementwise work is single-threaded
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import platform
import time

import numpy as np
from scipy import stats as sps

from stats.corrections import adjust
from stats.sufficient import SampleStats
from stats.ttest import welch


def make(size: int, seed: int = 0) -> tuple[SampleStats, SampleStats]:
    rng = np.random.default_rng(seed)

    def group() -> SampleStats:
        n = rng.integers(50, 100_000, size).astype(float)
        mean, sd = rng.uniform(0.1, 20, size), rng.uniform(0.1, 10, size)
        return SampleStats(n, n * mean, (n - 1) * sd**2 + n * mean**2)

    return group(), group()


def loop_baseline(control: SampleStats, treatment: SampleStats, alpha: float) -> list[tuple]:
    out = []
    for i in range(len(control.n)):
        n_c, n_t = control.n[i], treatment.n[i]
        m_c, m_t = control.sum[i] / n_c, treatment.sum[i] / n_t
        v_c = (control.sum_sq[i] - control.sum[i] ** 2 / n_c) / (n_c - 1)
        v_t = (treatment.sum_sq[i] - treatment.sum[i] ** 2 / n_t) / (n_t - 1)
        res = sps.ttest_ind_from_stats(m_t, v_t**0.5, n_t, m_c, v_c**0.5, n_c, equal_var=False)
        a, b = v_c / n_c, v_t / n_t
        df = (a + b) ** 2 / (a**2 / (n_c - 1) + b**2 / (n_t - 1))
        crit = sps.t.ppf(1 - alpha / 2, df)
        se = (a + b) ** 0.5
        rel_se = (b / m_c**2 + a * m_t**2 / m_c**4) ** 0.5
        diff, rel = m_t - m_c, m_t / m_c - 1
        out.append(
            (
                diff,
                rel,
                diff - crit * se,
                diff + crit * se,
                rel - crit * rel_se,
                rel + crit * rel_se,
                res.pvalue,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=1_000_000)
    parser.add_argument("--loop-sample", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    control, treatment = make(args.comparisons)
    welch(control.take(slice(0, 10)), treatment.take(slice(0, 10)))  # warm up imports
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = welch(control, treatment, alpha=0.05)
        best = min(best, time.perf_counter() - start)

    sample = slice(0, args.loop_sample)
    start = time.perf_counter()
    rows = loop_baseline(control.take(sample), treatment.take(sample), 0.05)
    loop = time.perf_counter() - start
    extrapolated = loop * args.comparisons / args.loop_sample
    np.testing.assert_allclose(np.array(rows)[:, 6], result.p_value[sample], rtol=1e-8, atol=1e-300)

    p = result.p_value
    families = np.random.default_rng(1).integers(0, args.comparisons // 10, args.comparisons)
    start = time.perf_counter()
    adjust(p, "holm", families)
    holm = time.perf_counter() - start

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"
    )
    print(
        f"vectorized Welch, {args.comparisons:,} comparisons: {best:.3f} s (best of {args.repeat})"
    )
    print(
        f"Python loop, {args.loop_sample:,} comparisons timed: {loop:.3f} s, "
        f"extrapolated to {args.comparisons:,}: {extrapolated:.1f} s"
    )
    print(f"speed-up: {extrapolated / best:.0f}x; results agree on the timed subsample")
    print(
        f"Holm correction, {args.comparisons:,} p-values in {args.comparisons // 10:,} families: {holm:.3f} s"
    )


if __name__ == "__main__":
    main()
