"""Sweeps of training runs over the trainer: one work directory per run, finished runs
reused, interrupted runs resumed (the trainer resumes from its checkpoints), a run directory
written with another config refused before anything trains.

Each run works in ``<directory>/runs/<run_id>/``; its evaluation by the experiment is cached
in ``result.json`` beside the trainer's ``report.json``. With ``vectorize``, the unfinished
runs that differ only in values that change neither shapes nor the traced step (seeds, loss
weights, init-only options: :data:`ssm_jax.training.vectorized.MEMBER_KEYS`) train together
in one vmapped step (:func:`ssm_jax.training.vectorized.train_members`), each still in its
own work directory with the trainer's checkpoints and report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys

import jax
import numpy as np

from ssm_jax.training.config import PLACEMENT, RESUMABLE_CHANGES, Config, config_changes


@dataclasses.dataclass
class Run:
    """One training run of a sweep: its id (work directory name), parsed trainer config and
    the sweep coordinates that go into the tables (``meta``)."""

    run_id: str
    cfg: Config
    meta: dict = dataclasses.field(default_factory=dict)


def run_config(task_cfg: Config, **changes) -> Config:
    """A run's config: ``task_cfg`` with ``{"a.b": value}`` changes (each checked) and the
    inner progress bar off."""
    return task_cfg.replace(**{"train.progress": False, **changes})


def _written_config(workdir: str):
    for name in (os.path.join("checkpoints", "config.json"), "config.json"):
        path = os.path.join(workdir, name)
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
    return None


def check_runs(runs, directory: str) -> None:
    """Unique run ids, and no run directory under ``directory`` written with another config."""
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"run ids are not unique: {ids}")
    for run in runs:
        workdir = os.path.join(directory, "runs", run.run_id)
        old = _written_config(workdir)
        if old is None:
            continue
        new = json.loads(json.dumps(run.cfg.to_dict(), default=str))
        changed = [k for k, _, _ in config_changes(old, new)
                   if k not in RESUMABLE_CHANGES and not k.startswith(PLACEMENT)]
        if changed:
            raise ValueError(f"{workdir} holds a run with a different config ({', '.join(changed[:4])}"
                             f"{' ...' if len(changed) > 4 else ''}); delete it or choose another --out")


def _write_json(path: str, value) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=2)
    os.replace(path + ".tmp", path)


def vector_groups(runs, max_members: int = 0, member_keys=()) -> list:
    """The runs in groups that can train together (first-seen order; at most ``max_members``
    per group, 0: no limit): equal configs up to the member keys (and, outside the
    ``adam_l2`` recipe, equal learning rates). ``member_keys``: init-only ``model.ssm.*`` keys
    that the caller knows leave the traced step unchanged (e.g. ``model.ssm.dt_max``), also
    allowed to differ (:func:`~ssm_jax.training.vectorized.train_members` checks it)."""
    from ssm_jax.training.vectorized import INIT_ONLY_PREFIX, MEMBER_KEYS

    for k in member_keys:
        if not k.startswith(INIT_ONLY_PREFIX):
            raise ValueError(f"member_keys must be init-only {INIT_ONLY_PREFIX}* keys, got {k!r}")
    free = set(MEMBER_KEYS) | set(member_keys)
    groups = {}
    for run in runs:
        flat = json.loads(json.dumps(run.cfg.to_dict(), default=str))
        key = {k: v for k, v in _flatten(flat).items() if k not in free}
        if run.cfg.optim.recipe != "adam_l2":
            key["optim.lr"], key["optim.weight_decay"] = run.cfg.optim.lr, run.cfg.optim.weight_decay
        groups.setdefault(json.dumps(key, sort_keys=True), []).append(run)
    out = []
    for group in groups.values():
        size = max_members or len(group)
        out += [group[i:i + size] for i in range(0, len(group), size)]
    return out


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def run_sweep(runs, directory: str, evaluate, desc: str = "runs", bar=None,
              vectorize: bool = False, max_members: int = 0, member_keys=()) -> list:
    """Train every run (skipping finished ones) and evaluate it; returns one row per run.

    Args:
      runs: list of :class:`Run`.
      directory: the experiment's results folder; run ``r`` works in ``directory/runs/<r.run_id>``.
      evaluate: ``evaluate(run, workdir, report) -> dict`` of extra numbers (cached in
        ``result.json`` of the run).
      desc: label of the progress bar.
      bar: a tqdm bar to advance by one per run (``ssm-jax reproduce``'s bar over the whole
        plan); None: a bar of this sweep.
      vectorize: train the unfinished runs in vmapped groups (:func:`vector_groups`).
      max_members: the largest group (0: no limit).
      member_keys: init-only ``model.ssm.*`` keys in which a group's runs may differ too
        (:func:`vector_groups`).

    Returns:
      list of dicts: ``run_id``, ``meta``, the trainer's report under ``report``, the
      evaluation under ``result`` and ``trained`` (False when the run was reused).
    """
    from tqdm import tqdm

    from ssm_jax.training.loop import train_and_evaluate

    check_runs(runs, directory)
    own_bar = bar is None
    if own_bar:
        bar = tqdm(total=len(runs), desc=desc, unit="run", dynamic_ncols=True, file=sys.stderr)
    workdir_of = lambda run: os.path.join(directory, "runs", run.run_id)
    todo = [r for r in runs if not os.path.exists(os.path.join(workdir_of(r), "report.json"))]
    grouped = set()
    if vectorize:
        from ssm_jax.training.vectorized import train_members

        for group in vector_groups(todo, max_members, member_keys):
            if len(group) < 2:
                continue
            bar.set_postfix_str(f"{group[0].run_id} +{len(group) - 1} vectorized")
            dirs = [workdir_of(r) for r in group]
            os.makedirs(dirs[0], exist_ok=True)
            with open(os.path.join(dirs[0], "train.log"), "a") as log, \
                    contextlib.redirect_stdout(log):
                train_members([r.cfg for r in group], dirs)
            grouped.update(r.run_id for r in group)
    rows = []
    for run in runs:
        bar.set_postfix_str(run.run_id)
        workdir = workdir_of(run)
        report_path = os.path.join(workdir, "report.json")
        result_path = os.path.join(workdir, "result.json")
        trained = run.run_id in grouped or not os.path.exists(report_path)
        if not os.path.exists(report_path):
            os.makedirs(workdir, exist_ok=True)
            with open(os.path.join(workdir, "train.log"), "a") as log, \
                    contextlib.redirect_stdout(log):
                report = train_and_evaluate(run.cfg, workdir)
        else:
            with open(report_path) as f:
                report = json.load(f)
        if os.path.exists(result_path):
            with open(result_path) as f:
                result = json.load(f)
        else:
            result = evaluate(run, workdir, report)
            _write_json(result_path, result)
        rows.append({"run_id": run.run_id, "meta": run.meta, "report": report, "result": result,
                     "trained": trained})
        bar.update(1)
    if own_bar:
        bar.close()
    return rows


def timing_note(rows: list, elapsed: float) -> str:
    """One line for a table: wall-clock of this invocation and how many runs it trained."""
    trained = sum(r["trained"] for r in rows)
    return (f"Wall-clock of this invocation: {elapsed:.0f} s; {trained} of {len(rows)} runs "
            "trained (the others reused from runs/).")


def enable_compilation_cache() -> None:
    """Persistent XLA compilation cache, so the runs of a sweep (same model, new closures)
    compile once: ``$SSM_JAX_COMPILATION_CACHE``, else ``~/.cache/ssm_jax/xla``. Left
    alone when JAX already has a cache directory."""
    if jax.config.jax_compilation_cache_dir:
        return
    path = os.environ.get("SSM_JAX_COMPILATION_CACHE") or os.path.expanduser("~/.cache/ssm_jax/xla")
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def total_tau(model, variables, batch, measure: str = "paper", readout: str = "last") -> float:
    """Sum over SSM layers of the mean over channels of tau on ``batch`` (``readout``: the
    output the measure bounds, "last" or "mean")."""
    from ssm_jax.bound import layer_measures

    lengths = batch["lengths"]
    if np.all(np.asarray(lengths) == np.shape(batch["inputs"])[1]):
        lengths = None  # full length: the shared-weight formula (same value, cheaper)
    taus = layer_measures(model, variables, batch["inputs"], lengths, measure=measure,
                          readout=readout)
    return float(sum(float(np.mean(jax.device_get(t))) for t in taus))
