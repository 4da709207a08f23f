"""Orbax checkpoints: the last k by step and the best by validation score, written atomically
(orbax writes to a temporary directory and renames it), with the data iterator state.

Each finished checkpoint also gets a manifest (``checkpoints/manifests/<which>-<step>.json``:
every file with its size). At start-up, :class:`Checkpoints` removes what a killed run can
leave behind: orbax's temporary directories and step directories that no longer match their
manifest (a save or orbax's clean-up of old checkpoints, killed half-way). A damaged checkpoint
is never deleted: it is moved to ``checkpoints/corrupt/<which>-<step>`` with a warning naming
it. A latest checkpoint that cannot be restored is moved there and the previous one is used; a
best checkpoint that cannot be restored is moved there and the report says so
(:func:`lost_best_steps`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import jax
import orbax.checkpoint as ocp

from ssm_jax.files import write_json_atomic
from ssm_jax.training.state import model_variables

ITEMS = ("state", "data")
KINDS = ("last", "best")


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _manager(directory: str, **options) -> ocp.CheckpointManager:
    opts = ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False, **options)
    return ocp.CheckpointManager(os.path.abspath(directory), options=opts, item_names=ITEMS)


def _files(step_dir: str) -> dict:
    """``{relative path: size}`` of every file under a step directory."""
    out = {}
    for root, _, names in os.walk(step_dir):
        for name in names:
            full = os.path.join(root, name)
            out[os.path.relpath(full, step_dir)] = os.path.getsize(full)
    return out


class Checkpoints:
    """``workdir/checkpoints/last`` keeps the ``keep`` newest, ``.../best`` the best by score."""

    def __init__(self, workdir: str, keep: int):
        self.root = os.path.join(workdir, "checkpoints")
        self.manifests = os.path.join(self.root, "manifests")
        self.primary = jax.process_index() == 0  # process 0 keeps the manifests and cleans up
        if self.primary:
            os.makedirs(self.manifests, exist_ok=True)
            for which in KINDS:
                self._clean(which)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("checkpoints cleaned")
        self.last = _manager(os.path.join(self.root, "last"), max_to_keep=keep)
        self.best = _manager(os.path.join(self.root, "best"), max_to_keep=1,
                             best_fn=lambda m: m["score"], best_mode="max")

    # ------------------------------------------------------------------ manifests, clean-up

    def _manifest(self, which: str, step: int) -> str:
        return os.path.join(self.manifests, f"{which}-{step}.json")

    def _write_manifest(self, which: str, step: int) -> None:
        if not self.primary:
            return
        step_dir = os.path.join(self.root, which, str(step))
        path = self._manifest(which, step)
        write_json_atomic(path, _files(step_dir), indent=None)
        present = {n for n in os.listdir(os.path.join(self.root, which)) if n.isdigit()}
        for name in os.listdir(self.manifests):  # manifests of checkpoints orbax deleted
            kind, _, rest = name.partition("-")
            if kind == which and rest.endswith(".json") and rest[:-5] not in present:
                os.remove(os.path.join(self.manifests, name))

    def _complete(self, which: str, step: int) -> bool:
        """False if the step directory differs from its manifest; True without a manifest
        (a save killed after orbax's rename, or a workdir of an older version): a damaged one
        is then found by :meth:`restore_latest`."""
        path = self._manifest(which, step)
        if not os.path.exists(path):
            return True
        with open(path) as f:
            expected = json.load(f)
        return _files(os.path.join(self.root, which, str(step))) == expected

    def _clean(self, which: str) -> None:
        """Remove orbax's temporary directories and incomplete step directories."""
        directory = os.path.join(self.root, which)
        if not os.path.isdir(directory):
            return
        for name in sorted(os.listdir(directory)):
            full = os.path.join(directory, name)
            if ".orbax-checkpoint-tmp" in name:
                shutil.rmtree(full, ignore_errors=True)
            elif name.isdigit() and not self._complete(which, int(name)):
                target = self.quarantine(which, int(name))
                _warn(f"the checkpoint {full} differs from its manifest (an interrupted save or "
                      f"clean-up, or a damaged file); moved it to {target}")

    def quarantine(self, which: str, step: int) -> str:
        """Move the ``which`` checkpoint of ``step`` (and its manifest) to
        ``checkpoints/corrupt/<which>-<step>`` (a number is added if that exists); returns the
        new path. Only process 0 moves."""
        target = os.path.join(self.root, "corrupt", f"{which}-{step}")
        if self.primary:
            n, base = 1, target
            while os.path.exists(target):
                n, target = n + 1, f"{base}.{n}"
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.move(os.path.join(self.root, which, str(step)), target)
            if os.path.exists(self._manifest(which, step)):
                os.remove(self._manifest(which, step))
        return target

    # ------------------------------------------------------------------ save / restore

    @staticmethod
    def _args(state_tree, data_state):
        return ocp.args.Composite(state=ocp.args.StandardSave(state_tree),
                                  data=ocp.args.JsonSave(data_state))

    def save(self, step: int, state_tree, data_state: dict) -> None:
        """Save the state pytree and the data iterator state at ``step``."""
        self.last.save(step, args=self._args(state_tree, data_state), force=True)
        self._write_manifest("last", step)

    def save_best(self, step: int, state_tree, data_state: dict, score: float) -> None:
        self.best.save(step, args=self._args(state_tree, data_state), metrics={"score": float(score)},
                       force=True)
        self._write_manifest("best", step)

    def latest_step(self):
        return self.last.latest_step()

    def best_step(self):
        return self.best.best_step()

    def best_score(self):
        step = self.best.best_step()
        if step is None:
            return None
        for info in self.best._checkpoints:  # the manager's record of saved steps and metrics
            if info.step == step and info.metrics:
                return float(info.metrics["score"])
        return None

    def restore(self, step: int, abstract_state, which: str = "last"):
        """Returns ``(state_tree, data_state)`` saved at ``step`` (``which`` = "last" | "best")."""
        manager = self.last if which == "last" else self.best
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
        out = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))
        return out["state"], out["data"]

    def restore_latest(self, abstract_state):
        """``(step, state_tree, data_state)`` of the newest checkpoint that restores, or
        ``(0, None, None)`` if there is none. An unreadable one is moved to
        ``checkpoints/corrupt/`` with a warning, and the previous one is tried."""
        for step in sorted(self.last.all_steps(), reverse=True):
            try:
                tree, data = self.restore(step, abstract_state)
                return step, tree, data
            except Exception as e:  # orbax/tensorstore raise many types for damaged files
                target = self._moved("last", step, e)
                _warn(f"the checkpoint at step {step} cannot be restored ({_reason(e)}); moved "
                      f"it to {target} and falling back to the previous one")
        return 0, None, None

    def restore_best(self, abstract_state):
        """``(step, state_tree)`` of the best checkpoint, or ``(None, None)`` when there is none
        or it cannot be restored (then it is moved to ``checkpoints/corrupt/`` with a warning)."""
        step = self.best.best_step()
        if step is None:
            return None, None
        try:
            tree, _ = self.restore(step, abstract_state, which="best")
            return step, tree
        except Exception as e:  # a damaged file: CRC-32C mismatch, truncated array, ...
            target = self._moved("best", step, e)
            _warn(f"the best-validation checkpoint at step {step} cannot be restored "
                  f"({_reason(e)}); moved it to {target}")
            return None, None

    def _moved(self, which: str, step: int, error: Exception) -> str:
        target = self.quarantine(which, step)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"corrupt checkpoint {which} {step} moved")
        (self.last if which == "last" else self.best).reload()
        return target

    def close(self):
        self.last.close()
        self.best.close()


def _reason(e: Exception) -> str:
    """``Type: first line`` of an orbax/tensorstore error, at most 160 characters."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text[:160]}" if text else type(e).__name__


def lost_best_steps(workdir: str) -> list:
    """Steps of the best-validation checkpoints of ``workdir`` found damaged and moved to
    ``checkpoints/corrupt/`` (the report names them: a selection they were part of is lost)."""
    directory = os.path.join(workdir, "checkpoints", "corrupt")
    if not os.path.isdir(directory):
        return []
    names = [n.split(".")[0][len("best-"):] for n in os.listdir(directory) if n.startswith("best-")]
    return sorted({int(n) for n in names if n.isdigit()})


def checkpoint_steps(workdir: str, which: str = "last") -> list:
    """The steps of the saved ``which`` ("last" | "best") checkpoints of ``workdir``, sorted."""
    directory = os.path.join(workdir, "checkpoints", which)
    if not os.path.isdir(directory):
        return []
    return sorted(int(n) for n in os.listdir(directory) if n.isdigit())


def load_variables(workdir: str, step: int | None = None, which: str = "best") -> dict:
    """Model variables (``params``, and ``batch_stats`` if any) saved by ``train_and_evaluate``.

    Args:
      workdir: the run's work directory.
      step: the checkpoint step; None = the newest one of ``which``.
      which: "best" (best-validation checkpoint) or "last" (the last ``keep`` by step).
    """
    directory = os.path.abspath(os.path.join(workdir, "checkpoints", which))
    manager = ocp.CheckpointManager(directory, item_names=ITEMS)
    try:
        step = manager.latest_step() if step is None else step
        if step is None or step not in manager.all_steps():
            raise FileNotFoundError(f"no {which} checkpoint at step {step} in {directory} "
                                    f"(steps there: {manager.all_steps()})")
        out = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(), data=ocp.args.JsonRestore()))
    finally:
        manager.close()
    return model_variables(out["state"])
