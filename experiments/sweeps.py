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

from ssm_jax.files import write_json_atomic
from ssm_jax.training.config import Config
from ssm_jax.training.workdir import resume_conflicts


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


def check_runs(runs, directory: str) -> None:
    """Unique run ids, and no run directory under ``directory`` written with another config
    (the trainer's resume policy, :func:`ssm_jax.training.workdir.resume_conflicts`)."""
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"run ids are not unique: {ids}")
    for run in runs:
        workdir = os.path.join(directory, "runs", run.run_id)
        changed = [k for k, _, _ in resume_conflicts(workdir, run.cfg)[0]]
        if changed:
            raise ValueError(f"{workdir} holds a run with a different config ({', '.join(changed[:4])}"
                             f"{' ...' if len(changed) > 4 else ''}); delete it or choose another --out")


def vector_groups(runs, max_members: int = 0, member_keys=()) -> list:
    """The runs in groups that can train together (first-seen order; at most ``max_members``
    per group, 0: no limit): equal :func:`ssm_jax.training.vectorized.group_key`.
    ``member_keys``: init-only ``model.ssm.*`` keys that the caller knows leave the traced step
    unchanged (e.g. ``model.ssm.dt_max``), also allowed to differ (the trainer checks it)."""
    from ssm_jax.training.vectorized import group_key

    groups = {}
    for run in runs:
        groups.setdefault(group_key(run.cfg, member_keys), []).append(run)
    out = []
    for group in groups.values():
        size = max_members or len(group)
        out += [group[i:i + size] for i in range(0, len(group), size)]
    return out


class _NoBar:
    """A progress bar that shows nothing (sweeps inside an experiment with its own bar)."""

    def update(self, n=1):
        pass

    def set_postfix_str(self, s):
        pass


NO_BAR = _NoBar()


def run_sweep(runs, directory: str, evaluate=None, desc: str = "runs", bar=None,
              vectorize: bool = False, max_members: int = 0, member_keys=(), retry=None,
              max_retries: int = 0) -> list:
    """Train every run (skipping finished ones) and evaluate it; returns one row per run.

    Args:
      runs: list of :class:`Run`.
      directory: the experiment's results folder; run ``r`` works in ``directory/runs/<r.run_id>``.
      evaluate: ``evaluate(run, workdir, report) -> dict`` of extra numbers (cached in
        ``result.json`` of the run); None: no evaluation (``result`` is {}).
      desc: label of the progress bar.
      bar: a tqdm bar to advance by one per run (``ssm-jax reproduce``'s bar over the whole
        plan; :data:`NO_BAR`: none); None: a bar of this sweep.
      vectorize: train the unfinished runs in vmapped groups (:func:`vector_groups`; a group
        of one trains alone through the same trainer).
      max_members: the largest group (0: no limit).
      member_keys: init-only ``model.ssm.*`` keys in which a group's runs may differ too
        (:func:`vector_groups`).
      retry: optional ``retry(row) -> Run | None``: a replacement for a finished run (e.g. the
        next unused seed for a run that failed in its first epoch, the selective-SSM paper's
        protocol), trained in a further round; at most ``max_retries`` rounds. The row of the
        replacement takes the place of the first run's, with ``replaced`` (the run ids given up
        on for it).

    Returns:
      list of dicts: ``run_id``, ``meta``, the trainer's report under ``report``, the
      evaluation under ``result``, ``trained`` (False when the run was reused) and
      ``replaced``.
    """
    from tqdm import tqdm

    own_bar = bar is None
    if own_bar:
        bar = tqdm(total=len(runs), desc=desc, unit="run", dynamic_ncols=True, file=sys.stderr)
    sweep = lambda rs: _sweep_round(rs, directory, evaluate, bar, vectorize, max_members,
                                    member_keys)
    rows = [dict(row, replaced=[]) for row in sweep(runs)]
    for _ in range(max_retries if retry is not None else 0):
        redo = [(i, retry(row)) for i, row in enumerate(rows)]
        redo = [(i, run) for i, run in redo if run is not None]
        if not redo:
            break
        for (i, _), row in zip(redo, sweep([run for _, run in redo])):
            rows[i] = dict(row, replaced=rows[i]["replaced"] + [rows[i]["run_id"]])
    if own_bar:
        bar.close()
    return rows


@dataclasses.dataclass(frozen=True)
class Group:
    """Runs trained together: one vmapped program (``vectorize``), or one run alone. The unit
    of work of a sweep, and one job of a cluster plan (:mod:`ssm_jax.experiments.launcher`)."""

    cfgs: tuple
    workdirs: tuple
    vectorize: bool

    @property
    def label(self) -> str:
        more = f" +{len(self.workdirs) - 1} vectorized" if len(self.workdirs) > 1 else ""
        return os.path.basename(self.workdirs[0]) + more

    def done(self) -> bool:
        return all(os.path.exists(os.path.join(w, "report.json")) for w in self.workdirs)

    def train(self) -> None:
        """Train (or resume) the runs; the trainer's messages go to the first run's train.log."""
        from ssm_jax.training.loop import train_and_evaluate
        from ssm_jax.training.vectorized import train_members

        os.makedirs(self.workdirs[0], exist_ok=True)
        with open(os.path.join(self.workdirs[0], "train.log"), "a") as log, contextlib.redirect_stdout(log):
            if self.vectorize:
                train_members(list(self.cfgs), list(self.workdirs))
            else:
                train_and_evaluate(self.cfgs[0], self.workdirs[0])


class Pending(Exception):
    """Raised by a sweep under :func:`dispatching` instead of training: ``groups``, the
    :class:`Group` s it would train now."""

    def __init__(self, groups):
        super().__init__(f"{len(groups)} group(s) of runs to train")
        self.groups = groups


_DISPATCHING = []


@contextlib.contextmanager
def dispatching():
    """Within it, a sweep with runs to train raises :class:`Pending` with its groups instead
    of training them (a launcher sends them as jobs); a sweep whose runs are all finished
    reads them as usual."""
    _DISPATCHING.append(True)
    try:
        yield
    finally:
        _DISPATCHING.pop()


def for_each(items, fn) -> list:
    """``[fn(item) for item in items]`` for independent sweeps; under :func:`dispatching`, the
    pending groups of every item are collected before one :class:`Pending` is raised, so a
    launcher finds all of them at once."""
    out, pending = [], []
    for item in items:
        try:
            out.append(fn(item))
        except Pending as p:
            if not _DISPATCHING:
                raise
            pending += p.groups
    if pending:
        raise Pending(pending)
    return out


def _sweep_round(runs, directory, evaluate, bar, vectorize, max_members, member_keys) -> list:
    check_runs(runs, directory)
    workdir_of = lambda run: os.path.join(directory, "runs", run.run_id)
    todo = [r for r in runs if not os.path.exists(os.path.join(workdir_of(r), "report.json"))]
    groups = [Group(tuple(r.cfg for r in g), tuple(workdir_of(r) for r in g), vectorize)
              for g in (vector_groups(todo, max_members, member_keys) if vectorize else [[r] for r in todo])]
    if groups and _DISPATCHING:
        raise Pending(groups)
    for group in groups:
        bar.set_postfix_str(group.label)
        group.train()
        bar.update(len(group.workdirs))  # trained runs count as they finish (the ETA moves)
    trained = {r.run_id for r in todo}
    rows = []
    for run in runs:
        bar.set_postfix_str(run.run_id)
        workdir = workdir_of(run)
        with open(os.path.join(workdir, "report.json")) as f:
            report = json.load(f)
        result_path = os.path.join(workdir, "result.json")
        if evaluate is None:
            result = {}
        elif os.path.exists(result_path):
            with open(result_path) as f:
                result = json.load(f)
        else:
            result = evaluate(run, workdir, report)
            write_json_atomic(result_path, result)
        rows.append({"run_id": run.run_id, "meta": run.meta, "report": report, "result": result,
                     "trained": run.run_id in trained})
        if run.run_id not in trained:
            bar.update(1)
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
