"""Seeded, resumable training batches.

Epoch ``e`` visits the examples in the order ``np.random.default_rng((seed, e)).permutation(n)``
(or ``arange(n)`` without shuffling). The state is two ints, ``epoch`` and ``position`` (the
number of examples of that epoch's order already handed out), so a checkpoint that stores
``it.state()`` and a resumed run that calls ``it.restore(state)`` see the same batches.
"""

from __future__ import annotations

import numpy as np

from ssm_jax.data.registry import Split


def epoch_order(num: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """Example order of one epoch: ``(num,)`` int64 permutation."""
    if not shuffle:
        return np.arange(num)
    return np.random.default_rng((seed, epoch)).permutation(num)


class BatchIterator:
    """Endless iterator of training batches over a ``Split``.

    ``next(it)`` returns ``{"inputs", "lengths", "labels"}`` numpy arrays with leading size
    ``batch_size``; with ``drop_remainder=False`` the last batch of each epoch may be smaller
    (and carries no padding). Epochs follow one another without end; ``it.epoch`` tells which
    epoch the next batch comes from.

    ``shard=(k, count)``: every process of a multi-host run iterates over the same global
    batches (same seed, same order) and reads only the ``k``-th of ``count`` equal row blocks
    of each (leading size ``batch_size // count``); the state is that of the global batches.
    """

    def __init__(self, split: Split, batch_size: int, *, seed: int, shuffle: bool = True,
                 drop_remainder: bool = True, shard: tuple = (0, 1)):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        k, count = shard
        if batch_size % count or not 0 <= k < count:
            raise ValueError(f"batch_size {batch_size} does not split into {count} shards "
                             f"(shard {k})")
        if len(split) == 0:
            raise ValueError("cannot iterate over an empty split")
        if drop_remainder and batch_size > len(split):
            raise ValueError(
                f"batch_size {batch_size} is larger than the split ({len(split)} examples) "
                "and drop_remainder=True would yield no batch"
            )
        self.split = split
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.drop_remainder = drop_remainder
        self.epoch = 0
        self.position = 0
        self._order = None
        self.shard = (int(k), int(count))

    @property
    def batches_per_epoch(self) -> int:
        n = len(self.split)
        return n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)

    def _current_order(self) -> np.ndarray:
        if self._order is None:
            self._order = epoch_order(len(self.split), self.seed, self.epoch, self.shuffle)
        return self._order

    def _start_next_epoch_if_done(self) -> None:
        n = len(self.split)
        left = n - self.position
        if left <= 0 or (self.drop_remainder and left < self.batch_size):
            self.epoch += 1
            self.position = 0
            self._order = None

    def __iter__(self) -> "BatchIterator":
        return self

    def __next__(self) -> dict:
        self._start_next_epoch_if_done()
        order = self._current_order()
        index = order[self.position:self.position + self.batch_size]
        self.position += len(index)
        k, count = self.shard
        if count > 1:
            per = len(index) // count
            index = index[k * per:(k + 1) * per]
        return self.split.take(index)

    def state(self) -> dict:
        """JSON-serialisable iterator state: ``{"epoch": int, "position": int, "seed": int}``."""
        return {"epoch": int(self.epoch), "position": int(self.position), "seed": self.seed}

    def restore(self, state: dict) -> None:
        """Continue from ``state`` (as returned by ``state()``)."""
        if "seed" in state and int(state["seed"]) != self.seed:
            raise ValueError(f"iterator state was saved with seed {state['seed']}, this iterator "
                             f"has seed {self.seed}")
        position = int(state["position"])
        if not 0 <= position <= len(self.split):
            raise ValueError(f"iterator position {position} is outside the split of "
                             f"{len(self.split)} examples")
        self.epoch = int(state["epoch"])
        self.position = position
        self._order = None
