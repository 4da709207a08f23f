"""Paper 1, experiment 2: generalization gap vs the regularizer (9) on synthetic regression,
and the rank correlation between the measure tau and the gap.

    python -m experiments.paper1.gen_gap --config configs/paper1/gen_gap.py[:cpu]

Sweep (``configs/paper1/gen_gap.py``): ``bound.reg_lambda`` x training-set size x seed, one
training run each in ``runs/n<size>_lam<lambda>_s<seed>/`` (skipped when finished). For each
run, at the parameters of ``experiment.checkpoint`` ("last" = final, default):

* train MSE on the whole training set and test MSE on the test split (evaluation mode),
  gap = test - train;
* tau = sum over SSM layers of the mean over channels of the paper's measure, on the whole
  training set (``layer_measures``).

Writes ``table.csv`` / ``table.md`` (mean ± std over seeds per size and lambda, and the
Spearman rank correlation between tau and the gap over all runs), ``runs.csv``,
``gen_gap.png`` and ``config.json`` to ``results/paper1/<experiment.name>/``.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from experiments import common
from ssm_jax.training.checkpoint import load_variables

METRICS = ("train_mse", "test_mse", "gap", "tau")


def check_experiment(e) -> None:
    if not e.lambdas or min(e.lambdas) < 0:
        raise common.ConfigError(f"experiment.lambdas must be >= 0, got {e.lambdas}")
    if not e.train_sizes or min(e.train_sizes) < 2:
        raise common.ConfigError(f"experiment.train_sizes must be >= 2, got {e.train_sizes}")
    if e.checkpoint not in ("last", "best"):
        raise common.ConfigError(f"experiment.checkpoint must be 'last' or 'best', got {e.checkpoint!r}")
    if e.num_seeds < 1:
        raise common.ConfigError(f"experiment.num_seeds must be >= 1, got {e.num_seeds}")


def make_runs(cfg) -> list:
    base = common.trainer_configs(cfg)["main"]
    runs = []
    for n in cfg.experiment.train_sizes:
        for lam in cfg.experiment.lambdas:
            for seed in common.seeds(cfg):
                run_cfg = common.run_config(base, **{
                    "seed": seed, "data.seed": seed, "data.num_train": int(n),
                    "bound.reg_lambda": float(lam)})
                runs.append(common.Run(f"n{n}_lam{lam:g}_s{seed}", run_cfg,
                                       dict(train_size=int(n), reg_lambda=float(lam), seed=seed)))
    return runs


class Evaluator:
    """Train/test MSE and tau of a finished run (datasets and models shared between runs)."""

    def __init__(self, checkpoint: str):
        self.checkpoint = checkpoint
        self.datasets, self.models = {}, {}

    def _dataset(self, data_cfg):
        from ssm_jax.data import get_dataset

        key = json.dumps(data_cfg.to_dict(), sort_keys=True)
        if key not in self.datasets:
            self.datasets[key] = get_dataset(data_cfg)
        return self.datasets[key]

    def _model(self, model_cfg, info):
        from ssm_jax.training.loop import build_model

        key = json.dumps(model_cfg.to_dict(), sort_keys=True)
        if key not in self.models:
            self.models[key] = build_model(model_cfg, info)
        return self.models[key]

    def __call__(self, run, workdir, report) -> dict:
        cfg = run.cfg
        ds = self._dataset(cfg.data)
        model = self._model(cfg.model, ds.info)
        step = report["num_steps"] if self.checkpoint == "last" else report["best_step"]
        variables = load_variables(workdir, step, self.checkpoint)
        bs = cfg.train.eval_batch_size
        train = common.evaluate_split(model, variables, ds.train, bs)["loss"]
        test = common.evaluate_split(model, variables, ds.test, bs)["loss"]
        batch = common.first_examples(ds.train, len(ds.train), cfg.seed)
        tau = common.total_tau(model, variables, batch, cfg.bound.measure)
        return dict(step=step, train_mse=train, test_mse=test, gap=test - train, tau=tau)


def spearman(x, y) -> tuple:
    """Spearman rank correlation and its two-sided p-value (scipy); NaN with < 3 points."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan"), float("nan")
    res = spearmanr(x[ok], y[ok])
    return float(res.statistic), float(res.pvalue)


def aggregate(cfg, rows: list) -> tuple:
    """Per (size, lambda) mean/std over seeds; Spearman(tau, gap) overall and per size."""
    e = cfg.experiment
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
                row[m], row[f"{m}_std"] = common.mean_std([f[m] for f in group])
            # paired over seeds (same data and init): gap minus the gap at the smallest lambda
            row["gap_diff"], row["gap_diff_std"] = common.mean_std(
                [f["gap"] - base[f["seed"]] for f in group if f["seed"] in base])
            table.append(row)
    corr = [dict(runs="all", n=len(flat), **dict(zip(("spearman", "p_value"),
                                                     spearman([f["tau"] for f in flat],
                                                              [f["gap"] for f in flat]))))]
    for n in e.train_sizes:
        group = [f for f in flat if f["train_size"] == n]
        rho, p = spearman([f["tau"] for f in group], [f["gap"] for f in group])
        corr.append(dict(runs=f"train_size={n}", n=len(group), spearman=rho, p_value=p))
    return flat, table, corr


def plot(cfg, flat, table, corr, path) -> str:
    e = cfg.experiment
    plt = common.pyplot()
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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write(cfg, directory, rows, elapsed) -> None:
    e = cfg.experiment
    flat, table, corr = aggregate(cfg, rows)
    cols = ["train_size", "reg_lambda", "seeds"] + [f"{m}{s}" for m in METRICS + ("gap_diff",)
                                                    for s in ("", "_std")]
    common.write_csv(os.path.join(directory, "table.csv"), table, cols)
    common.write_csv(os.path.join(directory, "runs.csv"), flat,
                     ["run_id", "train_size", "reg_lambda", "seed", "step"] + list(METRICS))
    common.write_csv(os.path.join(directory, "correlation.csv"), corr,
                     ["runs", "n", "spearman", "p_value"])
    png = plot(cfg, flat, table, corr, os.path.join(directory, "gen_gap.png"))
    md_rows = [dict(train_size=r["train_size"], reg_lambda=f"{r['reg_lambda']:g}",
                    **{m: common.pm(r[m], r[f"{m}_std"]) for m in METRICS + ("gap_diff",)})
               for r in table]
    base = common.trainer_configs(cfg)["main"]
    sections = [
        f"# Generalization gap vs regularizer ({e.name})",
        f"`synthetic_regression` ({base.data.process}, L={base.data.seq_len}, noise "
        f"{base.data.noise}), 1-layer S4D regression (d_model {base.model.d_model}, d_state "
        f"{base.model.ssm.d_state}), {base.train.num_steps} steps; mean ± std over "
        f"{e.num_seeds} seeds (each seed: new data and init). Numbers at the {e.checkpoint} "
        "checkpoint; train MSE on the whole training set, test MSE on "
        f"{base.data.num_test} test sequences; tau = sum over layers of mean tau (paper "
        "measure) on the training set.",
        common.markdown_table(md_rows, ["train_size", "reg_lambda"] + list(METRICS) + ["gap_diff"],
                              ["train size", "lambda", "train MSE", "test MSE", "gap", "tau",
                               f"Δ gap vs lambda={min(e.lambdas):g} (paired)"]),
        "## Rank correlation between tau and the gap (Spearman, scipy)",
        common.markdown_table(corr, ["runs", "n", "spearman", "p_value"]),
        f"{common.timing_note(rows, elapsed)} Figure: `{os.path.basename(png)}`.",
    ]
    common.write_markdown(os.path.join(directory, "table.md"), sections)


def main(argv=None) -> None:
    args, overrides = common.parse_args("gen_gap", argv, __doc__.splitlines()[0])
    cfg = common.load_experiment_config(args.config, overrides)
    check_experiment(cfg.experiment)
    directory = common.out_dir(args, cfg)
    runs = make_runs(cfg)
    common.check_runs(runs, directory)  # before anything is written
    common.save_config(cfg, directory)
    common.enable_compilation_cache()
    start = time.perf_counter()
    rows = common.run_sweep(runs, directory, Evaluator(cfg.experiment.checkpoint), desc="gen_gap")
    write(cfg, directory, rows, time.perf_counter() - start)
    print(f"wrote {directory}/table.md, table.csv, runs.csv, correlation.csv, gen_gap.png")
    with open(os.path.join(directory, "table.md")) as f:
        print(f.read())


if __name__ == "__main__":
    raise SystemExit(common.main_guard(main))
