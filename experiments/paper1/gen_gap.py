"""Paper 1, experiment 2: generalization gap vs the regularizer (9) on synthetic regression,
and the rank correlation between the measure tau and the gap.

    python -m experiments.paper1.gen_gap --config configs/paper1/gen_gap.py[:SCALE]

Sweep (``configs/paper1/gen_gap.py``): input process x training-set size x penalty x
``bound.reg_lambda`` x seed, one training run each in
``runs/<process>_n<size>_<penalty>_lam<lambda>_s<seed>/`` (skipped when finished). Processes
are data-section overlays (``experiment.process_specs``): white noise, a time-varying mean
and variance, OU, GP, ... so that the data-dependent terms of tau matter. Penalties:
``measure`` = the regularizer (9); ``kernel_l2``, ``kernel_l1``, ``c_l2`` = data-independent
penalties (:mod:`ssm_jax.bound.penalties`) at matched strength: their weight is
``lambda * R(theta_0) / P(theta_0)``, so that at initialization (same seed, same init batch)
the penalty term equals the regularizer term it is compared with. For each run, at the
parameters of ``experiment.checkpoint`` ("last" = final, default):

* train MSE on the whole training set and test MSE on the test split (evaluation mode),
  gap = test - train;
* tau = sum over SSM layers of the mean over channels of the paper's measure, on the whole
  training set (``layer_measures``).

Writes ``table.csv`` / ``table.md`` (mean ± std over seeds per size and lambda, and the
Spearman rank correlation between tau and the gap over all runs and per training-set size),
``runs.csv``, ``correlation.csv``, ``gen_gap.png`` and ``config.json`` to
``results/paper1/<experiment.name>/``.

Claims: the regularizer lowers the gap (paired difference between the largest lambda and
lambda = 0, t-interval over seeds, per process and training-set size); it lowers the gap
more than each data-independent penalty at matched strength (paired over seeds); tau tracks
the gap (Spearman rank correlation over the regularizer's runs of each process and
training-set size, not pooled across processes or sizes).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import numpy as np

from experiments import figures, runner, sweeps, tables
from experiments.claims import NO_NUMBER, Claim, all_verdict, interval_verdict, threshold_verdict
from experiments.config import seeds
from ssm_jax.options import option
from ssm_jax.training.checkpoint import load_variables

PAPER = 1
NAME = "gen_gap"
ORDER = 2
METRICS = ("train_mse", "test_mse", "gap", "tau")


@dataclasses.dataclass(frozen=True)
class Settings:
    name: str = option("gen_gap", "results folder name")
    lambdas: tuple = option((0.0, 1e-2), "regularizer weights (the smallest is the baseline)",
                            item_kind=float, minimum=0.0)
    processes: tuple = option((), "input processes (keys of process_specs; empty: the data "
                              "section as is)", item_kind=str)
    process_specs: object = None  # {process: synthetic_regression data keys}
    penalties: tuple = option(("measure",), "'measure' = regularizer (9); data-independent "
                              "penalties at matched strength", item_kind=str,
                              choices=("measure", "kernel_l2", "kernel_l1", "c_l2"))
    train_sizes: tuple = option((256,), "training-set sizes", item_kind=int, minimum=2)
    first_seed: int = option(0, "first seed (init, batch order and data)", minimum=0)
    num_seeds: int = option(3, "seeds per setting", positive=True)
    vectorize: bool = option(True, "train the runs that differ only in seed, lambda or init rule "
                             "together, in one vmapped step (ssm_jax.training.vectorized)")
    max_members: int = option(0, "largest vectorized group (0: no limit)", minimum=0)
    checkpoint: str = option("last", "parameters evaluated", choices=("last", "best"))
    confidence: float = option(0.95, "level of the paired-difference intervals", minimum=0.0,
                               maximum=1.0, exclusive_minimum=True, exclusive_maximum=True)
    alpha: float = option(0.05, "significance level of the rank correlation", minimum=0.0,
                          maximum=1.0, exclusive_minimum=True, exclusive_maximum=True)

    def check(self, prefix=""):
        from ssm_jax.options import require

        require(len(self.lambdas) >= 2, prefix + "lambdas", "needs at least two values")
        require(self.penalties and self.penalties[0] == "measure", prefix + "penalties",
                "must start with 'measure' (the regularizer the others are matched to)")
        for p in self.processes:
            require(p in dict(self.process_specs or {}), prefix + "processes",
                    f"has {p!r}, which is not in {prefix}process_specs")


def process_names(e) -> list:
    return list(e.processes) or ["data"]


def matched_lambda(run_cfg, penalty: str, lam: float) -> float:
    """Weight of ``penalty`` whose term equals ``lam`` x the regularizer at initialization
    (same seed, init batch and train-mode forward as the run's first step)."""
    import jax

    from ssm_jax.bound import forward_intermediates, make_regularizer
    from ssm_jax.bound.penalties import make_penalty
    from ssm_jax.data import get_dataset
    from ssm_jax.layers import find_layers
    from ssm_jax.training.config import parse_config
    from ssm_jax.training.loop import build_model, init_variables

    cfg = parse_config(run_cfg)
    ds = get_dataset(cfg.data)
    model = build_model(cfg.model, ds.info)
    init_rng, _ = jax.random.split(jax.random.PRNGKey(cfg.seed))
    variables, batch = init_variables(model, cfg, ds.train, init_rng)
    inter = forward_intermediates(model, variables, batch["inputs"], batch["lengths"])
    reg = float(make_regularizer(cfg.bound, pooling=cfg.model.pooling)(inter))
    layers = find_layers(model, batch["inputs"][:1], batch["lengths"][:1])
    pen = float(make_penalty(penalty, layers, channel_reduce=cfg.bound.channel_reduce,
                             layer_reduce=cfg.bound.layer_reduce)(inter, batch, variables["params"]))
    return lam * reg / max(pen, 1e-30)


def make_runs(exp, match: bool = True) -> list:
    """The runs; with ``match`` the penalties' weights are matched (one init per run)."""
    e, runs = exp.settings, []
    specs = dict(e.process_specs or {})
    lam0 = float(min(e.lambdas))
    for proc in process_names(e):
        overlay = {f"data.{k}": v for k, v in dict(specs.get(proc, {})).items()}
        for n in e.train_sizes:
            for penalty in e.penalties:
                for lam in e.lambdas:
                    if penalty != "measure" and float(lam) == lam0:
                        continue  # the unregularized baseline is shared
                    for seed in seeds(e):
                        changes = {**overlay, "seed": seed, "data.seed": seed,
                                   "data.num_train": int(n), "bound.reg_lambda": float(lam),
                                   "bound.penalty": penalty}
                        run_cfg = sweeps.run_config(exp.main, **changes)
                        weight = float(lam)
                        if penalty != "measure" and match:
                            weight = matched_lambda(run_cfg, penalty, float(lam))
                            run_cfg = sweeps.run_config(run_cfg, **{"bound.reg_lambda": weight})
                        runs.append(sweeps.Run(
                            f"{proc}_n{n}_{penalty}_lam{lam:g}_s{seed}", run_cfg,
                            dict(process=proc, train_size=int(n), penalty=penalty,
                                 reg_lambda=float(lam), weight=weight, seed=seed)))
    return runs


def prepare(exp, directory) -> list:
    runs = make_runs(exp)
    sweeps.check_runs(runs, directory)  # before anything is written
    return runs


class Evaluator:
    """Train/test MSE and tau of a finished run (datasets and models shared between runs)."""

    def __init__(self, checkpoint: str):
        self.checkpoint = checkpoint
        self.datasets = {}

    def _dataset(self, data_cfg):
        from ssm_jax.data import get_dataset

        key = tuple(sorted(data_cfg.items()))
        if key not in self.datasets:
            self.datasets[key] = get_dataset(data_cfg)
        return self.datasets[key]

    def __call__(self, run, workdir, report) -> dict:
        from ssm_jax.training.loop import build_model, evaluate_model, init_batch

        cfg = run.cfg
        ds = self._dataset(cfg.data)
        model = build_model(cfg.model, ds.info)  # hashable: its jitted functions are reused
        step = report["num_steps"] if self.checkpoint == "last" else report["best_step"]
        variables = load_variables(workdir, step, self.checkpoint)
        bs = cfg.train.eval_batch_size
        train = evaluate_model(model, variables, ds.train, bs)["loss"]
        test = evaluate_model(model, variables, ds.test, bs)["loss"]
        batch = init_batch(ds.train, len(ds.train), cfg.seed)
        from ssm_jax.bound import resolve_readout

        tau = sweeps.total_tau(model, variables, batch, cfg.bound.measure,
                               readout=resolve_readout(cfg.bound.readout, cfg.model.pooling))
        return dict(step=step, train_mse=train, test_mse=test, gap=test - train, tau=tau)


def aggregate(exp, rows: list) -> tuple:
    """Per (process, size, penalty, lambda) mean/std over seeds with the paired gap change to
    lambda = 0 and, for penalties, to the regularizer at the same lambda; Spearman(tau, gap)
    per (process, size) over the regularizer's runs."""
    e = exp.settings
    flat = [{**r["meta"], **r["result"], "run_id": r["run_id"]} for r in rows]
    table, corr = [], []
    lam0 = float(min(e.lambdas))
    nan = float("nan")
    for proc in process_names(e):
        for n in e.train_sizes:
            runs = [f for f in flat if (f["process"], f["train_size"]) == (proc, n)]
            base = {f["seed"]: f["gap"] for f in runs if f["reg_lambda"] == lam0}
            for penalty in e.penalties:
                for lam in e.lambdas:
                    if penalty != "measure" and float(lam) == lam0:
                        continue
                    group = [f for f in runs if (f["penalty"], f["reg_lambda"]) == (penalty, float(lam))]
                    row = dict(process=proc, train_size=n, penalty=penalty, reg_lambda=float(lam),
                               weight=float(np.mean([f["weight"] for f in group])) if group else nan,
                               seeds=len(group))
                    for m in METRICS:
                        row[m], row[f"{m}_std"] = tables.mean_std([f[m] for f in group])
                    # paired over seeds (same data and init): change of the gap vs lambda = 0
                    diffs = [f["gap"] - base[f["seed"]] for f in group if f["seed"] in base]
                    row["gap_diff"], row["gap_diff_std"] = tables.mean_std(diffs)
                    _, row["gap_diff_low"], row["gap_diff_high"] = tables.t_interval(diffs, e.confidence)
                    # regularizer minus this penalty at the same lambda (paired over seeds)
                    reg = {f["seed"]: f["gap"] for f in runs
                           if (f["penalty"], f["reg_lambda"]) == ("measure", float(lam))}
                    vs = [reg[f["seed"]] - f["gap"] for f in group if f["seed"] in reg]
                    if penalty == "measure":
                        vs = []
                    row["reg_minus_pen"], _ = tables.mean_std(vs) if vs else (nan, nan)
                    _, row["reg_minus_pen_low"], row["reg_minus_pen_high"] = (
                        tables.t_interval(vs, e.confidence) if vs else (nan, nan, nan))
                    table.append(row)
            group = [f for f in runs if f["penalty"] == "measure"]
            rho, p = tables.spearman([f["tau"] for f in group], [f["gap"] for f in group])
            corr.append(dict(process=proc, train_size=n, runs=len(group), spearman=rho, p_value=p))
    return flat, table, corr


def plot(exp, flat, table, corr, path) -> str:
    """Per process: gap vs lambda per penalty and size; gap vs tau of the regularizer's runs."""
    e = exp.settings
    plt = figures.pyplot()
    procs = process_names(e)
    fig, axes = plt.subplots(2, len(procs), figsize=(4.6 * len(procs), 7.6), squeeze=False)
    x = np.arange(len(e.lambdas))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, proc in enumerate(procs):
        ax = axes[0][j]
        for i, (n, penalty) in enumerate((n, p) for n in e.train_sizes for p in e.penalties):
            rows = {r["reg_lambda"]: r for r in table
                    if (r["process"], r["train_size"], r["penalty"]) == (proc, n, penalty)}
            base = next(r for r in table if (r["process"], r["train_size"], r["penalty"],
                                             r["reg_lambda"]) == (proc, n, "measure", min(e.lambdas)))
            pts = [rows.get(float(lam), base if float(lam) == min(e.lambdas) else None) for lam in e.lambdas]
            xs = [k for k, r in enumerate(pts) if r is not None]
            ax.errorbar(np.array(xs) + 0.03 * i, [pts[k]["gap"] for k in xs],
                        yerr=[pts[k]["gap_std"] for k in xs], fmt="-o", ms=3, capsize=2,
                        color=colors[i % len(colors)], label=f"n={n} {penalty}")
        ax.set_xticks(x)
        ax.set_xticklabels([f"{lam:g}" for lam in e.lambdas])
        ax.set_xlabel("lambda (penalties: matched to the regularizer at init)")
        ax.set_ylabel("gap = test MSE - train MSE")
        ax.set_title(f"{proc}: gap (mean ± std over seeds)", fontsize=9)
        ax.legend(fontsize=6)
        ax = axes[1][j]
        for i, n in enumerate(e.train_sizes):
            pts = [f for f in flat if (f["process"], f["train_size"], f["penalty"]) == (proc, n, "measure")]
            c = next(c for c in corr if (c["process"], c["train_size"]) == (proc, n))
            ax.scatter([f["tau"] for f in pts], [f["gap"] for f in pts], s=14,
                       color=colors[i % len(colors)],
                       label=f"n={n}: rho {c['spearman']:.2f} (p {c['p_value']:.2g})")
        ax.set_xscale("log")
        ax.set_xlabel("tau at the end of training")
        ax.set_ylabel("gap")
        ax.set_title(f"{proc}: gap vs tau (regularizer runs)", fontsize=9)
        ax.legend(fontsize=6)
        for a in axes[:, j]:
            a.grid(alpha=0.3)
    fig.suptitle("Synthetic regression, 1-layer S4D: generalization gap vs lambda and tau")
    return figures.save(fig, path)


def write(exp, directory, rows, elapsed) -> tuple:
    e = exp.settings
    flat, table, corr = aggregate(exp, rows)
    cols = ["process", "train_size", "penalty", "reg_lambda", "weight", "seeds"]
    cols += [f"{m}{s}" for m in METRICS + ("gap_diff",) for s in ("", "_std")]
    cols += ["gap_diff_low", "gap_diff_high", "reg_minus_pen", "reg_minus_pen_low",
             "reg_minus_pen_high"]
    tables.write_csv(os.path.join(directory, "table.csv"), table, cols)
    tables.write_csv(os.path.join(directory, "runs.csv"), flat,
                     ["run_id", "process", "train_size", "penalty", "reg_lambda", "weight", "seed",
                      "step"] + list(METRICS))
    tables.write_csv(os.path.join(directory, "correlation.csv"), corr,
                     ["process", "train_size", "runs", "spearman", "p_value"])
    png = plot(exp, flat, table, corr, os.path.join(directory, "gen_gap.png"))

    def ci(r, key):
        if not np.isfinite(r[key]):
            return "-"
        return f"{r[key]:+.3g} [{r[key + '_low']:+.3g}, {r[key + '_high']:+.3g}]"

    md_rows = [dict(process=r["process"], train_size=r["train_size"], penalty=r["penalty"],
                    reg_lambda=f"{r['reg_lambda']:g}", weight=f"{r['weight']:.3g}",
                    **{m: tables.pm(r[m], r[f"{m}_std"]) for m in METRICS},
                    gap_diff=ci(r, "gap_diff"), reg_minus_pen=ci(r, "reg_minus_pen"))
               for r in table]
    base = exp.main
    specs = dict(e.process_specs or {})
    sections = [
        f"# Generalization gap vs regularizer ({e.name})",
        f"`synthetic_regression` (L={base.data['seq_len']}, noise {base.data['noise']}), "
        f"1-layer S4D regression (d_model {base.model.d_model}, d_state "
        f"{base.model.ssm.d_state}), {base.train.num_steps} steps; mean ± std over "
        f"{e.num_seeds} seeds (each seed: new data and init). Numbers at the {e.checkpoint} "
        "checkpoint; train MSE on the whole training set, test MSE on "
        f"{base.data['num_test']} test sequences; tau = sum over layers of mean tau (paper "
        "measure, the model's read-out) on the training set. `weight` = the weight actually "
        "used (penalties: matched so that their term equals lambda x regularizer at init). "
        f"Intervals: {e.confidence:.0%} t-intervals over seeds (paired).",
        "Processes: " + "; ".join(f"`{p}` = {dict(specs.get(p, {}))}" for p in process_names(e)),
        tables.markdown_table(md_rows, ["process", "train_size", "penalty", "reg_lambda", "weight"]
                              + list(METRICS) + ["gap_diff", "reg_minus_pen"],
                              ["process", "n", "penalty", "lambda", "weight", "train MSE", "test MSE",
                               "gap", "tau", f"Δ gap vs lambda={min(e.lambdas):g}",
                               "gap(reg) - gap(penalty)"]),
        "## Rank correlation between tau and the gap (Spearman, scipy), regularizer runs",
        tables.markdown_table(corr, ["process", "train_size", "runs", "spearman", "p_value"]),
        f"{sweeps.timing_note(rows, elapsed)} Figure: `{os.path.basename(png)}`.",
    ]
    tables.write_markdown(os.path.join(directory, "table.md"), sections)
    return table, corr


def execute(exp, directory, runs, bar) -> dict:
    start = time.perf_counter()
    rows = sweeps.run_sweep(runs, directory, Evaluator(exp.settings.checkpoint), "gen_gap", bar,
                            vectorize=exp.settings.vectorize, max_members=exp.settings.max_members)
    table, corr = write(exp, directory, rows, time.perf_counter() - start)
    return {"table": table, "correlation": corr}


def claims(exp, summary) -> list:
    """The regularizer lowers the gap; more than data-independent penalties at matched
    strength; tau tracks the gap (within a process and training-set size)."""
    e = exp.settings
    lam0, lam1 = min(e.lambdas), max(e.lambdas)
    evidence = ("table.md", "correlation.csv", "gen_gap.png")
    find = lambda proc, n, pen: next(r for r in summary["table"] if
                                     (r["process"], r["train_size"], r["penalty"], r["reg_lambda"])
                                     == (proc, n, pen, lam1))
    parts, verdicts = [], []
    for proc in process_names(e):
        for n in e.train_sizes:
            row = find(proc, n, "measure")
            # the claimed effect is a lower gap: the verdict reads the interval of minus the change
            verdicts.append(interval_verdict(-row["gap_diff_high"], -row["gap_diff_low"]))
            parts.append(f"{proc} n={n}: gap {row['gap'] - row['gap_diff']:.3g} -> {row['gap']:.3g}, "
                         f"paired {row['gap_diff']:+.3g} [{row['gap_diff_low']:+.3g}, "
                         f"{row['gap_diff_high']:+.3g}]")
    out = [Claim(PAPER, e.name, "The regularizer (9) reduces the generalization gap",
                 NO_NUMBER, f"lambda {lam0:g} -> {lam1:g}: " + "; ".join(parts),
                 all_verdict(verdicts),
                 f"per process and training-set size, the {e.confidence:.0%} t-interval over "
                 f"{e.num_seeds} seeds of the paired gap change must lie below 0 (above 0: not "
                 "reproduced)", evidence)]
    for penalty in e.penalties[1:]:
        parts, verdicts = [], []
        for proc in process_names(e):
            for n in e.train_sizes:
                row = find(proc, n, penalty)
                verdicts.append(interval_verdict(-row["reg_minus_pen_high"], -row["reg_minus_pen_low"]))
                parts.append(f"{proc} n={n}: {row['reg_minus_pen']:+.3g} "
                             f"[{row['reg_minus_pen_low']:+.3g}, {row['reg_minus_pen_high']:+.3g}]")
        out.append(Claim(
            PAPER, e.name, f"The data-dependent regularizer (9) lowers the gap more than the "
            f"data-independent {penalty} penalty at matched strength", NO_NUMBER,
            f"gap(reg) - gap({penalty}) at lambda {lam1:g}: " + "; ".join(parts),
            all_verdict(verdicts),
            f"per process and size, the {e.confidence:.0%} t-interval of the paired difference "
            "must lie below 0 (above 0: not reproduced)", evidence))
    parts, verdicts = [], []
    for c in summary["correlation"]:
        rho, p = c["spearman"], c["p_value"]
        verdicts.append(threshold_verdict(
            rho, lambda r: r > 0 and p < e.alpha, lambda r: r < 0 and p < e.alpha))
        parts.append(f"{c['process']} n={c['train_size']}: rho {rho:.2f} (p {p:.2g}, {c['runs']} runs)")
    out.append(Claim(PAPER, e.name, "The measure tau tracks the generalization gap", NO_NUMBER,
                     "; ".join(parts), all_verdict(verdicts),
                     f"Spearman rho between tau and the gap over the regularizer's runs (lambdas x "
                     f"seeds) of each process and size: > 0 with p < {e.alpha:g} (< 0 with p < "
                     f"{e.alpha:g}: not reproduced)", evidence))
    return out


def main(argv=None) -> int:
    return runner.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
