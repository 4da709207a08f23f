"""Registry, DatasetInfo, Split and BatchIterator."""

import json

import numpy as np
import pytest

from ssm_jax.data import (BatchIterator, Dataset, DatasetInfo, Split, get_dataset,
                          list_datasets, register)


def _split(n=10, seq_len=4):
    inputs = np.arange(n * seq_len, dtype=np.int32).reshape(n, seq_len)
    return Split(inputs, np.full(n, seq_len, np.int32), np.arange(n, dtype=np.int32))


def _labels(it, num_batches):
    return [next(it)["labels"].tolist() for _ in range(num_batches)]


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="unknown dataset 'nope'") as err:
        get_dataset({"name": "nope"})
    assert "digits" in str(err.value)


def test_missing_name():
    with pytest.raises(ValueError, match="needs a 'name'"):
        get_dataset({"seq_len": 3})


def test_unknown_key_names_key_and_allowed_keys():
    with pytest.raises(ValueError) as err:
        get_dataset({"name": "digits", "sequence_length": 64})
    message = str(err.value)
    assert "sequence_length" in message and "train_fraction" in message and "seed" in message


def test_config_dict_accepted():
    ml_collections = pytest.importorskip("ml_collections")
    ds = get_dataset(ml_collections.ConfigDict({"name": "digits", "seed": 1}))
    assert ds.config["seed"] == 1 and ds.info.name == "digits"


def test_register_custom_and_list():
    @register("_tiny_test_set", defaults={"n": 4})
    def build(cfg):
        info = DatasetInfo("_tiny_test_set", 4, "tokens", 40, 1, 10)
        return Dataset(info, {s: _split(cfg["n"]) for s in ("train", "validation", "test")})

    assert "_tiny_test_set" in list_datasets()
    assert len(get_dataset({"name": "_tiny_test_set", "n": 6}).train) == 6


def test_dataset_info_validation():
    with pytest.raises(ValueError, match="input_kind"):
        DatasetInfo("x", 4, "images", None, 1, 2)
    with pytest.raises(ValueError, match="vocab_size"):
        DatasetInfo("x", 4, "tokens", None, 1, 2)


def test_split_checks_lengths():
    with pytest.raises(ValueError, match="disagree"):
        Split(np.zeros((3, 2)), np.zeros(2), np.zeros(3))


def test_iterator_reproducible_and_reshuffled_per_epoch():
    split = _split(10)
    a = _labels(BatchIterator(split, 5, seed=3), 6)
    b = _labels(BatchIterator(split, 5, seed=3), 6)
    c = _labels(BatchIterator(split, 5, seed=4), 6)
    assert a == b and a != c
    epochs = [sum(a[i:i + 2], []) for i in (0, 2, 4)]
    assert all(sorted(e) == list(range(10)) for e in epochs)  # each epoch is a permutation
    assert epochs[0] != epochs[1] != epochs[2]
    expected = np.random.default_rng((3, 1)).permutation(10).tolist()
    assert epochs[1] == expected


def test_iterator_drop_remainder_and_keep_remainder():
    split = _split(10)
    it = BatchIterator(split, 4, seed=0)
    sizes = [len(next(it)["labels"]) for _ in range(4)]
    assert sizes == [4, 4, 4, 4] and it.epoch == 1  # 2 per epoch, 2 left over dropped
    it = BatchIterator(split, 4, seed=0, drop_remainder=False)
    assert [len(next(it)["labels"]) for _ in range(4)] == [4, 4, 2, 4]


def test_iterator_no_shuffle_is_in_order():
    it = BatchIterator(_split(6), 3, seed=0, shuffle=False)
    assert _labels(it, 4) == [[0, 1, 2], [3, 4, 5], [0, 1, 2], [3, 4, 5]]


def test_iterator_batch_rows_are_consistent():
    split = _split(10)
    batch = next(BatchIterator(split, 4, seed=0))
    np.testing.assert_array_equal(batch["inputs"], split.inputs[batch["labels"]])


def test_iterator_state_restore_resumes_exact_sequence():
    split = _split(11)
    it = BatchIterator(split, 3, seed=7)
    _labels(it, 5)  # crosses an epoch boundary (3 batches per epoch)
    state = json.loads(json.dumps(it.state()))
    assert set(state) >= {"epoch", "position"}
    expected = _labels(it, 7)
    resumed = BatchIterator(split, 3, seed=7)
    resumed.restore(state)
    assert _labels(resumed, 7) == expected


def test_iterator_restore_rejects_other_seed_and_bad_position():
    it = BatchIterator(_split(5), 2, seed=1)
    with pytest.raises(ValueError, match="seed"):
        it.restore({"epoch": 0, "position": 0, "seed": 2})
    with pytest.raises(ValueError, match="position"):
        it.restore({"epoch": 0, "position": 9})


def test_iterator_errors():
    with pytest.raises(ValueError, match="larger than the split"):
        BatchIterator(_split(3), 4, seed=0)
    with pytest.raises(ValueError, match="positive"):
        BatchIterator(_split(3), 0, seed=0)


def test_eval_batches_pad_last_batch_with_mask():
    split = _split(7)
    batches = list(split.batches(3))
    assert len(batches) == split.num_batches(3) == 3
    assert all(b["inputs"].shape == (3, 4) for b in batches)
    assert [b["mask"].tolist() for b in batches][-1] == [True, False, False]
    real = np.concatenate([b["labels"][b["mask"]] for b in batches])
    np.testing.assert_array_equal(real, np.arange(7))


def test_take_from_memmap(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(20, dtype=np.int32).reshape(10, 2))
    inputs = np.load(path, mmap_mode="r")
    split = Split(inputs, np.full(10, 2, np.int32), np.arange(10, dtype=np.int32))
    batch = split.take(np.array([7, 2, 9]))
    np.testing.assert_array_equal(batch["inputs"], [[14, 15], [4, 5], [18, 19]])
    assert not isinstance(batch["inputs"], np.memmap)


def test_register_conflict():
    def other_builder(cfg):
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="already registered"):
        register("digits", defaults={})(other_builder)
