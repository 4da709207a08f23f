"""Orbax checkpoints: the last k by step and the best by validation score, written atomically
(orbax writes to a temporary directory and renames it), with the data iterator state."""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp

ITEMS = ("state", "data")


def _manager(directory: str, **options) -> ocp.CheckpointManager:
    opts = ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False, **options)
    return ocp.CheckpointManager(os.path.abspath(directory), options=opts, item_names=ITEMS)


class Checkpoints:
    """``workdir/checkpoints/last`` keeps the ``keep`` newest, ``.../best`` the best by score."""

    def __init__(self, workdir: str, keep: int):
        root = os.path.join(workdir, "checkpoints")
        self.last = _manager(os.path.join(root, "last"), max_to_keep=keep)
        self.best = _manager(os.path.join(root, "best"), max_to_keep=1,
                             best_fn=lambda m: m["score"], best_mode="max")

    @staticmethod
    def _args(state_tree, data_state):
        return ocp.args.Composite(state=ocp.args.StandardSave(state_tree),
                                  data=ocp.args.JsonSave(data_state))

    def save(self, step: int, state_tree, data_state: dict) -> None:
        """Save the state pytree and the data iterator state at ``step``."""
        self.last.save(step, args=self._args(state_tree, data_state), force=True)

    def save_best(self, step: int, state_tree, data_state: dict, score: float) -> None:
        self.best.save(step, args=self._args(state_tree, data_state), metrics={"score": float(score)},
                       force=True)

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

    def close(self):
        self.last.close()
        self.best.close()


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
    state = out["state"]
    variables = {"params": state["params"]}
    if state.get("batch_stats"):
        variables["batch_stats"] = state["batch_stats"]
    return variables
