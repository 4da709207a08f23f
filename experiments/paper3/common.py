"""Shared pieces of the paper-3 experiments: the paper's model and recipe as trainer configs,
ListOps files per length, vectorized groups of runs (seeds or s_A values of one length train
together), the paper's seed-retry protocol, per-epoch curves from metrics.csv, and the
numbers of the authors' released logs (digest sections 5.1-5.4)."""

from __future__ import annotations

import json
import math
import os

import ml_collections
import numpy as np

from experiments import sweeps
from ssm_jax.training.config import default_config

# ---------------------------------------------------------------------------- trainer configs


def paper_model(c, d: int, N: int, s_A: float):
    """Embedding -> one paper-form selective block (no norm, no projection, no residual) ->
    linear read-out of the last step, N(0, 1) embedding and head, no head bias."""
    c.model.update(layer="selective", d_model=d, n_layers=1, norm="none", projection="none",
                   residual=False, pooling="last", head_bias=False, init_std=1.0, dropout=0.0,
                   encoder="embedding")
    c.model.ssm = ml_collections.ConfigDict(dict(form="paper", d_state=N, s_A=s_A,
                                                 scan_method="sequential", chunk_size=64))


def paper_recipe(c, epochs: int, batch: int):
    """Adam lr 1e-2 + coupled L2 1e-5, reduce-on-plateau (0.9, 5, 1%) on the epoch-mean
    training loss, global-norm clip 5, collapse penalty 10 * max(0, 0.1 - std(sigmoid))."""
    c.optim.update(recipe="adam_l2", lr=1e-2, weight_decay=1e-5, grad_clip=5.0,
                   plateau_factor=0.9, plateau_patience=5, plateau_rtol=0.01, warmup_steps=0)
    c.train.update(batch_size=batch, eval_batch_size=500, num_epochs=epochs, num_steps=1,
                   eval_every=10 ** 9, checkpoint_every=10 ** 9, keep_checkpoints=1,
                   collapse_penalty=10.0, collapse_min_std=0.1, progress=False)


def majority_task(T: int = 100, m: int = 1000, d: int = 4, N: int = 4, epochs: int = 40,
                  batch: int = 64, s_A: float = 0.0, noise: float = 0.25):
    c = default_config()
    c.data = ml_collections.ConfigDict(dict(name="majority_counts", seq_len=T, num_train=m,
                                            num_test=m, noise=noise, seed=0))
    paper_model(c, d, N, s_A)
    c.model.binary_logit = True  # one logit, BCE
    paper_recipe(c, epochs, batch)
    return c


def listops_task(T: int = 100, m: int = 1000, d: int = 16, N: int = 4, epochs: int = 50,
                 batch: int = 64, s_A: float = 0.0):
    c = default_config()
    c.data = ml_collections.ConfigDict(dict(name="listops", data_dir=None, seq_len=T + 5,
                                            num_train=m, num_val=1, num_test=m, use_cache=True,
                                            min_length=T - 5, max_length=T + 5, seed=0))
    paper_model(c, d, N, s_A)
    paper_recipe(c, epochs, batch)
    return c


def imdb_task(T: int = 500, m: int = 0, d: int = 16, N: int = 4, epochs: int = 30,
              batch: int = 256, s_A: float = 0.0):
    """The paper's IMDb setting (d=16, N=4, 30 epochs, batch 256, scalar logit) on tfds
    ``imdb_reviews`` at byte level (vocab 257), not the paper's bert-base-uncased wordpieces
    (no tokenizer offline): a byte sequence of length T covers about T/4.5 words, so the same
    T sees less of a review. ``m``: training and test examples (0: all 25k / 25k)."""
    c = default_config()
    c.data = ml_collections.ConfigDict(dict(name="imdb", data_dir=None, seq_len=T, num_train=m,
                                            num_test=m, validation_fraction=0.0, seed=0))
    paper_model(c, d, N, s_A)
    c.model.binary_logit = True
    paper_recipe(c, epochs, batch)
    return c


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


def run_config(task_cfg, task: str, T: int, data_root: str, **changes):
    """The trainer config of one run of ``task`` at length ``T``."""
    changes = dict(changes)
    if task == "listops":
        d = task_cfg.data
        changes.update({"data.data_dir": listops_dir(data_root, T, d["num_train"], d["num_test"]),
                        "data.seq_len": T + 5})
    else:
        changes["data.seq_len"] = T
    return sweeps.run_config(task_cfg, **changes)


# ---------------------------------------------------------------------------- groups of runs


def _read(path):
    with open(path) as f:
        return json.load(f)


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


def train_group(members, directory: str) -> list:
    """Train ``members`` (list of ``sweeps.Run``) together unless all are finished; returns
    one row per member: run_id, meta, report, curves."""
    from ssm_jax.training.loop import steps_per_epoch
    from ssm_jax.training.vectorized import train_members

    sweeps.check_runs(members, directory)
    dirs = [os.path.join(directory, "runs", m.run_id) for m in members]
    todo = [i for i, w in enumerate(dirs) if not os.path.exists(os.path.join(w, "report.json"))]
    if todo:
        train_members([members[i].cfg for i in todo], [dirs[i] for i in todo])
    rows = []
    for m, w in zip(members, dirs):
        report = _read(os.path.join(w, "report.json"))
        n = m.cfg.data["num_train"]
        spe = steps_per_epoch(m.cfg, n)
        rows.append(dict(run_id=m.run_id, meta=m.meta, report=report, curves=curves(w, spe),
                         spe=spe, trained=bool(todo)))
    return rows


def train_with_retries(make_member, seeds, directory: str, max_retries: int = 5) -> list:
    """The paper's protocol: a seed whose run is NaN/Inf in epoch 1 is marked failed and the
    next unused seed is tried instead (up to ``max_retries`` extra seeds), all members of a
    round in one vectorized group. ``make_member(seed) -> sweeps.Run``.

    Returns the rows of the successful (or finally failed) runs, each with
    ``failed_seeds`` (the seeds given up on for it)."""
    pending = [(s, []) for s in seeds]
    next_seed = max(seeds) + 1
    done = []
    for attempt in range(max_retries + 1):
        rows = train_group([make_member(s) for s, _ in pending], directory)
        retry = []
        for (seed, failed), row in zip(pending, rows):
            fs = row["report"].get("failed_step")
            if fs is not None and fs <= row["spe"] and attempt < max_retries:
                retry.append((next_seed, failed + [seed]))
                next_seed += 1
            else:
                done.append(dict(row, failed_seeds=failed))
        if not retry:
            break
        pending = retry
    return done


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

# Digest 5.1: Experiment 1 (s_A = 0.1), seed 0: T -> (epoch-1 loss, epoch-10 loss, final s_A).
PAPER_EXP1 = {
    "majority": {50: (3.3e6, 0.110, -0.006), 100: (2.3e12, 0.089, 0.0002),
                 150: (1.8e22, 4.5e22, 0.160), 200: (3.3e21, 1.0e18, 0.123),
                 250: (3.2e15, 0.101, 0.015), 300: (1.3e31, 2.3e25, 0.103)},
    "listops": {100: (9.9e5, 2.265, 0.036), 200: (1.5e11, 2.272, -0.016),
                300: (3.0e17, 2.303, -0.0005), 400: (4.2e20, 2.285, -0.070),
                500: (2.0e25, 1.0e19, 0.133), 600: (1.1e30, 2.271, -0.071)},
}

# Digest 5.3: Experiment 2 (s_A = 0), mean over 5 runs.
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

# Digest 5.4: s_A sweep, s_A init -> (final s_A, final loss).
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
