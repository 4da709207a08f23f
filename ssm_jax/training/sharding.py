"""Data parallelism with jax.sharding: a 1-D mesh over all devices, the batch split over the
`data` axis, parameters replicated. The same code runs on 1 or many devices and hosts."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def maybe_initialize_distributed(dist_cfg) -> None:
    """Multi-host set-up through ``jax.distributed.initialize`` when the config asks for it."""
    if dist_cfg.multihost:
        jax.distributed.initialize(
            coordinator_address=dist_cfg.coordinator_address or None,
            num_processes=dist_cfg.num_processes or None,
            process_id=dist_cfg.process_id,
        )


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

    def put_batch(self, batch: dict) -> dict:
        """Host batch (this process's rows) -> global arrays sharded over ``data``."""
        if jax.process_count() == 1:
            return jax.device_put(batch, self.batch)
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(self.batch, x), batch)

    def replicate(self, tree):
        return jax.device_put(tree, self.replicated)
