"""Paper 1, experiment 2: generalization gap vs the regularizer (9) on synthetic regression,
and the rank correlation between the measure tau and the gap.

    python -m experiments.paper1.gen_gap --config configs/paper1/gen_gap.py[:SCALE]

Sweep (``configs/paper1/gen_gap.py``): ``bound.reg_lambda`` x training-set size x seed, one
training run each in ``runs/n<size>_lam<lambda>_s<seed>/`` (skipped when finished). For each
run, at the parameters of ``experiment.checkpoint`` ("last" = final, default):

* train MSE on the whole training set and test MSE on the test split (evaluation mode),
  gap = test - train;
* tau = sum over SSM layers of the mean over channels of the paper's measure, on the whole
  training set (``layer_measures``).

Writes ``table.csv`` / ``table.md`` (mean ± std over seeds per size and lambda, and the
Spearman rank correlation between tau and the gap over all runs and per training-set size),
``runs.csv``, ``correlation.csv``, ``gen_gap.png`` and ``config.json`` to
``results/paper1/<experiment.name>/``.

Claims: the regularizer lowers the gap (paired difference between the largest lambda and
lambda = 0, t-interval over seeds, per training-set size); tau tracks the gap (Spearman rank
correlation within each training-set size, not pooled across sizes).
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
    train_sizes: tuple = option((256,), "training-set sizes", item_kind=int, minimum=2)
    first_seed: int = option(0, "first seed (init, batch order and data)", minimum=0)
    num_seeds: int = option(3, "seeds per setting", positive=True)
    checkpoint: str = option("last", "parameters evaluated", choices=("last", "best"))
    confidence: float = option(0.95, "level of the paired-difference intervals", minimum=0.0,
                               maximum=1.0, exclusive_minimum=True, exclusive_maximum=True)
    alpha: float = option(0.05, "significance level of the rank correlation", minimum=0.0,
                          maximum=1.0, exclusive_minimum=True, exclusive_maximum=True)

    def check(self, prefix=""):
        from ssm_jax.options import require

        require(len(self.lambdas) >= 2, prefix + "lambdas", "needs at least two values")


def make_runs(exp) -> list:
    e, runs = exp.settings, []
    for n in e.train_sizes:
        for lam in e.lambdas:
            for seed in seeds(e):
                run_cfg = sweeps.run_config(exp.main, **{
                    "seed": seed, "data.seed": seed, "data.num_train": int(n),
                    "bound.reg_lambda": float(lam)})
                runs.append(sweeps.Run(f"n{n}_lam{lam:g}_s{seed}", run_cfg,
                                       dict(train_size=int(n), reg_lambda=float(lam), seed=seed)))
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
        tau = sweeps.total_tau(model, variables, batch, cfg.bound.measure)
        return dict(step=step, train_mse=train, test_mse=test, gap=test - train, tau=tau)


def aggregate(exp, rows: list) -> tuple:
    """Per (size, lambda) mean/std over seeds; Spearman(tau, gap) overall and per size."""
    e = exp.settings
    flat = [{**r["meta"], **r["result"], "run_id": r["run_id"]} for r in rows]
    table = []
    lam0 = float(min(e.lambdas))
    for n in e.train_sizes:
        base = {f["seed"]: f["gap"] for f in flat
                if f["train_size"] == n and f["reg_lambda"] == lam0}
        for lam in e.lambdas:
            group = [f for f in flat if f["train_size"] == n and f["reg_lambda"] == float(lam)]
            row = dict(train_size=n, reg_lambda=float(lam), seeds=len(group))
            for m in METRICS:
                row[m], row[f"{m}_std"] = tables.mean_std([f[m] for f in group])
            # paired over seeds (same data and init): gap minus the gap at the smallest lambda
            diffs = [f["gap"] - base[f["seed"]] for f in group if f["seed"] in base]
            row["gap_diff"], row["gap_diff_std"] = tables.mean_std(diffs)
            _, row["gap_diff_low"], row["gap_diff_high"] = tables.t_interval(diffs, e.confidence)
            table.append(row)
    corr = [dict(runs="all", n=len(flat), **dict(zip(("spearman", "p_value"),
                                                     tables.spearman([f["tau"] for f in flat],
                                                              [f["gap"] for f in flat]))))]
    for n in e.train_sizes:
        group = [f for f in flat if f["train_size"] == n]
        rho, p = tables.spearman([f["tau"] for f in group], [f["gap"] for f in group])
        corr.append(dict(runs=f"train_size={n}", n=len(group), spearman=rho, p_value=p))
    return flat, table, corr


def plot(exp, flat, table, corr, path) -> str:
    e = exp.settings
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    x = np.arange(len(e.lambdas))
    labels = [f"{lam:g}" for lam in e.lambdas]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, n in enumerate(e.train_sizes):
        rows = [r for r in table if r["train_size"] == n]
        c = colors[i % len(colors)]
        for m, style in (("train_mse", "--"), ("test_mse", "-")):
            axes[0].errorbar(x, [r[m] for r in rows], yerr=[r[f"{m}_std"] for r in rows],
                             fmt=style + "o", color=c, capsize=3, ms=4,
                             label=f"n={n} {m.split('_')[0]}")
        axes[1].errorbar(x + 0.04 * i, [r["gap"] for r in rows], yerr=[r["gap_std"] for r in rows],
                         fmt="-o", color=c, capsize=3, ms=4, label=f"n={n}")
        pts = [f for f in flat if f["train_size"] == n]
        axes[2].scatter([f["tau"] for f in pts], [f["gap"] for f in pts], color=c, s=18,
                        label=f"n={n}")
    for ax in axes[:2]:
        ax.set_xticks(x)
        ax.set_xticklabels(labels)
        ax.set_xlabel("regularizer weight lambda")
    axes[0].set_ylabel("MSE")
    axes[0].set_yscale("log")
    axes[0].set_title("train (dashed) and test (solid) MSE")
    axes[1].set_ylabel("gap = test MSE - train MSE")
    axes[1].set_title(f"generalization gap (mean ± std over {e.num_seeds} seeds)")
    axes[2].set_xscale("log")
    axes[2].set_xlabel("tau at the end of training (sum over layers of mean tau)")
    axes[2].set_ylabel("gap")
    axes[2].set_title("gap vs tau, one point per run")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    overall = corr[0]
    fig.suptitle(f"Synthetic regression, 1-layer S4D: Spearman(tau, gap) = "
                 f"{overall['spearman']:.2f} (p = {overall['p_value']:.2g}, {overall['n']} runs)")
    return figures.save(fig, path)


def write(exp, directory, rows, elapsed) -> tuple:
    e = exp.settings
    flat, table, corr = aggregate(exp, rows)
    cols = ["train_size", "reg_lambda", "seeds"] + [f"{m}{s}" for m in METRICS + ("gap_diff",)
                                                    for s in ("", "_std")]
    cols += ["gap_diff_low", "gap_diff_high"]
    tables.write_csv(os.path.join(directory, "table.csv"), table, cols)
    tables.write_csv(os.path.join(directory, "runs.csv"), flat,
                     ["run_id", "train_size", "reg_lambda", "seed", "step"] + list(METRICS))
    tables.write_csv(os.path.join(directory, "correlation.csv"), corr,
                     ["runs", "n", "spearman", "p_value"])
    png = plot(exp, flat, table, corr, os.path.join(directory, "gen_gap.png"))
    md_rows = [dict(train_size=r["train_size"], reg_lambda=f"{r['reg_lambda']:g}",
                    **{m: tables.pm(r[m], r[f"{m}_std"]) for m in METRICS + ("gap_diff",)})
               for r in table]
    base = exp.main
    sections = [
        f"# Generalization gap vs regularizer ({e.name})",
        f"`synthetic_regression` ({base.data['process']}, L={base.data['seq_len']}, noise "
        f"{base.data['noise']}), 1-layer S4D regression (d_model {base.model.d_model}, d_state "
        f"{base.model.ssm.d_state}), {base.train.num_steps} steps; mean ± std over "
        f"{e.num_seeds} seeds (each seed: new data and init). Numbers at the {e.checkpoint} "
        "checkpoint; train MSE on the whole training set, test MSE on "
        f"{base.data['num_test']} test sequences; tau = sum over layers of mean tau (paper "
        "measure) on the training set.",
        tables.markdown_table(md_rows, ["train_size", "reg_lambda"] + list(METRICS) + ["gap_diff"],
                              ["train size", "lambda", "train MSE", "test MSE", "gap", "tau",
                               f"Δ gap vs lambda={min(e.lambdas):g} (paired)"]),
        "## Rank correlation between tau and the gap (Spearman, scipy)",
        tables.markdown_table(corr, ["runs", "n", "spearman", "p_value"]),
        f"{sweeps.timing_note(rows, elapsed)} Figure: `{os.path.basename(png)}`.",
    ]
    tables.write_markdown(os.path.join(directory, "table.md"), sections)
    return table, corr


def execute(exp, directory, runs, bar) -> dict:
    start = time.perf_counter()
    rows = sweeps.run_sweep(runs, directory, Evaluator(exp.settings.checkpoint), "gen_gap", bar)
    table, corr = write(exp, directory, rows, time.perf_counter() - start)
    return {"table": table, "correlation": corr}


def claims(exp, summary) -> list:
    """The regularizer lowers the gap; tau tracks the gap (within a training-set size)."""
    e = exp.settings
    lam0, lam1 = min(e.lambdas), max(e.lambdas)
    evidence = ("table.md", "correlation.csv", "gen_gap.png")
    parts, verdicts = [], []
    for n in e.train_sizes:
        row = next(r for r in summary["table"] if r["train_size"] == n and r["reg_lambda"] == lam1)
        # the claimed effect is a lower gap: the verdict reads the interval of minus the change
        verdicts.append(interval_verdict(-row["gap_diff_high"], -row["gap_diff_low"]))
        parts.append(f"n={n}: gap {row['gap'] - row['gap_diff']:.3g} -> {row['gap']:.3g}, paired "
                     f"change {row['gap_diff']:+.3g} [{row['gap_diff_low']:+.3g}, "
                     f"{row['gap_diff_high']:+.3g}]")
    out = [Claim(PAPER, e.name, "The regularizer (9) reduces the generalization gap",
                 NO_NUMBER, f"lambda {lam0:g} -> {lam1:g}: " + "; ".join(parts),
                 all_verdict(verdicts),
                 f"per training-set size, the {e.confidence:.0%} t-interval over "
                 f"{e.num_seeds} seeds of the paired gap change must lie below 0 (above 0: not "
                 "reproduced)", evidence)]
    parts, verdicts = [], []
    for c in summary["correlation"][1:]:
        rho, p = c["spearman"], c["p_value"]
        verdicts.append(threshold_verdict(
            rho, lambda r: r > 0 and p < e.alpha, lambda r: r < 0 and p < e.alpha))
        parts.append(f"{c['runs']}: rho {rho:.2f} (p {p:.2g}, {c['n']} runs)")
    out.append(Claim(PAPER, e.name, "The measure tau tracks the generalization gap", NO_NUMBER,
                     "; ".join(parts), all_verdict(verdicts),
                     f"Spearman rho between tau and the gap over the runs of each training-set "
                     f"size: > 0 with p < {e.alpha:g} (< 0 with p < {e.alpha:g}: not reproduced)",
                     evidence))
    return out


def main(argv=None) -> int:
    return runner.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
