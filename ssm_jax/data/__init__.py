"""Datasets behind one registry: ``get_dataset(cfg)`` -> ``Dataset`` with train/validation/test.

See ``ssm_jax/data/README.md`` for the datasets, their config keys and the batch layout.
"""

from ssm_jax.data.registry import (Dataset, DatasetInfo, Split, dataset_defaults, get_dataset,
                                   list_datasets, register, resolve_config)
from ssm_jax.data.iterator import BatchIterator, epoch_order

# The loader modules (digits, synthetic, listops, lra, tfds_data, offline) register their
# datasets when the registry is first used; heavy libraries load only when a dataset is built.

__all__ = [
    "BatchIterator", "Dataset", "DatasetInfo", "Split", "dataset_defaults", "epoch_order",
    "get_dataset", "list_datasets", "register", "resolve_config",
]
