"""Shared pieces of the paper-3 experiments (the model and recipe are trainer configs in
``ssm_jax.configs.paper3.tasks``):
ListOps files per length, vectorized groups of runs (seeds or s_A values of one length train
together), the paper's seed-retry protocol, per-epoch curves from metrics.csv, and the
numbers of the authors' released logs (``docs/theory.md#paper-3-reference-numbers``)."""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from ssm_jax.experiments import sweeps
from ssm_jax.options import option

# ---------------------------------------------------------------------------- the protocol

READOUTS = {"last_position": "last_position", "last_token": "last"}  # -> model.pooling


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Experiment options shared by the paper-3 experiments: the authors' protocol by default
    (``gen_err_sel_ssm``'s ``main.py`` and data loaders), ours as the alternative."""

    data_dir: str = option("", "where generated ListOps files are kept ('': data/ beside "
                           "the experiment's results folder)")
    data_seed: str = option("run", "majority data: 'run' (drawn with the run's seed, as the "
                            "authors' main.py) or 'fixed' (the task config's data.seed for "
                            "every run)", choices=("run", "fixed"))
    readout: str = option(
        "last_position", "read-out of padded inputs (ListOps, IMDb; majority has no pads): "
        "'last_position' (the authors': pad tokens embedded and run through the SSM, the head "
        "reads the last padded position) or 'last_token' (ours: pads masked, the head reads "
        "the last real token)", choices=tuple(READOUTS))
    listops_data_dir: str = option(
        "", "the authors' released ListOps folder (their repository's dataset/listops); a "
        "length T whose folder Tmin=T-5_Tmax=T+5_num_train_samples=m_num_valid_samples=0_"
        "num_test_samples=m is there is read from it, other lengths are generated ('': always "
        "generate)")

def check_tasks(exp) -> None:
    """Every task of ``experiment.tasks`` is defined, and the tfds datasets among them are
    prepared (the registry's FileNotFoundError, naming the task, before any compute)."""
    from ssm_jax.data import get_dataset

    for task in exp.settings.tasks:
        if task not in exp.tasks:
            raise ValueError(f"experiment.tasks: unknown task {task!r}; config tasks: "
                             f"{', '.join(exp.tasks)}")
        if exp.tasks[task].data["name"] == "imdb":
            try:  # a short sequence length: the check reads the prepared files once
                get_dataset({**dict(exp.tasks[task].data), "seq_len": 8, "use_cache": False})
            except FileNotFoundError as e:
                raise FileNotFoundError(f"task {task!r}: {e}") from None


# ---------------------------------------------------------------------------- data per length


def listops_dir(root: str, T: int, m_train: int, m_test: int, seed: int = 0) -> str:
    """LRA-format ListOps TSVs of length ``T +- 4`` (the paper's window, strict bounds T-5 and
    T+5) with a header-only ``basic_val.tsv``, as the paper's released files; written once."""
    from ssm_jax.data import listops

    d = os.path.join(root, f"listops_T{T}_n{m_train}_{m_test}_s{seed}")
    if not os.path.exists(os.path.join(d, "basic_test.tsv")):
        listops.write_splits(d + ".tmp", num_train=m_train, num_val=0, num_test=m_test,
                             seed=seed, min_length=T - 5, max_length=T + 5)
        os.replace(d + ".tmp", d)
    return d


def authors_listops_dir(root: str, T: int, m_train: int, m_test: int) -> str | None:
    """The authors' released folder for length ``T`` under ``root`` (their naming), or None
    when ``root`` is empty or holds no such folder with the three TSVs."""
    if not root:
        return None
    d = os.path.join(root, f"Tmin={T - 5}_Tmax={T + 5}_num_train_samples={m_train}_"
                           f"num_valid_samples=0_num_test_samples={m_test}")
    names = ("basic_train.tsv", "basic_val.tsv", "basic_test.tsv")
    if not all(os.path.isfile(os.path.join(d, n)) for n in names):
        return None
    for n in names:  # a clone without Git LFS holds pointer files where the TSVs should be
        with open(os.path.join(d, n), encoding="utf-8", errors="replace") as f:
            head = f.readline().rstrip("\r\n")
        if head != "Source\tTarget":
            raise ValueError(f"experiment.listops_data_dir: {os.path.join(d, n)} is not an LRA "
                             f"ListOps TSV (first line {head[:60]!r}; a Git LFS pointer? fetch "
                             "the files with git lfs pull)")
    return d


def run_config(task_cfg, task: str, T: int, protocol: Protocol, seed: int,
               init_seed: int | None = None, **changes):
    """The trainer config of one run of ``task`` at length ``T`` under ``protocol``.

    ``seed`` is the run's seed (the authors' ``--seed``): with ``data_seed="run"`` it draws
    the majority data. ``init_seed`` (default ``seed``) becomes the trainer's ``seed``, which
    draws the init and the batch order, so the runs of an s_A sweep share their data and
    differ in both (as the authors' models and DataLoader draw from one continuing stream). ListOps
    is padded to ``T + 4`` (the longest sequence of the window, as the authors pad to the
    longest sequence of a split); every task is read out as ``protocol.readout`` says.
    """
    changes = {"seed": seed if init_seed is None else init_seed,
               "model.pooling": READOUTS[protocol.readout], **changes}
    if task == "listops":
        d = task_cfg.data
        data_dir = (authors_listops_dir(protocol.listops_data_dir, T, d["num_train"], d["num_test"])
                    or listops_dir(protocol.data_dir, T, d["num_train"], d["num_test"]))
        changes.update({"data.data_dir": data_dir, "data.seq_len": T + 4})
    else:
        changes["data.seq_len"] = T
    if task == "majority" and protocol.data_seed == "run":
        changes["data.seed"] = seed
    return sweeps.run_config(task_cfg, **changes)


# ---------------------------------------------------------------------------- groups of runs


def curves(workdir: str, spe: int) -> dict:
    """Per-epoch curves of a run: ``loss`` (epoch-mean training loss, epochs 1..E), ``s_A``
    and every other ``params`` metric (epochs 0..E)."""
    from ssm_jax.training.metrics import read_metrics

    rows = read_metrics(os.path.join(workdir, "metrics.csv"))
    out = {"loss": {}, "params": {}}
    for r in rows:
        epoch = r["step"] // spe
        if r["split"] == "train" and r["metric"] == "loss":
            out["loss"][epoch] = r["value"]
        elif r["split"] == "params":
            out["params"].setdefault(r["metric"], {})[epoch] = r["value"]
    return out


# the init-only key paper 3's groups differ in besides the seed (one vmapped group per cell)
MEMBER_KEYS = ("model.ssm.s_A",)


def train_group(members, directory: str) -> list:
    """Train ``members`` (list of ``sweeps.Run``; the unfinished ones in vectorized groups)
    with the sweep runner; returns one row per member: run_id, meta, report, curves, spe and
    trained."""
    rows = sweeps.run_sweep(members, directory, bar=sweeps.NO_BAR, vectorize=True,
                            member_keys=MEMBER_KEYS)
    return [_with_curves(row, m.cfg, directory) for m, row in zip(members, rows)]


def checked_groups(groups, directory: str) -> list:
    """``groups`` (lists of ``sweeps.Run``), after checking that no run directory under
    ``directory`` was written with another config (``prepare``'s last step)."""
    sweeps.check_runs([r for g in groups for r in g], directory)
    return groups


def train_groups(groups, directory: str, bar, label) -> list:
    """Train each group (:func:`train_group`), advancing ``bar`` by one per group with
    ``label(group)`` shown; returns all rows."""
    def one(g):
        bar.set_postfix_str(label(g))
        rows = train_group(g, directory)
        bar.update(1)
        return rows

    return [row for rows in sweeps.for_each(groups, one) for row in rows]


def _with_curves(row, cfg, directory: str, **extra) -> dict:
    from ssm_jax.training.loop import steps_per_epoch

    spe = steps_per_epoch(cfg, row["report"]["num_train"])
    return dict(row, curves=curves(os.path.join(directory, "runs", row["run_id"]), spe), spe=spe,
                **extra)


def train_with_retries(make_member, seeds, directory: str, max_retries: int = 5) -> list:
    """The paper's protocol: a seed whose run fails in epoch 1 is marked failed and the
    next unused seed is tried instead (up to ``max_retries`` extra seeds), all members of a
    round in one vectorized group. ``make_member(seed) -> sweeps.Run``.

    Returns the rows of the successful (or finally failed) runs, each with
    ``failed_seeds`` (the seeds given up on for it)."""
    from ssm_jax.training.loop import steps_per_epoch

    members = [make_member(s) for s in seeds]
    seed_of = {m.run_id: s for m, s in zip(members, seeds)}
    cfg_of = {m.run_id: m.cfg for m in members}
    next_seed = [max(seeds) + 1]

    def retry(row):
        failed = row["report"].get("failed_step")
        spe = steps_per_epoch(cfg_of[row["run_id"]], row["report"]["num_train"])
        if failed is None or failed > spe:
            return None
        run = make_member(next_seed[0])
        seed_of[run.run_id], cfg_of[run.run_id] = next_seed[0], run.cfg
        next_seed[0] += 1
        return run

    rows = sweeps.run_sweep(members, directory, bar=sweeps.NO_BAR, vectorize=True,
                            member_keys=MEMBER_KEYS, retry=retry, max_retries=max_retries)
    return [_with_curves(row, cfg_of[row["run_id"]], directory,
                         failed_seeds=[seed_of[r] for r in row["replaced"]]) for row in rows]


def exploded(row, threshold: float) -> bool:
    """The run's init "exploded": its epoch-1 loss is above ``threshold`` or not finite (the
    runs the "s_A is driven toward zero" claims are about)."""
    loss = epoch_loss(row, 1)
    return not (loss <= threshold)


def run_outcome(row, settings) -> dict:
    """The per-run columns of the Figure 1 and 5 tables: epoch-1 and last loss, final s_A,
    whether the init exploded (``settings.explode_threshold``) and whether training succeeded
    (``settings.loss_threshold``). A run that failed in epoch 1 has no epoch-1 loss (NaN; the
    logged mean covers only the steps before the failure)."""
    failed = row["report"].get("failed_step")
    e1 = math.nan if failed is not None and failed <= row["spe"] else epoch_loss(row, 1)
    return dict(epoch1_loss=e1, last_loss=last_loss(row),
                final_sA=final(row, "s_A"), exploded=exploded(row, settings.explode_threshold),
                success=succeeded(row, settings.loss_threshold))


def write_curves(path: str, rows) -> str:
    """``curves.csv``: the epoch-mean loss and s_A of every run, one row per (run, epoch)."""
    from ssm_jax.experiments import tables

    return tables.write_csv(path, [
        dict(run_id=r["run_id"], epoch=ep, metric=m, value=v)
        for r in rows for m, c in (("loss", r["curves"]["loss"]),
                                   ("s_A", r["curves"]["params"].get("s_A", {})))
        for ep, v in sorted(c.items())], ["run_id", "epoch", "metric", "value"])


def spread(values) -> dict:
    """Median, min and max of the finite ``values`` and how many were not finite."""
    v = np.asarray([x for x in values if x is not None], float)
    f = v[np.isfinite(v)]
    stat = lambda fn: float(fn(f)) if len(f) else math.nan
    return dict(median=stat(np.median), low=stat(np.min), high=stat(np.max),
                nonfinite=int(len(v) - len(f)))


def seed_summary(table, tasks, key: str, paper: dict, paper_columns: dict) -> list:
    """One row per task and value of ``key`` (e.g. T or the initial s_A) over the seeds of
    ``table`` (rows with ``exploded``, ``success``, ``epoch1_loss``, ``final_sA``): the number
    of seeds, how many exploded at init, succeeded, did both; the epoch-1 loss median and range;
    the final s_A of the runs that did both; and the paper's one-draw numbers
    (``{column: index into paper[task][value]}``)."""
    out = []
    for task in tasks:
        mine = [r for r in table if r["task"] == task]
        for k in dict.fromkeys(r[key] for r in mine):
            g = [r for r in mine if r[key] == k]
            e1 = spread(r["epoch1_loss"] for r in g)
            both = [r for r in g if r["exploded"] and r["success"]]
            sa = spread(r["final_sA"] for r in both)
            ref = paper_lookup(paper, task, k)
            out.append({"task": task, key: k, "seeds": len(g),
                        "exploded": sum(r["exploded"] for r in g),
                        "succeeded": sum(r["success"] for r in g),
                        "exploded_and_succeeded": len(both), "epoch1_median": e1["median"],
                        "epoch1_low": e1["low"], "epoch1_high": e1["high"],
                        "epoch1_nonfinite": e1["nonfinite"], "final_sA_median": sa["median"],
                        "final_sA_low": sa["low"], "final_sA_high": sa["high"],
                        **{c: ref[i] if ref else math.nan for c, i in paper_columns.items()}})
    return out


SEED_SUMMARY_HEADERS = ["seeds", "exploded at init", "succeeded", "both",
                        "epoch-1 loss median", "min", "max", "NaN/Inf",
                        "final s_A (both) median", "min", "max"]
SEED_SUMMARY_COLS = ["seeds", "exploded", "succeeded", "exploded_and_succeeded", "epoch1_median",
                     "epoch1_low", "epoch1_high", "epoch1_nonfinite", "final_sA_median",
                     "final_sA_low", "final_sA_high"]
ONE_DRAW = ("The paper's numbers are one draw (one init seed per cell, the authors' released "
            "logs); the epoch-1 loss at a given T spans many decades across init draws, so "
            "compare the paper's value with our range, not with one of our seeds.")


def toward_zero(judged, init_of, tolerance: float | None, alpha: float) -> tuple:
    """Verdict of an "s_A is driven toward zero" claim over the ``judged`` runs (succeeded
    after an exploding init), and its evidence text.

    Direction: a one-sided exact sign test that the final s_A ends below its init
    (``init_of(row)``). Stability (``tolerance`` not None): the 95% percentile-bootstrap
    interval of the median final s_A lies below ``tolerance``. Reproduced: both hold (p <
    ``alpha``); not reproduced: s_A ends above its init more often (p < ``alpha``) or the
    interval lies above ``tolerance``; inconclusive otherwise (or no judged run).
    """
    from ssm_jax.experiments import tables

    n = len(judged)
    if not n:
        return "inconclusive", "no run succeeded after an exploding init"
    moved = [r for r in judged if math.isfinite(r["final_sA"]) and r["final_sA"] != init_of(r)]
    below = sum(r["final_sA"] < init_of(r) for r in moved)
    p_down, p_up = tables.sign_test(below, len(moved))  # ties (and NaN) dropped
    text = f"{below} of {len(moved)} end below their init (sign test p {p_down:.2g}"
    text += f"; {n - len(moved)} ties or NaN dropped)" if len(moved) < n else ")"
    med, low, high = tables.bootstrap_interval([r["final_sA"] for r in judged])
    text += f"; median final s_A {med:.3f}, 95% bootstrap interval [{low:.3f}, {high:.3f}]"
    stable = True if tolerance is None else high < tolerance
    if tolerance is not None:
        within = sum(r["final_sA"] < tolerance for r in judged)
        text += f"; {within} of {n} below {tolerance:g}"
    if p_down < alpha and stable:
        return "reproduced", text
    if p_up < alpha or (tolerance is not None and low > tolerance):
        return "not reproduced", text
    return "inconclusive", text


def final(row, name: str):
    """The last logged value of params metric ``name`` of a row (NaN if absent)."""
    values = row["curves"]["params"].get(name, {})
    return values[max(values)] if values else math.nan


def epoch_loss(row, epoch: int):
    return row["curves"]["loss"].get(epoch, math.nan)


def last_loss(row):
    loss = row["curves"]["loss"]
    return loss[max(loss)] if loss else math.nan


def succeeded(row, loss_threshold: float) -> bool:
    """Training "succeeds" (the paper's sense in Figs 1 and 5): finite and below
    ``loss_threshold`` at the last epoch (the failures of the paper end at 1e18-1e34)."""
    loss = last_loss(row)
    return row["report"].get("failed_step") is None and math.isfinite(loss) and loss < loss_threshold


# ---------------------------------------------------------------------------- released numbers

# Authors' logs, Experiment 1 (s_A = 0.1), seed 0 (docs/theory.md#paper-3-reference-numbers):
# T -> (epoch-1 loss, epoch-10 loss, final s_A).
PAPER_EXP1 = {
    "majority": {50: (3.3e6, 0.110, -0.006), 100: (2.3e12, 0.089, 0.0002),
                 150: (1.8e22, 4.5e22, 0.160), 200: (3.3e21, 1.0e18, 0.123),
                 250: (3.2e15, 0.101, 0.015), 300: (1.3e31, 2.3e25, 0.103)},
    "listops": {100: (9.9e5, 2.265, 0.036), 200: (1.5e11, 2.272, -0.016),
                300: (3.0e17, 2.303, -0.0005), 400: (4.2e20, 2.285, -0.070),
                500: (2.0e25, 1.0e19, 0.133), 600: (1.1e30, 2.271, -0.071)},
}

# Authors' CSVs, Experiment 2 (s_A = 0), mean over 5 runs
# (docs/theory.md#paper-3-reference-numbers).
_MAJ_T = list(range(25, 401, 25))
PAPER_EXP2 = {
    "majority": dict(
        T=_MAJ_T,
        train=[.9326, .9524, .9622, .9622, .9680, .9640, .9712, .9688, .9750, .9750, .9802,
               .9814, .9756, .9734, .9746, .9806],
        test=[.8590, .8766, .8930, .8696, .8914, .8908, .8740, .8898, .8666, .8726, .8760,
              .8746, .8596, .8738, .8718, .8762]),
    "listops": dict(
        T=list(range(100, 1001, 100)),
        train=[.2154, .2106, .1980, .2040, .2154, .2012, .2156, .1974, .2150, .2218],
        test=[.1578, .1638, .1488, .1662, .1528, .1638, .1468, .1666, .1694, .1498]),
}

# Authors' logs, s_A sweep (docs/theory.md#paper-3-reference-numbers):
# s_A init -> (final s_A, final loss).
PAPER_SWEEP = {
    "majority": {-0.1: (0.002, 0.090), -0.08: (-0.074, 0.525), -0.06: (-0.004, 0.576),
                 -0.04: (0.026, 0.097), -0.02: (0.044, 0.065), 0.0: (0.022, 0.074),
                 0.02: (0.012, 0.076), 0.04: (0.042, 0.167), 0.06: (0.120, 1.1e34),
                 0.08: (-0.002, 0.070), 0.1: (0.015, 0.101)},
    "listops": {s: (f, math.nan) for s, f in zip(
        [-0.1, -0.08, -0.06, -0.04, -0.02, 0.0, 0.02, 0.04, 0.06, 0.08, 0.1],
        [-0.14, -0.15, -0.13, -0.06, -0.09, -0.05, -0.08, -0.014, -0.074, -0.068, -0.0005])},
}


def paper_lookup(table: dict, task: str, key):
    """``table[task][key]`` with float keys matched to 1e-9; None when absent."""
    for k, v in table.get(task, {}).items():
        if abs(float(k) - float(key)) < 1e-9:
            return v
    return None


def np_float(x) -> float:
    return float(np.asarray(x))


def task_lengths(settings, task: str):
    """The sequence lengths an experiment's settings sweep for ``task`` (majority | listops |
    imdb)."""
    return getattr(settings, f"{task}_lengths")
