"""Statistics behind the verdicts: equivalence (TOST), Holm's correction over cells, and
Kendall's tau blocked on seed with an exact null.

Every function works on plain floats and numpy arrays and returns plain floats, so a verdict
rule can print what it used. Formulas:

* TOST (Schuirmann 1987) on paired differences ``d`` with margin ``m``: the one-sided t-tests
  of ``mean(d) > -m`` and ``mean(d) < m``; equivalence at level alpha when both reject, i.e.
  ``p = max(p_low, p_high) < alpha`` (the ``1 - 2 alpha`` t-interval lies inside ``(-m, m)``).
* Holm (1979): sort the ``k`` p-values, ``p_(i) * (k - i + 1)``, running maximum, capped at 1.
* Random effects (DerSimonian & Laird 1986) over cells with estimates ``y_i`` and standard
  errors ``s_i``: ``w_i = 1/s_i^2``, ``Q = sum w_i (y_i - y_w)^2``, between-cell variance
  ``tau^2 = max(0, (Q - (k-1)) / (sum w - sum w^2 / sum w))``, pooled estimate with weights
  ``1/(s_i^2 + tau^2)`` and standard error ``1/sqrt(sum of those weights)``.
* Kendall's S = concordant - discordant pairs. Without ties, under independence S of ``n``
  items is ``n(n-1)/2 - 2 I`` with ``I`` the inversions of a uniform random permutation
  (Mahonian numbers); the S of independent blocks add, so the exact null of the blocked sum is
  the convolution of the blocks' nulls. With ties inside a block, the null is drawn by
  permuting ``y`` within each block (seeded Monte Carlo).
"""

from __future__ import annotations

import math

import numpy as np


def holm(pvalues) -> list:
    """Holm-adjusted p-values, in the input order (NaN stays NaN and is not counted)."""
    p = np.asarray(pvalues, float)
    ok = np.flatnonzero(np.isfinite(p))
    out = np.full(p.shape, np.nan)
    k = len(ok)
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, p[j] * (k - i)))
        out[j] = running
    return [float(x) for x in out]


def random_effects(estimates, std_errors) -> dict:
    """DerSimonian-Laird pooled estimate of cells' effects: ``mean``, ``se``, ``tau2`` (the
    between-cell variance) and ``k`` (cells with a finite estimate and a positive standard
    error; NaN with none)."""
    y, s = np.asarray(estimates, float), np.asarray(std_errors, float)
    ok = np.isfinite(y) & np.isfinite(s) & (s > 0)
    y, s = y[ok], s[ok]
    k = len(y)
    if k == 0:
        return dict(mean=math.nan, se=math.nan, tau2=math.nan, k=0)
    w = 1.0 / s ** 2
    fixed = float(np.sum(w * y) / np.sum(w))
    q = float(np.sum(w * (y - fixed) ** 2))
    denom = float(np.sum(w) - np.sum(w ** 2) / np.sum(w))
    tau2 = max(0.0, (q - (k - 1)) / denom) if k > 1 and denom > 0 else 0.0
    w_star = 1.0 / (s ** 2 + tau2)
    return dict(mean=float(np.sum(w_star * y) / np.sum(w_star)),
                se=float(1.0 / math.sqrt(np.sum(w_star))), tau2=tau2, k=k)


def tost(diffs, margin: float) -> dict:
    """Paired two-one-sided test of ``|mean(diffs)| < margin`` (``margin > 0``).

    Returns ``mean``, ``p`` (the larger one-sided p: equivalence at level alpha when
    ``p < alpha``), ``p_low`` (of ``mean > -margin``), ``p_high`` (of ``mean < margin``) and
    ``n``; NaN p-values with fewer than 2 finite differences.
    """
    from scipy.stats import t

    if not margin > 0:
        raise ValueError(f"equivalence margin must be > 0, got {margin}")
    d = np.asarray([x for x in diffs if x is not None and math.isfinite(x)], float)
    n = d.size
    if n < 2:
        return dict(mean=float(d.mean()) if n else math.nan, p=math.nan, p_low=math.nan,
                    p_high=math.nan, n=n)
    mean, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(n))
    if se == 0.0:  # no spread: the mean is exactly known
        inside = -margin < mean < margin
        p_low = 0.0 if mean > -margin else 1.0
        p_high = 0.0 if mean < margin else 1.0
        return dict(mean=mean, p=0.0 if inside else 1.0, p_low=p_low, p_high=p_high, n=n)
    p_low = float(t.sf((mean + margin) / se, n - 1))
    p_high = float(t.cdf((mean - margin) / se, n - 1))
    return dict(mean=mean, p=max(p_low, p_high), p_low=p_low, p_high=p_high, n=n)


def kendall_s(x, y) -> tuple:
    """``(S, pairs, tied)``: Kendall's S = concordant - discordant pairs of ``(x, y)``, the
    number of pairs, and whether any pair is tied in x or y."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    upper = np.triu_indices(len(x), k=1)
    prod = (dx * dy)[upper]
    tied = bool(np.any(dx[upper] == 0) or np.any(dy[upper] == 0))
    return int(prod.sum()), len(prod), tied


def kendall_null(n: int) -> dict:
    """``{S: probability}`` of Kendall's S for ``n`` untied items under independence."""
    counts = np.ones(1)
    for k in range(2, n + 1):  # inversions of a permutation of k: add 0..k-1 to those of k-1
        counts = np.convolve(counts, np.ones(k))
    total = n * (n - 1) // 2
    probs = counts / counts.sum()
    return {total - 2 * inv: float(p) for inv, p in enumerate(probs)}


def _convolve(a: dict, b: dict) -> dict:
    out: dict = {}
    for s1, p1 in a.items():
        for s2, p2 in b.items():
            out[s1 + s2] = out.get(s1 + s2, 0.0) + p1 * p2
    return out


def blocked_kendall(x, y, blocks, *, draws: int = 20000, seed: int = 0) -> dict:
    """Kendall's tau of ``(x, y)`` within each block (e.g. a seed: runs that share data and
    init), combined: ``S`` summed over blocks, ``tau = S / pairs`` (pairs of all blocks).

    Returns ``tau``, ``S``, ``pairs``, ``blocks`` (count), ``p_greater`` / ``p_less``
    (one-sided, ``S`` at least / at most as extreme under independence within every block),
    ``p`` (two-sided: twice the smaller, capped at 1) and ``exact`` (no ties: the exact null;
    else a within-block permutation null of ``draws`` draws).
    """
    x, y, blocks = np.asarray(x, float), np.asarray(y, float), np.asarray(blocks)
    ok = np.isfinite(x) & np.isfinite(y)
    groups = [np.flatnonzero(ok & (blocks == b)) for b in dict.fromkeys(blocks[ok].tolist())]
    groups = [g for g in groups if len(g) >= 2]
    if not groups:
        return dict(tau=math.nan, S=0, pairs=0, blocks=0, p_greater=math.nan, p_less=math.nan,
                    p=math.nan, exact=True)
    stats = [kendall_s(x[g], y[g]) for g in groups]
    S = sum(s for s, _, _ in stats)
    pairs = sum(n for _, n, _ in stats)
    exact = not any(t for _, _, t in stats)
    if exact:
        null = {0: 1.0}
        for g in groups:
            null = _convolve(null, kendall_null(len(g)))
        p_greater = sum(p for s, p in null.items() if s >= S)
        p_less = sum(p for s, p in null.items() if s <= S)
    else:
        rng = np.random.default_rng(seed)
        sims = np.zeros(draws)
        for g in groups:
            xs, ys = x[g], y[g]
            for i in range(draws):
                sims[i] += kendall_s(xs, rng.permutation(ys))[0]
        p_greater = float((np.sum(sims >= S) + 1) / (draws + 1))
        p_less = float((np.sum(sims <= S) + 1) / (draws + 1))
    return dict(tau=S / pairs, S=int(S), pairs=int(pairs), blocks=len(groups),
                p_greater=float(min(1.0, p_greater)), p_less=float(min(1.0, p_less)),
                p=float(min(1.0, 2 * min(p_greater, p_less))), exact=exact)
