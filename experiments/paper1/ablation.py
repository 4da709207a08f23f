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
accuracy to the ``none`` variant with its t-interval), ``runs.csv``, ``ablation.png`` and
``config.json`` to ``results/paper1/<experiment.name>/``, and prints ``table.md``.

Claims: each of (8), (9) and both improves test accuracy over w/o (paired difference over
seeds; its t-interval decides), per task. For the LRA tasks the paper's numbers are the
published S4D ones and "Reg. S4D" (w/ (8),(9)) as quoted by a later paper.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import numpy as np

from experiments import figures, runner, sweeps, tables
from experiments.claims import NO_NUMBER, Claim, paired_effect
from ssm_jax.options import OptionError, option
from ssm_jax.training.checkpoint import load_variables

PAPER = 1
NAME = "ablation"
ORDER = 3
LABELS = {"none": "w/o (8),(9)", "scale": "w/ (8)", "reg": "w/ (9)", "both": "w/ (8),(9)"}
METRICS = ("test_accuracy", "train_accuracy", "tau", "test_accuracy_last", "train_accuracy_last")
# LRA test accuracy (%): S4D as published (S4D-LegS) and "Reg. S4D" (w/ (8),(9)) as quoted by
# a later paper; the paper's own table is not available.
LRA_PAPER = {"listops": (60.47, 61.48), "imdb": (86.18, 88.19), "aan": (89.46, 91.25),
             "cifar10": (88.19, 88.12), "pathfinder": (93.06, 94.93), "pathx": (91.95, 95.63)}


@dataclasses.dataclass(frozen=True)
class Settings:
    name: str = option("ablation", "results folder name")
    tasks: tuple = option((), "tasks to run (keys of the config's tasks)", item_kind=str)
    variants: tuple = option(tuple(LABELS), "variants: none = w/o, scale = w/ (8), reg = w/ (9), "
                             "both", item_kind=str, choices=tuple(LABELS))
    reg_lambda: float = option(1e-2, "regularizer weight of the 'reg' and 'both' variants",
                               positive=True)
    first_seed: int = option(0, "first seed (init and batch order)", minimum=0)
    num_seeds: int = option(3, "seeds per variant", positive=True)
    task_seeds: tuple = option((), "per-task seed counts 'task=n' (other tasks: num_seeds)",
                               item_kind=str)
    vectorize: bool = option(True, "train the runs that differ only in seed, lambda or init rule "
                             "together, in one vmapped step (ssm_jax.training.vectorized)")
    max_members: int = option(0, "largest vectorized group (0: no limit)", minimum=0)
    train_eval_examples: int = option(0, "training examples for train accuracy (0 = all)",
                                      minimum=0)
    tau_batch_size: int = option(256, "training examples tau is measured on", minimum=2)
    confidence: float = option(0.95, "level of the paired-difference intervals", minimum=0.0,
                               maximum=1.0, exclusive_minimum=True, exclusive_maximum=True)
    margin: float = option(0.01, "smallest effect of interest on test accuracy (0.01 = 1 point): "
                           "the equivalence margin of the 'no effect' test", positive=True)


def task_seeds(e, task) -> list:
    """Seeds of one task: ``first_seed ...`` (``task_seeds`` entry, else ``num_seeds``)."""
    counts = dict(item.split("=", 1) for item in e.task_seeds)
    return [e.first_seed + i for i in range(int(counts.get(task, e.num_seeds)))]


def check_experiment(exp) -> None:
    for item in exp.settings.task_seeds:
        name, _, count = item.partition("=")
        if name not in exp.tasks or not count.isdigit() or int(count) < 2:
            raise OptionError(f"config key 'experiment.task_seeds': {item!r} must be 'task=n' with "
                              f"a defined task ({', '.join(exp.tasks)}) and n >= 2")
    for task in exp.settings.tasks:
        if task not in exp.tasks:
            raise OptionError(f"config key 'experiment.tasks': unknown task {task!r}; defined: "
                              f"{', '.join(exp.tasks)}")


def check_data(exp) -> list:
    """Load every task's dataset before any training; returns the tasks that can run.

    Missing data raises the registry's FileNotFoundError (prefixed with the task name).
    Two-document (retrieval) datasets run with the shared-encoder ``RetrievalModel``.
    """
    from ssm_jax.data import get_dataset

    runnable = []
    for task in exp.settings.tasks:
        try:
            ds = get_dataset(exp.tasks[task].data)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"task {task!r}: {e}") from None
        runnable.append(task)
    if not runnable:
        raise ValueError(f"no runnable task among {list(exp.settings.tasks)}")
    return runnable


def make_runs(exp, tasks) -> list:
    e = exp.settings
    runs = []
    for task in tasks:
        for variant in e.variants:
            for seed in task_seeds(e, task):
                run_cfg = sweeps.run_config(exp.tasks[task], **{
                    "seed": seed,
                    "bound.init_scaling": variant in ("scale", "both"),
                    "bound.reg_lambda": float(e.reg_lambda) if variant in ("reg", "both") else 0.0})
                runs.append(sweeps.Run(f"{task}_{variant}_s{seed}", run_cfg,
                                       dict(task=task, variant=variant, seed=seed)))
    return runs


def prepare(exp, directory) -> list:
    """Checks (tasks, data present, run directories), then the runs; nothing is written."""
    check_experiment(exp)
    runs = make_runs(exp, check_data(exp))
    sweeps.check_runs(runs, directory)
    return runs


class Evaluator:
    """Train accuracy and tau at the best-validation checkpoint of a finished run."""

    def __init__(self, e):
        self.e = e
        self.datasets, self.models = {}, {}

    def __call__(self, run, workdir, report) -> dict:
        from ssm_jax.data import Split, get_dataset
        from ssm_jax.training.loop import build_model, evaluate_model, init_batch

        task, cfg = run.meta["task"], run.cfg
        if task not in self.datasets:
            self.datasets[task] = get_dataset(cfg.data)
            self.models[task] = build_model(cfg.model, self.datasets[task].info)
        ds, model = self.datasets[task], self.models[task]
        from ssm_jax.bound import resolve_readout

        step = report["best_step"]
        variables = load_variables(workdir, step, "best")
        last = load_variables(workdir, None, "last")
        train_split = ds.train
        if self.e.train_eval_examples and self.e.train_eval_examples < len(ds.train):
            train_split = Split(**init_batch(ds.train, self.e.train_eval_examples, cfg.seed))
        train = evaluate_model(model, variables, train_split, cfg.train.eval_batch_size)
        train_last = evaluate_model(model, last, train_split, cfg.train.eval_batch_size)
        test_last = evaluate_model(model, last, ds.test, cfg.train.eval_batch_size)
        batch = init_batch(ds.train, self.e.tau_batch_size, cfg.seed)
        tau = sweeps.total_tau(model, variables, batch, cfg.bound.measure,
                               readout=resolve_readout(cfg.bound.readout, cfg.model.pooling))
        return dict(step=step, test_accuracy=report["test"].get("accuracy", float("nan")),
                    validation_accuracy=report["validation"].get("accuracy", float("nan")),
                    train_accuracy=train.get("accuracy", float("nan")), train_loss=train["loss"],
                    test_loss=report["test"]["loss"], tau=tau,
                    test_accuracy_last=test_last.get("accuracy", float("nan")),
                    train_accuracy_last=train_last.get("accuracy", float("nan")))


def paired_diffs(flat, task, variant, metric) -> list:
    """``metric`` of ``variant`` minus that of w/o (``none``), seed by seed, on ``task``."""
    base = {f["seed"]: f[metric] for f in flat if f["task"] == task and f["variant"] == "none"}
    return [f[metric] - base[f["seed"]] for f in flat
            if f["task"] == task and f["variant"] == variant and f["seed"] in base]


def aggregate(exp, rows, tasks) -> tuple:
    e = exp.settings
    flat = [{**r["meta"], **r["result"], "run_id": r["run_id"]} for r in rows]
    table = []
    for task in tasks:
        for variant in e.variants:
            group = [f for f in flat if f["task"] == task and f["variant"] == variant]
            row = dict(task=task, variant=variant, label=LABELS[variant], seeds=len(group))
            for m in METRICS:
                row[m], row[f"{m}_std"] = tables.mean_std([f[m] for f in group])
            nan = float("nan")
            for metric, key in (("test_accuracy", "test_diff"), ("test_accuracy_last", "last_diff")):
                diffs = paired_diffs(flat, task, variant, metric)
                row[key], row[f"{key}_std"] = (tables.mean_std(diffs) if variant != "none"
                                               else (nan, nan))
                _, row[f"{key}_low"], row[f"{key}_high"] = (
                    tables.t_interval(diffs, e.confidence) if variant != "none" else (nan, nan, nan))
            table.append(row)
    return flat, table


def plot(exp, table, tasks, path) -> str:
    e = exp.settings
    plt = figures.pyplot()
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
    return figures.save(fig, path)


def write(exp, directory, rows, tasks, elapsed) -> tuple:
    e = exp.settings
    flat, table = aggregate(exp, rows, tasks)
    cols = ["task", "variant", "label", "seeds"] + [f"{m}{s}" for m in METRICS + ("test_diff", "last_diff")
                                                   for s in ("", "_std")]
    cols += ["test_diff_low", "test_diff_high", "last_diff_low", "last_diff_high"]
    tables.write_csv(os.path.join(directory, "table.csv"), table, cols)
    tables.write_csv(os.path.join(directory, "runs.csv"), flat,
                     ["run_id", "task", "variant", "seed", "step", "test_accuracy",
                      "validation_accuracy", "train_accuracy", "test_loss", "train_loss", "tau",
                      "test_accuracy_last", "train_accuracy_last"])
    png = plot(exp, table, tasks, os.path.join(directory, "ablation.png"))
    def diff(r, key):
        if r["variant"] == "none":
            return "-"
        return (f"{100 * r[key]:+.2f} [{100 * r[key + '_low']:+.2f}, "
                f"{100 * r[key + '_high']:+.2f}]")

    md_rows = [dict(task=r["task"], label=r["label"], seeds=r["seeds"],
                    test=tables.pm(100 * r["test_accuracy"], 100 * r["test_accuracy_std"]),
                    diff=diff(r, "test_diff"),
                    train=tables.pm(100 * r["train_accuracy"], 100 * r["train_accuracy_std"]),
                    test_last=tables.pm(100 * r["test_accuracy_last"], 100 * r["test_accuracy_last_std"]),
                    last_diff=diff(r, "last_diff"),
                    train_last=tables.pm(100 * r["train_accuracy_last"], 100 * r["train_accuracy_last_std"]),
                    tau=tables.pm(r["tau"], r["tau_std"])) for r in table]
    steps = ", ".join(f"{t}: {exp.tasks[t].train.num_steps}" for t in tasks)
    sections = [
        f"# Ablation of init scaling (8) and regularizer (9) ({e.name})",
        "Mean ± std over seeds (init and batch order; same data split). Accuracy in %, at the "
        "best-validation checkpoint and at the last step; `Δ` = paired difference to w/o "
        f"(8),(9), seed by seed, with its {e.confidence:.0%} t-interval. lambda = "
        f"{e.reg_lambda:g}; steps: {steps}. tau = sum over layers of mean tau (paper measure, "
        f"the model's read-out) on {e.tau_batch_size} training examples, best checkpoint.",
        tables.markdown_table(md_rows, ["task", "label", "seeds", "test", "diff", "train", "test_last",
                                        "last_diff", "train_last", "tau"],
                              ["task", "variant", "seeds", "test acc (best val)", "Δ test [CI]",
                               "train acc", "test acc (last)", "Δ last [CI]", "train acc (last)",
                               "tau"]),
    ]
    if len(tasks) > 1:  # the paper's layout: variants x tasks
        wide = []
        for v in e.variants:
            row = {"variant": LABELS[v]}
            for r in table:
                if r["variant"] == v:
                    row[r["task"]] = tables.pm(100 * r["test_accuracy"], 100 * r["test_accuracy_std"])
            wide.append(row)
        sections += ["## Test accuracy (%), variants x tasks",
                     tables.markdown_table(wide, ["variant"] + list(tasks))]
    skipped = [t for t in e.tasks if t not in tasks]
    if skipped:
        sections.append(f"Not run: {', '.join(skipped)}.")
    lra = [t for t in tasks if t in LRA_PAPER]
    if lra:  # the published numbers beside ours
        by = {(r["task"], r["variant"]): r for r in table}
        pub = [dict(task=t, s4d=f"{LRA_PAPER[t][0]:.2f}", reg=f"{LRA_PAPER[t][1]:.2f}",
                    none=tables.pm(100 * by[t, "none"]["test_accuracy"],
                                   100 * by[t, "none"]["test_accuracy_std"])
                    if (t, "none") in by else "-",
                    both=tables.pm(100 * by[t, "both"]["test_accuracy"],
                                   100 * by[t, "both"]["test_accuracy_std"])
                    if (t, "both") in by else "-") for t in lra]
        sections += ["## LRA: published test accuracy (%) beside ours",
                     tables.markdown_table(pub, ["task", "s4d", "reg", "none", "both"],
                                           ["task", "S4D (published)",
                                            "Reg. S4D (variant not stated, quoted)",
                                            "ours w/o (8),(9)", "ours w/ (8),(9)"])]
    sections.append(f"{sweeps.timing_note(rows, elapsed)} Figure: `{os.path.basename(png)}`.")
    tables.write_markdown(os.path.join(directory, "table.md"), sections)
    return flat, table, tasks


def execute(exp, directory, runs, bar) -> dict:
    start = time.perf_counter()
    tasks = list(dict.fromkeys(r.meta["task"] for r in runs))
    rows = sweeps.run_sweep(runs, directory, Evaluator(exp.settings), "ablation", bar,
                            vectorize=exp.settings.vectorize, max_members=exp.settings.max_members)
    flat, table, tasks = write(exp, directory, rows, tasks, time.perf_counter() - start)
    return {"table": table, "tasks": tasks, "runs": flat}


def claims(exp, summary) -> list:
    """Each variant improves test accuracy over w/o, per task (paired over seeds). Primary
    metric, fixed before running: test accuracy at the last step; the best-validation
    checkpoint's (selected on a small validation split) is reported beside it."""
    e = exp.settings
    out = []
    texts = {"scale": "The init scaling rule (8) improves test accuracy",
             "reg": "The regularizer (9) improves test accuracy",
             "both": "The init scaling rule (8) with the regularizer (9) improves test accuracy"}
    for task in summary["tasks"]:
        for variant in e.variants:
            if variant == "none":
                continue
            row = next(r for r in summary["table"] if r["task"] == task and r["variant"] == variant)
            base = next(r for r in summary["table"] if r["task"] == task and r["variant"] == "none")
            paper = NO_NUMBER
            if task in LRA_PAPER and variant == "both":
                s4d, reg = LRA_PAPER[task]
                paper = (f"{s4d:.2f} -> {reg:.2f} ({reg - s4d:+.2f}; \"Reg. S4D\" as quoted by "
                         "a later paper, variant not stated)")
            verdict, effect, rule = paired_effect(
                paired_diffs(summary["runs"], task, variant, "test_accuracy_last"), e.margin,
                e.confidence, scale=100, unit=" points")
            out.append(Claim(
                PAPER, e.name, f"{texts[variant]} ({task})", paper,
                f"last step {100 * base['test_accuracy_last']:.2f} -> "
                f"{100 * row['test_accuracy_last']:.2f}, {effect}; at the best-validation "
                f"checkpoint {100 * base['test_accuracy']:.2f} -> {100 * row['test_accuracy']:.2f} "
                f"(paired {100 * row['test_diff']:+.2f} [{100 * row['test_diff_low']:+.2f}, "
                f"{100 * row['test_diff_high']:+.2f}])", verdict,
                f"primary metric: test accuracy at the last step; {rule}",
                ("table.md", "runs.csv", "ablation.png")))
    return out


def main(argv=None) -> int:
    return runner.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
