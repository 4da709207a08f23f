"""Prepared tensorflow-datasets data: IMDb (LRA Text), CIFAR-10 (LRA Image), MNIST, Fashion-MNIST.

Read with ``tfds.data_source(name, data_dir=..., download=False)`` (array_record files, no
TensorFlow needed). Nothing is ever downloaded: a dataset that is not prepared in
``data_dir`` (config key, else ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``) is a
FileNotFoundError telling how to prepare it.

- ``imdb`` (``imdb_reviews``): byte level, id = UTF-8 byte + 1 (pad 0, vocab 257),
  truncated to ``seq_len`` (4096, LRA Text). ``inputs (batch, L) int32``. With
  ``tokenizer="wordpiece"`` and ``vocab_file`` (a BERT ``vocab.txt``, e.g. bert-base-uncased's,
  which the user provides): lower-cased WordPiece ids ``[CLS] ... [SEP]`` truncated to
  ``seq_len`` and right-padded with ``[PAD]``, as the selective-SSM authors' IMDb (needs the
  ``tokenizers`` package).
- ``cifar10``: grayscale ``round(0.2989 R + 0.5870 G + 0.1140 B)`` (the ITU-R 601 weights of
  ``tf.image.rgb_to_grayscale``), length 1024 (LRA Image).
- ``mnist``, ``fashion_mnist``: length 784.
Images: ``input_kind="floats"`` gives ``(batch, L, 1)`` float32 pixel/255, ``"tokens"`` gives
``(batch, L)`` int32 pixel values (vocab 256). The tfds ``train`` split is cut into train and
validation (``validation_fraction``, seeded); ``test`` is the tfds test split. Processed
arrays are cached (npz) under the cache dir.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ssm_jax.data.cache import cached_splits
from ssm_jax.data.lra import BYTE_VOCAB_SIZE, encode_bytes
from ssm_jax.data.registry import Dataset, DatasetInfo, Split, register
from ssm_jax.data.splits import pad_tokens

READ_CHUNK = 1024
GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140])


def tfds_data_dir(data_dir) -> Path:
    """``data_dir``, else ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``."""
    return Path(data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets").expanduser()


def prepared_version_dir(name: str, data_dir: Path) -> Path:
    """Newest ``<data_dir>/<name>/<version>/`` holding array_record files of ``name``.

    ``name`` may include a config (``imdb_reviews/plain_text``) or a version
    (``mnist:3.0.1``). Raises FileNotFoundError (not prepared) or ValueError (prepared in
    another file format), both saying how to prepare it; never downloads.
    """
    base, _, version = name.partition(":")
    candidates = sorted((data_dir / base).glob(f"{version or '*'}/dataset_info.json"))
    if not candidates and "/" not in base:  # builders with configs: <name>/<config>/<version>
        candidates = sorted((data_dir / base).glob(f"*/{version or '*'}/dataset_info.json"))
    how = (f"Prepare it once on a machine with TensorFlow and network access:\n"
           f"  pip install tensorflow tensorflow-datasets\n"
           f"  tfds build {base} --data_dir {data_dir} --file_format array_record\n"
           f"(or put the manually downloaded files in {data_dir}/downloads/manual and add "
           f"--manual_dir), then copy {data_dir}/{base.split('/')[0]} here. "
           f"Set the config key data_dir or $TFDS_DATA_DIR to its parent folder.")
    if not candidates:
        raise FileNotFoundError(f"tfds dataset {name!r} is not prepared in {data_dir} "
                                f"(no {base}/<version>/dataset_info.json).\n{how}")
    version_dir = candidates[-1].parent
    file_format = json.loads(candidates[-1].read_text()).get("fileFormat", "tfrecord")
    if file_format != "array_record":
        raise ValueError(f"tfds dataset {name!r} in {version_dir} is stored as {file_format}; "
                         f"reading without TensorFlow needs array_record.\n{how}")
    return version_dir


def read_tfds_split(name: str, data_dir: Path, split: str, keys: tuple) -> dict:
    """All examples of one split as ``{key: list}`` (features in tfds' NumPy decoding)."""
    import tensorflow_datasets as tfds

    source = tfds.data_source(name, data_dir=str(data_dir), split=split, download=False)
    columns = {key: [] for key in keys}
    for start in range(0, len(source), READ_CHUNK):
        for record in source.__getitems__(list(range(start, min(start + READ_CHUNK, len(source))))):
            for key in keys:
                columns[key].append(record[key])
    return columns


def to_gray(images: np.ndarray) -> np.ndarray:
    """``(n, H, W, C) uint8`` -> ``(n, H*W) uint8``; RGB via ``GRAY_WEIGHTS``, rounded."""
    if images.shape[-1] == 3:
        images = np.rint(images.astype(np.float64) @ GRAY_WEIGHTS).clip(0, 255)[..., None]
    return images.astype(np.uint8).reshape(len(images), -1)


def validation_cut(num: int, fraction: float, seed: int) -> tuple:
    """Seeded ``(train indices, validation indices)`` of ``range(num)``, each sorted; a
    ``fraction`` of 0 gives an empty validation split (the selective-SSM paper has none)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(num)
    n_val = max(1, int(round(fraction * num))) if fraction > 0 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _train_val_test(arrays: dict, cfg: dict) -> dict:
    """``{"train": Split, "test": Split}`` -> train/validation/test with a seeded cut."""
    train, val = validation_cut(len(arrays["train"]), cfg["validation_fraction"], cfg["seed"])
    full = arrays["train"]
    return {"train": Split(full.inputs[train], full.lengths[train], full.labels[train]),
            "validation": Split(full.inputs[val], full.lengths[val], full.labels[val]),
            "test": arrays["test"]}


def _options(name: str, version_dir: Path, cfg: dict, extra: dict) -> dict:
    info_file = version_dir / "dataset_info.json"
    return {"tfds": name, "dir": str(version_dir.resolve()), "mtime": info_file.stat().st_mtime_ns,
            "seed": cfg["seed"], "validation_fraction": cfg["validation_fraction"], **extra}


# ---------------------------------------------------------------------------------- images

IMAGE_DATASETS = {"cifar10": ("cifar10", 32), "mnist": ("mnist", 28),
                  "fashion_mnist": ("fashion_mnist", 28)}
IMAGE_DEFAULTS = {"data_dir": None, "tfds_name": None, "input_kind": "floats", "seed": 0,
                  "validation_fraction": 0.1, "cache_dir": None, "use_cache": True}


def image_split(columns: dict) -> Split:
    """``Split`` of ``(n, H*W) uint8`` gray pixels, full lengths, ``(n,)`` int32 labels."""
    pixels = to_gray(np.stack(columns["image"]))
    lengths = np.full(len(pixels), pixels.shape[1], dtype=np.int32)
    return Split(pixels, lengths, np.asarray(columns["label"], dtype=np.int32))


def pixels_as(split: Split, input_kind: str) -> Split:
    """uint8 pixels -> ``(n, L, 1)`` float32 /255 (``"floats"``) or ``(n, L)`` int32 tokens."""
    if input_kind == "floats":
        return Split((split.inputs.astype(np.float32) / 255.0)[..., None], split.lengths, split.labels)
    return Split(split.inputs.astype(np.int32), split.lengths, split.labels)


def build_image_dataset(cfg: dict) -> Dataset:
    """A tfds image classification set as gray pixel sequences (see module docstring)."""
    default_name, side = IMAGE_DATASETS[cfg["name"]]
    if cfg["input_kind"] not in ("floats", "tokens"):
        raise ValueError(f"input_kind must be 'floats' or 'tokens', got {cfg['input_kind']!r}")
    validation_cut(10, cfg["validation_fraction"], 0)  # checks the fraction
    name = cfg["tfds_name"] or default_name
    data_dir = tfds_data_dir(cfg["data_dir"])
    version_dir = prepared_version_dir(name, data_dir)

    def build():
        read = {s: image_split(read_tfds_split(name, data_dir, s, ("image", "label")))
                for s in ("train", "test")}
        return _train_val_test(read, cfg)

    raw = cached_splits(cfg["name"], _options(name, version_dir, cfg, {}), build,
                        cache_dir=cfg["cache_dir"], use_cache=cfg["use_cache"])
    seq_len = raw["test"].inputs.shape[1]
    if seq_len != side * side:
        raise ValueError(f"{name} images have {seq_len} pixels, expected {side}x{side}")
    splits = {s: pixels_as(split, cfg["input_kind"]) for s, split in raw.items()}
    floats = cfg["input_kind"] == "floats"
    info = DatasetInfo(name=cfg["name"], seq_len=seq_len, input_kind=cfg["input_kind"],
                       vocab_size=None if floats else 256, in_channels=1, num_classes=10)
    return Dataset(info, splits)


for _name in IMAGE_DATASETS:
    register(_name, defaults=IMAGE_DEFAULTS)(build_image_dataset)


# -------------------------------------------------------------------------------------- imdb

IMDB_DEFAULTS = {"data_dir": None, "tfds_name": None, "seq_len": 4096, "seed": 0,
                 "validation_fraction": 0.1, "cache_dir": None, "use_cache": True,
                 "num_train": 0, "num_test": 0, "tokenizer": "bytes", "vocab_file": None}
TOKENIZERS = ("bytes", "wordpiece")


class WordPiece:
    """BERT WordPiece ids of lower-cased text with ``[CLS]``/``[SEP]`` (the authors'
    ``AutoTokenizer("bert-base-uncased")`` with ``truncation=True``: the first ``seq_len - 2``
    wordpieces are kept), from a ``vocab.txt`` file."""

    def __init__(self, vocab_file: str):
        try:
            from tokenizers import BertWordPieceTokenizer
        except ImportError:
            raise ImportError("data.tokenizer='wordpiece' needs the tokenizers package: pip "
                              "install 'ssm-jax[wordpiece]'") from None
        if not vocab_file or not os.path.isfile(vocab_file):
            raise FileNotFoundError(f"data.vocab_file: no WordPiece vocabulary at {vocab_file!r} "
                                    "(a BERT vocab.txt, one token per line)")
        with open(vocab_file, encoding="utf-8") as f:
            tokens = {line.rstrip("\n") for line in f}
        missing = [t for t in ("[PAD]", "[CLS]", "[SEP]", "[UNK]") if t not in tokens]
        if missing:
            raise ValueError(f"data.vocab_file {vocab_file!r} lacks the tokens {', '.join(missing)}")
        self.tok = BertWordPieceTokenizer(vocab_file, lowercase=True)
        self.pad_id = self.tok.token_to_id("[PAD]")
        self.vocab_size = self.tok.get_vocab_size()

    def encode(self, texts, seq_len: int) -> list:
        self.tok.enable_truncation(max_length=seq_len)
        return [e.ids for e in self.tok.encode_batch(list(texts))]


def text_split(columns: dict, seq_len: int, wordpiece: WordPiece | None = None) -> Split:
    """Tokens ``(n, seq_len) int32`` (bytes, or WordPiece ids; truncated, right-padded),
    lengths and ``(n,)`` int32 labels."""
    texts = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in columns["text"]]
    if wordpiece is None:
        tokens, lengths = pad_tokens([encode_bytes(t) for t in texts], seq_len, 0)
    else:
        tokens, lengths = pad_tokens(wordpiece.encode(texts, seq_len), seq_len, wordpiece.pad_id)
    return Split(tokens, lengths, np.asarray(columns["label"], dtype=np.int32))


@register("imdb", defaults=IMDB_DEFAULTS)
def build_imdb(cfg: dict) -> Dataset:
    """IMDb reviews (``imdb_reviews``) at byte level, LRA Text style, or WordPiece ids
    (``tokenizer="wordpiece"``, ``vocab_file``). ``num_train`` / ``num_test`` > 0 keep the
    first examples of a seed-0 permutation of the split (the selective-SSM paper's subsets:
    shuffle with seed 0, first m; 0 keeps all)."""
    validation_cut(10, cfg["validation_fraction"], 0)
    if cfg["tokenizer"] not in TOKENIZERS:
        raise ValueError(f"data.tokenizer must be one of {', '.join(TOKENIZERS)}, got "
                         f"{cfg['tokenizer']!r}")
    wordpiece = WordPiece(cfg["vocab_file"]) if cfg["tokenizer"] == "wordpiece" else None
    for key in ("num_train", "num_test"):
        if cfg[key] < 0:
            raise ValueError(f"{key} must be >= 0 (0: the whole split), got {cfg[key]}")
    if cfg["seq_len"] <= 0:
        raise ValueError(f"seq_len must be positive, got {cfg['seq_len']}")
    name = cfg["tfds_name"] or "imdb_reviews"
    data_dir = tfds_data_dir(cfg["data_dir"])
    version_dir = prepared_version_dir(name, data_dir)

    def build():
        read = {s: text_split(read_tfds_split(name, data_dir, s, ("text", "label")),
                              cfg["seq_len"], wordpiece) for s in ("train", "test")}
        return _train_val_test(read, cfg)

    tokens = {"seq_len": cfg["seq_len"], "tokenizer": cfg["tokenizer"]}
    if wordpiece is not None:  # the vocabulary's path and version decide the ids
        tokens.update(vocab=os.path.abspath(cfg["vocab_file"]),
                      vocab_mtime=os.stat(cfg["vocab_file"]).st_mtime_ns)
    splits = cached_splits("imdb", _options(name, version_dir, cfg, tokens),
                           build, cache_dir=cfg["cache_dir"], use_cache=cfg["use_cache"])
    for split, key in (("train", "num_train"), ("test", "num_test")):
        n = len(splits[split])
        if 0 < cfg[key] < n:
            keep = np.random.default_rng(0).permutation(n)[:cfg[key]]
            splits[split] = Split(**splits[split].take(keep))
    vocab = BYTE_VOCAB_SIZE if wordpiece is None else wordpiece.vocab_size
    info = DatasetInfo(name="imdb", seq_len=cfg["seq_len"], input_kind="tokens",
                       vocab_size=vocab, in_channels=1, num_classes=2)
    return Dataset(info, splits)
