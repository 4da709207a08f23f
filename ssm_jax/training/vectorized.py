"""Train several small-model runs ("members") at once: one jitted step, ``jax.vmap`` over them.

A sweep of a tiny model (the selective-SSM paper's: d = 4..16, N = 4; paper 1's one-layer
S4D regressions) spends its time in per-step overhead, not arithmetic; stacking the members
on a leading axis turns M runs into one run of M times the work per step. The step is the
trainer's own loop (:func:`ssm_jax.training.run.fit` over a stacked leading member axis), so a
member computes what ``train_and_evaluate`` computes for its config. Members may differ in any value
that changes neither shapes nor the traced computation:

* ``seed`` and ``data.seed`` (init, batch order, data),
* init-only options: ``model.ssm.*`` that only change the initial values (e.g.
  ``model.ssm.s_A``; accepted when the members' models trace to the same forward
  computation, their jaxprs are compared) and ``bound.init_scaling`` (paper 1's rule, applied
  per member at init),
* loss weights: ``bound.reg_lambda`` (paper 1's regularizer or a penalty, one weight per
  member; the term is computed for all members when any has a weight > 0) and
  ``train.collapse_penalty``,
* ``optim.lr`` and ``optim.weight_decay`` under ``optim.recipe=adam_l2`` (injected
  hyperparameters of the one optimizer, a per-member array in the stacked optimizer state).

Everything else (shapes, schedule, model structure, the other recipes' learning rates) must
be equal; a mismatch is one ValueError naming the key. Each member has its own ``workdir``
exactly as the trainer writes it: ``config.json``, ``metrics.csv``, orbax checkpoints (the
last ones by step and the best by validation score, in the trainer's tree, so
:func:`~ssm_jax.training.checkpoint.load_variables` reads them), ``report.json`` and the
curves. A killed group resumes from its members' checkpoints (when all of them hold the same
latest step). A member that fails a step (``train.failure``: by default a NaN/Inf loss or
parameter, see :func:`~ssm_jax.training.steps.step_failed`) stops updating from that step on
(its parameters stay those of the step before) and its report says ``failed_step``; the
others go on.
"""

from __future__ import annotations

import contextlib
import json
import os

import jax

from ssm_jax.data import get_dataset
from ssm_jax.training.config import config_changes, flatten, parse_config
from ssm_jax.training.run import build_model, build_run, evaluate, fit
from ssm_jax.training.steps import eval_sums
from ssm_jax.training.workdir import WorkdirLock, prepare_workdir

# Keys whose values may differ between members (checked further where noted above).
MEMBER_KEYS = ("seed", "data.seed", "optim.lr", "optim.weight_decay", "train.collapse_penalty",
               "train.progress", "bound.reg_lambda", "bound.init_scaling")
INIT_ONLY_PREFIX = "model.ssm."


def member_key(key: str, recipe: str) -> bool:
    """Config ``key`` may differ between the members of one group (``recipe``:
    ``optim.recipe``; only ``adam_l2`` takes per-member learning rates)."""
    if key in ("optim.lr", "optim.weight_decay") and recipe != "adam_l2":
        return False
    return key in MEMBER_KEYS or key.startswith(INIT_ONLY_PREFIX)


def group_key(cfg, member_keys=()) -> str:
    """Runs with equal keys may train in one group: the config without its member keys.
    ``model.ssm.*`` values (init-only options) are kept in the key unless named in
    ``member_keys`` (the caller knows they leave the step unchanged; the trainer compares the
    traced models again)."""
    for k in member_keys:
        if not k.startswith(INIT_ONLY_PREFIX):
            raise ValueError(f"member_keys must be init-only {INIT_ONLY_PREFIX}* keys, got {k!r}")
    flat = flatten(json.loads(json.dumps(cfg.to_dict(), default=str)))
    free = lambda k: k in member_keys or (member_key(k, cfg.optim.recipe)
                                          and not k.startswith(INIT_ONLY_PREFIX))
    return json.dumps({k: v for k, v in flat.items() if not free(k)}, sort_keys=True)


def check_members(cfgs) -> None:
    """Raise ValueError naming the first config key the members may not differ in."""
    base = cfgs[0].to_dict()
    for cfg in cfgs[1:]:
        for key, _, _ in config_changes(base, cfg.to_dict()):
            if not member_key(key, cfgs[0].optim.recipe):
                raise ValueError(f"vectorized members must share config key {key!r} (members may "
                                 f"differ in {', '.join(MEMBER_KEYS)} and init-only model.ssm.*; "
                                 "optim.lr / optim.weight_decay only with optim.recipe=adam_l2)")


def train_members(cfgs, workdirs, *, progress=None) -> list:
    """Train the members ``cfgs`` (parsed configs) together; returns one report per member.

    Args:
      cfgs: list of configs (see the module docstring for what may differ).
      workdirs: one work directory per member (each held under the trainer's lock).
      progress: optional callable ``progress(step, num_steps)``.

    Returns:
      list of the trainer's reports (``report.json``) with, in addition, ``train`` (metrics on
      the whole training split at the reported parameters), ``failed_step`` (None, or the
      first step that failed the run) and ``num_train`` (training examples).
    """
    cfgs = [parse_config(c) for c in cfgs]
    if len(cfgs) != len(workdirs) or not cfgs:
        raise ValueError("need one workdir per member and at least one member")
    check_members(cfgs)
    workdirs = [prepare_workdir(w) for w in workdirs]
    if len(set(map(os.path.realpath, workdirs))) != len(workdirs):
        raise ValueError(f"members need distinct work directories, got {workdirs}")
    with contextlib.ExitStack() as locks:
        for w in workdirs:
            locks.enter_context(WorkdirLock(w, jax.process_index()))
        runs = _build_runs(cfgs)

        def report_extra(i, state):
            ds, bs = runs[i].dataset, cfgs[i].train.eval_batch_size
            train = lambda st: evaluate(lambda _, b: eval_sums(runs[i].model, st.variables, b),
                                        None, ds.train, min(bs, len(ds.train)), None)
            return {"train": train, "num_train": len(ds.train)}

        return fit(runs, workdirs, progress=progress, quiet=True, report_extra=report_extra)


def _build_runs(cfgs) -> list:
    """The members' runs (datasets shared between equal data sections); their models must
    trace to the same forward computation."""
    cache, runs = {}, []
    for cfg in cfgs:
        key = json.dumps(dict(cfg.data), sort_keys=True, default=str)
        if key not in cache:
            cache[key] = get_dataset(cfg.data)
        runs.append(build_run(cfg, cache[key]))
    x0 = runs[0].dataset.train.take(range(1))
    trace = lambda r: str(jax.make_jaxpr(lambda v: r.model.apply(v, x0["inputs"], x0["lengths"]))(
        r.variables))
    ref = trace(runs[0])
    for run in runs[1:]:
        if run.model != runs[0].model and trace(run) != ref:
            raise ValueError("vectorized members' models compute different functions; only "
                             "init-only model.ssm options may differ")
    return runs


__all__ = ["MEMBER_KEYS", "check_members", "group_key", "member_key", "train_members"]
