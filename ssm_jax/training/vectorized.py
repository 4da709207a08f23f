"""Train several small-model runs ("members") at once: one jitted step, ``jax.vmap`` over them.

A sweep of a tiny model (the selective-SSM paper's: d = 4..16, N = 4; paper 1's one-layer
S4D regressions) spends its time in per-step overhead, not arithmetic; stacking the members
on a leading axis turns M runs into one run of M times the work per step. The step is the
trainer's own objective (:func:`ssm_jax.training.steps.make_loss`) and optimizer, so a member
computes what ``train_and_evaluate`` computes for its config. Members may differ in any value
that changes neither shapes nor the traced computation:

* ``seed`` and ``data.seed`` (init, batch order, data),
* init-only options: ``model.ssm.*`` that only change the initial values (e.g.
  ``model.ssm.s_A``; accepted when the members' models trace to the same forward
  computation, their jaxprs are compared) and ``bound.init_scaling`` (paper 1's rule, applied
  per member at init),
* loss weights: ``bound.reg_lambda`` (paper 1's regularizer or a penalty, one weight per
  member; the term is computed for all members when any has a weight > 0) and
  ``train.collapse_penalty``,
* ``optim.lr`` and ``optim.weight_decay`` under ``optim.recipe=adam_l2`` (they enter the
  step as per-member arrays: Adam's update is scaled by ``lr`` after the fact, the coupled L2
  is added to the gradient after clipping, exactly where the one-run optimizer has them).

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
import io
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssm_jax.data import BatchIterator, get_dataset
from ssm_jax.layers import find_layers
from ssm_jax.training.checkpoint import Checkpoints
from ssm_jax.training.config import Config, config_changes, parse_config, save_config
from ssm_jax.training.metrics import MetricsWriter
from ssm_jax.training.optim import plateau_transform
from ssm_jax.training.sharding import DataParallel
from ssm_jax.training.state import TrainState
from ssm_jax.training.steps import make_loss, make_steps, step_failed
from ssm_jax.training.workdir import (WorkdirLock, check_resume, prepare_workdir,
                                      write_fingerprint)

# Keys whose values may differ between members (checked further where noted above).
MEMBER_KEYS = ("seed", "data.seed", "optim.lr", "optim.weight_decay", "train.collapse_penalty",
               "train.progress", "bound.reg_lambda", "bound.init_scaling")
INIT_ONLY_PREFIX = "model.ssm."
STATE_KEYS = ("step", "params", "opt_state", "batch_stats", "rng")  # the trainer's tree
MEMBER_FILE = "member.json"  # failed_step of a member, saved with its checkpoints


def _check_members(cfgs) -> None:
    base = cfgs[0].to_dict()
    for cfg in cfgs[1:]:
        for key, _, _ in config_changes(base, cfg.to_dict()):
            if key in MEMBER_KEYS or key.startswith(INIT_ONLY_PREFIX):
                continue
            raise ValueError(f"vectorized members must share config key {key!r} (members may "
                             f"differ in {', '.join(MEMBER_KEYS)} and init-only model.ssm.*)")
    if cfgs[0].optim.recipe != "adam_l2":
        for cfg in cfgs:
            if (cfg.optim.lr, cfg.optim.weight_decay) != (cfgs[0].optim.lr, cfgs[0].optim.weight_decay):
                raise ValueError("members may differ in optim.lr / optim.weight_decay only with "
                                 "optim.recipe=adam_l2")


def _unit_optimizer(cfg: Config, spe: int):
    """adam_l2 without its learning rate, clip and L2 (the step applies those per member)."""
    o = cfg.optim
    return optax.chain(optax.scale_by_adam(b1=o.b1, b2=o.b2), optax.scale(-1.0),
                       plateau_transform(o, spe))


def _stack(trees):
    # numpy stacking: eager jnp ops would each compile once per shape
    return jax.tree.map(lambda *x: jnp.asarray(np.stack([np.asarray(a) for a in x])), *trees)


def _member(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def _read_json(path: str, default):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def _write_json(path: str, value) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=2)
    os.replace(path + ".tmp", path)


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
    _check_members(cfgs)
    workdirs = [prepare_workdir(w) for w in workdirs]
    if len(set(map(os.path.realpath, workdirs))) != len(workdirs):
        raise ValueError(f"members need distinct work directories, got {workdirs}")
    with contextlib.ExitStack() as locks:
        for w in workdirs:
            locks.enter_context(WorkdirLock(w, jax.process_index()))
        return _train_members(cfgs, workdirs, progress)


def _train_members(cfgs, workdirs, progress) -> list:
    from ssm_jax.bound.timescale_init import real_part_projection
    from ssm_jax.training.loop import (bound_metrics, build_model, evaluate_model,
                                       final_report, init_variables, loss_terms, make_optimizer,
                                       output_terms, schedule, score as _score, steps_per_epoch)

    base = cfgs[0]
    datasets, cache = [], {}
    for cfg in cfgs:
        key = json.dumps(dict(cfg.data), sort_keys=True, default=str)
        if key not in cache:
            cache[key] = get_dataset(cfg.data)
        datasets.append(cache[key])
    models = [build_model(cfg.model, ds.info) for cfg, ds in zip(cfgs, datasets)]
    n_train = len(datasets[0].train)
    num_steps, log_every = schedule(base, n_train)
    spe = steps_per_epoch(base, n_train)

    inits, layers = [], None
    for cfg, model, ds in zip(cfgs, models, datasets):
        init_rng, state_rng = jax.random.split(jax.random.PRNGKey(cfg.seed))
        variables, batch = init_variables(model, cfg, ds.train, init_rng)
        layers = layers or find_layers(model, batch["inputs"][:1], batch["lengths"][:1])
        inits.append((variables, state_rng))
    model = models[0]
    x0 = datasets[0].train.take(np.arange(1))
    trace = lambda m, v: str(jax.make_jaxpr(lambda v_: m.apply(v_, x0["inputs"], x0["lengths"]))(v))
    ref = trace(model, inits[0][0])
    for other, (v, _) in zip(models[1:], inits[1:]):
        if other != model and trace(other, v) != ref:
            raise ValueError("vectorized members' models compute different functions; only "
                             "init-only model.ssm options may differ")

    # the loss terms of the member with the largest weight; each member's own weight enters
    # the step as an array (0 for members without the term)
    lam = [c.bound.reg_lambda for c in cfgs]
    cws = [c.train.collapse_penalty for c in cfgs]
    widest = base.replace(**{"bound.reg_lambda": max(lam), "train.collapse_penalty": max(cws)})
    terms = loss_terms(widest, datasets[0].train, layers)
    out_terms = output_terms(widest)
    weights = {name: jnp.asarray(w, jnp.float32) for name, w in
               (("reg", lam), ("collapse", cws)) if name in terms or name in out_terms}
    objective = make_loss(model.head, terms, out_terms, check_outputs=base.train.failure == "authors")
    project = real_part_projection(base.init, layers)

    adam_l2 = base.optim.recipe == "adam_l2"
    tx = _unit_optimizer(base, spe) if adam_l2 else make_optimizer(
        base.optim, num_steps, layers, steps_per_epoch=spe)
    params = _stack([v["params"] for v, _ in inits])
    state = {"step": jnp.zeros((len(cfgs),), jnp.int32), "params": params,
             "opt_state": jax.jit(jax.vmap(tx.init))(params),
             "batch_stats": _stack([v.get("batch_stats", {}) for v, _ in inits]),
             "rng": _stack([r for _, r in inits])}
    lr = jnp.asarray([c.optim.lr for c in cfgs], jnp.float32)
    wd = jnp.asarray([c.optim.weight_decay for c in cfgs], jnp.float32)
    clip = base.optim.grad_clip

    def member_step(st, batch, lr_i, wd_i, w_i, alive):
        p = st["params"]
        r = jax.random.fold_in(st["rng"], st["step"])
        grads, (metrics, bs) = jax.grad(objective, has_aux=True)(
            p, model.apply, st["batch_stats"], batch, r, w_i)
        metrics["grad_norm"] = optax.tree.norm(grads)
        raw_grads = grads  # the failure rule reads them before clipping, as the trainer does
        if adam_l2:
            if clip > 0:
                grads, _ = optax.clip_by_global_norm(clip).update(grads, optax.EmptyState())
            grads = jax.tree.map(lambda g, w: g + wd_i * w, grads, p)
            updates, s_new = tx.update(grads, st["opt_state"], p, value=metrics["loss"])
            updates = jax.tree.map(lambda u: lr_i * u, updates)
        else:
            updates, s_new = tx.update(grads, st["opt_state"], p, value=metrics["loss"])
        p_new = optax.apply_updates(p, updates)
        if project is not None:
            p_new = project(p, p_new)
        keep = alive & ~step_failed(base.train.failure, metrics, raw_grads, p_new)
        metrics.pop("outputs_finite", None)
        new = {"step": st["step"] + 1, "params": p_new, "opt_state": s_new, "batch_stats": bs,
               "rng": st["rng"]}
        new = jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, st)
        new["step"] = st["step"] + 1
        return new, metrics, keep

    step_fn = jax.jit(jax.vmap(member_step))

    fresh_iters = lambda: [BatchIterator(ds.train, c.train.batch_size, seed=c.seed,
                                         drop_remainder=c.train.drop_last)
                           for c, ds in zip(cfgs, datasets)]
    iters = fresh_iters()
    ckpts = [Checkpoints(w, c.train.keep_checkpoints) for w, c in zip(workdirs, cfgs)]
    starts = [c.latest_step() for c in ckpts]
    start, failed = 0, [None] * len(cfgs)
    if starts[0] is not None and all(s == starts[0] for s in starts):
        restored = []
        for i, (ck, w, cfg) in enumerate(zip(ckpts, workdirs, cfgs)):
            check_resume(w, cfg, report=print)
            step, tree, data_state = ck.restore_latest(_member(state, i))
            if step != starts[0]:
                break
            iters[i].restore(data_state)
            failed[i] = _read_json(os.path.join(w, MEMBER_FILE), {}).get("failed_step")
            restored.append(tree)
        else:
            state, start = _stack(restored), starts[0]
        if not start:  # a member's checkpoint did not restore: all start from scratch
            iters, failed = fresh_iters(), [None] * len(cfgs)
    alive = jnp.asarray([f is None for f in failed])
    for w, cfg in zip(workdirs, cfgs):
        save_config(cfg, w)
        write_fingerprint(w, cfg)
    writers = [MetricsWriter(w, resume_step=start) for w in workdirs]  # CSV and TensorBoard
    seq_len = datasets[0].info.seq_len
    validation = len(datasets[0].validation) > 0
    best = [c.best_score() for c in ckpts]

    def log_params(step, p_all):
        p_all = jax.device_get(p_all)
        for i, wr in enumerate(writers):
            extra = bound_metrics(_member(p_all, i), layers, seq_len)
            if extra:
                wr.write(step, "params", extra)

    if not start:
        log_params(0, state["params"])
    history = []
    try:
        for step in range(start + 1, num_steps + 1):
            batch = _stack([next(it) for it in iters])
            state, metrics, alive_new = step_fn(state, batch, lr, wd, weights, alive)
            history.append((step, metrics, alive_new))
            alive = alive_new
            log_now = step % log_every == 0 or step == num_steps
            eval_now = step % base.train.eval_every == 0 or step == num_steps
            ckpt_now = step % base.train.checkpoint_every == 0 or step == num_steps
            if log_now or eval_now or ckpt_now:
                for i, wr in enumerate(writers):
                    rows = []
                    for s_, m_, ok in jax.device_get(history):
                        if failed[i] is None and not ok[i]:
                            failed[i] = s_  # the first step whose loss or parameters were not finite
                        if failed[i] is None:
                            rows.append({k: float(v[i]) for k, v in m_.items()})
                    if rows:
                        wr.write(step, "train", {k: float(np.mean([r[k] for r in rows]))
                                                 for k in rows[0]})
                log_params(step, state["params"])
                history = []
                if progress is not None:
                    progress(step, num_steps)
            if eval_now and validation:
                host = jax.device_get(state)
                for i, (cfg, ds) in enumerate(zip(cfgs, datasets)):
                    variables = _variables(_member(host, i))
                    val = evaluate_model(model, variables, ds.validation, cfg.train.eval_batch_size)
                    writers[i].write(step, "validation", val)
                    if best[i] is None or _score(val) > best[i]:
                        best[i] = _score(val)
                        ckpts[i].save_best(step, _member(state, i), iters[i].state(), best[i])
            if ckpt_now:
                for i, (ck, w) in enumerate(zip(ckpts, workdirs)):
                    ck.save(step, _member(state, i), iters[i].state())
                    _write_json(os.path.join(w, MEMBER_FILE), {"failed_step": failed[i]})
    finally:
        for wr in writers:
            wr.close()

    _, eval_step = make_steps(model.head)
    dp = DataParallel(base.train.batch_size)
    reports = []
    for i, (cfg, ds, w, ck) in enumerate(zip(cfgs, datasets, workdirs, ckpts)):
        st = TrainState(apply_fn=model.apply, tx=tx, **_member(state, i))
        bs = cfg.train.eval_batch_size
        best_step = ck.best_step() if validation else None
        at = _variables(ck.restore(best_step, _member(state, i), which="best")[0]) \
            if best_step is not None else st.variables
        with contextlib.redirect_stdout(io.StringIO()):  # its one-line summary, per member
            report = final_report(cfg, w, st, ck, eval_step, ds, dp, num_steps, extra={
                "train": evaluate_model(model, at, ds.train, bs), "failed_step": failed[i],
                "num_train": len(ds.train)})
        ck.close()
        reports.append(report)
    return reports


def _variables(tree) -> dict:
    v = {"params": tree["params"]}
    if tree.get("batch_stats"):
        v["batch_stats"] = tree["batch_stats"]
    return v


__all__ = ["MEMBER_KEYS", "train_members"]
