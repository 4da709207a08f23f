"""tfds loaders, on array_record data built by tiny pure-Python builders (no TensorFlow)."""

import json

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from ssm_jax.data import get_dataset  # noqa: E402
from ssm_jax.data import tfds_data  # noqa: E402

IMAGES = {split: np.random.default_rng(k).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
          for k, (split, n) in enumerate((("train", 20), ("test", 6)))}
GRAY = {split: np.random.default_rng(5 + k).integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
        for k, (split, n) in enumerate((("train", 10), ("test", 4)))}
TEXTS = {"train": ["good film", "bad \u00e9", "x" * 50, "ok", "meh", "fine"],
         "test": ["great", "awful"]}


class SsmJaxTestCifar(tfds.core.GeneratorBasedBuilder):
    """CIFAR-like: 32x32x3 uint8 images (as Tensor: encoding Image needs TensorFlow)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(32, 32, 3), dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=10)}))

    def _split_generators(self, dl_manager):
        return {s: self._generate_examples(s) for s in IMAGES}

    def _generate_examples(self, split):
        for i, image in enumerate(IMAGES[split]):
            yield i, {"image": image, "label": i % 10}


class SsmJaxTestMnist(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=10)}))

    def _split_generators(self, dl_manager):
        return {s: self._generate_examples(s) for s in GRAY}

    def _generate_examples(self, split):
        for i, image in enumerate(GRAY[split]):
            yield i, {"image": image, "label": (3 * i) % 10}


class SsmJaxTestText(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "text": tfds.features.Text(), "label": tfds.features.ClassLabel(num_classes=2)}))

    def _split_generators(self, dl_manager):
        return {s: self._generate_examples(s) for s in TEXTS}

    def _generate_examples(self, split):
        for i, text in enumerate(TEXTS[split]):
            yield i, {"text": text, "label": i % 2}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    for builder in (SsmJaxTestCifar, SsmJaxTestMnist, SsmJaxTestText):
        builder(data_dir=str(root), file_format="array_record").download_and_prepare()
    return root


def _all(split):
    return np.asarray(split.inputs[np.arange(len(split))])


def _pairs(inputs, labels):
    """Sorted (row bytes, label) pairs: tfds stores examples in hashed-key order."""
    return sorted((np.asarray(row).tobytes(), int(label)) for row, label in zip(inputs, labels))


def test_cifar10_gray_sequences(tfds_dir, tmp_path):
    cfg = {"name": "cifar10", "tfds_name": "ssm_jax_test_cifar", "data_dir": str(tfds_dir),
           "validation_fraction": 0.25, "cache_dir": str(tmp_path)}
    ds = get_dataset(cfg)
    assert (ds.info.seq_len, ds.info.input_kind, ds.info.num_classes) == (1024, "floats", 10)
    assert [len(ds.splits[s]) for s in ("train", "validation", "test")] == [15, 5, 6]
    rgb = IMAGES["test"].astype(np.float64)
    gray = np.rint(0.2989 * rgb[..., 0] + 0.5870 * rgb[..., 1] + 0.1140 * rgb[..., 2])
    got = np.rint(_all(ds.test)[:, :, 0] * 255).astype(np.uint8)
    assert _pairs(got, ds.test.labels) == _pairs(gray.reshape(6, 1024).astype(np.uint8),
                                                 [i % 10 for i in range(6)])
    train_val = np.concatenate([ds.train.labels, ds.validation.labels])
    assert sorted(train_val.tolist()) == sorted(i % 10 for i in range(20))
    tokens = get_dataset({**cfg, "input_kind": "tokens"})
    assert tokens.info.vocab_size == 256 and tokens.test.inputs.dtype == np.int32
    assert _pairs(tokens.test.inputs.astype(np.uint8), tokens.test.labels) == _pairs(
        gray.reshape(6, 1024).astype(np.uint8), [i % 10 for i in range(6)])


def test_mnist_sequences(tfds_dir):
    ds = get_dataset({"name": "mnist", "tfds_name": "ssm_jax_test_mnist", "data_dir": str(tfds_dir),
                      "use_cache": False})
    assert ds.info.seq_len == 784 and ds.test.inputs.shape == (4, 784, 1)
    got = np.rint(ds.test.inputs[:, :, 0] * 255).astype(np.uint8)
    assert _pairs(got, ds.test.labels) == _pairs(GRAY["test"].reshape(4, 784),
                                                 [(3 * i) % 10 for i in range(4)])
    with pytest.raises(ValueError, match="expected 32x32"):
        get_dataset({"name": "cifar10", "tfds_name": "ssm_jax_test_mnist",
                     "data_dir": str(tfds_dir), "use_cache": False})


def test_imdb_bytes(tfds_dir):
    ds = get_dataset({"name": "imdb", "tfds_name": "ssm_jax_test_text", "data_dir": str(tfds_dir),
                      "seq_len": 16, "use_cache": False})
    assert (ds.info.vocab_size, ds.info.seq_len, ds.info.num_classes) == (257, 16, 2)
    assert ds.test.inputs.shape == (2, 16) and ds.test.lengths.tolist() == [5, 5]
    expected = [np.pad(np.frombuffer(t.encode(), np.uint8).astype(np.int32) + 1, (0, 11))
                for t in TEXTS["test"]]
    assert _pairs(ds.test.inputs, ds.test.labels) == _pairs(expected, [0, 1])
    lengths = sorted(np.concatenate([ds.train.lengths, ds.validation.lengths]).tolist())
    assert lengths == sorted(min(len(t.encode()), 16) for t in TEXTS["train"])


def test_imdb_without_validation_and_subsets(tfds_dir):
    """The selective-SSM paper's IMDb: no validation split, the first m of a seed-0 shuffle."""
    cfg = {"name": "imdb", "tfds_name": "ssm_jax_test_text", "data_dir": str(tfds_dir),
           "seq_len": 8, "use_cache": False, "validation_fraction": 0.0}
    full = get_dataset(cfg)
    assert [len(full.splits[s]) for s in ("train", "validation", "test")] == [6, 0, 2]
    sub = get_dataset({**cfg, "num_train": 3, "num_test": 1})
    assert [len(sub.splits[s]) for s in ("train", "validation", "test")] == [3, 0, 1]
    rows = {r.tobytes() for r in full.train.inputs}
    assert all(r.tobytes() in rows for r in sub.train.inputs)
    with pytest.raises(ValueError, match="num_train"):
        get_dataset({**cfg, "num_train": -1})


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "imdb"])
def test_not_prepared_explains_without_download(tmp_path, name):
    with pytest.raises(FileNotFoundError) as err:
        get_dataset({"name": name, "data_dir": str(tmp_path)})
    message = str(err.value)
    assert "not prepared" in message and "tfds build" in message and "array_record" in message


def test_tfrecord_format_is_rejected(tmp_path):
    folder = tmp_path / "mnist" / "3.0.1"
    folder.mkdir(parents=True)
    (folder / "dataset_info.json").write_text(json.dumps({"fileFormat": "tfrecord"}))
    with pytest.raises(ValueError, match="stored as tfrecord"):
        get_dataset({"name": "mnist", "data_dir": str(tmp_path)})


def test_bad_config(tmp_path):
    with pytest.raises(ValueError, match="input_kind"):
        get_dataset({"name": "mnist", "input_kind": "rgb", "data_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="validation_fraction"):
        get_dataset({"name": "imdb", "validation_fraction": 1.0, "data_dir": str(tmp_path)})


def test_to_gray_keeps_single_channel():
    images = np.arange(8, dtype=np.uint8).reshape(2, 2, 2, 1)
    np.testing.assert_array_equal(tfds_data.to_gray(images), [[0, 1, 2, 3], [4, 5, 6, 7]])


def test_paper3_imdb_task_trains_without_validation(tfds_dir, tmp_path):
    """The selective-SSM paper's IMDb config end to end on a prepared (tiny) tfds text set:
    byte tokens, scalar logit, no validation split, the last step reported."""
    from ssm_jax.configs.paper3.tasks import imdb_task
    from ssm_jax.training.config import parse_config
    from ssm_jax.training.loop import train_and_evaluate

    c = imdb_task(T=16, m=0, epochs=2, batch=2)
    c.data.update(tfds_name="ssm_jax_test_text", data_dir=str(tfds_dir), use_cache=False)
    report = train_and_evaluate(parse_config(c), str(tmp_path / "run"))
    assert report["selection"] == "last" and report["validation"] == {}
    assert report["num_steps"] == 6 and 0.0 <= report["test"]["accuracy"] <= 1.0


def test_imdb_wordpiece_with_a_vocabulary_built_here(tfds_dir, tmp_path):
    """data.tokenizer='wordpiece': lower-cased WordPiece ids [CLS] ... [SEP], truncated to
    seq_len and right-padded with [PAD], from a vocab.txt (here a tiny one written by the test;
    bert-base-uncased's vocab.txt works the same when a user provides it)."""
    pytest.importorskip("tokenizers")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "film", "great", "aw",
             "##ful", "x", "##x", "ok"]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n")
    ids = {t: i for i, t in enumerate(vocab)}
    cfg = {"name": "imdb", "tfds_name": "ssm_jax_test_text", "data_dir": str(tfds_dir),
           "seq_len": 6, "use_cache": False, "validation_fraction": 0.0,
           "tokenizer": "wordpiece", "vocab_file": str(path)}
    ds = get_dataset(cfg)
    assert ds.info.vocab_size == len(vocab)
    expected = {"great": [ids["[CLS]"], ids["great"], ids["[SEP]"], 0, 0, 0],
                "awful": [ids["[CLS]"], ids["aw"], ids["##ful"], ids["[SEP]"], 0, 0]}
    want = [np.asarray(v, np.int32) for v in expected.values()]
    assert _pairs(ds.test.inputs, ds.test.labels) == _pairs(want, [0, 1])
    assert sorted(ds.test.lengths.tolist()) == [3, 4]
    rows = {tuple(r) for r in ds.train.inputs.tolist()}
    assert (ids["[CLS]"], ids["good"], ids["film"], ids["[SEP]"], 0, 0) in rows
    # "x" * 50 is one wordpiece run x ##x ##x ...: truncated to 6 with [SEP] kept
    assert (ids["[CLS]"], ids["x"], ids["##x"], ids["##x"], ids["##x"], ids["[SEP]"]) in rows
    assert (ids["[CLS]"], ids["ok"], ids["[SEP]"], 0, 0, 0) in rows
    with pytest.raises(FileNotFoundError, match="vocab_file"):
        get_dataset({**cfg, "vocab_file": str(tmp_path / "missing.txt")})
    (tmp_path / "no_sep.txt").write_text("\n".join(t for t in vocab if t != "[SEP]") + "\n")
    with pytest.raises(ValueError, match=r"lacks the tokens \[SEP\]"):
        get_dataset({**cfg, "vocab_file": str(tmp_path / "no_sep.txt")})
    with pytest.raises(ValueError, match="tokenizer"):
        get_dataset({**cfg, "tokenizer": "bpe"})
