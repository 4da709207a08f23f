"""One run builder and one training loop, for a single run and for a stacked group of runs.

:func:`build_run` turns a parsed config and its dataset into a :class:`Run`: the model, its
initial variables (after the extensions' init hooks), the SSM layers, the active
:mod:`~ssm_jax.training.extensions` and the :class:`Schedule`. :func:`fit` trains a list of
runs ("members") with one jitted step:

* one member: the step runs as is (data-parallel over the local devices); a failed step
  (``train.failure``) stops training with :class:`NonFiniteError`, keeping the last good
  checkpoint;
* several members (``stacked``): their states are stacked on a leading axis and the same step
  runs under ``jax.vmap``; per-member hyperparameters enter as arrays (the loss terms' weights)
  or through the optimizer state (``optim.lr``/``weight_decay`` of the ``adam_l2`` recipe,
  injected hyperparameters); a member whose step fails stops updating from that step on (its
  report says ``failed_step``) while the others go on.

Both write the same files per member: ``metrics.csv`` (and TensorBoard), orbax checkpoints of
the trainer's state tree (the last ones by step, the best by validation score), ``report.json``
and the curves.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import time
from typing import Any

import flax.traverse_util as traverse_util
import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from ssm_jax import __version__
from ssm_jax.data import BatchIterator
from ssm_jax.data.registry import DatasetInfo
from ssm_jax.files import write_json_atomic
from ssm_jax.layers import find_layers
from ssm_jax.models import RetrievalModel, SequenceModel
from ssm_jax.training.checkpoint import Checkpoints, checkpoint_steps, load_variables, lost_best_steps
from ssm_jax.training.config import Config, ModelOptions, config_digest, parse_config, save_config
from ssm_jax.training import interrupt
from ssm_jax.training.extensions import build_extensions, padded
from ssm_jax.training.metrics import MetricsWriter, plot_metrics
from ssm_jax.training.optim import learning_rates, make_optimizer, set_hyperparams
from ssm_jax.training.sharding import DataParallel, is_primary, sync, to_host
from ssm_jax.training.state import TrainState
from ssm_jax.training.steps import make_eval_step, make_loss, make_train_step
from ssm_jax.training.workdir import check_resume, write_fingerprint

MEMBER_FILE = "member.json"  # failed_step of a stacked member, saved with its checkpoints
DATASET_FILE = "dataset.json"  # the DatasetInfo the model was built for (read by load_run)


class NonFiniteError(RuntimeError):
    """Training stopped because a metric became NaN or Inf (``step``: the first bad step)."""

    step = None


# ---------------------------------------------------------------------------- the run


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Length and cadence of training: steps, and every how many steps to log, evaluate on the
    validation split and checkpoint (each also at the last step)."""

    num_steps: int
    log_every: int
    eval_every: int
    checkpoint_every: int
    steps_per_epoch: int

    @classmethod
    def of(cls, cfg: Config, num_train: int) -> "Schedule":
        """From ``train.num_epochs`` when it is set (logging once per epoch), else
        ``train.num_steps`` and ``train.log_every``."""
        t = cfg.train
        spe = steps_per_epoch(cfg, num_train)
        num_steps, log_every = (t.num_epochs * spe, spe) if t.num_epochs else (t.num_steps, t.log_every)
        return cls(num_steps, log_every, t.eval_every, t.checkpoint_every, spe)

    def due(self, step: int) -> tuple:
        """``(log, evaluate, checkpoint)`` at ``step``."""
        last = step == self.num_steps
        return (step % self.log_every == 0 or last, step % self.eval_every == 0 or last,
                step % self.checkpoint_every == 0 or last)


def steps_per_epoch(cfg: Config, num_train: int) -> int:
    """Batches per epoch of the training iterator (with ``train.drop_last`` the last partial
    batch is dropped, else it is a smaller batch of its own)."""
    bs = cfg.train.batch_size
    return max(1, num_train // bs if cfg.train.drop_last else -(-num_train // bs))


def build_model(model_cfg: ModelOptions, info) -> SequenceModel:
    """SequenceModel (RetrievalModel for two-document data) for a dataset described by
    ``info`` (a ``DatasetInfo``): the config's architecture options, and the fields the
    dataset sets (``num_outputs``, ``vocab_size``, ``head``; ``encoder`` when "auto")."""
    encoder = model_cfg.encoder
    if encoder == "auto":
        encoder = "embedding" if info.input_kind == "tokens" else "linear"
    if encoder == "embedding" and info.input_kind != "tokens":
        raise ValueError(f"model.encoder='embedding' needs token inputs; dataset {info.name!r} has floats")
    classification = info.num_classes is not None
    num_outputs = info.num_classes if classification else int(np.prod(info.target_shape) or 1)
    if model_cfg.binary_logit and classification:
        if info.num_classes != 2:
            raise ValueError(f"model.binary_logit=True needs 2 classes; dataset {info.name!r} "
                             f"has {info.num_classes}")
        num_outputs = 1  # one logit, sigmoid BCE (see steps.task_loss)
    cls = RetrievalModel if info.num_documents == 2 else SequenceModel
    return cls(**{**model_cfg.as_kwargs(), "encoder": encoder}, num_outputs=num_outputs,
               vocab_size=info.vocab_size,
               head="classification" if classification else "regression")


def init_batch(split, n: int, seed: int) -> dict:
    """The first ``n`` examples of a ``seed``-permutation of ``split``: the batch the model is
    initialized (and the init rules computed) on."""
    n = min(n, len(split))
    return split.take(np.random.default_rng(seed).permutation(len(split))[:n])


@functools.partial(jax.jit, static_argnums=0)
def _init(model, rng, inputs, lengths):
    # Under jit: eager init compiles every op separately (seconds for a small model); the model
    # is a static (hashable) argument, so the runs of a sweep with equal models compile once.
    return model.init({"params": rng, "dropout": rng}, inputs, lengths)


@dataclasses.dataclass
class Run:
    """Everything a run trains from: its config and dataset, the model, the initial variables,
    the SSM layers (``{path: layer class}``), the active extensions, the schedule, the PRNG key
    of the train state and the batch the init rules saw."""

    cfg: Config
    dataset: Any
    model: SequenceModel
    variables: dict
    layers: dict
    extensions: list
    schedule: Schedule
    rng: jax.Array
    batch: dict

    def weight(self, name: str) -> float:
        """The weight of loss or output term ``name`` in this run (0 without it)."""
        for e in self.extensions:
            for terms in (e.loss_terms(), e.output_terms()):
                if name in terms:
                    return float(terms[name][0])
        return 0.0


def init_run(model, cfg: Config, train_split, seq_len: int | None = None, rng=None) -> tuple:
    """``(variables, batch, layers, extensions)``: ``model`` initialized on the init batch
    (``bound.init_batch_size`` examples of ``train_split``) with ``rng`` (default: the
    trainer's, the first half of ``PRNGKey(cfg.seed)``), then each active extension's init hook
    (paper 2's timescale init, then paper 1's init scaling rule)."""
    init_rng = jax.random.split(jax.random.PRNGKey(cfg.seed))[0] if rng is None else rng
    batch = init_batch(train_split, cfg.bound.init_batch_size, cfg.seed)
    variables = _init(model, init_rng, batch["inputs"], batch["lengths"])
    layers = find_layers(model, batch["inputs"][:1], batch["lengths"][:1])
    extensions = build_extensions(cfg, layers, train_split, seq_len)
    is_padded = padded(train_split)
    for ext in extensions:
        variables = ext.init(model, variables, batch, is_padded)
    return variables, batch, layers, extensions


def init_variables(model, cfg: Config, train_split, rng=None) -> tuple:
    """``(variables, batch)`` of :func:`init_run`."""
    variables, batch, _, _ = init_run(model, cfg, train_split, rng=rng)
    return variables, batch


def build_run(cfg: Config, dataset, model: SequenceModel | None = None) -> Run:
    """The :class:`Run` of a parsed config on its dataset (:func:`init_run`)."""
    model = build_model(cfg.model, dataset.info) if model is None else model
    variables, batch, layers, extensions = init_run(model, cfg, dataset.train, dataset.info.seq_len)
    _, state_rng = jax.random.split(jax.random.PRNGKey(cfg.seed))
    return Run(cfg, dataset, model, variables, layers, extensions,
               Schedule.of(cfg, len(dataset.train)), state_rng, batch)


def group_objective(runs):
    """``(objective, weights)``: the training objective of the runs' terms (each term from the
    first run that has it; :func:`~ssm_jax.training.steps.make_loss`) and ``{term: (M,)
    weights}``, one weight per run (0 for a run without the term)."""
    terms, outputs = {}, {}
    for run in runs:
        for ext in run.extensions:
            for name, term in ext.loss_terms().items():
                terms.setdefault(name, term)
            for name, term in ext.output_terms().items():
                outputs.setdefault(name, term)
    objective = make_loss(runs[0].model.head, terms, outputs,
                          check_outputs=runs[0].cfg.train.failure == "authors")
    weights = {name: jnp.asarray([r.weight(name) for r in runs], jnp.float32)
               for name in (*terms, *outputs)}
    return objective, weights


def projection(run: Run):
    """The extensions' parameter projection after every step (None: none)."""
    projects = [p for p in (e.project() for e in run.extensions) if p is not None]
    if not projects:
        return None
    return lambda old, new: functools.reduce(lambda p, f: f(old, p), projects, new)


def frozen_on_failure(step):
    """A member's step that keeps its state (but counts the step) once a step has failed it:
    ``step(state, batch, weights, alive) -> (state, metrics, alive)``."""

    def member_step(state, batch, weights, alive):
        new, metrics = step(state, batch, weights)
        keep = alive & ~metrics["failed"]
        new = jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, state)
        return new.replace(step=state.step + 1), metrics, keep

    return member_step


def compile_step(step, stacked: bool):
    """The jitted step of :func:`fit`: ``step(state, batch, weights)`` as is, or (``stacked``)
    vmapped over the members with :func:`frozen_on_failure`
    (``step(state, batch, weights, alive) -> (state, metrics, alive)``)."""
    return jax.jit(jax.vmap(frozen_on_failure(step))) if stacked else jax.jit(step)


def state_tree(state: TrainState) -> dict:
    """The checkpointed part of a train state."""
    return {"step": state.step, "params": state.params, "opt_state": state.opt_state,
            "batch_stats": state.batch_stats, "rng": state.rng}


def member(tree, i: int):
    """Member ``i`` of a stacked pytree."""
    return jax.tree.map(lambda x: x[i], tree)


def stack(trees):
    """Stack pytrees on a new leading axis (numpy stacking: eager jnp ops would each compile
    once per shape)."""
    return jax.tree.map(lambda *x: jnp.asarray(np.stack([np.asarray(a) for a in x])), *trees)


def score(metrics: dict) -> float:
    """Validation score, higher is better: accuracy if there is one, else minus the loss."""
    return metrics["accuracy"] if "accuracy" in metrics else -metrics["loss"]


# ---------------------------------------------------------------------------- evaluation


def evaluate(eval_step, state, split, batch_size, dp: DataParallel | None) -> dict:
    """Mean metrics over a whole split (padding rows of the last batch excluded).

    ``eval_step(state, batch)`` returns summed metrics with ``count``; ``dp`` shards the
    batches (None: plain arrays).
    """
    batch_size = min(batch_size, len(split))  # never pad a small split up to a huge batch
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


def final_report(cfg: Config, workdir, state, ckpt, eval_step, ds, dp, num_steps=None,
                 extra: dict | None = None, quiet: bool = False) -> dict:
    """Test metrics at the best-validation checkpoint (the last step when the validation split
    is empty); writes report.json (with ``extra`` entries added) and the PNG curves."""
    num_steps = cfg.train.num_steps if num_steps is None else num_steps
    best, tree = ckpt.restore_best(state_tree(state)) if len(ds.validation) else (None, None)
    if best is not None:
        state = dp.replicate(state.replace(**tree))
    lost = lost_best_steps(workdir) if len(ds.validation) else []
    bs = cfg.train.eval_batch_size
    val = evaluate(eval_step, state, ds.validation, bs, dp)
    test = evaluate(eval_step, state, ds.test, bs, dp)
    extra = {k: (v(state) if callable(v) else v) for k, v in (extra or {}).items()}
    report = {"best_step": best if best is not None else int(state.step),
              "validation": val, "test": test, "num_steps": num_steps,
              "dataset": ds.info.name,
              "selection": "validation" if best is not None else "last", **extra}
    if lost:  # a damaged best checkpoint was moved aside: the selection is not the original one
        report["best_checkpoints_lost"] = lost
        report["note"] = (f"best checkpoint lost (step {', '.join(map(str, lost))}, moved to "
                          "checkpoints/corrupt/), " + (
                              "reporting the last step" if best is None else
                              f"reporting the best of the remaining evaluations (step {best})"))
    if is_primary():
        write_json_atomic(os.path.join(workdir, "report.json"), report)
        plot_metrics(workdir)
    metric = "accuracy" if "accuracy" in test else "loss"
    if quiet:
        pass
    elif lost:
        print(f"{report['note']}: test {metric} {test.get(metric, float('nan')):.4f} at step "
              f"{report['best_step']}")
    elif val:
        print(f"test {metric} at the best-validation checkpoint (step {report['best_step']}): "
              f"{test[metric]:.4f} (validation {metric} {val[metric]:.4f})")
    else:
        print(f"test {metric} at the last step {report['best_step']} (no validation split): "
              f"{test.get(metric, float('nan')):.4f}")
    return report


# ---------------------------------------------------------------------------- failures


def _kept(last_good_step) -> str:
    if not last_good_step:
        return "no checkpoint had been saved yet"
    return f"the last good checkpoint (step {last_good_step}) is kept"


def _stop(message: str, step: int):
    if step == 1:  # the initial model itself overflows: say where to look
        message += ("; at the first step, so the initial model already overflows float32: "
                    "lower the scale of its init or inputs (e.g. model.ssm.s_A > 0 over a long "
                    "sequence, model.init_std, the data's level or std)")
    err = NonFiniteError(message)
    err.step = step
    raise err


@jax.jit
def _finite_leaves(params):
    return jax.tree.map(lambda x: jnp.all(jnp.isfinite(x)), params)


def check_history(failure: str, history, params, last_good) -> None:
    """Raise :class:`NonFiniteError` for the first failed step of a single run's ``history``
    (``[(step, host metrics)]``): with ``train.failure="authors"`` the step's ``failed`` flag;
    else the first NaN/Inf metric (named), then non-finite ``params`` after the last step."""
    for step, metrics in history:
        if failure == "authors" and bool(metrics["failed"]):
            _stop(f"NaN/Inf outputs, a NaN loss, gradient or parameter at step {step} "
                  f"(train.failure='authors'); training stopped, {_kept(last_good)}", step)
        bad = [f"metric {name!r} is {float(value)}" for name, value in metrics.items()
               if failure != "authors" and not math.isfinite(float(value))]
        if bad:
            _stop(f"{' and '.join(bad)} at step {step}; training stopped, {_kept(last_good)}", step)
    if failure != "authors" and history:
        flags = traverse_util.flatten_dict(to_host(_finite_leaves(params)), sep="/")
        bad = [name for name, ok in flags.items() if not ok]
        if bad:
            step = history[-1][0]
            _stop(f"parameters {', '.join(map(repr, bad[:3]))}{' ...' if len(bad) > 3 else ''} "
                  f"are non-finite after step {step}; training stopped, {_kept(last_good)}", step)


# ---------------------------------------------------------------------------- the loop


def _failed_step(workdir: str):
    path = os.path.join(workdir, MEMBER_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f).get("failed_step")


class _Members:
    """The per-member side of :func:`fit`: work directories, checkpoints, data iterators,
    metrics writers, best validation scores and failed steps."""

    def __init__(self, runs, workdirs, dp, report):
        self.runs, self.workdirs, self.dp = runs, workdirs, dp
        self.ckpts = [Checkpoints(w, r.cfg.train.keep_checkpoints) for r, w in zip(runs, workdirs)]
        for ck, w, r in zip(self.ckpts, workdirs, runs):
            if ck.latest_step() is not None:
                check_resume(w, r.cfg, report=report)
        shard = dp.shard if dp is not None else (0, 1)
        self.fresh_iterators = lambda: [
            BatchIterator(r.dataset.train, r.cfg.train.batch_size, seed=r.cfg.seed, shard=shard,
                          drop_remainder=r.cfg.train.drop_last) for r in runs]
        self.iters = self.fresh_iterators()
        self.failed = [None] * len(runs)
        self.best = [ck.best_score() for ck in self.ckpts]

    def write_configs(self):
        if is_primary():
            for r, w in zip(self.runs, self.workdirs):
                save_config(r.cfg, w)
                write_fingerprint(w, r.cfg)
                write_json_atomic(os.path.join(w, DATASET_FILE), dataclasses.asdict(r.dataset.info),
                                  default=lambda v: v.item() if hasattr(v, "item") else str(v))
        sync("config written")

    def restore(self, trees, report) -> tuple:
        """``(start step, restored trees or None)``: the members' newest checkpoints when they
        all hold the same step (else all start from scratch)."""
        restored = []
        for i, (ck, tree) in enumerate(zip(self.ckpts, trees)):
            step, got, data_state = ck.restore_latest(tree)
            if not step or (restored and step != restored[0][0]):
                break
            self.iters[i].restore(data_state)
            self.failed[i] = _failed_step(self.workdirs[i])
            restored.append((step, got))
        else:
            if restored:
                report(f"resumed from checkpoint at step {restored[0][0]} in "
                       f"{', '.join(self.workdirs)}")
                return restored[0][0], [t for _, t in restored]
        self.iters, self.failed = self.fresh_iterators(), [None] * len(self.runs)
        return 0, None

    def save(self, step, states):
        for i, (ck, w, st) in enumerate(zip(self.ckpts, self.workdirs, states)):
            ck.save(step, st, self.iters[i].state())
            if len(self.runs) > 1:
                write_json_atomic(os.path.join(w, MEMBER_FILE), {"failed_step": self.failed[i]})

    def close(self):
        for ck in self.ckpts:
            ck.close()


@interrupt.deferred()
def fit(runs, workdirs, *, dp: DataParallel | None = None, progress=None, quiet: bool = False,
        report_extra=None) -> list:
    """Train ``runs`` (see the module docstring), each in its work directory (already locked
    by the caller); returns one report per run (also its ``report.json``). A Ctrl-C stops it
    at the next step boundary (:mod:`~ssm_jax.training.interrupt`), never inside a save.

    Args:
      runs: :class:`Run` s that may share one step (equal models, schedules and optimizers up
        to the per-member values; :func:`ssm_jax.training.vectorized.check_members`).
      workdirs: one per run.
      dp: data parallelism of a single run (None: one device, no sharding).
      progress: optional ``progress(step, num_steps)`` called at every log step.
      quiet: no resume messages and no one-line summary (members of a sweep).
      report_extra: optional ``report_extra(i, state) -> dict`` added to run ``i``'s report.
    """
    base, stacked = runs[0], len(runs) > 1
    sched, cfg = base.schedule, base.cfg
    say = (lambda _: None) if quiet or not is_primary() else print
    tx = make_optimizer(cfg.optim, sched.num_steps, base.layers, steps_per_epoch=sched.steps_per_epoch)
    objective, weights = group_objective(runs)
    step_fn = make_train_step(objective, projection(base), cfg.train.failure)
    eval_step = make_eval_step(base.model.head)
    members = _Members(runs, workdirs, dp, say)
    members.write_configs()
    states = [TrainState.create(apply_fn=base.model.apply, variables=r.variables, tx=tx, rng=r.rng)
              for r in runs]
    start, trees = members.restore([state_tree(s) for s in states], say)
    if trees is not None:
        states = [s.replace(**t) for s, t in zip(states, trees)]
    put = dp.put_batch if dp is not None else (lambda b: b)
    if stacked:
        state = stack(states)
        state = state.replace(opt_state=set_hyperparams(
            state.opt_state, cfg.optim, [r.cfg.optim for r in runs]))
    else:
        state = dp.replicate(states[0]) if dp is not None else states[0]
        weights = {k: v[0] for k, v in weights.items()}
    step_fn = compile_step(step_fn, stacked)
    alive = jnp.asarray([f is None for f in members.failed])
    if not quiet and is_primary():
        _startup_block(runs, workdirs, start)
    writers = [MetricsWriter(w, resume_step=start, enabled=is_primary()) for w in workdirs]
    try:
        if not start:
            for run, wr in zip(runs, writers):  # the config beside the curves in TensorBoard
                wr.write_text("config", "```\n" + json.dumps(run.cfg.to_dict(), indent=2,
                                                              default=str) + "\n```")
            _log_params(runs, writers, state, stacked, 0)
        state = _train_loop(runs, members, writers, state, step_fn, weights, alive, eval_step,
                            put, start, stacked, progress)
    finally:
        for wr in writers:
            wr.close()
    reports = []
    for i, (run, w, ck) in enumerate(zip(runs, workdirs, members.ckpts)):
        st = member(state, i) if stacked else state
        extra = dict(report_extra(i, st) if report_extra is not None else {})
        if stacked:
            extra["failed_step"] = members.failed[i]
        reports.append(final_report(run.cfg, w, st, ck, eval_step, run.dataset,
                                    dp if dp is not None else DataParallel(run.cfg.train.batch_size),
                                    sched.num_steps, extra=extra, quiet=quiet))
    members.close()
    return reports


def _startup_block(runs, workdirs, start):
    """What a run is about to do, once at its start (logger ``ssm_jax``, level INFO)."""
    base = runs[0]
    count = sum(int(np.size(x)) for x in jax.tree.leaves(base.variables["params"]))
    devices = jax.devices()
    log = logging.getLogger("ssm_jax")
    log.info("ssm-jax %s | jax %s | %d %s device(s) | process %d of %d", __version__,
             jax.__version__, len(devices), devices[0].platform, jax.process_index(),
             jax.process_count())
    log.info("%s: config %s, %s model, %d parameters, dataset %s (%d training examples)",
             ", ".join(workdirs), config_digest(base.cfg), base.cfg.model.layer, count,
             base.dataset.info.name, len(base.dataset.train))
    log.info("%d steps (%d per epoch), batch %d, %s%s", base.schedule.num_steps,
             base.schedule.steps_per_epoch, base.cfg.train.batch_size,
             ", ".join(e.name for e in base.extensions) or "no extensions",
             f", resuming at step {start}" if start else "")


def _log_params(runs, writers, state, stacked, step):
    """The extensions' logged numbers of every member's parameters."""
    params = to_host(state.params)
    for i, (run, wr) in enumerate(zip(runs, writers)):
        p = member(params, i) if stacked else params
        logged = {k: v for e in run.extensions for k, v in e.log(p).items()}
        if logged:
            wr.write(step, "params", logged)


def _flush(runs, members, writers, history, state, stacked, last_good, rate):
    """Write the mean train metrics of ``history`` per member; a single run's failure raises,
    a member's is recorded (its rows end at its last good step)."""
    history = [(s, to_host(m), None if ok is None else np.asarray(to_host(ok)))
               for s, m, ok in history]
    failure = runs[0].cfg.train.failure
    if not stacked:
        check_history(failure, [(s, m) for s, m, _ in history], state.params, last_good)
    for i, wr in enumerate(writers):
        rows = []
        for s, m, ok in history:
            if stacked and members.failed[i] is None and not ok[i]:
                members.failed[i] = s  # the first step that failed this member
            if members.failed[i] is None:
                rows.append({k: float(v[i] if stacked else v) for k, v in m.items() if k != "failed"})
        if rows:
            mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
            wr.write(history[-1][0], "train", {**mean, "examples_per_s": rate})
            opt_state = member(state.opt_state, i) if stacked else state.opt_state
            run = runs[i]
            wr.write(history[-1][0], "optim", learning_rates(
                run.cfg.optim, run.schedule.num_steps, opt_state, history[-1][0]))
    return history


def _train_loop(runs, members, writers, state, step_fn, weights, alive, eval_step, put, start,
                stacked, progress):
    sched, cfg = runs[0].schedule, runs[0].cfg
    validation = len(runs[0].dataset.validation) > 0
    bar = tqdm(total=sched.num_steps, initial=start, desc="train", dynamic_ncols=True,
               disable=not (cfg.train.progress and is_primary()))
    history, last_good = [], start
    t_last, n_last = time.perf_counter(), start
    for step in range(start + 1, sched.num_steps + 1):
        interrupt.check()  # a Ctrl-C stops here, between steps (never inside a save)
        if stacked:
            batch = stack([next(it) for it in members.iters])
            state, metrics, alive = step_fn(state, batch, weights, alive)
            history.append((step, metrics, alive))
        else:
            state, metrics = step_fn(state, put(next(members.iters[0])), weights)
            history.append((step, metrics, None))
        log_now, eval_now, ckpt_now = sched.due(step)
        if log_now or eval_now or ckpt_now:
            rate = (step - n_last) * cfg.train.batch_size / max(time.perf_counter() - t_last, 1e-9)
            _flush(runs, members, writers, history, state, stacked, last_good, rate)
            _log_params(runs, writers, state, stacked, step)
            bar.update(step - bar.n)
            if progress is not None:
                progress(step, sched.num_steps)
            history, t_last, n_last = [], time.perf_counter(), step
        if not ((eval_now and validation) or ckpt_now):
            continue
        states = [member(state, i) for i in range(len(runs))] if stacked else [state]
        if eval_now and validation:
            _validate(runs, members, writers, states, eval_step, step)
        if ckpt_now:
            members.save(step, [state_tree(s) for s in states])
            last_good = step
        t_last = time.perf_counter()  # examples/s counts training steps only
    bar.close()
    return state


def _validate(runs, members, writers, states, eval_step, step):
    """Validation metrics of every member; a better score saves its best checkpoint."""
    for i, (run, st) in enumerate(zip(runs, states)):
        dp = members.dp
        bs = run.cfg.train.eval_batch_size
        val = evaluate(eval_step, st, run.dataset.validation, bs, dp)
        writers[i].write(step, "validation", val)
        if members.best[i] is None or score(val) > members.best[i]:
            members.best[i] = score(val)
            members.ckpts[i].save_best(step, state_tree(st), members.iters[i].state(), members.best[i])


# ---------------------------------------------------------------------------- loading


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """A trained run loaded back (:func:`load_run`): its config, the model and the variables
    of one checkpoint (``step`` of ``which``), and the dataset description. Unpacks as
    ``model, variables, cfg = load_run(workdir)``."""

    cfg: Config
    model: SequenceModel
    variables: dict
    info: Any
    step: int
    which: str

    def __iter__(self):
        return iter((self.model, self.variables, self.cfg))


def load_run(workdir: str, checkpoint: str = "best", step: int | None = None) -> TrainedRun:
    """The model and variables of a run trained in ``workdir``, without building its dataset.

    Args:
      workdir: the run's work directory (``config.json``, ``dataset.json``, ``checkpoints/``).
      checkpoint: "best" (the best-validation checkpoint; the last one when the run had no
        validation split) or "last".
      step: a checkpoint step of ``checkpoint``; None: the newest.
    """
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    which = checkpoint
    missing = [f for f in ("config.json", DATASET_FILE) if not os.path.exists(os.path.join(workdir, f))]
    if missing:
        raise FileNotFoundError(f"{workdir!r} is not a trained run: {', '.join(missing)} missing")
    with open(os.path.join(workdir, "config.json")) as f:
        cfg = parse_config(json.load(f))
    with open(os.path.join(workdir, DATASET_FILE)) as f:
        fields = json.load(f)
    info = DatasetInfo(**{**fields, "target_shape": tuple(fields.get("target_shape", ()))})
    if which == "best" and step is None and not checkpoint_steps(workdir, "best"):
        which = "last"  # no validation split: the report is at the last step
    steps = checkpoint_steps(workdir, which)
    step = (steps[-1] if steps else None) if step is None else step
    variables = load_variables(workdir, step, which)
    return TrainedRun(cfg, build_model(cfg.model, info), variables, info, step, which)
