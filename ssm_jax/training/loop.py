"""The training loop: data -> model -> jitted steps -> checkpoints/metrics -> final report.

``train_and_evaluate(cfg, workdir)`` trains, evaluates on the validation split every
``train.eval_every`` steps, checkpoints every ``train.checkpoint_every`` steps and at the end
(resuming from the latest checkpoint of ``workdir`` when there is one), and reports the test
metrics of the best-validation checkpoint.

The pieces experiments reuse: :func:`build_model`, :func:`init_batch` (the batch the init
rule uses), :func:`evaluate_model` (metrics of variables on a whole split), and, from
``ssm_jax.training.config``, :func:`~ssm_jax.training.config.save_config` and
:func:`~ssm_jax.training.config.apply_overrides`.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time

import flax.traverse_util as traverse_util
import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from ssm_jax.data import BatchIterator, get_dataset
from ssm_jax.layers import find_layers
from ssm_jax.models import SequenceModel
from ssm_jax.training.checkpoint import Checkpoints
from ssm_jax.training.config import Config, ModelOptions, parse_config, save_config
from ssm_jax.training.metrics import MetricsWriter, plot_metrics
from ssm_jax.training.optim import make_optimizer
from ssm_jax.training.sharding import (DataParallel, is_primary, maybe_initialize_distributed,
                                      sync, to_host)
from ssm_jax.training.state import TrainState
from ssm_jax.training.steps import eval_sums, make_steps
from ssm_jax.training.workdir import (WorkdirLock, check_resume, prepare_workdir,
                                      write_fingerprint)


class NonFiniteError(RuntimeError):
    """Training stopped because a metric became NaN or Inf (``step``: the first bad step)."""

    step = None


def steps_per_epoch(cfg: Config, num_train: int) -> int:
    """Batches per epoch of the training iterator (with ``train.drop_last`` the last partial
    batch is dropped, else it is a smaller batch of its own)."""
    bs = cfg.train.batch_size
    return max(1, num_train // bs if cfg.train.drop_last else -(-num_train // bs))


def schedule(cfg: Config, num_train: int) -> tuple:
    """``(num_steps, log_every)``: from ``train.num_epochs`` when it is set (logging once per
    epoch), else ``train.num_steps`` and ``train.log_every``."""
    epochs = getattr(cfg.train, "num_epochs", 0)
    if epochs:
        spe = steps_per_epoch(cfg, num_train)
        return epochs * spe, spe
    return cfg.train.num_steps, cfg.train.log_every


def output_terms(cfg: Config):
    """Loss terms of the model outputs from the config: ``{name: (weight, term)}``."""
    terms = {}
    weight = getattr(cfg.train, "collapse_penalty", 0.0)
    if weight > 0:
        from ssm_jax.training.steps import collapse_penalty

        min_std = cfg.train.collapse_min_std
        terms["collapse"] = (weight, lambda out, batch: collapse_penalty(out, min_std))
    return terms


def bound_metrics(params, layers, seq_len: int) -> dict:
    """Paper-3 norms and bound terms of a model with a paper-form selective layer ({} else),
    logged by the trainer once per log step."""
    if not any(getattr(cls, "layer_name", "") == "selective" for cls in layers.values()):
        return {}
    from ssm_jax.bound.selective import model_bound_report

    report = model_bound_report(to_host(params), layers, seq_len)
    return {k: v for k, v in report.items() if isinstance(v, (int, float)) and k not in ("d", "N")}


def build_model(model_cfg: ModelOptions, info) -> SequenceModel:
    """SequenceModel for a dataset described by ``info`` (a ``DatasetInfo``)."""
    encoder = model_cfg.encoder
    if encoder == "auto":
        encoder = "embedding" if info.input_kind == "tokens" else "linear"
    if encoder == "embedding" and info.input_kind != "tokens":
        raise ValueError(f"model.encoder='embedding' needs token inputs; dataset {info.name!r} has floats")
    classification = info.num_classes is not None
    num_outputs = info.num_classes if classification else int(np.prod(info.target_shape) or 1)
    if getattr(model_cfg, "binary_logit", False) and classification:
        if info.num_classes != 2:
            raise ValueError(f"model.binary_logit=True needs 2 classes; dataset {info.name!r} "
                             f"has {info.num_classes}")
        num_outputs = 1  # one logit, sigmoid BCE (see steps.task_loss)
    if getattr(info, "num_documents", 1) == 2:  # LRA Retrieval: a shared encoder for both
        from ssm_jax.models import RetrievalModel

        cls = RetrievalModel
    else:
        cls = SequenceModel
    return cls(
        num_outputs=num_outputs, d_model=model_cfg.d_model, n_layers=model_cfg.n_layers,
        layer=model_cfg.layer, ssm=model_cfg.ssm, encoder=encoder,
        vocab_size=info.vocab_size, norm=model_cfg.norm, prenorm=model_cfg.prenorm,
        projection=model_cfg.projection, dropout=model_cfg.dropout, pooling=model_cfg.pooling,
        head="classification" if classification else "regression",
        residual=model_cfg.residual, head_bias=model_cfg.head_bias,
        init_std=getattr(model_cfg, "init_std", 0.0),
    )


def loss_terms(cfg: Config, train_split=None, layers=None):
    """Extra loss terms from the config: ``{name: (weight, term)}``. With ``train_split``
    given and holding sequences of different lengths, the regularizer measures each
    sequence's own read-out (``batch["lengths"]``)."""
    terms = {}
    if cfg.bound.reg_lambda > 0:
        from ssm_jax.bound import make_regularizer

        if getattr(cfg.bound, "penalty", "measure") != "measure":
            terms["reg"] = (cfg.bound.reg_lambda, _penalty(cfg, layers))
        else:
            terms["reg"] = (cfg.bound.reg_lambda,
                            make_regularizer(cfg.bound, pooling=cfg.model.pooling,
                                             padded=_padded(train_split),
                                             dropout=cfg.model.dropout))
    return terms


def _penalty(cfg: Config, layers):
    """The data-independent penalty ``bound.penalty`` as a loss term."""
    from ssm_jax.bound.penalties import make_penalty

    return make_penalty(cfg.bound.penalty, layers, channel_reduce=cfg.bound.channel_reduce,
                        layer_reduce=cfg.bound.layer_reduce)


def _padded(split) -> bool:
    """The split holds sequences shorter than its padded length (also for two-document inputs
    ``(n, 2, L)`` with lengths ``(n, 2)``)."""
    if split is None:
        return False
    lengths = np.asarray(split.lengths)
    L = split.inputs.shape[2] if lengths.ndim == 2 else split.inputs.shape[1]  # (n, 2, L) pairs
    return bool(np.any(lengths < L))


def init_batch(split, n: int, seed: int) -> dict:
    """The first ``n`` examples of a ``seed``-permutation of ``split``: the batch the model is
    initialized (and the init rule computed) on."""
    n = min(n, len(split))
    return split.take(np.random.default_rng(seed).permutation(len(split))[:n])


@functools.partial(jax.jit, static_argnums=0)
def _init(model, rng, inputs, lengths):
    # Under jit: eager init compiles every op separately (seconds for a small model); the model
    # is a static (hashable) argument, so the runs of a sweep with equal models compile once.
    return model.init({"params": rng, "dropout": rng}, inputs, lengths)


def init_variables(model, cfg: Config, train_split, rng):
    """Initialize the model on a training batch; apply the init scaling rule if configured."""
    batch = init_batch(train_split, cfg.bound.init_batch_size, cfg.seed)
    variables = _init(model, rng, batch["inputs"], batch["lengths"])
    if cfg.init.active:  # paper 2: timescale and eigenvalues (before the paper-1 rule)
        from ssm_jax.bound.timescale_init import apply_init

        variables = apply_init(model, variables, batch["inputs"], batch["lengths"], cfg.init)
    if cfg.bound.init_scaling:
        from ssm_jax.bound import rescale_init, resolve_readout

        # the measure and read-out the regularizer uses; train mode, as the first step sees it
        lengths = batch["lengths"] if _padded(train_split) else None
        variables = rescale_init(model, variables, batch["inputs"], lengths,
                                 measure=cfg.bound.measure,
                                 readout=resolve_readout(cfg.bound.readout, cfg.model.pooling))
    return variables, batch


def evaluate(eval_step, state, split, batch_size, dp: DataParallel | None) -> dict:
    """Mean metrics over a whole split (padding rows of the last batch excluded).

    ``eval_step(state, batch)`` returns summed metrics with ``count``; ``dp`` shards the
    batches (None: plain arrays).
    """
    if dp is not None:
        batch_size = -(-batch_size // dp.num_devices) * dp.num_devices
    put = dp.put_batch if dp is not None else (lambda b: b)
    shard = dp.shard if dp is not None else (0, 1)
    totals = {}
    if len(split) == 0:  # an empty (or absent) split, e.g. LRA files with a header-only val
        return {}
    for batch in split.batches(batch_size, shard=shard):
        sums = eval_step(state, put(batch))
        for k, v in to_host(sums).items():
            totals[k] = totals.get(k, 0.0) + float(v)
    count = totals.pop("count")
    return {k: v / count for k, v in totals.items()}


def evaluate_model(model, variables, split, batch_size: int) -> dict:
    """Mean task loss (and accuracy for classification) of ``variables`` on a whole split, in
    evaluation mode: the trainer's evaluation for any model and variables."""
    step = lambda _, batch: eval_sums(model, variables, batch)
    return evaluate(step, None, split, min(batch_size, len(split)), None)


def _score(metrics: dict) -> float:
    """Validation score, higher is better: accuracy if there is one, else minus the loss."""
    return metrics["accuracy"] if "accuracy" in metrics else -metrics["loss"]


def _state_tree(state: TrainState) -> dict:
    return {"step": state.step, "params": state.params, "opt_state": state.opt_state,
            "batch_stats": state.batch_stats, "rng": state.rng}


def _kept(last_good_step) -> str:
    if not last_good_step:
        return "no checkpoint had been saved yet"
    return f"the last good checkpoint (step {last_good_step}) is kept"


def _check_failed(history, last_good_step):
    """Raise NonFiniteError at the first step of ``history`` whose ``failed`` flag is set (the
    ``train.failure="authors"`` rule, :func:`ssm_jax.training.steps.step_failed`)."""
    for step, metrics in history:
        if bool(metrics["failed"]):
            err = NonFiniteError(f"NaN/Inf outputs, a NaN loss, gradient or parameter at step {step} "
                                 f"(train.failure='authors'); "
                                 f"training stopped, {_kept(last_good_step)}")
            err.step = step
            raise err


def _check_finite(history, last_good_step):
    """Raise NonFiniteError naming the first step and metric that is NaN/Inf in ``history``."""
    for step, metrics in history:
        bad = [f"metric {name!r} is {float(value)}" for name, value in metrics.items()
               if not math.isfinite(float(value))]
        if bad:
            err = NonFiniteError(f"{' and '.join(bad)} at step {step}; training stopped, "
                                 f"{_kept(last_good_step)}")
            err.step = step
            raise err


@jax.jit
def _finite_leaves(params):
    return jax.tree.map(lambda x: jnp.all(jnp.isfinite(x)), params)


def _check_finite_params(params, step, last_good_step):
    """Raise NonFiniteError if a parameter is NaN/Inf after ``step`` (before it is saved)."""
    flags = traverse_util.flatten_dict(to_host(_finite_leaves(params)), sep="/")
    bad = [name for name, ok in flags.items() if not ok]
    if bad:
        err = NonFiniteError(f"parameters {', '.join(map(repr, bad[:3]))}{' ...' if len(bad) > 3 else ''} "
                             f"are non-finite after step {step}; training stopped, "
                             f"{_kept(last_good_step)}")
        err.step = step
        raise err


def train_and_evaluate(cfg, workdir: str) -> dict:
    """Train according to ``cfg`` in ``workdir``; returns the final report (also report.json).

    Args:
      cfg: a parsed :class:`~ssm_jax.training.config.Config` (a ConfigDict is parsed first).
      workdir: the run's directory; held under an exclusive lock for the whole run.
    """
    cfg = parse_config(cfg)
    maybe_initialize_distributed(cfg.distributed)
    dp = DataParallel(cfg.train.batch_size)  # the batch must split over the devices
    workdir = prepare_workdir(workdir)  # a file or a read-only path fails here, before any compute
    with WorkdirLock(workdir, jax.process_index()):  # a second run on this workdir fails here
        ds = get_dataset(cfg.data)
        left = len(ds.train) % cfg.train.batch_size
        if not cfg.train.drop_last and left % dp.num_devices:
            raise ValueError(f"train.drop_last=false: the last batch of {left} examples does not "
                             f"split over {dp.num_devices} devices; use train.drop_last=true or "
                             "a batch size that leaves a divisible remainder")
        model = build_model(cfg.model, ds.info)
        if model.pooling == "none" and ds.info.num_classes is not None and ds.train.labels.ndim < 2:
            raise ValueError("model.pooling='none' gives one output per position but dataset "
                             f"{ds.info.name!r} has one label per sequence; use 'mean' or 'last'")
        return _train(cfg, workdir, dp, ds, model)


def _train(cfg: Config, workdir: str, dp, ds, model) -> dict:
    ckpt = Checkpoints(workdir, cfg.train.keep_checkpoints)
    if ckpt.latest_step() is not None:
        check_resume(workdir, cfg, report=print if is_primary() else lambda _: None)
    if is_primary():
        save_config(cfg, workdir)
        write_fingerprint(workdir, cfg)
    sync("config written")

    train_iter = BatchIterator(ds.train, cfg.train.batch_size, seed=cfg.seed, shard=dp.shard,
                               drop_remainder=cfg.train.drop_last)
    rng = jax.random.PRNGKey(cfg.seed)
    init_rng, state_rng = jax.random.split(rng)
    variables, batch = init_variables(model, cfg, ds.train, init_rng)
    layers = find_layers(model, batch["inputs"][:1], batch["lengths"][:1])
    num_steps, log_every = schedule(cfg, len(ds.train))
    tx = make_optimizer(cfg.optim, num_steps, layers,
                        steps_per_epoch=steps_per_epoch(cfg, len(ds.train)))
    state = TrainState.create(apply_fn=model.apply, variables=variables, tx=tx, rng=state_rng)
    from ssm_jax.bound.timescale_init import real_part_projection

    project = real_part_projection(cfg.init, layers)  # paper 2's Re <= 0 (None: nothing to do)
    out_terms = output_terms(cfg)
    extra = {"project": project} if project is not None else {}
    if out_terms:
        extra["output_terms"] = out_terms
    authors_failure = cfg.train.failure == "authors"
    if authors_failure:
        extra["failure"] = cfg.train.failure
    train_step, eval_step = make_steps(model.head, loss_terms(cfg, ds.train, layers), **extra)
    has_validation = len(ds.validation) > 0

    start, tree, data_state = ckpt.restore_latest(_state_tree(state))
    if start:
        state = state.replace(**tree)
        train_iter.restore(data_state)
        print(f"resumed from checkpoint at step {start} in {workdir}")
    state = dp.replicate(state)
    writer = MetricsWriter(workdir, resume_step=start, enabled=is_primary())
    best_score = ckpt.best_score()
    extra = bound_metrics(state.params, layers, ds.info.seq_len)
    if extra and not start:
        writer.write(0, "params", extra)  # the values at init (epoch 0)

    history, last_good = [], start
    bar = tqdm(total=num_steps, initial=start,
               disable=not (cfg.train.progress and is_primary()),
               desc="train", dynamic_ncols=True)
    t_last, n_last = time.perf_counter(), start
    try:
        for step in range(start + 1, num_steps + 1):
            state, metrics = train_step(state, dp.put_batch(next(train_iter)))
            history.append((step, metrics))
            log_now = step % log_every == 0 or step == num_steps
            eval_now = step % cfg.train.eval_every == 0 or step == num_steps
            ckpt_now = step % cfg.train.checkpoint_every == 0 or step == num_steps
            if log_now or eval_now or ckpt_now:
                history = [(s, to_host(m)) for s, m in history]
                if authors_failure:
                    _check_failed(history, last_good)
                    history = [(s, {k: v for k, v in m.items() if k != "failed"})
                               for s, m in history]
                else:
                    _check_finite(history, last_good)
                    _check_finite_params(state.params, step, last_good)
                dt = time.perf_counter() - t_last
                rate = (step - n_last) * cfg.train.batch_size / max(dt, 1e-9)
                mean = {k: float(np.mean([m[k] for _, m in history])) for k in history[-1][1]}
                writer.write(step, "train", {**mean, "examples_per_s": rate})
                if extra:
                    writer.write(step, "params", bound_metrics(state.params, layers,
                                                               ds.info.seq_len))
                bar.set_postfix(loss=f"{mean['loss']:.4f}", ex_per_s=f"{rate:.0f}")
                bar.update(step - bar.n)
                history, t_last, n_last = [], time.perf_counter(), step
            if eval_now and has_validation:
                val = evaluate(eval_step, state, ds.validation, cfg.train.eval_batch_size, dp)
                writer.write(step, "validation", val)
                if best_score is None or _score(val) > best_score:
                    best_score = _score(val)
                    ckpt.save_best(step, _state_tree(state), train_iter.state(), best_score)
            if ckpt_now:
                ckpt.save(step, _state_tree(state), train_iter.state())
                last_good = step
        bar.close()
    finally:
        writer.close()

    report = final_report(cfg, workdir, state, ckpt, eval_step, ds, dp, num_steps)
    ckpt.close()
    return report


def final_report(cfg: Config, workdir, state, ckpt, eval_step, ds, dp, num_steps=None,
                 extra: dict | None = None) -> dict:
    """Test metrics at the best-validation checkpoint (the last step when the validation split
    is empty); writes report.json (with ``extra`` entries added) and the PNG curves."""
    num_steps = cfg.train.num_steps if num_steps is None else num_steps
    best = ckpt.best_step() if len(ds.validation) else None
    if best is not None:
        tree, _ = ckpt.restore(best, _state_tree(state), which="best")
        state = dp.replicate(state.replace(**tree))
    val = evaluate(eval_step, state, ds.validation, cfg.train.eval_batch_size, dp)
    test = evaluate(eval_step, state, ds.test, cfg.train.eval_batch_size, dp)
    report = {"best_step": best if best is not None else int(state.step),
              "validation": val, "test": test, "num_steps": num_steps,
              "dataset": ds.info.name,
              "selection": "validation" if best is not None else "last", **(extra or {})}
    if is_primary():
        tmp = os.path.join(workdir, "report.json.tmp")
        with open(tmp, "w") as f:
            json.dump(report, f, indent=2)
        os.replace(tmp, os.path.join(workdir, "report.json"))
        plot_metrics(workdir)
    metric = "accuracy" if "accuracy" in test else "loss"
    if val:
        print(f"test {metric} at the best-validation checkpoint (step {report['best_step']}): "
              f"{test[metric]:.4f} (validation {metric} {val[metric]:.4f})")
    else:
        print(f"test {metric} at the last step {report['best_step']} (no validation split): "
              f"{test.get(metric, float('nan')):.4f}")
    return report
