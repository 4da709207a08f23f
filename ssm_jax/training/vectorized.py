"""Train several small-model runs ("members") at once: one jitted step, ``jax.vmap`` over them.

A sweep of a tiny model (the selective-SSM paper's: d = 4..16, N = 4) spends its time in
per-step overhead, not arithmetic; stacking the members on a leading axis turns M runs into
one run of M times the work per step. Members may differ in any value that changes neither
shapes nor the traced computation:

* ``seed`` and ``data.seed`` (init, batch order, data),
* init-only layer options (e.g. ``model.ssm.s_A``): accepted when the members' models trace
  to the same forward computation (their jaxprs are compared), since one ``apply`` runs all,
* ``optim.lr`` and ``optim.weight_decay`` under ``optim.recipe=adam_l2`` (they enter the
  step as per-member arrays: Adam's update is scaled by ``lr`` after the fact, the coupled L2
  is added to the gradient after clipping, exactly where the one-run optimizer has them),
* ``train.collapse_penalty`` (a per-member weight).

Everything else (shapes, schedule, model structure) must be equal; a mismatch is one
ValueError naming the key. Each member gets its own ``workdir`` with ``config.json``,
``metrics.csv`` (the trainer's long format), ``report.json`` and ``params.npz`` (its final
parameters); a member whose loss or parameters become NaN/Inf stops updating from that step
on (its parameters stay those of the step before) and its report says ``failed_step``; the
others go on.
"""

from __future__ import annotations

import json
import os

import flax.traverse_util as traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssm_jax.data import BatchIterator, get_dataset
from ssm_jax.layers import find_layers
from ssm_jax.training.config import Config, config_changes, parse_config, save_config
from ssm_jax.training.metrics import MetricsWriter
from ssm_jax.training.steps import collapse_penalty, task_loss

# Keys whose values may differ between members (checked further where noted above).
MEMBER_KEYS = ("seed", "data.seed", "optim.lr", "optim.weight_decay", "train.collapse_penalty",
               "train.progress")
INIT_ONLY_PREFIX = "model.ssm."


def _check_members(cfgs) -> None:
    base = cfgs[0].to_dict()
    for cfg in cfgs[1:]:
        for key, _, _ in config_changes(base, cfg.to_dict()):
            if key in MEMBER_KEYS or key.startswith(INIT_ONLY_PREFIX):
                continue
            raise ValueError(f"vectorized members must share config key {key!r} (members may "
                             f"differ in {', '.join(MEMBER_KEYS)} and init-only model.ssm.*)")
    if cfgs[0].bound.reg_lambda > 0 or cfgs[0].bound.init_scaling:
        raise ValueError("vectorized training does not support bound.reg_lambda or "
                         "bound.init_scaling; train those runs one by one")
    for cfg in cfgs:
        if cfg.optim.recipe != "adam_l2":
            if (cfg.optim.lr, cfg.optim.weight_decay) != (cfgs[0].optim.lr, cfgs[0].optim.weight_decay):
                raise ValueError("members may differ in optim.lr / optim.weight_decay only with "
                                 "optim.recipe=adam_l2")


def _unit_optimizer(cfg: Config, spe: int):
    """The optimizer without its learning rate (and, for adam_l2, without clip and L2, which
    the step applies per member)."""
    o = cfg.optim
    if o.recipe == "adam_l2":
        return optax.chain(optax.scale_by_adam(b1=o.b1, b2=o.b2), optax.scale(-1.0),
                           optax.contrib.reduce_on_plateau(
                               factor=o.plateau_factor, patience=o.plateau_patience,
                               rtol=o.plateau_rtol, accumulation_size=max(1, spe)))
    return None


def train_members(cfgs, workdirs, *, progress=None) -> list:
    """Train the members ``cfgs`` (parsed configs) together; returns one report per member.

    Args:
      cfgs: list of configs (see the module docstring for what may differ).
      workdirs: one directory per member (created; config.json, metrics.csv, report.json,
        params.npz written there).
      progress: optional callable ``progress(step, num_steps)``.

    Returns:
      list of dicts: ``train`` and ``test`` metrics at the final parameters (``validation``
      too when that split is not empty), ``num_steps``, ``failed_step`` (None, or the first
      step whose loss or parameters were not finite) and ``selection`` ("last").
    """
    from ssm_jax.training.loop import (bound_metrics, build_model, evaluate_model, init_variables,
                                       make_optimizer, schedule, steps_per_epoch)

    cfgs = [parse_config(c) for c in cfgs]
    if len(cfgs) != len(workdirs) or not cfgs:
        raise ValueError("need one workdir per member and at least one member")
    _check_members(cfgs)
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
    for i, (cfg, model, ds) in enumerate(zip(cfgs, models, datasets)):
        rng = jax.random.PRNGKey(cfg.seed)
        init_rng, state_rng = jax.random.split(rng)
        variables, batch = init_variables(model, cfg, ds.train, init_rng)
        if variables.get("batch_stats"):
            raise ValueError("vectorized training does not support BatchNorm (model.norm=batch)")
        layers = layers or find_layers(model, batch["inputs"][:1], batch["lengths"][:1])
        inits.append((variables["params"], state_rng))
    model = models[0]
    x0 = datasets[0].train.take(np.arange(1))
    ref = str(jax.make_jaxpr(model.apply)({"params": inits[0][0]}, x0["inputs"], x0["lengths"]))
    for other, (p, _) in zip(models[1:], inits[1:]):
        if other != model and str(jax.make_jaxpr(other.apply)({"params": p}, x0["inputs"],
                                                                x0["lengths"])) != ref:
            raise ValueError("vectorized members' models compute different functions; only "
                             "init-only model.ssm options may differ")

    adam_l2 = base.optim.recipe == "adam_l2"
    tx = _unit_optimizer(base, spe) if adam_l2 else make_optimizer(
        base.optim, num_steps, layers, steps_per_epoch=spe)
    # numpy stacking: eager jnp ops would each compile once per shape
    stack = lambda trees: jax.tree.map(lambda *x: np.stack([np.asarray(a) for a in x]), *trees)
    params = jax.tree.map(jnp.asarray, stack([p for p, _ in inits]))
    opt_state = jax.jit(jax.vmap(tx.init))(params)
    rngs = jnp.stack([r for _, r in inits])
    lr = jnp.asarray([c.optim.lr for c in cfgs], jnp.float32)
    wd = jnp.asarray([c.optim.weight_decay for c in cfgs], jnp.float32)
    cw = jnp.asarray([c.train.collapse_penalty for c in cfgs], jnp.float32)
    min_std, clip = base.train.collapse_min_std, base.optim.grad_clip
    head = model.head

    def loss_fn(p, batch, rng, cw_i):
        out = model.apply({"params": p}, batch["inputs"], batch["lengths"], train=True,
                          rngs={"dropout": rng})
        loss, sums = task_loss(out, batch["labels"], head)
        metrics = {k: v / sums["count"] for k, v in sums.items() if k != "count"}
        metrics["task_loss"] = loss
        total = loss
        if base.train.collapse_penalty > 0 or len(set(c.train.collapse_penalty for c in cfgs)) > 1:
            pen = collapse_penalty(out, min_std)
            metrics["collapse"] = pen
            total = total + cw_i * pen
        metrics["loss"] = total
        return total, metrics

    def member_step(p, s, rng, step, batch, lr_i, wd_i, cw_i, alive):
        r = jax.random.fold_in(rng, step)
        grads, metrics = jax.grad(loss_fn, has_aux=True)(p, batch, r, cw_i)
        metrics["grad_norm"] = optax.tree.norm(grads)
        if adam_l2:
            if clip > 0:
                grads, _ = optax.clip_by_global_norm(clip).update(grads, optax.EmptyState())
            grads = jax.tree.map(lambda g, w: g + wd_i * w, grads, p)
            updates, s_new = tx.update(grads, s, p, value=metrics["loss"])
            updates = jax.tree.map(lambda u: lr_i * u, updates)
        else:
            updates, s_new = tx.update(grads, s, p, value=metrics["loss"])
        p_new = optax.apply_updates(p, updates)
        finite = jnp.isfinite(metrics["loss"]) & jnp.all(jnp.stack(
            [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(p_new)]))
        keep = alive & finite
        p_new = jax.tree.map(lambda a, b: jnp.where(keep, a, b), p_new, p)
        s_new = jax.tree.map(lambda a, b: jnp.where(keep, a, b), s_new, s)
        return p_new, s_new, metrics, keep

    step_fn = jax.jit(jax.vmap(member_step, in_axes=(0, 0, 0, None, 0, 0, 0, 0, 0)))

    iters = [BatchIterator(ds.train, c.train.batch_size, seed=c.seed)
             for c, ds in zip(cfgs, datasets)]
    for w, cfg in zip(workdirs, cfgs):
        os.makedirs(w, exist_ok=True)
        save_config(cfg, w)
    writers = [MetricsWriter(w, tensorboard=False) for w in workdirs]
    seq_len = datasets[0].info.seq_len
    host = jax.device_get

    def log_params(step, p_all):
        p_all = host(p_all)
        for i, wr in enumerate(writers):
            extra = bound_metrics(jax.tree.map(lambda x: x[i], p_all), layers, seq_len)
            if extra:
                wr.write(step, "params", extra)

    log_params(0, params)
    alive = jnp.ones((len(cfgs),), bool)
    failed = [None] * len(cfgs)
    history = []
    for step in range(1, num_steps + 1):
        batch = stack([next(it) for it in iters])
        params, opt_state, metrics, alive_new = step_fn(params, opt_state, rngs, step - 1, batch,
                                                        lr, wd, cw, alive)
        history.append((step, metrics, alive_new))
        if step % log_every == 0 or step == num_steps:
            hist = host(history)
            for i, wr in enumerate(writers):
                rows = []
                for s_, m_, ok in hist:
                    if failed[i] is None and not ok[i]:
                        failed[i] = s_  # the first step whose loss or parameters were not finite
                    if failed[i] is None:
                        rows.append({k: float(v[i]) for k, v in m_.items()})
                if rows:
                    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
                    wr.write(step, "train", mean)
            log_params(step, params)
            history = []
            if progress is not None:
                progress(step, num_steps)
        alive = alive_new
    for wr in writers:
        wr.close()

    reports = []
    p_host = host(params)
    for i, (cfg, ds, w) in enumerate(zip(cfgs, datasets, workdirs)):
        p_i = jax.tree.map(lambda x: x[i], p_host)
        variables = {"params": p_i}
        bs = cfg.train.eval_batch_size
        report = {"train": evaluate_model(model, variables, ds.train, bs),
                  "validation": evaluate_model(model, variables, ds.validation, bs),
                  "test": evaluate_model(model, variables, ds.test, bs),
                  "num_steps": num_steps, "best_step": num_steps, "selection": "last",
                  "failed_step": failed[i], "dataset": ds.info.name}
        np.savez(os.path.join(w, "params.npz"),
                 **{"/".join(k): np.asarray(v)
                    for k, v in traverse_util.flatten_dict(p_i).items()})
        with open(os.path.join(w, "report.json.tmp"), "w") as f:
            json.dump(report, f, indent=2)
        os.replace(os.path.join(w, "report.json.tmp"), os.path.join(w, "report.json"))
        reports.append(report)
    return reports


def load_member_params(workdir: str) -> dict:
    """The final parameters a member wrote (``params.npz``) as a nested dict."""
    with np.load(os.path.join(workdir, "params.npz")) as f:
        flat = {tuple(k.split("/")): f[k] for k in f.files}
    return traverse_util.unflatten_dict(flat)


__all__ = ["MEMBER_KEYS", "load_member_params", "train_members"]
