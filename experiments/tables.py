"""Tables and statistics of the experiments: mean ± std, confidence intervals, rank
correlation, CSV and markdown writers."""

from __future__ import annotations

import csv
import math
import os

import numpy as np


def finite(values) -> np.ndarray:
    """The finite values of ``values`` as a float array (None and NaN dropped)."""
    return np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)


def mean_std(values) -> tuple:
    """Mean and sample std (ddof=1; 0 for one value) of finite values; NaN when none."""
    v = finite(values)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def t_interval(values, level: float = 0.95) -> tuple:
    """``(mean, low, high)``: Student-t confidence interval of the mean of finite values
    (NaN bounds with fewer than 2 values)."""
    from scipy.stats import t

    v = finite(values)
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("nan"), float("nan")
    half = float(t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return mean, mean - half, mean + half


def bootstrap_interval(values, stat=np.median, level: float = 0.95, resamples: int = 4000,
                       seed: int = 0) -> tuple:
    """``(stat, low, high)``: percentile bootstrap interval of ``stat`` of the finite values
    (``resamples`` draws with replacement, seeded; NaN bounds with fewer than 2 values)."""
    v = finite(values)
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    point = float(stat(v))
    if v.size < 2:
        return point, float("nan"), float("nan")
    draws = np.random.default_rng(seed).choice(v, size=(resamples, v.size), replace=True)
    boot = np.apply_along_axis(stat, 1, draws)
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return point, float(low), float(high)


def sign_test(below: int, n: int) -> tuple:
    """One-sided exact sign test of ``below`` of ``n`` paired values below their reference:
    ``(p that more than half are below, p that fewer are)``; NaN for n = 0."""
    from scipy.stats import binomtest

    if n == 0:
        return float("nan"), float("nan")
    return (float(binomtest(below, n, 0.5, alternative="greater").pvalue),
            float(binomtest(below, n, 0.5, alternative="less").pvalue))


def spearman(x, y) -> tuple:
    """Spearman rank correlation and its two-sided p-value (scipy); NaN with < 3 points."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan"), float("nan")
    res = spearmanr(x[ok], y[ok])
    return float(res.statistic), float(res.pvalue)


def fmt(x, digits: int = 4) -> str:
    """Number with ``digits`` significant digits (ints as ints, NaN as "-")."""
    if isinstance(x, str):
        return x
    if isinstance(x, (bool, np.bool_)):
        return str(x)
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.{digits}g}"


def pm(mean, std, digits: int = 3) -> str:
    """``mean ± std`` for markdown."""
    if not math.isfinite(mean):
        return "-"
    return f"{fmt(mean, digits)} ± {fmt(std, 2)}"


def write_csv(path: str, rows: list, columns: list) -> str:
    """Rows (dicts) as CSV with the given columns; floats at full precision."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({c: row.get(c, "") for c in columns})
    return path


def markdown_table(rows: list, columns: list, headers: list | None = None) -> str:
    """A GitHub markdown table; cells through :func:`fmt` unless already strings."""
    headers = headers or columns
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def write_markdown(path: str, sections: list) -> str:
    """Write ``sections`` (strings: titles, tables, notes) separated by blank lines."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write("\n\n".join(s.strip("\n") for s in sections) + "\n")
    return path
