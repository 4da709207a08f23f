"""On-disk cache of processed splits, keyed by a hash of the options that made them.

Layout: ``<cache_dir>/<name>-<hash16>/`` holding either ``splits.npz`` (small sets, loaded
into memory) or one ``<split>.<field>.npy`` per array (large sets, opened with
``np.load(mmap_mode="r")``), plus ``options.json`` for humans. Entries are written to a
temporary directory and renamed, so a crash never leaves a half-written entry behind.

The cache directory is ``cache_dir`` if given, else ``$SSM_JAX_CACHE``, else
``~/.cache/ssm_jax``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from ssm_jax.data.registry import SPLIT_NAMES, Split

FIELDS = ("inputs", "lengths", "labels")
CACHE_VERSION = 1


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$SSM_JAX_CACHE``, else ``~/.cache/ssm_jax``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get("SSM_JAX_CACHE"):
        return Path(os.environ["SSM_JAX_CACHE"]).expanduser()
    return Path.home() / ".cache" / "ssm_jax"


def options_hash(options: dict) -> str:
    """Stable 16-hex-digit hash of a JSON-serialisable dict (key order does not matter)."""
    text = json.dumps({"_version": CACHE_VERSION, **options}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_entry(name: str, options: dict, cache_dir=None) -> Path:
    """Directory of the cache entry for dataset ``name`` built with ``options``."""
    return default_cache_dir(cache_dir) / f"{name}-{options_hash(options)}"


def _write_entry(entry: Path, splits: dict, options: dict, mmap: bool) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=entry.name + ".tmp-", dir=entry.parent))
    try:
        if mmap:
            for split, arrays in splits.items():
                for field in FIELDS:
                    np.save(tmp / f"{split}.{field}.npy", np.asarray(getattr(arrays, field)))
        else:
            np.savez(tmp / "splits.npz", **{f"{split}.{field}": np.asarray(getattr(arrays, field))
                                            for split, arrays in splits.items() for field in FIELDS})
        (tmp / "options.json").write_text(json.dumps(options, sort_keys=True, default=str))
        try:
            os.replace(tmp, entry)
        except OSError:  # another process finished first; keep its entry
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_entry(entry: Path, mmap: bool) -> dict:
    if mmap:
        return {split: Split(*(np.load(entry / f"{split}.{field}.npy", mmap_mode="r")
                               for field in FIELDS))
                for split in SPLIT_NAMES}
    with np.load(entry / "splits.npz") as data:
        return {split: Split(*(data[f"{split}.{field}"] for field in FIELDS))
                for split in SPLIT_NAMES}


def is_complete(entry: Path, mmap: bool) -> bool:
    """Whether ``entry`` holds every file ``_read_entry`` needs."""
    if mmap:
        return all((entry / f"{s}.{f}.npy").exists() for s in SPLIT_NAMES for f in FIELDS)
    return (entry / "splits.npz").exists()


def cached_splits(name: str, options: dict, build: Callable[[], dict], *, cache_dir=None,
                  mmap: bool = False, use_cache: bool = True) -> dict:
    """``{split: Split}`` from the cache, or from ``build()`` (then written to the cache).

    Args:
      name: dataset name (first part of the entry's directory name).
      options: everything that determines the data (hashed into the key).
      build: returns ``{"train": Split, "validation": Split, "test": Split}``.
      mmap: store one ``.npy`` per array and open them memory-mapped (read-only).
      use_cache: False builds every time and touches no file.
    """
    if not use_cache:
        return build()
    entry = cache_entry(name, options, cache_dir)
    if not is_complete(entry, mmap):
        _write_entry(entry, build(), options, mmap)
    return _read_entry(entry, mmap)
