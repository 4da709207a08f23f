"""Paper 3, Figure 5 (App. B.5): s_A sweep -0.1..0.1 at a fixed T.

    python -m ssm_jax.experiments.paper3.sA_sweep --config configs/paper3/sA_sweep.py[:SCALE]

For every task: ``num_seeds`` seeds x every initial s_A, all trained together (one vmapped
step). The runs of a seed share its data; every run has its own init draw (as the authors'
loop, which draws successive models from one continuing random stream). Training loss and s_A
every epoch. Writes ``table.csv`` (every run), ``per_sA.csv`` (per s_A over seeds: exploded,
succeeded, epoch-1 loss median and range, final s_A), ``table.md`` (with the paper's one-draw
numbers beside), ``curves.csv`` and ``sA_sweep.png``.

Claims: unstable inits (s_A > 0) fail more often than stable ones (s_A <= 0), by a one-sided
Fisher exact test; where training from s_A > 0 succeeds after an exploding init, s_A ends
below its init (pushed toward zero from above; a one-sided sign test).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time

from ssm_jax.experiments import figures, runner, sweeps, tables
from ssm_jax.experiments.claims import Claim
from ssm_jax.experiments.paper3 import common
from ssm_jax.options import option

PAPER = 3
NAME = "sA_sweep"
ORDER = 3
SWEEP = tuple(round(-0.1 + 0.02 * i, 2) for i in range(11))


@dataclasses.dataclass(frozen=True)
class Settings(common.Protocol):
    name: str = option("sA_sweep", "results folder name")
    tasks: tuple = option(("majority",), "tasks to run", item_kind=str)
    majority_length: int = option(250, "majority T", minimum=2)
    listops_length: int = option(300, "ListOps T", minimum=10)
    imdb_length: int = option(500, "IMDb T (the paper's Figure 5)", minimum=2)
    s_A_values: tuple = option(SWEEP, "initial s_A values", item_kind=float)
    seed: int = option(0, "first seed", minimum=0)
    num_seeds: int = option(5, "seeds (data draws) per s_A value; every (seed, s_A) run has its "
                            "own init draw (the paper: 1 seed)", positive=True)
    loss_threshold: float = option(100.0, "a run succeeds if its last epoch loss is below this")
    explode_threshold: float = option(1e3, "a run's init exploded if its epoch-1 loss is above "
                                      "this (or not finite)", positive=True)
    alpha: float = option(0.05, "significance level of Fisher's exact test", minimum=0.0,
                          maximum=1.0, exclusive_minimum=True, exclusive_maximum=True)


def groups(exp):
    """One group per task: every (seed, s_A) run. The runs of a seed share its data (the
    authors draw the data once per T); each run's init is its own draw, init seed
    ``seed * len(s_A_values) + i`` for the i-th value (the authors' models of one sweep come
    from one continuing random stream)."""
    e = exp.settings
    out = []
    n = len(e.s_A_values)
    for task in e.tasks:
        T = getattr(e, f"{task}_length")
        g = []
        for seed in range(e.seed, e.seed + e.num_seeds):
            for i, s in enumerate(e.s_A_values):
                cfg = common.run_config(exp.tasks[task], task, T, e, seed, init_seed=seed * n + i,
                                        **{"model.ssm.s_A": float(s)})
                g.append(sweeps.Run(f"{task}_T{T}_sA{s:+.2f}_s{seed}", cfg,
                                    dict(task=task, T=T, s_A=float(s), seed=seed)))
        out.append(g)
    return out


def prepare(exp, directory) -> list:
    if not exp.settings.s_A_values:
        raise ValueError("experiment.s_A_values: needs at least one initial s_A")
    common.check_tasks(exp)
    gs = groups(exp)
    return common.checked_groups(gs, directory)


def execute(exp, directory, gs, bar) -> dict:
    e = exp.settings
    start = time.perf_counter()
    rows = common.train_groups(gs, directory, bar, lambda g: g[0].meta["task"])
    table = []
    for r in rows:
        task, s = r["meta"]["task"], r["meta"]["s_A"]
        paper = common.paper_lookup(common.PAPER_SWEEP, task, s)
        table.append(dict(task=task, T=r["meta"]["T"], s_A_init=s, seed=r["meta"]["seed"],
                          **common.run_outcome(r, e), paper_final_sA=paper[0] if paper else math.nan,
                          paper_last_loss=paper[1] if paper else math.nan))
    cols = ["task", "T", "s_A_init", "seed", "epoch1_loss", "last_loss", "final_sA", "exploded",
            "success", "paper_final_sA", "paper_last_loss"]
    tables.write_csv(os.path.join(directory, "table.csv"), table, cols)
    per_sA = common.seed_summary(table, e.tasks, "s_A_init", common.PAPER_SWEEP,
                                 {"paper_final_sA": 0, "paper_last_loss": 1})
    scols = ["task", "s_A_init"] + common.SEED_SUMMARY_COLS + ["paper_final_sA", "paper_last_loss"]
    tables.write_csv(os.path.join(directory, "per_sA.csv"), per_sA, scols)
    common.write_curves(os.path.join(directory, "curves.csv"), rows)
    png = plot(rows, os.path.join(directory, "sA_sweep.png"))
    tables.write_markdown(os.path.join(directory, "table.md"), [
        f"# s_A sweep (Figure 5, {e.name})",
        f"Seeds {e.seed}..{e.seed + e.num_seeds - 1}, each s_A value of a seed with its own "
        f"init draw (majority data seed: {e.data_seed}; read-out: {e.readout}); "
        f"exploded: epoch-1 loss > {e.explode_threshold:g} or not finite; success: last loss < "
        f"{e.loss_threshold:g}. Paper columns: final s_A and loss of the authors' released logs "
        "(docs/theory.md#paper-3-reference-numbers; ListOps loss not listed there).",
        "## Per initial s_A, over seeds", common.ONE_DRAW,
        tables.markdown_table(per_sA, scols, ["task", "s_A init"] + common.SEED_SUMMARY_HEADERS
                              + ["paper final s_A (one draw)", "paper last loss (one draw)"]),
        "## Every run",
        tables.markdown_table(table, cols, ["task", "T", "s_A init", "seed", "epoch-1 loss",
                                            "last loss", "final s_A", "exploded", "success",
                                            "paper final s_A", "paper last loss"]),
        f"{sweeps.timing_note([dict(trained=r['trained']) for r in rows], time.perf_counter() - start)}"
        f" Figure: `{os.path.basename(png)}`."])
    return {"table": table, "per_sA": per_sA}


def plot(rows, path):
    plt = figures.pyplot()
    tasks = list(dict.fromkeys(r["meta"]["task"] for r in rows))
    fig, axes = plt.subplots(2, len(tasks), figsize=(5.5 * len(tasks), 7), squeeze=False)
    cmap = plt.get_cmap("coolwarm")
    for j, task in enumerate(tasks):
        for r in (r for r in rows if r["meta"]["task"] == task):
            s = r["meta"]["s_A"]
            c = cmap((s + 0.1) / 0.2)
            loss = sorted(r["curves"]["loss"].items())
            sA = sorted(r["curves"]["params"].get("s_A", {}).items())
            if loss:
                axes[0, j].plot(*zip(*loss), color=c, label=f"{s:+.2f}")
            if sA:
                axes[1, j].plot(*zip(*sA), color=c)
        axes[0, j].set_yscale("log")
        axes[0, j].set_title(f"{task} T={rows[0]['meta']['T']}: training loss")
        axes[1, j].axhline(0, color="k", ls="--")
        axes[1, j].set_title(f"{task}: s_A = max(A)")
        axes[0, j].legend(fontsize=6, ncol=2, title="s_A init")
        for ax in axes[:, j]:
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
    return figures.save(fig, path)


def claims(exp, summary) -> list:
    from scipy import stats

    e = exp.settings
    t = summary["table"]
    pos = [r for r in t if r["s_A_init"] > 0]
    neg = [r for r in t if r["s_A_init"] <= 0]
    nfail = lambda rs: sum(not r["success"] for r in rs)
    fp, fn = nfail(pos) / max(len(pos), 1), nfail(neg) / max(len(neg), 1)
    v1, p_more, p_less = "inconclusive", math.nan, math.nan
    if pos and neg:
        counts = [[nfail(pos), len(pos) - nfail(pos)], [nfail(neg), len(neg) - nfail(neg)]]
        p_more = stats.fisher_exact(counts, alternative="greater")[1]
        p_less = stats.fisher_exact(counts, alternative="less")[1]
        v1 = ("reproduced" if p_more < e.alpha else "not reproduced" if p_less < e.alpha
              else "inconclusive")
    ok = [r for r in pos if r["success"]]
    judged = [r for r in ok if r["exploded"]]
    v2, evidence = common.toward_zero(judged, lambda r: r["s_A_init"], None, e.alpha)
    ev = ("table.md", "sA_sweep.png")
    return [
        Claim(PAPER, e.name, "Unstable initializations (s_A > 0) often lead to training failure "
              "(exploding losses); stable ones train smoothly",
              "majority T=250: 1 of 5 unstable inits fails (0.06), 0 of 6 stable; IMDb: 3 of 5 "
              "unstable fail (one seed)", f"failure rate s_A > 0: {fp:.2f} ({nfail(pos)} of "
              f"{len(pos)} runs), s_A <= 0: {fn:.2f} ({nfail(neg)} of {len(neg)}); Fisher's "
              f"exact p (more failures) {p_more:.3g}, p (fewer) {p_less:.3g}", v1,
              f"one-sided Fisher's exact test on the failure counts: more failures with s_A > 0 "
              f"at p < {e.alpha:g}: reproduced; fewer at p < {e.alpha:g}: not reproduced; "
              "else inconclusive", ev),
        Claim(PAPER, e.name, "Where training from s_A > 0 succeeds, s_A is pushed toward zero "
              "from above", "majority: 0.02 -> 0.012, 0.04 -> 0.042, 0.08 -> -0.002, 0.1 -> 0.015 "
              "(one seed)",
              f"{len(ok)} successful runs from s_A > 0, {len(judged)} of them exploded at init; "
              f"of these {evidence}: "
              + (", ".join(f"{r['task']} {r['s_A_init']:+.2f} s{r['seed']} -> {r['final_sA']:+.3f}"
                           for r in judged) or "-"), v2,
              f"judged on the successful runs from s_A > 0 whose init exploded (epoch-1 loss > "
              f"{e.explode_threshold:g}): final s_A below its init by a one-sided sign test "
              f"(p < {e.alpha:g}); above it (p < {e.alpha:g}): not reproduced; else or no such run: "
              "inconclusive", ev)]


def main(argv=None) -> int:
    return runner.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
