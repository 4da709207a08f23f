"""Paper 2, experiment 2: memory with zero real parts (the curse of memory), measured as memory
capacity.

    python -m ssm_jax.experiments.paper2.memory --config configs/paper2/memory.py[:cpu]

Delayed recall: white input x (L,), target ``y = x_{L-1-k}`` (the input k steps before the
end), for delays k = 0..L-1. A single-layer SISO diagonal SSM with m S4D-Lin modes, real
read-out ``y_hat = 2 Re(c^T h_L)``: its real features are ``z = F x`` with ``F = [Re V; Im V]``
(2m, L). The memory capacity (Jaeger 2001) is ``MC = sum_k R^2(k)``: the R^2 of recalling
``x_{L-1-k}`` from the state, summed over delays; its part at long delays,
``MC_long = sum_{k >= long_fraction L} R^2(k)``, is the memory beyond the decay horizon.

* Population (exact): ``R^2(k) = f_k^T (F F^T)^+ f_k`` with ``f_k`` the column ``L-1-k``; then
  ``MC`` is the number of independent real features (<= 2m) for every real part: the real
  part only moves capacity between delays.
* Trained (per seed): the read-out is fitted by least squares on ``n = train_sequences``
  white Gaussian sequences of that seed (the same sequences for both real parts: paired);
  ``R^2_test(k) = 1 - E||x_{L-1-k} - w_k^T z||^2`` is its exact held-out R^2 (expectation over
  fresh white inputs: ``1 - ||e_{L-1-k} - F^T w_k||^2``). For Gaussian features least squares
  has ``E[R^2_test] = R^2 - c (1 - R^2)`` with ``c = p / (n - p - 1)`` (p independent
  features), so the reported ``R^2_hat = (R^2_test + c) / (1 + c)`` is unbiased for the
  population R^2 (without it, delays with no memory count about ``-c`` each). Features are
  orthonormalized first (QR and SVD of F; singular values below 1e-10 of the largest, i.e.
  exact aliases, dropped), which changes no prediction.

Re = 0 vs Re = -1/2 at the proposed Delta (``kappa / sqrt(L lambda_max)``, lambda_max = 1 for
white input) and, in the tables, at the S4D default 0.01. Claims: the long-delay capacity is
larger with Re = 0 (paired over seeds, random-effects pooled over L, equivalence margin
``margin``); the total capacity is the same for both real parts (a reconstruction check of our
derivation: TOST within ``total_margin``).
Writes ``table.csv`` (population R^2 per delay bin), ``seeds.csv`` (trained capacities per seed),
``table.md``, ``memory.png``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time

import numpy as np

from ssm_jax.experiments import figures, runner, tables
from ssm_jax.experiments.claims import NO_NUMBER, RECONSTRUCTION, Claim, pooled_effect, reconstruction_check
from ssm_jax.experiments.paper2.common import family_modes, zoh
from ssm_jax.options import option, require

PAPER = 2
NAME = "memory"
ORDER = 3


@dataclasses.dataclass(frozen=True)
class Settings:
    name: str = option("memory", "results folder name")
    lengths: tuple = option((256, 1024), "L", item_kind=int, positive=True)
    modes: int = option(64, "m complex modes (S4D-Lin)", positive=True)
    real_parts: tuple = option((0.0, -0.5), "real parts compared", item_kind=float, maximum=0.0)
    deltas: tuple = option(("auto", "0.01"), "Delta: 'auto' (kappa/sqrt(L)) or a number",
                           item_kind=str)
    kappa: float = option(1.0, "constant of the autocorrelation Delta", positive=True)
    bins: int = option(8, "delay bins in the table", positive=True)
    long_fraction: float = option(0.5, "claim: 'long' delays are k >= this * L", positive=True,
                                  maximum=1.0)
    train_sequences: int = option(2048, "white sequences the read-out is fitted on (per seed)",
                                  minimum=2)
    first_seed: int = option(0, "first seed of the training sequences", minimum=0)
    num_seeds: int = option(5, "seeds (training sets) per L", minimum=2)
    margin: float = option(1.0, "equivalence margin of the long-delay capacity difference "
                           "(capacity units: delays recalled perfectly)", positive=True)
    total_margin: float = option(1.0, "equivalence margin of the total capacity difference "
                                 "(capacity units)", positive=True)
    confidence: float = option(0.95, "confidence level of the intervals", minimum=0.5,
                               maximum=1.0, exclusive_minimum=True, exclusive_maximum=True)

    def check(self, prefix=""):
        require(0.0 in self.real_parts and any(re < 0 for re in self.real_parts),
                prefix + "real_parts", "needs 0.0 and a negative value (the paired comparison)")
        require(self.train_sequences > 2 * self.modes + 1, prefix + "train_sequences",
                f"must exceed 2 modes + 1 = {2 * self.modes + 1} (least squares on the features)")


def prepare(exp, directory) -> list:
    e = exp.settings
    for d in e.deltas:
        if d != "auto":
            try:
                float(d)
            except ValueError:
                raise ValueError(f"config key 'experiment.deltas': {d!r} is not 'auto' or a "
                                 "number") from None
    return list(e.lengths)


def features(Lambda, step, L) -> np.ndarray:
    """Real features ``F = [Re V; Im V]`` (2m, L) with ``h_L = V x`` (column s: input x_s)."""
    Lb, Bf = zoh(Lambda, step)
    s = np.arange(L)
    V = Bf[:, None] * np.exp(np.outer(np.log(Lb), L - 1 - s))  # (m, L)
    return np.concatenate([V.real, V.imag])


def orthonormal_rows(F, rtol: float = 1e-10) -> np.ndarray:
    """An orthonormal basis ``(r, L)`` of the row space of ``F (k, L)``, ``k <= L`` (singular
    values below ``rtol`` times the largest dropped): ``F^T = Q R`` (QR), ``R^T = U S V^T``
    (SVD), so ``F = U S (Q V)^T`` and the rows of ``(Q V)^T`` span it."""
    Q, R = np.linalg.qr(F.T)
    _, s, Vt = np.linalg.svd(R.T)
    return (Q @ Vt.T).T[s > rtol * s[0]]


def recall_r2(Lambda, step, L, Q=None) -> np.ndarray:
    """Population R^2 of the optimal real read-out for every delay k = 0..L-1: (L,).
    ``Q``: the orthonormal feature rows, if already computed."""
    Q = orthonormal_rows(features(Lambda, step, L)) if Q is None else Q
    return np.clip(np.sum(Q ** 2, axis=0)[::-1], 0, 1)  # diag of the projection; k = L-1-s


def trained_r2(Q, X, unbiased: bool = True) -> np.ndarray:
    """Held-out R^2 per delay k of the least-squares read-out fitted on ``X (n, L)``.

    ``Q (r, L)``: orthonormal feature rows. The read-out ``W (r, L)`` solves
    ``min ||Z W - X||`` with ``Z = X Q^T``; for white unit-variance test inputs the expected
    squared error of delay ``s`` is ``||e_s - Q^T w_s||^2 = 1 - 2 (Q^T W)_ss + ||w_s||^2``, so
    ``R^2_test = 2 (Q^T W)_ss - ||w_s||^2``. ``unbiased``: ``(R^2_test + c) / (1 + c)`` with
    ``c = r / (n - r - 1)`` (unbiased for the population R^2). Returns (L,) indexed by
    k = L-1-s.
    """
    n, r = X.shape[0], Q.shape[0]
    if n <= r + 1:
        raise ValueError(f"config key 'experiment.train_sequences': {n} sequences cannot fit "
                         f"{r} features (needs more than {r + 1})")
    Z = X @ Q.T
    W = np.linalg.solve(Z.T @ Z, Z.T @ X)  # (r, L)
    r2 = 2 * np.sum(Q * W, axis=0) - np.sum(W ** 2, axis=0)
    if unbiased:
        c = r / (n - r - 1)
        r2 = (r2 + c) / (1 + c)
    return r2[::-1]


def step_of(e, L, d) -> float:
    return e.kappa / np.sqrt(L) if d == "auto" else float(d)


def execute(exp, directory, lengths, bar) -> dict:
    e = exp.settings
    start = time.perf_counter()
    curves, rows, seed_rows = {}, [], []
    neg = min(e.real_parts)
    for L in lengths:
        bases = {}
        for d in e.deltas:
            step = step_of(e, L, d)
            for re in e.real_parts:
                Lam = family_modes("lin", e.modes, real_part=re)
                bases[d, re] = orthonormal_rows(features(Lam, step, L))
                r2 = recall_r2(Lam, step, L, bases[d, re])
                curves[L, d, re] = r2
                edges = np.linspace(0, L, e.bins + 1).astype(int)
                for a, b in zip(edges[:-1], edges[1:]):
                    rows.append(dict(L=L, delta=d, step=step, real_part=re, delay_from=a,
                                     delay_to=b - 1, mean_r2=float(r2[a:b].mean())))
        # trained read-outs (the claims' Delta: 'auto'), paired over the real parts
        step = step_of(e, L, "auto")
        fitted = {re: bases.get(("auto", re)) for re in (0.0, neg)}
        fitted = {re: orthonormal_rows(features(family_modes("lin", e.modes, real_part=re),
                                                step, L)) if Q is None else Q
                  for re, Q in fitted.items()}
        k0 = int(math.ceil(e.long_fraction * L))
        for seed in range(e.first_seed, e.first_seed + e.num_seeds):
            X = np.random.default_rng([seed, L]).standard_normal((e.train_sequences, L))
            row = dict(L=L, seed=seed)
            for re, Q in fitted.items():
                r2 = trained_r2(Q, X)
                tag = "zero" if re == 0.0 else "neg"
                row[f"total_{tag}"] = float(r2.sum())
                row[f"long_{tag}"] = float(r2[k0:].sum())
                row[f"rank_{tag}"] = Q.shape[0]
            seed_rows.append(row)
        bar.update(1)
    cols = ["L", "delta", "step", "real_part", "delay_from", "delay_to", "mean_r2"]
    tables.write_csv(os.path.join(directory, "table.csv"), rows, cols)
    scols = ["L", "seed", "total_zero", "total_neg", "long_zero", "long_neg", "rank_zero",
             "rank_neg"]
    tables.write_csv(os.path.join(directory, "seeds.csv"), seed_rows, scols)
    summary = []
    for (L, d, re), r2 in curves.items():
        k0 = int(math.ceil(e.long_fraction * L))
        summary.append(dict(L=L, delta=d, real_part=re, short_r2=float(r2[:max(1, L // 16)].mean()),
                            long_r2=float(r2[k0:].mean()), capacity=float(r2.sum()),
                            long_capacity=float(r2[k0:].sum())))
    trained = []
    for L in lengths:
        sub = [r for r in seed_rows if r["L"] == L]
        trained.append(dict(L=L, seeds=len(sub), **{
            key: tables.pm(*tables.mean_std([r[key] for r in sub]))
            for key in ("total_zero", "total_neg", "long_zero", "long_neg")}))
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, len(lengths), figsize=(5 * len(lengths), 3.8), squeeze=False)
    for i, L in enumerate(lengths):
        ax = axes[0][i]
        for (LL, d, re), r2 in curves.items():
            if LL == L:
                ax.plot(np.arange(L), np.maximum(r2, 1e-12), label=f"Re={re:g}, Delta={d}", lw=1)
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 1.1)
        ax.set_xlabel("delay k")
        ax.set_ylabel("recall R^2 (population)")
        ax.set_title(f"L = {L}, m = {e.modes}")
        ax.legend(fontsize=7)
    png = figures.save(fig, os.path.join(directory, "memory.png"))
    pcols = ["L", "delta", "real_part", "short_r2", "long_r2", "capacity", "long_capacity"]
    tables.write_markdown(os.path.join(directory, "table.md"), [
        f"# Delayed recall: zero vs negative real parts ({e.name})",
        f"## Population (exact)\nOptimal-read-out R^2 of recalling x_(L-1-k); short = mean "
        f"over k < L/16, long = mean over k >= {e.long_fraction:g} L; capacity = sum of R^2 over "
        f"all k (the memory capacity: the number of independent real features, at most 2m = "
        f"{2 * e.modes}); long_capacity = sum over k >= {e.long_fraction:g} L.",
        tables.markdown_table(summary, pcols),
        f"## Trained read-out (Delta = kappa/sqrt(L))\nLeast squares on {e.train_sequences} "
        f"white sequences per seed, exact held-out R^2 (bias-corrected) summed over delays "
        f"(mean ± std over seeds; per seed: `seeds.csv`). zero: Re = 0, neg: Re = {neg:g}.",
        tables.markdown_table(trained, ["L", "seeds", "total_zero", "total_neg", "long_zero",
                                        "long_neg"]),
        "## Per delay bin (population)",
        tables.markdown_table(rows, cols),
        f"Wall-clock: {time.perf_counter() - start:.1f} s. Figure: `{os.path.basename(png)}`.",
    ])
    return {"summary": summary, "seeds": seed_rows}


def equivalence_verdict(cells, margin: float, confidence: float) -> tuple:
    """A claim of no difference over cells (lists of paired differences): ``(verdict, ours)``
    from the random-effects pooled difference (as :func:`pooled_effect`): its ``2 confidence -
    1`` interval inside ``(-margin, margin)`` = reproduced (TOST); its ``confidence`` interval
    entirely outside it = not reproduced (a difference larger than the margin); else
    inconclusive."""
    from scipy.stats import norm

    from ssm_jax.experiments.stats import random_effects

    means, ses = [], []
    for diffs in cells:
        d = tables.finite(diffs)
        means.append(float(d.mean()) if d.size else math.nan)
        ses.append(float(d.std(ddof=1) / math.sqrt(d.size)) if d.size >= 2 else math.nan)
    pooled = random_effects(means, ses)
    m, se = pooled["mean"], pooled["se"]
    z, z_eq = norm.ppf(0.5 + confidence / 2), norm.ppf(confidence)
    low, high, eq_low, eq_high = m - z * se, m + z * se, m - z_eq * se, m + z_eq * se
    if not (math.isfinite(low) and math.isfinite(high)):
        verdict = "inconclusive"
    elif -margin < eq_low and eq_high < margin:
        verdict = "reproduced"
    elif low >= margin or high <= -margin:
        verdict = "not reproduced"
    else:
        verdict = "inconclusive"
    eq = 2 * confidence - 1
    ours = (f"pooled {m:+.3g} [{low:+.3g}, {high:+.3g}] ({confidence:.0%}), "
            f"[{eq_low:+.3g}, {eq_high:+.3g}] ({eq:.0%}) over {pooled['k']} cells")
    return verdict, ours


def claims(exp, summary) -> list:
    e = exp.settings
    seeds = summary["seeds"]
    neg = min(e.real_parts)
    Ls = sorted({r["L"] for r in seeds})
    long_cells = [[r["long_zero"] - r["long_neg"] for r in seeds if r["L"] == L] for L in Ls]
    total_cells = [[r["total_zero"] - r["total_neg"] for r in seeds if r["L"] == L] for L in Ls]
    per_L = "; ".join(
        f"L={L}: long-delay capacity {np.mean([r['long_zero'] for r in seeds if r['L'] == L]):.3g}"
        f" (Re=0) vs {np.mean([r['long_neg'] for r in seeds if r['L'] == L]):.3g} (Re={neg:g}), "
        f"total {np.mean([r['total_zero'] for r in seeds if r['L'] == L]):.3g} vs "
        f"{np.mean([r['total_neg'] for r in seeds if r['L'] == L]):.3g}" for L in Ls)
    verdict, ours, rule = pooled_effect(long_cells, e.margin, e.confidence)
    n = e.num_seeds
    long_claim = Claim(
        paper=PAPER, experiment=e.name,
        text="With the proposed timescale, a zero real part mitigates the curse of memory: "
             "inputs far in the past stay recallable, while Re = -1/2 forgets them",
        paper_value=NO_NUMBER,
        ours=f"Re=0 minus Re={neg:g}, long-delay memory capacity: {ours}; {per_L} "
             f"(means over {n} seeds)",
        verdict=verdict,
        rule=f"primary metric: the long-delay memory capacity sum_(k >= {e.long_fraction:g} L) "
             f"R^2(k) of a least-squares read-out trained on {e.train_sequences} white sequences "
             f"(held-out R^2, bias-corrected; Delta = kappa/sqrt(L)), paired over {n} seeds "
             f"(same sequences) per L; " + rule,
        evidence=("table.md", "seeds.csv", "memory.png"))
    eq_verdict, eq_ours = equivalence_verdict(total_cells, e.total_margin, e.confidence)
    eq = 2 * e.confidence - 1
    total_claim = Claim(
        paper=PAPER, experiment=e.name,
        text="Re = 0 moves memory to the far past without adding to it: the total memory "
             "capacity sum_k R^2(k) is the same as with Re = -1/2 (the number of independent "
             "real features, at most 2m)",
        paper_value=RECONSTRUCTION,
        ours=f"Re=0 minus Re={neg:g}, total memory capacity: {eq_ours}; population capacities "
             + ", ".join(f"L={r['L']} Re={r['real_part']:g}: {r['capacity']:.3g}"
                         for r in summary["summary"] if r["delta"] == "auto"),
        verdict=reconstruction_check(eq_verdict),
        rule=f"reconstruction check (total capacity = rank of the features is our derivation): "
             f"random-effects (DerSimonian-Laird) pooled paired difference of the trained total "
             f"capacity over L, {n} seeds per L: {eq:.0%} interval inside +-{e.total_margin:g} "
             f"(equivalence margin {e.total_margin:g}, TOST) = consistent; {e.confidence:.0%} "
             f"interval entirely outside it = not reproduced; else inconclusive",
        evidence=("table.md", "seeds.csv"))
    return [long_claim, total_claim]


def main(argv=None) -> int:
    return runner.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
