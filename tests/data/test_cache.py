"""The on-disk cache of processed splits."""

import numpy as np

from ssm_jax.data import Split
from ssm_jax.data import cache


def _splits(offset=0):
    def split(n):
        return Split(np.arange(n * 3, dtype=np.int32).reshape(n, 3) + offset,
                     np.full(n, 3, np.int32), np.arange(n, dtype=np.int32))
    return {"train": split(4), "validation": split(2), "test": split(3)}


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SSM_JAX_CACHE", str(tmp_path / "env"))
    assert cache.default_cache_dir() == tmp_path / "env"
    assert cache.default_cache_dir(tmp_path / "cfg") == tmp_path / "cfg"
    monkeypatch.delenv("SSM_JAX_CACHE")
    assert cache.default_cache_dir().parts[-2:] == (".cache", "ssm_jax")


def test_hash_ignores_key_order_and_sees_values():
    assert cache.options_hash({"a": 1, "b": 2}) == cache.options_hash({"b": 2, "a": 1})
    assert cache.options_hash({"a": 1}) != cache.options_hash({"a": 2})


def test_builds_once_then_reads(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return _splits()

    first = cache.cached_splits("toy", {"k": 1}, build, cache_dir=tmp_path)
    second = cache.cached_splits("toy", {"k": 1}, build, cache_dir=tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["test"].inputs, second["test"].inputs)
    cache.cached_splits("toy", {"k": 2}, build, cache_dir=tmp_path)
    assert len(calls) == 2
    entries = sorted(p.name for p in tmp_path.iterdir())
    assert len(entries) == 2 and all(e.startswith("toy-") for e in entries)
    assert (tmp_path / entries[0] / "options.json").is_file()


def test_mmap_entries_are_memory_mapped(tmp_path):
    splits = cache.cached_splits("big", {"k": 1}, _splits, cache_dir=tmp_path, mmap=True)
    assert isinstance(splits["train"].inputs, np.memmap)
    np.testing.assert_array_equal(splits["train"].inputs, _splits()["train"].inputs)
    entry = cache.cache_entry("big", {"k": 1}, tmp_path)
    assert (entry / "train.inputs.npy").is_file()


def test_use_cache_false_writes_nothing(tmp_path):
    cache.cached_splits("toy", {"k": 1}, _splits, cache_dir=tmp_path, use_cache=False)
    assert not any(tmp_path.iterdir())


def test_failed_build_leaves_no_entry(tmp_path):
    def broken():
        raise RuntimeError("boom")

    try:
        cache.cached_splits("toy", {"k": 1}, broken, cache_dir=tmp_path)
    except RuntimeError:
        pass
    assert not any(tmp_path.glob("toy-*"))
