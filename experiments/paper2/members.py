"""Many small training runs of one model at once: the trainer's own train step under
``jax.vmap``, with the runs' parameters, optimizer states and batches stacked on a leading
axis (no checkpoints, no per-run files: the paper-2 experiments keep their numbers in their
own tables).

Why not :func:`ssm_jax.experiments.sweeps.run_sweep` with ``vectorize``: its groups split on every
key but the member keys (a sweep over the initial Delta, an init-only ``model.ssm`` value,
trains one group per Delta), and every run writes its checkpoints, its report and a PNG of
its curves (about a second per run on two cores), which alone would take the quick scale of
``delta_sweep`` (dozens of runs) over its time budget. Here the runs differ in their initial
parameters (any init: Delta, eigenvalues) and their training data (same shapes); everything
else (model, optimizer, steps, batch size, the Re <= 0 projection) is shared and is exactly
what the trainer uses: :func:`ssm_jax.training.steps.make_steps`,
:func:`ssm_jax.training.optim.make_optimizer`, :class:`ssm_jax.data.BatchIterator` seeded by
the run's seed, and the trainer's evaluation sums.

Not an experiment (no ``PAPER``): ``ssm-jax reproduce`` skips it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def stack(trees):
    """Stack pytrees (numpy on the host: eager jnp ops would each compile per shape)."""
    return jax.tree.map(lambda *x: jnp.asarray(np.stack([np.asarray(a) for a in x])), *trees)


def member(tree, i: int):
    """Member ``i`` of a stacked pytree."""
    return jax.tree.map(lambda x: x[i], tree)


def init_member(model, split, seed: int, init_batch_size: int, opts=None):
    """Variables of one run: ``model.init`` on the run's init batch (the trainer's
    :func:`~ssm_jax.training.loop.init_batch`, key ``PRNGKey(seed)``), then paper 2's init
    ``opts`` (:func:`~ssm_jax.bound.timescale_init.apply_init`; None or inactive: the layer's
    own). Returns ``(variables, batch)``."""
    from ssm_jax.bound.timescale_init import apply_init
    from ssm_jax.training.loop import init_batch

    batch = init_batch(split, init_batch_size, seed)
    rng = jax.random.PRNGKey(seed)
    variables = _init(model, rng, batch["inputs"], batch["lengths"])
    if opts is not None and opts.active:
        variables = apply_init(model, variables, batch["inputs"], batch["lengths"], opts)
    variables = {k: v for k, v in variables.items() if k != "intermediates"}
    return variables, batch


def _init(model, rng, inputs, lengths):
    if model not in _CACHE:
        _CACHE[model] = jax.jit(lambda r, x, l: model.init({"params": r, "dropout": r}, x, l))
    return _CACHE[model](rng, inputs, lengths)


_CACHE: dict = {}


def eval_members(model, params, batch_stats, splits, batch_size: int) -> list:
    """Mean metrics (loss, accuracy for classification) of every member on its split, in
    evaluation mode: ``[{metric: value}]`` (the trainer's evaluation sums, padding rows
    excluded). ``splits``: one split per member, all of the same length."""
    from ssm_jax.training.steps import eval_sums

    key = ("eval", model)
    if key not in _CACHE:
        def one(p, bs, b):
            v = {"params": p}
            if bs:
                v["batch_stats"] = bs
            return eval_sums(model, v, b)

        _CACHE[key] = jax.jit(jax.vmap(one))
    fn = _CACHE[key]
    n = len(splits[0])
    if any(len(s) != n for s in splits):
        raise ValueError("members' evaluation splits must have the same length")
    bs = min(batch_size, n)
    totals = None
    for batches in zip(*[s.batches(bs) for s in splits]):
        sums = jax.device_get(fn(params, batch_stats, stack(batches)))
        totals = sums if totals is None else jax.tree.map(np.add, totals, sums)
    count = np.asarray(totals.pop("count"), float)
    return [{k: float(np.asarray(v)[i] / count[i]) for k, v in totals.items()}
            for i in range(len(splits))]


def train_members(model, tx, variables: list, train_splits: list, seeds: list, *,
                  num_steps: int, batch_size: int, project=None, evals=None,
                  eval_every: int = 0, eval_batch: int = 512, loss_window: float = 0.1,
                  progress=None) -> dict:
    """Train the members together and evaluate them along the way.

    Args:
      model: the shared model (its ``head`` picks the loss).
      tx: the shared optimizer (:func:`~ssm_jax.training.optim.make_optimizer`).
      variables: one initial variables dict per member.
      train_splits: one training split per member (same shapes).
      seeds: one seed per member: batch order ``BatchIterator(seed=seed)`` and dropout key
        ``PRNGKey(seed + 1)`` (as the experiments' one-run loops did).
      num_steps, batch_size: the trainer's steps and batch size.
      project: None, ``project(old_params, new_params)`` after each step (paper 2's Re <= 0)
        for every member, or a list of one such function (or None) per member: the members
        then still train in one vmapped step, each with its own projection (applied after
        the trainer's step, where the trainer applies it).
      evals: ``{name: [split per member]}`` evaluated every ``eval_every`` steps (0: only at
        the last step) and at the last step.
      loss_window: the reported training loss is the mean over this last fraction of steps.
      progress: optional ``progress(step)``.

    Returns:
      ``params`` and ``batch_stats`` (stacked, at the last step), ``train_loss`` (members,)
      and ``evals``: a list of ``{"step": s, name: [metrics per member]}``.
    """
    from ssm_jax.data import BatchIterator
    from ssm_jax.training.state import TrainState
    from ssm_jax.training.steps import make_steps

    m = len(variables)
    if not (len(train_splits) == len(seeds) == m) or not m:
        raise ValueError("need one training split and one seed per member, and a member")
    evals = dict(evals or {})
    params = stack([v["params"] for v in variables])
    batch_stats = stack([v.get("batch_stats", {}) for v in variables])
    state = TrainState(step=jnp.zeros((m,), jnp.int32), params=params,
                       opt_state=jax.jit(jax.vmap(tx.init))(params), batch_stats=batch_stats,
                       rng=stack([jax.random.PRNGKey(s + 1) for s in seeds]),
                       apply_fn=model.apply, tx=tx)
    if isinstance(project, (list, tuple)):
        if len(project) != m:
            raise ValueError("need one projection (or None) per member")
        fns = list(dict.fromkeys(p for p in project if p is not None))  # distinct, in order
        codes = jnp.asarray([0 if p is None else 1 + fns.index(p) for p in project], jnp.int32)
        train_step = make_steps(model.head)[0]

        def one_step(st, batch, code):
            new, metrics = train_step(st, batch)
            candidates = [new.params] + [fn(st.params, new.params) for fn in fns]
            params = jax.tree.map(lambda *c: jnp.stack(c)[code], *candidates)
            return new.replace(params=params), metrics

        vstep = jax.jit(jax.vmap(one_step))
        step_fn = lambda st, batch: vstep(st, batch, codes)
    else:
        step_fn = jax.jit(jax.vmap(make_steps(model.head, project=project)[0]))
    iters = [BatchIterator(split, batch_size, seed=s) for split, s in zip(train_splits, seeds)]
    losses, history = [], []
    for step in range(1, num_steps + 1):
        state, metrics = step_fn(state, stack([next(it) for it in iters]))
        losses.append(metrics["loss"])
        if evals and (step == num_steps or (eval_every and step % eval_every == 0)):
            row = {"step": step}
            for name, splits in evals.items():
                row[name] = eval_members(model, state.params, state.batch_stats, splits,
                                         eval_batch)
            history.append(row)
        if progress is not None:
            progress(step)
    window = max(1, int(round(loss_window * num_steps)))
    train_loss = np.mean(np.asarray(jax.device_get(jnp.stack(losses[-window:]))), axis=0)
    return {"params": state.params, "batch_stats": state.batch_stats,
            "train_loss": np.asarray(train_loss, float), "evals": history}


def best_validation(history: list, index: int, val: str = "validation", test: str = "test",
                    metric: str = "accuracy", higher: bool = True) -> dict:
    """The evaluation of member ``index`` at its best validation score (the first one on
    ties, as the trainer's strict improvement rule): ``{"step", "validation", "test"}``."""
    best = None
    for row in history:
        score = row[val][index][metric]
        score = score if higher else -score
        if best is None or score > best[0]:
            best = (score, row)
    row = best[1]
    return {"step": row["step"], "validation": row[val][index][metric],
            "test": row[test][index][metric]}
