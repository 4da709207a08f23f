"""Paper 3, Figure 2: stable init s_A = 0; train and test accuracy vs T over seeds, and a trend
test of the generalization gap.

    python -m ssm_jax.experiments.paper3.length_independence --config configs/paper3/length_independence.py[:SCALE]

For every task and length T: ``num_seeds`` runs from s_A = 0 trained together (one vmapped
step); a seed whose run fails in epoch 1 (``train.failure``) is marked failed and the next seed is tried
(the paper's protocol; the failed seeds are listed). Accuracy on the full train and test
splits at the last epoch (no validation split, as the paper). Writes ``table.csv`` /
``table.md`` (mean ± std per T, the paper's released means beside), ``runs.csv``,
``trend.csv`` and ``length_independence.png``.

Claim: the gap (train - test accuracy) has no trend in T, shown by an equivalence test: the
least-squares change of the per-run gap over the T range lies inside +-``margin`` (TOST on
the slope); a change established outside it is a trend; Holm over tasks. The same tests are
applied to the paper's released means.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time

import numpy as np

from ssm_jax.experiments import figures, runner, sweeps, tables
from ssm_jax.experiments.claims import Claim, cells_verdict
from ssm_jax.experiments.paper3 import common
from ssm_jax.options import option

PAPER = 3
NAME = "length_independence"
ORDER = 2


@dataclasses.dataclass(frozen=True)
class Settings(common.Protocol):
    name: str = option("length_independence", "results folder name")
    tasks: tuple = option(("majority",), "tasks to run", item_kind=str)
    majority_lengths: tuple = option(tuple(range(25, 401, 25)), "majority T values",
                                     item_kind=int, minimum=2)
    listops_lengths: tuple = option(tuple(range(100, 1001, 100)), "ListOps T values",
                                    item_kind=int, minimum=10)
    imdb_lengths: tuple = option(tuple(range(100, 1501, 100)), "IMDb T values", item_kind=int,
                                 minimum=2)
    s_A: float = option(0.0, "spectral abscissa at init")
    first_seed: int = option(1, "first seed (the paper: 1..5)", minimum=0)
    num_seeds: int = option(5, "successful runs per length", positive=True)
    max_retries: int = option(5, "extra seeds tried for runs that are NaN in epoch 1", minimum=0)
    margin: float = option(0.05, "equivalence margin: the largest change of the gap (train - "
                           "test accuracy) over the T range that counts as stable", positive=True)
    confidence: float = option(0.95, "level of the slope interval", minimum=0.0, maximum=1.0,
                               exclusive_minimum=True, exclusive_maximum=True)
    alpha: float = option(0.05, "significance level of the trend tests", minimum=0.0,
                          maximum=1.0, exclusive_minimum=True, exclusive_maximum=True)


def units(exp):
    e = exp.settings
    return [(task, T) for task in e.tasks for T in common.task_lengths(e, task)]


def member(exp, task, T, seed):
    cfg = common.run_config(exp.tasks[task], task, T, exp.settings, seed,
                            **{"model.ssm.s_A": exp.settings.s_A})
    return sweeps.Run(f"{task}_T{T}_s{seed}", cfg, dict(task=task, T=T, seed=seed))


def prepare(exp, directory) -> list:
    e = exp.settings
    common.check_tasks(exp)
    seeds = list(range(e.first_seed, e.first_seed + e.num_seeds))
    sweeps.check_runs([member(exp, t, T, s) for t, T in units(exp) for s in seeds], directory)
    return units(exp)


def trend(Ts, gaps, confidence, margin):
    """Least-squares slope of gap on T with its t-interval, Spearman's rho and p, and the
    equivalence tests of the change over the T range (``slope * (max T - min T)``) against
    ``margin``: ``p_stable`` (TOST: the change lies inside +-margin) and ``p_trend`` (the
    change lies outside it, one side or the other; two one-sided tests, the smaller p doubled)."""
    from scipy import stats

    Ts, gaps = np.asarray(Ts, float), np.asarray(gaps, float)
    ok = np.isfinite(gaps)
    Ts, gaps = Ts[ok], gaps[ok]
    if len(Ts) < 3 or len(set(Ts)) < 2:
        return dict(n=len(Ts), slope=math.nan, low=math.nan, high=math.nan, spearman=math.nan,
                    p=math.nan, change=math.nan, p_stable=math.nan, p_trend=math.nan)
    fit = stats.linregress(Ts, gaps)
    df = len(Ts) - 2
    half = stats.t.ppf(0.5 + confidence / 2, df) * fit.stderr
    rho, p = tables.spearman(Ts, gaps)
    m = margin / (Ts.max() - Ts.min())  # the margin as a slope
    se = max(fit.stderr, 1e-300)
    p_stable = max(stats.t.sf((fit.slope + m) / se, df), stats.t.cdf((fit.slope - m) / se, df))
    p_trend = min(1.0, 2 * min(stats.t.sf((fit.slope - m) / se, df),
                               stats.t.cdf((fit.slope + m) / se, df)))
    return dict(n=len(Ts), slope=fit.slope, low=fit.slope - half, high=fit.slope + half,
                spearman=rho, p=p, change=fit.slope * (Ts.max() - Ts.min()),
                p_stable=float(p_stable), p_trend=float(p_trend))


def execute(exp, directory, todo, bar) -> dict:
    e = exp.settings
    start = time.perf_counter()
    seeds = list(range(e.first_seed, e.first_seed + e.num_seeds))
    def cell(item):
        task, T = item
        bar.set_postfix_str(f"{task} T={T}")
        rows = common.train_with_retries(lambda s: member(exp, task, T, s), seeds, directory,
                                         e.max_retries)
        bar.update(1)
        return rows

    rows = [row for rows in sweeps.for_each(todo, cell) for row in rows]
    flat = []
    for r in rows:
        rep = r["report"]
        tr, te = rep["train"].get("accuracy", math.nan), rep["test"].get("accuracy", math.nan)
        if rep.get("failed_step") is not None:
            tr = te = math.nan
        flat.append(dict(run_id=r["run_id"], task=r["meta"]["task"], T=r["meta"]["T"],
                         seed=r["meta"]["seed"], train_acc=tr, test_acc=te, gap=tr - te,
                         final_sA=common.final(r, "s_A"), epoch1_loss=common.epoch_loss(r, 1),
                         failed_step=rep.get("failed_step"),
                         failed_seeds=" ".join(map(str, r["failed_seeds"]))))
    table, trends = [], []
    for task in e.tasks:
        paper = common.PAPER_EXP2.get(task)
        for T in common.task_lengths(e, task):
            g = [f for f in flat if f["task"] == task and f["T"] == T]
            row = dict(task=task, T=T, runs=sum(math.isfinite(f["gap"]) for f in g),
                       failed_seeds=" ".join(f["failed_seeds"] for f in g if f["failed_seeds"]))
            for m in ("train_acc", "test_acc", "gap", "final_sA"):
                row[m], row[m + "_std"] = tables.mean_std([f[m] for f in g])
            if paper and T in paper["T"]:
                i = paper["T"].index(T)
                row.update(paper_train=paper["train"][i], paper_test=paper["test"][i],
                           paper_gap=paper["train"][i] - paper["test"][i])
            table.append(row)
        g = [f for f in flat if f["task"] == task]
        trends.append(dict(task=task, source="ours (per run)",
                           **trend([f["T"] for f in g], [f["gap"] for f in g], e.confidence,
                                   e.margin)))
        if paper:
            pg = [a - b for a, b in zip(paper["train"], paper["test"])]
            trends.append(dict(task=task, source="paper (released means)",
                               **trend(paper["T"], pg, e.confidence, e.margin)))
    write(exp, directory, flat, table, trends, rows, time.perf_counter() - start)
    return {"table": table, "trends": trends}


def write(exp, directory, flat, table, trends, rows, elapsed):
    e = exp.settings
    run_cols = ["run_id", "task", "T", "seed", "train_acc", "test_acc", "gap", "final_sA",
                "epoch1_loss", "failed_step", "failed_seeds"]
    tables.write_csv(os.path.join(directory, "runs.csv"), flat, run_cols)
    cols = ["task", "T", "runs", "train_acc", "train_acc_std", "test_acc", "test_acc_std", "gap",
            "gap_std", "final_sA", "final_sA_std", "paper_train", "paper_test", "paper_gap",
            "failed_seeds"]
    tables.write_csv(os.path.join(directory, "table.csv"), table, cols)
    tcols = ["task", "source", "n", "slope", "low", "high", "change", "p_stable", "p_trend",
             "spearman", "p"]
    tables.write_csv(os.path.join(directory, "trend.csv"), trends, tcols)
    png = plot(e, table, os.path.join(directory, "length_independence.png"))
    md = [dict(task=r["task"], T=r["T"], runs=r["runs"],
               train=tables.pm(r["train_acc"], r["train_acc_std"]),
               test=tables.pm(r["test_acc"], r["test_acc_std"]),
               gap=tables.pm(r["gap"], r["gap_std"]), sA=tables.pm(r["final_sA"], r["final_sA_std"]),
               paper_train=r.get("paper_train", "-"), paper_test=r.get("paper_test", "-"),
               paper_gap=r.get("paper_gap", "-"), failed=r["failed_seeds"] or "-") for r in table]
    base = exp.tasks[e.tasks[0]]
    tables.write_markdown(os.path.join(directory, "table.md"), [
        f"# Length independence from s_A = {e.s_A} (Figure 2, {e.name})",
        f"Mean ± std over the successful seeds (first seed {e.first_seed}); accuracy on the "
        "full train and test splits at the last epoch (no validation split). "
        f"{base.train.num_epochs} epochs for {e.tasks[0]}. Paper columns: the authors' released "
        "means (docs/theory.md#paper-3-reference-numbers). 'failed seeds': runs that failed in epoch 1 (the recipe's train.failure rule), replaced by the next seed.",
        tables.markdown_table(md, ["task", "T", "runs", "train", "test", "gap", "sA",
                                   "paper_train", "paper_test", "paper_gap", "failed"],
                              ["task", "T", "runs", "train acc", "test acc", "gap",
                               "final s_A", "paper train", "paper test", "paper gap",
                               "failed seeds"]),
        f"## Trend of the gap in T (least squares slope, {e.confidence:.0%} interval; change "
        f"over the T range against the equivalence margin {e.margin:g}; Spearman)",
        tables.markdown_table(trends, tcols, ["task", "data", "points", "slope per step",
                                              "low", "high", "change over T range",
                                              "p stable (TOST)", "p trend", "Spearman rho",
                                              "p"]),
        f"{sweeps.timing_note([dict(trained=r['trained']) for r in rows], elapsed)} Figure: "
        f"`{os.path.basename(png)}`."])


def plot(e, table, path):
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, len(e.tasks), figsize=(5.5 * len(e.tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], e.tasks):
        rows = [r for r in table if r["task"] == task]
        T = np.array([r["T"] for r in rows])
        for m, c in (("train_acc", "tab:blue"), ("test_acc", "tab:red")):
            mu = np.array([r[m] for r in rows])
            sd = np.array([r[m + "_std"] for r in rows])
            ax.plot(T, mu, "--", color=c, label=m.replace("_acc", ""))
            ax.fill_between(T, mu - sd, mu + sd, color=c, alpha=0.2)
        paper = common.PAPER_EXP2.get(task)
        if paper:
            ax.plot(paper["T"], paper["train"], ":", color="tab:blue", alpha=0.6, label="paper train")
            ax.plot(paper["T"], paper["test"], ":", color="tab:red", alpha=0.6, label="paper test")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{task}, s_A init {e.s_A}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return figures.save(fig, path)


def claims(exp, summary) -> list:
    e = exp.settings
    parts, p_for, p_against = [], [], []
    for t in summary["trends"]:
        if t["source"].startswith("paper"):
            continue
        paper = next((p for p in summary["trends"] if p["task"] == t["task"]
                      and p["source"].startswith("paper")), None)
        p_for.append(t["p_stable"])
        p_against.append(t["p_trend"])
        text = (f"{t['task']}: slope {t['slope']:+.2e}/step [{t['low']:+.2e}, {t['high']:+.2e}], "
                f"change over the T range {t['change']:+.3f} (p stable {t['p_stable']:.2g}, p "
                f"trend {t['p_trend']:.2g}), Spearman {t['spearman']:.2f} (p {t['p']:.2g}, "
                f"{t['n']} runs)")
        if paper:
            text += (f"; same test on the paper's means: change {paper['change']:+.3f} (p stable "
                     f"{paper['p_stable']:.2g}), Spearman {paper['spearman']:.2f} "
                     f"(p {paper['p']:.2g})")
        parts.append(text)
    verdict, holm_text = cells_verdict(p_for, p_against, e.alpha)
    return [Claim(PAPER, e.name, "From s_A = 0 the generalization gap stays stable across "
                  "sequence lengths, with no consistent increasing or decreasing trend",
                  "majority gap .074 (T=25) .. .104 (T=400); ListOps .031 .. .072",
                  "; ".join(parts) + f"; {holm_text}", verdict,
                  f"equivalence margin {e.margin:g}: per task, the least-squares change of the "
                  f"gap over the T range lies inside +-{e.margin:g} (TOST on the slope) = stable; "
                  f"outside it (two one-sided tests) = a trend; reproduced if every task is "
                  f"stable, not reproduced if a task has a trend (Holm-adjusted p < {e.alpha:g} "
                  "over tasks, each side); else inconclusive",
                  ("table.md", "trend.csv", "length_independence.png"))]


def main(argv=None) -> int:
    return runner.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
