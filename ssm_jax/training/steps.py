"""Loss, jitted train and eval steps. The loss is the task loss plus any number of extra terms
(e.g. the generalization-measure regularizer) that read the layers' sown intermediates."""

from __future__ import annotations

import functools
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from ssm_jax.bound.init_scaling import without_dropout
from ssm_jax.training.state import TrainState

# An extra loss term: (intermediates, batch, params) -> scalar, added with a weight. A term
# with the attribute ``without_dropout = True`` reads a second forward pass with dropout off.
LossTerm = Callable[[Mapping, Mapping], jax.Array]


def task_loss(outputs, labels, head: str, mask=None):
    """Per-example task loss and metrics.

    Args:
      outputs: (batch, num_outputs) (or (batch, L, num_outputs)) model outputs.
      labels: (batch,) int class ids (or (batch, L)) for "classification"; targets with the
        shape of ``outputs`` (or ``outputs[..., 0]``) for "regression".
      head: "classification" (softmax cross-entropy, accuracy) or "regression" (squared error).
      mask: (batch,) bool, False for padding rows; None = all real.

    Returns:
      (mean loss over real examples, dict of summed metrics with "count").
    """
    n = outputs.shape[0]
    mask = jnp.ones((n,), bool) if mask is None else mask
    if head == "classification" and outputs.shape[-1] == 1:  # one logit: sigmoid BCE
        logit = outputs[..., 0]
        losses = optax.sigmoid_binary_cross_entropy(logit, labels.astype(logit.dtype))
        correct = ((logit >= 0).astype(jnp.int32) == labels).astype(jnp.float32)
    elif head == "classification":
        losses = optax.softmax_cross_entropy_with_integer_labels(outputs, labels)
        correct = (jnp.argmax(outputs, -1) == labels).astype(jnp.float32)
    else:
        target = labels.reshape(outputs.shape) if labels.size == outputs.size else labels[..., None]
        losses = jnp.square(outputs - target)
        correct = None
    per_example = losses.reshape(n, -1).mean(-1)
    weights = mask.astype(per_example.dtype)
    count = jnp.sum(weights)
    sums = {"loss": jnp.sum(per_example * weights), "count": count}
    if correct is not None:
        sums["accuracy"] = jnp.sum(correct.reshape(n, -1).mean(-1) * weights)
    return sums["loss"] / jnp.maximum(count, 1.0), sums


def std_zero_grad(x, ddof: int = 1):
    """Standard deviation of all entries of ``x`` whose gradient is 0 where the std is 0.

    ``jnp.std``'s gradient there is ``0 * inf = NaN`` (the derivative of sqrt at 0); PyTorch's
    ``std`` backward returns 0 instead, and the selective-SSM authors' collapse penalty relies on
    it: a batch whose outputs all saturate to one value must not turn every parameter NaN.
    The double ``where`` keeps the NaN out of the untaken branch's gradient as well.
    """
    x = x.reshape(-1)
    if x.size <= ddof:  # torch: the std of one value (ddof 1) is NaN, and so is the loss
        return jnp.full((), jnp.nan, x.dtype)
    var = jnp.sum(jnp.square(x - jnp.mean(x))) / (x.size - ddof)
    positive = var > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, var, 1.0)), 0.0)


def collapse_penalty(outputs, min_std: float = 0.1):
    """``max(0, min_std - std(sigmoid(outputs)))``, std over all entries with ddof=1 (the
    collapse-avoidance term of the selective-SSM paper's code, before its weight). The std's
    gradient is 0 at zero spread, as PyTorch's (:func:`std_zero_grad`)."""
    return jnp.maximum(0.0, min_std - std_zero_grad(jax.nn.sigmoid(outputs), ddof=1))


FAILURES = ("nonfinite", "authors")


def step_failed(failure: str, metrics, grads, new_params) -> jax.Array:
    """() bool: this training step has failed the run.

    ``failure="nonfinite"``: the loss or a new parameter is NaN/Inf. ``"authors"``: the
    selective-SSM authors' checks (``train_selective_ssm.py``): NaN or Inf outputs, a NaN loss
    or a NaN gradient (``grads``: before clipping); an Inf loss passes. A NaN new parameter
    counts too: it makes the next step's outputs NaN, so the run fails one step earlier than
    theirs (and also after the very last step, where theirs would finish with NaN parameters).
    An Inf gradient entry becomes NaN in the global-norm clip (in optax as in torch) and so
    fails the run one step later. ``metrics`` needs ``outputs_finite`` for "authors"
    (:func:`make_loss` with ``check_outputs=True``).
    """
    any_leaf = lambda tree, f: jnp.any(jnp.stack([jnp.any(f(x)) for x in jax.tree.leaves(tree)]))
    if failure == "authors":
        return (~metrics["outputs_finite"] | jnp.isnan(metrics["loss"])
                | any_leaf(grads, jnp.isnan) | any_leaf(new_params, jnp.isnan))
    return ~jnp.isfinite(metrics["loss"]) | any_leaf(new_params, lambda x: ~jnp.isfinite(x))


def make_loss(head: str, terms: Mapping[str, tuple[float, LossTerm]] | None = None,
              output_terms: Mapping[str, tuple[float, Callable]] | None = None,
              check_outputs: bool = False):
    """The training objective: ``loss_fn(params, apply_fn, batch_stats, batch, rng, weights=None)
    -> (total, (metrics, new batch_stats))``.

    ``terms`` and ``output_terms`` are as in :func:`make_steps`; ``weights`` (``{name:
    weight}``) overrides the weight of a term for this call (a traced value: the vectorized
    trainer passes one weight per member under ``jax.vmap``). ``check_outputs``: the metrics
    hold ``outputs_finite`` (a () bool, for :func:`step_failed`'s "authors" rule).

    A term with the attribute ``without_dropout = True`` (the paper-1 regularizer of a model
    with dropout, :func:`ssm_jax.bound.make_regularizer`) reads the intermediates of a second
    train-mode forward pass with every dropout off (``ssm_jax.bound.without_dropout``;
    BatchNorm with the batch statistics, its updates discarded), so its input statistics are
    those the init rule (8) uses. The task loss keeps the dropped-out pass. The second pass is
    run only when such a term exists (its unused outputs are pruned by XLA); without it the
    terms share the one pass.
    """
    terms = dict(terms or {})
    output_terms = dict(output_terms or {})
    clean = {n for n, (_, t) in terms.items() if getattr(t, "without_dropout", False)}

    def loss_fn(params, apply_fn, batch_stats, batch, rng, weights=None):
        weights = weights or {}
        variables, mutable = {"params": params}, []
        if batch_stats:
            variables["batch_stats"] = batch_stats
            mutable.append("batch_stats")
        if set(terms) - clean:
            mutable.append("intermediates")
        out, updates = apply_fn(variables, batch["inputs"], batch["lengths"], train=True,
                                rngs={"dropout": rng}, mutable=mutable)
        if clean:  # the same batch and parameters, dropout off: the rule's statistics
            with without_dropout():
                _, no_drop = apply_fn(variables, batch["inputs"], batch["lengths"], train=True,
                                      mutable=["intermediates"] + (["batch_stats"] if batch_stats
                                                                   else []))
        loss, sums = task_loss(out, batch["labels"], head)
        metrics = {k: v / sums["count"] for k, v in sums.items() if k != "count"}
        metrics["task_loss"] = loss
        total = loss
        for name, (weight, term) in terms.items():
            inter = (no_drop if name in clean else updates)["intermediates"]
            value = term(inter, batch, params)
            metrics[name] = value
            total = total + weights.get(name, weight) * value
        for name, (weight, term) in output_terms.items():
            value = term(out, batch)
            metrics[name] = value
            total = total + weights.get(name, weight) * value
        metrics["loss"] = total
        if check_outputs:
            metrics["outputs_finite"] = jnp.all(jnp.isfinite(out))
        return total, (metrics, updates.get("batch_stats", batch_stats))

    return loss_fn


def make_train_step(objective, project: Callable | None = None, failure: str | None = None):
    """``step(state, batch, weights) -> (state, metrics)``: one optimizer update of a
    :class:`TrainState` (not jitted: the trainer jits it, or vmaps it over stacked runs).

    ``objective``: :func:`make_loss`'s ``loss_fn``; ``weights``: its per-call term weights (or
    None). The metrics are the batch means of the objective's parts and ``grad_norm``; with a
    ``failure`` rule also ``failed`` (the step failed the run: :func:`step_failed`).
    ``project(old_params, new_params)`` is applied after the update.
    """

    def step(state: TrainState, batch, weights=None):
        rng = jax.random.fold_in(state.rng, state.step)
        grads, (metrics, batch_stats) = jax.grad(objective, has_aux=True)(
            state.params, state.apply_fn, state.batch_stats, batch, rng, weights)
        metrics["grad_norm"] = optax.tree.norm(grads)
        # value: for optimizers that read the loss (the plateau cut of adam_l2)
        new = state.apply_gradients(grads, batch_stats, value=metrics["loss"])
        if project is not None:
            new = new.replace(params=project(state.params, new.params))
        if failure is not None:
            metrics["failed"] = step_failed(failure, metrics, grads, new.params)
        metrics.pop("outputs_finite", None)
        return new, metrics

    return step


def make_eval_step(head: str):
    """``eval_step(state, batch)``: sums of the task metrics weighted by ``batch["mask"]``
    (padding rows excluded) with ``count``, to be added up over batches (jitted)."""

    @jax.jit
    def eval_step(state: TrainState, batch):
        out = state.apply_fn(state.variables, batch["inputs"], batch["lengths"], train=False)
        return task_loss(out, batch["labels"], head, batch.get("mask"))[1]

    return eval_step


def make_steps(head: str, terms: Mapping[str, tuple[float, LossTerm]] | None = None,
               output_terms: Mapping[str, tuple[float, Callable]] | None = None,
               project: Callable | None = None, failure: str | None = None):
    """Jitted ``train_step(state, batch) -> (state, metrics)`` (:func:`make_train_step` of
    :func:`make_loss` with the terms' own weights) and ``eval_step(state, batch)``
    (:func:`make_eval_step`).

    Args:
      head: "classification" or "regression".
      terms: ``{name: (weight, term)}`` extra loss terms; each ``term(intermediates, batch,
        params)`` reads the SSM layers' sown ``input``/``kernel`` intermediates of the same
        forward pass (or the parameters, e.g. a penalty on C).
      output_terms: ``{name: (weight, term)}`` extra loss terms ``term(outputs, batch)`` of the
        model outputs (e.g. :func:`collapse_penalty`).
      project: None, or ``project(old_params, new_params) -> params`` applied after every
        optimizer step (e.g. paper 2's Re <= 0 projection).
      failure: None, or a rule of :func:`step_failed`: the train metrics then hold ``failed``
        (a () bool of the step, not a mean to log).
    """
    objective = make_loss(head, terms, output_terms, check_outputs=failure == "authors")
    step = make_train_step(objective, project, failure)
    return jax.jit(lambda state, batch: step(state, batch)), make_eval_step(head)


@functools.partial(jax.jit, static_argnames="model")
def eval_sums(model, variables, batch):
    """Summed metrics of one evaluation batch (with ``count``, padding rows excluded) of a
    model in evaluation mode: the trainer's eval step for a model and its variables (the
    model is a static, hashable argument)."""
    out = model.apply(variables, batch["inputs"], batch["lengths"], train=False)
    return task_loss(out, batch["labels"], model.head, batch.get("mask"))[1]
