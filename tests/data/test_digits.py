"""The scikit-learn digits dataset."""

import numpy as np
import pytest

from ssm_jax.data import BatchIterator, get_dataset


def test_digits_shapes_and_range():
    ds = get_dataset({"name": "digits"})
    info = ds.info
    assert (info.seq_len, info.input_kind, info.in_channels, info.num_classes) == (64, "floats", 1, 10)
    sizes = {k: len(v) for k, v in ds.splits.items()}
    assert sum(sizes.values()) == 1797
    assert sizes["train"] == round(0.7 * 1797) and sizes["validation"] == round(0.1 * 1797)
    x = ds.train.inputs
    assert x.shape == (sizes["train"], 64, 1) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(ds.train.labels)) == set(range(10))
    assert (ds.train.lengths == 64).all()


def test_digits_split_disjoint_and_seeded():
    from sklearn.datasets import load_digits

    raw = load_digits().data.astype(np.float32) / 16
    ds = get_dataset({"name": "digits", "seed": 0})
    rows = {k: {tuple(r) for r in v.inputs[:, :, 0]} for k, v in ds.splits.items()}
    # Each split's rows really come from load_digits, read row-major.
    assert rows["test"] <= {tuple(r) for r in raw}
    again = get_dataset({"name": "digits", "seed": 0})
    np.testing.assert_array_equal(again.test.labels, ds.test.labels)
    other = get_dataset({"name": "digits", "seed": 1})
    assert not np.array_equal(other.test.labels, ds.test.labels)
    assert len(rows["train"] & rows["test"]) < 5  # only duplicate images may overlap


def test_digits_fraction_config():
    ds = get_dataset({"name": "digits", "train_fraction": 0.5, "validation_fraction": 0.25})
    assert len(ds.train) == round(0.5 * 1797) and len(ds.validation) == round(0.25 * 1797)


@pytest.mark.parametrize("cfg,match", [
    ({"train_fraction": 0.9, "validation_fraction": 0.2}, "fraction"),
    ({"seq_len": 128}, "length 64"),
])
def test_digits_bad_config(cfg, match):
    with pytest.raises(ValueError, match=match):
        get_dataset({"name": "digits", **cfg})


def test_digits_iterator_batch():
    ds = get_dataset({"name": "digits"})
    batch = next(BatchIterator(ds.train, 32, seed=0))
    assert batch["inputs"].shape == (32, 64, 1) and batch["labels"].shape == (32,)
