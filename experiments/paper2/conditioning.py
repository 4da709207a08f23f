"""Paper 2, experiment 3: conditioning of the read-out problem per imaginary-part family, GD
iterations vs conditioning, and the approximation-estimation trade-off for targets with
closely spaced frequencies.

    python -m experiments.paper2.conditioning --config configs/paper2/conditioning.py[:cpu]

1. ``kappa(G)`` of ``G = V R V^H`` (:func:`ssm_jax.bound.feature_gram`, float64) for every
   family (lin, inv, legs, real, dft, clustered), state size m, Delta (``2/L``, ``auto`` =
   kappa/sqrt(L lambda_max), or a number), real part (0, -1/2; S4D-Real keeps its own), and
   input (white R = I, AR(1) Toeplitz R).
2. Gradient descent on ``f(c) = (c - c*)^H G (c - c*)`` (the read-out least squares in its
   population form), step ``1/lambda_max(G)``, from ``c = 0`` to ``f <= eps f(0)``; the count is
   exact from the eigen-decomposition (``f_t = sum_i lambda_i w_i (1 - lambda_i/lambda_max)^2t``).
3. Trade-off: a real target kernel ``rho*(l) = sum_k cos(Omega_k l)`` with K frequencies
   ``target_spacing * 2 pi / L`` apart; the model's m undamped modes are centred on them with
   spacing ``s * 2 pi / L``. For each s: the approximation error (best real read-out), kappa of
   the real feature Gram, and the loss after ``gd_budget`` GD steps (white input).
Writes ``table.csv``, ``gd.csv``, ``tradeoff.csv``, ``table.md``, ``conditioning.png``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import numpy as np

from experiments import figures, runner, tables
from experiments.claims import (NO_NUMBER, RECONSTRUCTION, Claim, reconstruction_check,
                               threshold_verdict)
from experiments.paper2.common import autocovariance, family_modes, lambda_max, zoh
from ssm_jax.options import option

PAPER = 2
NAME = "conditioning"
ORDER = 2


@dataclasses.dataclass(frozen=True)
class Settings:
    name: str = option("conditioning", "results folder name")
    length: int = option(1024, "L", positive=True)
    families: tuple = option(("lin", "inv", "legs", "real", "dft", "clustered"), "families",
                             item_kind=str)
    modes: tuple = option((8, 16, 32, 64), "state sizes m (complex modes)", item_kind=int,
                          positive=True)
    deltas: tuple = option(("2/L", "auto", "0.01"), "Delta: '2/L', 'auto' or a number",
                           item_kind=str)
    real_parts: tuple = option((0.0, -0.5), "real parts", item_kind=float, maximum=0.0)
    inputs: tuple = option(("white", "ar1_0.9"), "input families", item_kind=str)
    kappa: float = option(1.0, "constant of the 'auto' Delta", positive=True)
    cluster_scale: float = option(0.1, "clustered: omega_n = cluster_scale pi n", positive=True)
    gd_eps: float = option(1e-3, "GD target: f <= eps f(0)", positive=True)
    gd_max_iters: float = option(1e9, "GD iterations cap (counted as this)", positive=True)
    well_conditioned: float = option(10.0, "claim: separated families have kappa below this",
                                     positive=True)
    ill_conditioned: float = option(1e6, "claim: clustered / real have kappa above this",
                                    positive=True)
    min_spearman: float = option(0.8, "claim: Spearman(log kappa, log GD iterations) >= this",
                                 minimum=-1.0, maximum=1.0)
    target_freqs: int = option(2, "trade-off: K target frequencies", positive=True)
    target_center: float = option(0.25, "trade-off: centre frequency / pi", positive=True)
    target_spacing: float = option(0.5, "trade-off: target spacing in DFT bins", positive=True)
    tradeoff_modes: int = option(8, "trade-off: model modes", positive=True)
    spacings: tuple = option((0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 4.0),
                             "trade-off: model spacings in DFT bins", item_kind=float, positive=True)
    gd_budget: int = option(1000, "trade-off: GD steps", positive=True)
    seed: int = option(0, "seed of c*", minimum=0)


def _delta(rule: str, L: int, lam: float, kappa: float) -> float:
    if rule == "2/L":
        return 2.0 / L
    if rule == "auto":
        return kappa / np.sqrt(L * lam)
    return float(rule)


def prepare(exp, directory) -> list:
    e = exp.settings
    for rule in e.deltas:
        if rule not in ("2/L", "auto"):
            try:
                float(rule)
            except ValueError:
                raise ValueError(f"config key 'experiment.deltas': {rule!r} is not '2/L', 'auto' "
                                 "or a number") from None
    for f in e.inputs:
        autocovariance(f, 2)
    return [(inp, m) for inp in e.inputs for m in e.modes] + ["gd", "tradeoff"]


def gram(Lambda, step, R):
    """kappa and eigenvalues of G = V R V^H (ssm_jax.bound, float64)."""
    import jax.numpy as jnp
    import jax

    from ssm_jax.bound.autocorrelation import condition_number, feature_gram

    Lb, Bf = zoh(Lambda, step)
    with jax.enable_x64(True):
        G = feature_gram(jnp.asarray(Lb), jnp.asarray(Bf), jnp.asarray(R))
        return np.asarray(G), float(condition_number(G))


def gd_iterations(G, c_star, eps, cap) -> float:
    lam, U = np.linalg.eigh(G)
    lam = np.clip(lam, 0, None)
    w = np.abs(U.conj().T @ c_star) ** 2
    top = lam[-1]
    f = lambda t: float(np.sum(lam * w * (1 - lam / top) ** (2 * t)))
    f0 = f(0)
    if f(cap) > eps * f0:
        return cap
    lo, hi = 0.0, 1.0
    while f(hi) > eps * f0:
        lo, hi = hi, hi * 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) > eps * f0 else (lo, mid)
    return float(np.ceil(hi))


def measure(exp, units, bar):
    e = exp.settings
    L = e.length
    rng = np.random.default_rng(e.seed)
    rows, gd_rows = [], []
    for unit in units:
        if unit in ("gd", "tradeoff"):
            continue
        inp, m = unit
        gamma = autocovariance(inp, L)
        idx = np.abs(np.arange(L)[:, None] - np.arange(L)[None, :])
        R = gamma[idx]
        lam = lambda_max(gamma)
        c_star = rng.normal(size=m) + 1j * rng.normal(size=m)
        for fam in e.families:
            for re in (e.real_parts if fam != "real" else (None,)):
                for rule in e.deltas:
                    step = _delta(rule, L, lam, e.kappa)
                    Lambda = family_modes(fam, m, real_part=re, step=step, L=L,
                                          cluster_scale=e.cluster_scale)
                    G, kap = gram(Lambda, step, R)
                    iters = gd_iterations(G, c_star, e.gd_eps, e.gd_max_iters)
                    rows.append(dict(input=inp, modes=m, family=fam,
                                     real_part="own" if re is None else re, delta=rule,
                                     step=step, kappa=kap, gd_iters=iters))
        bar.update(1)
    bar.update(1)  # gd (computed with the Gram matrices above)
    return rows


def tradeoff(exp):
    """Rows (spacing, approx_error, kappa, loss_after_budget) of the trade-off study."""
    e = exp.settings
    L = e.length
    bin_ = 2 * np.pi / L
    l = np.arange(L)
    omegas = e.target_center * np.pi + bin_ * e.target_spacing * (np.arange(e.target_freqs)
                                                                  - (e.target_freqs - 1) / 2)
    rho_star = np.cos(np.outer(omegas, l)).sum(0)  # (L,) target kernel
    out = []
    for s in e.spacings:
        theta = e.target_center * np.pi + bin_ * s * (np.arange(e.tradeoff_modes)
                                                      - (e.tradeoff_modes - 1) / 2)
        Vc = np.exp(1j * np.outer(theta, l))  # undamped modes (Re = 0), B_bar = 1
        F = np.concatenate([Vc.real, Vc.imag])  # real read-out 2 Re(c^T phi): (2m, L)
        G = F @ F.T  # white input
        b = F @ rho_star
        lam, U = np.linalg.eigh(G)
        lam = np.clip(lam, 0, None)
        bt = U.T @ b
        keep = lam > lam[-1] * 1e-14
        approx = float(rho_star @ rho_star - np.sum(bt[keep] ** 2 / lam[keep]))
        resid = np.sum(bt[keep] ** 2 / lam[keep] * (1 - lam[keep] / lam[-1]) ** (2 * e.gd_budget))
        kap = float(lam[-1] / lam[0]) if lam[0] > 0 else float("inf")
        norm = float(rho_star @ rho_star)
        out.append(dict(spacing=s, approx_error=max(approx, 0.0) / norm, kappa=kap,
                        loss_after_budget=(max(approx, 0.0) + float(resid)) / norm))
    return out


def plot(exp, rows, trade, path):
    e = exp.settings
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    sub = [r for r in rows if r["input"] == e.inputs[0] and r["delta"] == e.deltas[0]
           and r["real_part"] in (0.0, "own")]
    for j, fam in enumerate(e.families):
        pts = sorted([r for r in sub if r["family"] == fam], key=lambda r: r["modes"])
        ax.semilogy([r["modes"] for r in pts], [max(r["kappa"], 1.0) for r in pts], "-o",
                    color=f"C{j}", label=fam)
    ax.set_title(f"kappa(G), {e.inputs[0]} input, Delta={e.deltas[0]}, Re=0")
    ax.set_xlabel("modes m")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[1]
    k = np.array([r["kappa"] for r in rows])
    it = np.array([r["gd_iters"] for r in rows])
    ax.loglog(np.maximum(k, 1), np.maximum(it, 1), ".", alpha=0.5)
    ax.set_xlabel("kappa(G)")
    ax.set_ylabel(f"GD iterations to f <= {e.gd_eps:g} f(0)")
    ax.grid(alpha=0.3)
    ax = axes[2]
    s = [r["spacing"] for r in trade]
    ax.loglog(s, [r["approx_error"] for r in trade], "-o", label="approximation error")
    ax.loglog(s, [r["loss_after_budget"] for r in trade], "-s",
              label=f"loss after {e.gd_budget} GD steps")
    ax2 = ax.twinx()
    ax2.loglog(s, [r["kappa"] for r in trade], "k--", label="kappa")
    ax2.set_ylabel("kappa (dashed)")
    ax.set_xlabel("model frequency spacing (DFT bins)")
    ax.set_title(f"targets {e.target_spacing:g} bins apart")
    ax.legend(fontsize=7)
    return figures.save(fig, path)


def execute(exp, directory, units, bar) -> dict:
    start = time.perf_counter()
    rows = measure(exp, units, bar)
    trade = tradeoff(exp)
    bar.update(1)
    cols = ["input", "modes", "family", "real_part", "delta", "step", "kappa", "gd_iters"]
    tables.write_csv(os.path.join(directory, "table.csv"), rows, cols)
    tcols = ["spacing", "approx_error", "kappa", "loss_after_budget"]
    tables.write_csv(os.path.join(directory, "tradeoff.csv"), trade, tcols)
    e = exp.settings
    m = max(e.modes)
    pivot = []
    for inp in e.inputs:
        for rule in e.deltas:
            for re in e.real_parts:
                row = dict(input=inp, delta=rule, real_part=re)
                for fam in e.families:
                    match = [r for r in rows if r["input"] == inp and r["delta"] == rule
                             and r["modes"] == m and r["family"] == fam
                             and r["real_part"] in ((re,) if fam != "real" else ("own",))]
                    row[fam] = match[0]["kappa"] if match else float("nan")
                pivot.append(row)
    rho, p = tables.spearman(np.log(np.maximum([r["kappa"] for r in rows], 1.0)),
                             np.log([r["gd_iters"] for r in rows]))
    png = plot(exp, rows, trade, os.path.join(directory, "conditioning.png"))
    tables.write_markdown(os.path.join(directory, "table.md"), [
        f"# Conditioning of the read-out problem ({e.name})",
        f"kappa(G) of G = V R V^H, L = {e.length}, m = {m} modes (S4D-Real keeps its own real "
        "parts, under every real_part row).",
        tables.markdown_table(pivot, ["input", "delta", "real_part"] + list(e.families)),
        f"Spearman(log kappa, log GD iterations) over {len(rows)} settings: {rho:.3f} (p = {p:.2g}).",
        "## Trade-off (targets with closely spaced frequencies)",
        tables.markdown_table(trade, tcols),
        f"Wall-clock: {time.perf_counter() - start:.1f} s. Figure: `{os.path.basename(png)}`.",
    ])
    return {"rows": rows, "trade": trade, "spearman": rho, "pivot": pivot}


def claims(exp, summary) -> list:
    e = exp.settings
    rows = summary["rows"]
    m = max(e.modes)
    base = [r for r in rows if r["input"] == "white" and r["modes"] == m and r["delta"] == "2/L"
            and r["real_part"] in (0.0, "own")] or [r for r in rows if r["modes"] == m]
    kap = {r["family"]: r["kappa"] for r in base}
    separated = [kap[f] for f in ("lin", "dft") if f in kap]
    clustered = [kap[f] for f in ("clustered", "real") if f in kap]
    out = []
    if separated and clustered:
        ok = max(separated) < e.well_conditioned and min(clustered) > e.ill_conditioned
        bad = max(separated) >= min(clustered)
        out.append(Claim(
            paper=PAPER, experiment=e.name,
            text="The imaginary parts determine the conditioning: well-separated (S4D-Lin, DFT "
                 "grid) give kappa(G) ~ 1, clustered imaginary parts and real eigenvalues "
                 "(S4D-Real) are ill-conditioned",
            paper_value=RECONSTRUCTION,  # ours: DFT grid kappa = 1, clustered / real ~1e300
            ours=", ".join(f"{f}: {v:.3g}" for f, v in kap.items()) + f" (white, Delta=2/L, m={m})",
            verdict=reconstruction_check(
                "reproduced" if ok else ("not reproduced" if bad else "inconclusive")),
            rule=f"reconstruction check (the kappa values follow from our Gram construction): "
                 f"consistent if lin and dft have kappa < {e.well_conditioned:g} and clustered and "
                 f"real > {e.ill_conditioned:g}; not reproduced if a separated family is worse "
                 "than a clustered one",
            evidence=("table.md", "table.csv", "conditioning.png")))
    rho = summary["spearman"]
    out.append(Claim(
        paper=PAPER, experiment=e.name,
        text="The conditioning of G predicts the training speed of the read-out (GD iterations "
             "to a fixed loss)",
        paper_value=NO_NUMBER, ours=f"Spearman(log kappa, log iterations) = {rho:.3f} over "
                                    f"{len(rows)} settings",
        verdict=threshold_verdict(rho, lambda r: r >= e.min_spearman, lambda r: r <= 0),
        rule=f"reproduced if Spearman >= {e.min_spearman:g}; not reproduced if <= 0",
        evidence=("table.csv", "conditioning.png")))
    corr = [i for i in e.inputs if i != "white"]
    if "white" in e.inputs and corr:
        ratios = []
        for r in rows:
            if r["input"] != "white" or r["family"] not in ("lin", "dft", "inv"):
                continue
            twin = [q for q in rows if q["input"] == corr[0] and q["family"] == r["family"]
                    and q["modes"] == r["modes"] and q["delta"] == r["delta"]
                    and q["real_part"] == r["real_part"] and q["delta"] != "auto"]
            if twin:
                ratios.append(twin[0]["kappa"] / r["kappa"])
        med = float(np.median(ratios)) if ratios else float("nan")
        out.append(Claim(
            paper=PAPER, experiment=e.name,
            text="Input autocorrelation also enters the conditioning (kappa(G) <= kappa(R) "
                 "kappa(V V^H)): correlated inputs condition worse",
            paper_value=NO_NUMBER,
            ours=f"median kappa({corr[0]}) / kappa(white) = {med:.3g} over {len(ratios)} "
                 "separated-family settings (same Delta)",
            verdict=threshold_verdict(med, lambda q: q > 2, lambda q: q < 1),
            rule="reproduced if the median ratio > 2; not reproduced if < 1",
            evidence=("table.csv",)))
    trade = summary["trade"]
    s = [t["spacing"] for t in trade]
    approx = [t["approx_error"] for t in trade]
    kaps = [t["kappa"] for t in trade]
    loss = [t["loss_after_budget"] for t in trade]
    r_approx, _ = tables.spearman(s, approx)
    r_kap, _ = tables.spearman(s, kaps)
    best = int(np.argmin(loss))
    interior = 0 < best < len(s) - 1
    ok = r_approx > 0.5 and r_kap < -0.5 and interior
    out.append(Claim(
        paper=PAPER, experiment=e.name,
        text="Approximation-estimation trade-off for targets with closely spaced frequencies: "
             "closer model frequencies approximate better but condition worse, so the best "
             "spacing under a training budget is intermediate",
        paper_value=NO_NUMBER,
        ours=f"Spearman(spacing, approx error) = {r_approx:.2f}, (spacing, kappa) = {r_kap:.2f}; "
             f"loss after {e.gd_budget} GD steps is lowest at spacing {s[best]:g} bins "
             f"({loss[best]:.3g}; range {min(s):g}..{max(s):g})",
        verdict="reproduced" if ok else ("not reproduced" if r_approx < 0 or r_kap > 0
                                         else "inconclusive"),
        rule="reproduced if approx error rises and kappa falls with the spacing (Spearman > 0.5 "
             "/ < -0.5) and the budgeted loss is minimal at an interior spacing",
        evidence=("tradeoff.csv", "conditioning.png")))
    return out


def main(argv=None) -> int:
    return runner.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
