"""Dataset registry: one place that maps a config (``cfg.name`` + options) to splits.

Every dataset is a builder function registered with the defaults of all the config keys it
accepts. ``get_dataset(cfg)`` checks the keys *before* building anything, fills in the
defaults and calls the builder with a plain ``dict``.

Batch layout, the same for every dataset (``batch`` = batch size, ``L`` = ``info.seq_len``):

- ``inputs``: ``(batch, L)`` int32 token ids (``info.input_kind == "tokens"``) or
  ``(batch, L, C)`` float32 (``"floats"``, ``C = info.in_channels``). Two-document retrieval
  uses ``(batch, 2, L)`` int32 tokens.
- ``lengths``: ``(batch,)`` int32 number of real (non-pad) steps; ``(batch, 2)`` for retrieval.
- ``labels``: ``(batch,)`` int32 class ids, or ``(batch,) + info.target_shape`` float32 targets
  when ``info.num_classes is None`` (regression).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Iterator, Mapping

import numpy as np

Builder = Callable[[dict], "Dataset"]

SPLIT_NAMES = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset, enough to build a model for it.

    Attributes:
      name: registry name.
      seq_len: L, the padded sequence length of ``inputs``.
      input_kind: ``"tokens"`` (int ids, ``inputs (n, L)``) or ``"floats"`` (``(n, L, C)``).
      vocab_size: number of token ids including ``pad_id`` (None for floats).
      in_channels: C for floats; 1 for tokens.
      num_classes: number of classes, or None for regression.
      target_shape: shape of one label: ``()`` for class labels and scalar targets.
      pad_id: token id used for padding (tokens only).
      num_documents: 1, or 2 for two-document retrieval (``inputs (n, 2, L)``).
    """

    name: str
    seq_len: int
    input_kind: str
    vocab_size: int | None
    in_channels: int
    num_classes: int | None
    target_shape: tuple = ()
    pad_id: int = 0
    num_documents: int = 1

    def __post_init__(self):
        if self.input_kind not in ("tokens", "floats"):
            raise ValueError(f"input_kind must be 'tokens' or 'floats', got {self.input_kind!r}")
        if self.input_kind == "tokens" and not self.vocab_size:
            raise ValueError(f"dataset {self.name!r}: token inputs need a vocab_size")


@dataclasses.dataclass
class Split:
    """One split of a dataset: parallel arrays with the same first dimension ``n``.

    Attributes:
      inputs: ``(n, L)`` int32 tokens, ``(n, L, C)`` float32, or ``(n, 2, L)`` int32 for
        retrieval. May be an ``np.memmap``.
      lengths: ``(n,)`` int32 (``(n, 2)`` for retrieval).
      labels: ``(n,)`` int32 class ids or ``(n,) + target_shape`` float32 targets.
    """

    inputs: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        n = len(self.inputs)
        if len(self.lengths) != n or len(self.labels) != n:
            raise ValueError(
                f"split arrays disagree in length: inputs {n}, lengths {len(self.lengths)}, "
                f"labels {len(self.labels)}"
            )

    def __len__(self) -> int:
        return len(self.inputs)

    def take(self, index: np.ndarray) -> dict:
        """Rows ``index`` (``(k,)`` int) as a batch dict of numpy arrays, in that order.

        Rows are read in sorted order (fast for memory-mapped arrays) and put back in order.
        """
        index = np.asarray(index, dtype=np.int64)
        order = np.argsort(index, kind="stable")
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        sorted_index = index[order]
        return {
            key: np.asarray(getattr(self, key)[sorted_index])[inverse]
            for key in ("inputs", "lengths", "labels")
        }

    def batches(self, batch_size: int, shard: tuple = (0, 1)) -> Iterator[dict]:
        """In-order batches for evaluation; the last partial batch is padded.

        Yields dicts with ``inputs``, ``lengths``, ``labels`` of leading size ``batch_size``
        and ``mask: (batch_size,) bool``, False on padding rows (copies of row 0 of the
        batch). ``mask.sum()`` is the number of real examples.

        ``shard=(k, count)``: only the ``k``-th of ``count`` equal row blocks of every batch
        is read and yielded (leading size ``batch_size // count``), for the ``k``-th of
        ``count`` processes of a multi-host run.
        """
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        k, count = shard
        if batch_size % count:
            raise ValueError(f"batch_size {batch_size} does not split into {count} shards")
        rows = slice(k * batch_size // count, (k + 1) * batch_size // count)
        n = len(self)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            real = stop - start
            index = np.arange(start, start + batch_size)
            index[real:] = start
            batch = self.take(index[rows])
            batch["mask"] = (np.arange(batch_size) < real)[rows]
            yield batch

    def num_batches(self, batch_size: int) -> int:
        """Number of batches ``batches(batch_size)`` yields (last one partial)."""
        return -(-len(self) // batch_size)


@dataclasses.dataclass
class Dataset:
    """A dataset: its ``info``, its ``splits`` and the full config that made it."""

    info: DatasetInfo
    splits: dict
    config: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        missing = [s for s in SPLIT_NAMES if s not in self.splits]
        if missing:
            raise ValueError(f"dataset {self.info.name!r} is missing splits {missing}")

    @property
    def train(self) -> Split:
        return self.splits["train"]

    @property
    def validation(self) -> Split:
        return self.splits["validation"]

    @property
    def test(self) -> Split:
        return self.splits["test"]


@dataclasses.dataclass(frozen=True)
class _Entry:
    builder: Builder
    defaults: Mapping[str, Any]
    doc: str


_REGISTRY: dict[str, _Entry] = {}
BUILTIN_MODULES = ("digits", "synthetic", "listops", "lra", "tfds_data", "offline")
_builtins_loaded = False


def _load_builtins() -> None:
    """Import the loader modules (each registers its datasets) on first use of the registry.

    Lazy so that ``python -m ssm_jax.data.listops`` does not import itself twice.
    """
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(f"ssm_jax.data.{module}")


def register(name: str, *, defaults: Mapping[str, Any], doc: str = "") -> Callable[[Builder], Builder]:
    """Decorator: register ``builder(cfg: dict) -> Dataset`` under ``name``.

    ``defaults`` lists every config key the dataset accepts (besides ``name``) with its
    default value; ``get_dataset`` rejects any other key.
    """

    def wrap(builder: Builder) -> Builder:
        # so that a clash with a built-in name is reported here; a built-in module registering
        # itself skips it (loading the others from inside its import is an import cycle)
        if builder.__module__.rpartition(".")[2] not in BUILTIN_MODULES:
            _load_builtins()
        existing = _REGISTRY.get(name)
        # The same function again (module reloaded, or run with `python -m`) is fine.
        if existing is not None and existing.builder.__qualname__ != builder.__qualname__:
            raise ValueError(f"dataset {name!r} is already registered "
                             f"(by {existing.builder.__module__}.{existing.builder.__qualname__})")
        _REGISTRY[name] = _Entry(builder, dict(defaults), doc or (builder.__doc__ or ""))
        return builder

    return wrap


def list_datasets() -> list[str]:
    """Sorted names of all registered datasets."""
    _load_builtins()
    return sorted(_REGISTRY)


def dataset_defaults(name: str) -> dict:
    """The config keys (and defaults) that dataset ``name`` accepts."""
    return dict(_lookup(name).defaults)


def _lookup(name: str) -> _Entry:
    _load_builtins()
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(list_datasets())}")
    return _REGISTRY[name]


def _as_dict(cfg: Any) -> dict:
    if hasattr(cfg, "to_dict"):
        return dict(cfg.to_dict())
    if isinstance(cfg, Mapping):
        return dict(cfg)
    raise TypeError(f"dataset config must be a mapping or ConfigDict, got {type(cfg).__name__}")


def resolve_config(cfg: Any) -> dict:
    """Validate ``cfg`` against its dataset's keys and fill in defaults (no building)."""
    raw = _as_dict(cfg)
    if "name" not in raw:
        raise ValueError(f"dataset config needs a 'name'; valid names: {', '.join(list_datasets())}")
    name = raw.pop("name")
    entry = _lookup(name)
    unknown = sorted(set(raw) - set(entry.defaults))
    if unknown:
        raise ValueError(
            f"unknown config key(s) {unknown} for dataset {name!r}; "
            f"allowed keys: {', '.join(['name'] + sorted(entry.defaults))}"
        )
    for key, value in raw.items():
        raw[key] = _check_type(name, key, value, entry.defaults[key])
    _check_sizes(name, raw)
    resolved = dict(entry.defaults)
    resolved.update(raw)
    resolved["name"] = name
    return resolved


def _check_type(name: str, key: str, value, default):
    """``value`` of key ``key`` checked against the type of its default (None: any type)."""
    if default is None or value is None and default is None:
        return value
    kind = type(default)
    ok = (isinstance(value, bool) if kind is bool else
          isinstance(value, int) and not isinstance(value, bool) if kind is int else
          isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float else
          isinstance(value, kind))
    if not ok:
        raise ValueError(f"key {key!r} of dataset {name!r} must be of type {kind.__name__} "
                         f"(default {default!r}), got {value!r}")
    return float(value) if kind is float else value


def get_dataset(cfg: Any) -> Dataset:
    """Build the dataset that ``cfg`` names (``cfg.name`` plus dataset-specific keys).

    Raises ValueError for an unknown name (listing the valid ones) or an unknown key
    (naming it and the allowed keys) before any data is read or generated.
    """
    resolved = resolve_config(cfg)
    dataset = _REGISTRY[resolved["name"]].builder(resolved)
    dataset.config = resolved
    check_dataset(dataset, resolved)
    return dataset


SIZE_KEYS = {"seq_len": 1, "num_train": 0, "min_length": 1, "max_length": 1, "in_channels": 1,
             "num_val": 0, "num_test": 0}  # -> the smallest allowed value


def _check_sizes(name: str, cfg: dict) -> None:
    for key, low in SIZE_KEYS.items():
        value = cfg.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < low:
            raise ValueError(f"config key 'data.{key}' of dataset {name!r} must be >= {low}, "
                             f"got {value}")


def check_dataset(dataset: Dataset, cfg: dict) -> None:
    """The checks every dataset passes at load, before any compute: a non-empty training split,
    a test split unless the config asks for none (``num_test = 0``), class labels in
    ``[0, num_classes)``, finite float inputs and targets. One ValueError naming the dataset, its
    folder when it has one, the split and the first bad row."""
    info = dataset.info
    where = f"dataset {info.name!r}" + (f" ({cfg['data_dir']})" if cfg.get("data_dir") else "")
    if info.seq_len < 1:
        raise ValueError(f"{where}: sequence length {info.seq_len}; config key 'data.seq_len' "
                         "must be >= 1")
    if len(dataset.train) == 0:
        raise ValueError(f"{where}: the training split is empty")
    if len(dataset.test) == 0 and cfg.get("num_test") != 0:
        raise ValueError(f"{where}: the test split is empty (set data.num_test=0 if the run "
                         "should have none)")
    for split_name in SPLIT_NAMES:
        split = getattr(dataset, split_name)
        if len(split) == 0:
            continue
        if info.input_kind == "floats":
            finite = np.isfinite(np.asarray(split.inputs)).reshape(len(split), -1).all(1)
            if not finite.all():
                raise ValueError(f"{where}, {split_name} split, row {int(np.flatnonzero(~finite)[0])}: "
                                 f"the input holds NaN or Inf ({int((~finite).sum())} such rows)")
        labels = np.asarray(split.labels)
        if info.num_classes is not None:
            bad = np.flatnonzero(((labels < 0) | (labels >= info.num_classes)).reshape(len(labels), -1).any(1))
            if bad.size:
                raise ValueError(f"{where}, {split_name} split, row {bad[0]}: label "
                                 f"{np.asarray(labels[bad[0]]).tolist()} is outside 0..{info.num_classes - 1} "
                                 f"({bad.size} such rows)")
        elif not np.all(np.isfinite(labels)):
            row = int(np.flatnonzero(~np.isfinite(labels).reshape(len(labels), -1).all(1))[0])
            raise ValueError(f"{where}, {split_name} split, row {row}: the target is NaN or Inf")
