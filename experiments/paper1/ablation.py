"""Paper 1, experiment 3: four-way ablation of the init scaling rule (8) and the regularizer (9).

    python -m experiments.paper1.ablation --config configs/paper1/ablation.py[:cpu|:quick|:paper|...]

Variants: ``none`` = w/o (8),(9); ``scale`` = w/ (8) (``bound.init_scaling``); ``reg`` = w/ (9)
(``bound.reg_lambda = experiment.reg_lambda``); ``both`` = w/ (8),(9). One training run per
task x variant x seed in ``runs/<task>_<variant>_s<seed>/`` (skipped when finished). The seed
sets the initialization and the batch order; the data split is the same for every run, so
variants are compared seed by seed (paired differences).

Per run, at the best-validation checkpoint (the one the trainer reports the test metrics of):
test accuracy (the trainer's report), train accuracy (whole training split, or the first
``experiment.train_eval_examples`` of a seeded permutation), tau = sum over SSM layers of the
mean over channels of the paper's measure on ``experiment.tau_batch_size`` training examples.

Every task's data is loaded before any training: missing LRA / tfds data stops the command
with the data registry's message (expected files and how to prepare them).

Writes ``table.csv`` / ``table.md`` (mean ± std over seeds; the paired difference of test
accuracy to the ``none`` variant), ``runs.csv``, ``ablation.png`` and ``config.json`` to
``results/paper1/<experiment.name>/``, and prints ``table.md``.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from experiments import common
from ssm_jax.training.checkpoint import load_variables

LABELS = {"none": "w/o (8),(9)", "scale": "w/ (8)", "reg": "w/ (9)", "both": "w/ (8),(9)"}
METRICS = ("test_accuracy", "train_accuracy", "tau")


def check_experiment(cfg) -> None:
    e = cfg.experiment
    common.check_names("experiment.variants", e.variants, tuple(LABELS))
    common.check_names("experiment.tasks", e.tasks, tuple(cfg.tasks.keys()), "defined")
    if e.reg_lambda <= 0 and any(v in ("reg", "both") for v in e.variants):
        raise common.ConfigError("experiment.reg_lambda must be > 0 for the 'reg'/'both' variants")
    if e.num_seeds < 1 or e.tau_batch_size < 2 or e.train_eval_examples < 0:
        raise common.ConfigError("need experiment.num_seeds >= 1, tau_batch_size >= 2, "
                                 "train_eval_examples >= 0")


def check_data(cfg) -> list:
    """Load every task's dataset before any training; returns the tasks that can run.

    Missing data raises the registry's FileNotFoundError (prefixed with the task name). A
    two-document (retrieval) dataset is skipped with a warning: ``SequenceModel`` reads one
    sequence per example.
    """
    from ssm_jax.data import get_dataset

    runnable = []
    for task in cfg.experiment.tasks:
        try:
            ds = get_dataset(cfg.tasks[task].data)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"task {task!r}: {e}") from None
        if ds.info.num_documents != 1:
            print(f"warning: task {task!r} is skipped: its examples are pairs of documents "
                  "(retrieval), which SequenceModel does not support", file=sys.stderr)
            continue
        runnable.append(task)
    if not runnable:
        raise ValueError(f"no runnable task among {list(cfg.experiment.tasks)}")
    return runnable


def make_runs(cfg, tasks) -> list:
    e = cfg.experiment
    runs = []
    for task in tasks:
        for variant in e.variants:
            for seed in common.seeds(cfg):
                run_cfg = common.run_config(cfg.tasks[task], **{
                    "seed": seed,
                    "bound.init_scaling": variant in ("scale", "both"),
                    "bound.reg_lambda": float(e.reg_lambda) if variant in ("reg", "both") else 0.0})
                runs.append(common.Run(f"{task}_{variant}_s{seed}", run_cfg,
                                       dict(task=task, variant=variant, seed=seed)))
    return runs


class Evaluator:
    """Train accuracy and tau at the best-validation checkpoint of a finished run."""

    def __init__(self, e):
        self.e = e
        self.datasets, self.models = {}, {}

    def __call__(self, run, workdir, report) -> dict:
        from ssm_jax.data import get_dataset
        from ssm_jax.training.loop import build_model

        task, cfg = run.meta["task"], run.cfg
        if task not in self.datasets:
            self.datasets[task] = get_dataset(cfg.data)
            self.models[task] = build_model(cfg.model, self.datasets[task].info)
        ds, model = self.datasets[task], self.models[task]
        step = report["best_step"]
        variables = load_variables(workdir, step, "best")
        train_split = ds.train
        if self.e.train_eval_examples and self.e.train_eval_examples < len(ds.train):
            from ssm_jax.data import Split

            train_split = Split(**common.first_examples(ds.train, self.e.train_eval_examples,
                                                        cfg.seed))
        train = common.evaluate_split(model, variables, train_split, cfg.train.eval_batch_size)
        batch = common.first_examples(ds.train, self.e.tau_batch_size, cfg.seed)
        tau = common.total_tau(model, variables, batch, cfg.bound.measure)
        return dict(step=step, test_accuracy=report["test"].get("accuracy", float("nan")),
                    validation_accuracy=report["validation"].get("accuracy", float("nan")),
                    train_accuracy=train.get("accuracy", float("nan")), train_loss=train["loss"],
                    test_loss=report["test"]["loss"], tau=tau)


def aggregate(cfg, rows, tasks) -> tuple:
    e = cfg.experiment
    flat = [{**r["meta"], **r["result"], "run_id": r["run_id"]} for r in rows]
    table = []
    for task in tasks:
        base = {f["seed"]: f["test_accuracy"] for f in flat
                if f["task"] == task and f["variant"] == "none"}
        for variant in e.variants:
            group = [f for f in flat if f["task"] == task and f["variant"] == variant]
            row = dict(task=task, variant=variant, label=LABELS[variant], seeds=len(group))
            for m in METRICS:
                row[m], row[f"{m}_std"] = common.mean_std([f[m] for f in group])
            diffs = [f["test_accuracy"] - base[f["seed"]] for f in group if f["seed"] in base]
            row["test_diff"], row["test_diff_std"] = (common.mean_std(diffs) if variant != "none"
                                                      else (float("nan"), float("nan")))
            table.append(row)
    return flat, table


def plot(cfg, table, tasks, path) -> str:
    e = cfg.experiment
    plt = common.pyplot()
    fig, axes = plt.subplots(len(tasks), 2, figsize=(10, 3.4 * len(tasks)), squeeze=False)
    x = np.arange(len(e.variants))
    for i, task in enumerate(tasks):
        rows = [r for r in table if r["task"] == task]
        ax = axes[i][0]
        for off, m, label in ((-0.2, "train_accuracy", "train"), (0.2, "test_accuracy", "test")):
            ax.bar(x + off, [r[m] for r in rows], 0.4, yerr=[r[f"{m}_std"] for r in rows],
                   capsize=3, label=label)
        lo = min(min(r["test_accuracy"] - r["test_accuracy_std"] for r in rows),
                 min(r["train_accuracy"] - r["train_accuracy_std"] for r in rows))
        ax.set_ylim(max(0.0, lo - 0.05), 1.0)
        ax.set_ylabel("accuracy")
        ax.set_title(f"{task}: accuracy (mean ± std over {e.num_seeds} seeds)")
        ax.legend(fontsize=8)
        ax = axes[i][1]
        ax.bar(x, [r["tau"] for r in rows], 0.6, yerr=[r["tau_std"] for r in rows], capsize=3,
               color="tab:green")
        ax.set_yscale("log")
        ax.set_ylabel("tau (sum over layers of mean tau)")
        ax.set_title(f"{task}: tau at the reported checkpoint")
        for ax in axes[i]:
            ax.set_xticks(x)
            ax.set_xticklabels([LABELS[v] for v in e.variants])
            ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"Ablation of init scaling (8) and regularizer (9), lambda = {e.reg_lambda:g}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write(cfg, directory, rows, tasks, elapsed) -> str:
    e = cfg.experiment
    flat, table = aggregate(cfg, rows, tasks)
    cols = ["task", "variant", "label", "seeds"] + [f"{m}{s}" for m in METRICS + ("test_diff",)
                                                   for s in ("", "_std")]
    common.write_csv(os.path.join(directory, "table.csv"), table, cols)
    common.write_csv(os.path.join(directory, "runs.csv"), flat,
                     ["run_id", "task", "variant", "seed", "step", "test_accuracy",
                      "validation_accuracy", "train_accuracy", "test_loss", "train_loss", "tau"])
    png = plot(cfg, table, tasks, os.path.join(directory, "ablation.png"))
    md_rows = [dict(task=r["task"], label=r["label"],
                    test=common.pm(100 * r["test_accuracy"], 100 * r["test_accuracy_std"]),
                    diff="-" if r["variant"] == "none" else
                    f"{100 * r['test_diff']:+.2f} ± {100 * r['test_diff_std']:.2f}",
                    train=common.pm(100 * r["train_accuracy"], 100 * r["train_accuracy_std"]),
                    tau=common.pm(r["tau"], r["tau_std"])) for r in table]
    steps = ", ".join(f"{t}: {cfg.tasks[t].train.num_steps}" for t in tasks)
    sections = [
        f"# Ablation of init scaling (8) and regularizer (9) ({e.name})",
        f"Mean ± std over {e.num_seeds} seeds (init and batch order; same data split). Accuracy "
        "in %, at the best-validation checkpoint; `Δ test` = paired difference to w/o (8),(9), "
        f"seed by seed. lambda = {e.reg_lambda:g}; steps: {steps}. tau = sum over layers of "
        f"mean tau (paper measure) on {e.tau_batch_size} training examples.",
        common.markdown_table(md_rows, ["task", "label", "test", "diff", "train", "tau"],
                              ["task", "variant", "test acc", "Δ test vs w/o", "train acc", "tau"]),
    ]
    if len(tasks) > 1:  # the paper's layout: variants x tasks
        wide = []
        for v in e.variants:
            row = {"variant": LABELS[v]}
            for r in table:
                if r["variant"] == v:
                    row[r["task"]] = common.pm(100 * r["test_accuracy"], 100 * r["test_accuracy_std"])
            wide.append(row)
        sections += ["## Test accuracy (%), variants x tasks",
                     common.markdown_table(wide, ["variant"] + list(tasks))]
    skipped = [t for t in e.tasks if t not in tasks]
    if skipped:
        sections.append(f"Not run: {', '.join(skipped)} (two-document retrieval is not supported "
                        "by SequenceModel).")
    sections.append(f"{common.timing_note(rows, elapsed)} Figure: `{os.path.basename(png)}`.")
    return common.write_markdown(os.path.join(directory, "table.md"), sections)


def main(argv=None) -> None:
    args, overrides = common.parse_args("ablation", argv, __doc__.splitlines()[0])
    cfg = common.load_experiment_config(args.config, overrides)
    check_experiment(cfg)
    tasks = check_data(cfg)
    directory = common.out_dir(args, cfg)
    runs = make_runs(cfg, tasks)
    common.check_runs(runs, directory)  # before anything is written
    common.save_config(cfg, directory)
    common.enable_compilation_cache()
    start = time.perf_counter()
    rows = common.run_sweep(runs, directory, Evaluator(cfg.experiment), desc="ablation")
    path = write(cfg, directory, rows, tasks, time.perf_counter() - start)
    print(f"wrote {directory}/table.md, table.csv, runs.csv, ablation.png")
    with open(path) as f:
        print(f.read())


if __name__ == "__main__":
    raise SystemExit(common.main_guard(main))
