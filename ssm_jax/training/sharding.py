"""Data parallelism with jax.sharding: a 1-D mesh over all devices (of all processes), the
batch split over the ``data`` axis, parameters replicated. The same code runs on one device,
many devices and many hosts.

Multi-host: every process runs the same program; each reads only its own block of rows of
every global batch (``DataParallel.shard``), and ``put_batch`` assembles the global array from
the blocks (``jax.make_array_from_process_local_data``). Process 0 (``is_primary``) writes
the run's files (metrics, configs, reports); every process takes part in the orbax
checkpoints (orbax coordinates them).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def maybe_initialize_distributed(dist_cfg) -> None:
    """``jax.distributed.initialize`` when ``distributed.multihost`` is set.

    Keys left unset (None, or an empty address) are detected by JAX itself from the cluster
    environment (SLURM, Cloud TPU, MPI/Open MPI, ...), as ``jax.distributed.initialize()``
    does. On CPU, cross-process collectives use gloo.
    """
    if not dist_cfg.multihost or jax.distributed.is_initialized():
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=dist_cfg.coordinator_address or None,
                               num_processes=dist_cfg.num_processes,
                               process_id=dist_cfg.process_id)


def is_primary() -> bool:
    """This process writes the run's files (process 0)."""
    return jax.process_index() == 0


def sync(name: str) -> None:
    """Barrier across processes (no-op with one)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def to_host(tree):
    """NumPy copies of a pytree of arrays that may span processes (replicated values are read
    from a local copy; sharded ones are gathered)."""
    def one(x):
        if not isinstance(x, jax.Array) or x.is_fully_addressable:
            return np.asarray(jax.device_get(x))
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(one, tree)


class DataParallel:
    """Mesh and shardings for data-parallel training."""

    def __init__(self, batch_size: int):
        devices = jax.devices()
        if batch_size % len(devices):
            raise ValueError(f"train.batch_size={batch_size} is not divisible by the number of "
                             f"devices ({len(devices)}); use a multiple of {len(devices)}")
        self.mesh = Mesh(np.asarray(devices), ("data",))
        self.batch = NamedSharding(self.mesh, P("data"))
        self.replicated = NamedSharding(self.mesh, P())
        self.num_devices = len(devices)

    @property
    def shard(self) -> tuple:
        """``(process index, process count)``: this process's block of every global batch."""
        return jax.process_index(), jax.process_count()

    def put_batch(self, batch: dict) -> dict:
        """Host batch (this process's rows) -> global arrays sharded over ``data``."""
        if jax.process_count() == 1:
            return jax.device_put(batch, self.batch)
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(self.batch, x), batch)

    def replicate(self, tree):
        """The same (host or local-device) values on every device of every process."""
        if jax.process_count() == 1:
            return jax.device_put(tree, self.replicated)
        return jax.tree.map(
            lambda x: jax.make_array_from_callback(np.shape(x), self.replicated,
                                                   lambda _, x=np.asarray(x): x), to_host(tree))
