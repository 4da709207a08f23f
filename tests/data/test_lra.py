"""LRA release-file loaders (Retrieval / AAN, Pathfinder, Path-X) on small fixture files."""

import numpy as np
import pytest
from PIL import Image

from ssm_jax.data import BatchIterator, get_dataset
from ssm_jax.data import lra


# ------------------------------------------------------------------------------ retrieval

AAN_ROWS = {
    "train": [("1", "a1", "b1", "hello world", "caf\u00e9 paper"), ("0.0", "a2", "b2", "x", "yy"),
              ("1.0", "a3", "b3", "long " * 10, "z")],
    "eval": [("0", "c1", "d1", "q", "r")],
    "test": [("1", "e1", "e2", 'quote " inside', "t")],
}


def _write_aan(folder, rows=AAN_ROWS):
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, lines in rows.items():
        text = "".join("\t".join(fields) + "\n" for fields in lines)
        (folder / f"new_aan_pairs.{suffix}.tsv").write_text(text, encoding="utf-8")


def test_aan_loads_release_layout(tmp_path):
    _write_aan(tmp_path / "lra_release" / "tsv_data")
    ds = get_dataset({"name": "aan", "data_dir": str(tmp_path), "seq_len": 12,
                      "cache_dir": str(tmp_path / "cache")})
    info = ds.info
    assert (info.vocab_size, info.num_classes, info.num_documents, info.seq_len) == (257, 2, 2, 12)
    train = ds.train
    assert train.inputs.shape == (3, 2, 12) and train.lengths.shape == (3, 2)
    assert train.labels.tolist() == [1, 0, 1]
    expected = np.frombuffer("hello world".encode(), np.uint8) + 1
    np.testing.assert_array_equal(train.inputs[0, 0, :11], expected)
    assert train.inputs[0, 0, 11] == 0 and train.lengths[0].tolist() == [11, len("café paper".encode())]
    assert train.lengths[2, 0] == 12  # truncated to seq_len
    assert ds.test.inputs[0, 0, 6] == ord('"') + 1  # quotes are plain bytes
    batch = next(BatchIterator(train, 2, seed=0))
    assert batch["inputs"].shape == (2, 2, 12) and batch["lengths"].shape == (2, 2)


def test_aan_env_var_root(tmp_path, monkeypatch):
    _write_aan(tmp_path / "tsv_data")
    monkeypatch.setenv("SSM_JAX_DATA", str(tmp_path))
    ds = get_dataset({"name": "aan", "use_cache": False, "seq_len": 8})
    assert len(ds.validation) == 1


def test_aan_missing_dir_explains(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        get_dataset({"name": "aan", "data_dir": str(tmp_path / "nowhere")})
    message = str(err.value)
    assert "new_aan_pairs.eval.tsv" in message and "lra_release.gz" in message
    assert "long-range-arena" in message


def test_aan_misplaced_file(tmp_path):
    _write_aan(tmp_path / "tsv_data", {"train": AAN_ROWS["train"], "test": AAN_ROWS["test"]})
    with pytest.raises(FileNotFoundError, match="new_aan_pairs.eval.tsv"):
        get_dataset({"name": "aan", "data_dir": str(tmp_path)})


def test_aan_bad_row(tmp_path):
    _write_aan(tmp_path, {**AAN_ROWS, "eval": [("0", "only", "three")]})
    with pytest.raises(ValueError, match="expected 5 tab-separated fields"):
        get_dataset({"name": "aan", "data_dir": str(tmp_path), "use_cache": False})


# ----------------------------------------------------------------------------- pathfinder


def _write_pathfinder(root, resolution=8, num=20, folder="curv_contour_length_14", files=2):
    """Release layout: pathfinder{R}/{folder}/imgs/{k}/sample_{i}.png + metadata/{k}.npy text."""
    task = root / "lra_release" / f"pathfinder{resolution}" / folder
    rng = np.random.default_rng(0)
    labels, images = [], []
    for k in range(files):
        (task / "imgs" / str(k)).mkdir(parents=True)
        lines = []
        for i in range(num // files):
            image = rng.integers(0, 256, size=(resolution, resolution), dtype=np.uint8)
            label = int(rng.integers(0, 2))
            Image.fromarray(image, mode="L").save(task / "imgs" / str(k) / f"sample_{i}.png")
            lines.append(f"imgs/{k} sample_{i}.png {i} {label} 1.5 2 14\n")
            labels.append(label)
            images.append(image.reshape(-1))
        (task / "metadata").mkdir(exist_ok=True)
        (task / "metadata" / f"{k}.npy").write_text("".join(lines))
    return np.stack(images), np.array(labels)


def _rows_of(split):
    return np.asarray(split.inputs[np.arange(len(split))])


def test_pathfinder_loads_and_splits(tmp_path):
    images, labels = _write_pathfinder(tmp_path, resolution=8, num=20)
    cfg = {"name": "pathfinder", "data_dir": str(tmp_path), "resolution": 8,
           "cache_dir": str(tmp_path / "cache")}
    ds = get_dataset(cfg)
    info = ds.info
    assert (info.seq_len, info.input_kind, info.in_channels, info.num_classes) == (64, "floats", 1, 2)
    assert [len(ds.splits[s]) for s in ("train", "validation", "test")] == [16, 2, 2]
    # Every example's pixels and label match the image its metadata line names.
    by_pixels = {images[i].tobytes(): labels[i] for i in range(len(images))}
    seen = []
    for split in ds.splits.values():
        x = _rows_of(split)
        assert x.shape == (len(split), 64, 1) and x.dtype == np.float32 and x.max() <= 1.0
        for row, label in zip(x, split.labels):
            key = np.round(row[:, 0] * 255).astype(np.uint8).tobytes()
            assert by_pixels[key] == label
            seen.append(key)
    assert len(set(seen)) == 20
    batch = next(BatchIterator(ds.train, 4, seed=0))
    assert batch["inputs"].shape == (4, 64, 1) and batch["inputs"].dtype == np.float32
    # Cached as memory-mapped uint8 arrays.
    assert isinstance(get_dataset(cfg).train.inputs.pixels, np.memmap)


def test_pathfinder_tokens(tmp_path):
    images, _ = _write_pathfinder(tmp_path, resolution=8, num=10)
    ds = get_dataset({"name": "pathfinder", "data_dir": str(tmp_path), "resolution": 8,
                      "input_kind": "tokens", "use_cache": False})
    assert ds.info.vocab_size == 256 and ds.info.input_kind == "tokens"
    batch = next(iter(ds.test.batches(5)))
    assert batch["inputs"].dtype == np.int32 and batch["inputs"].shape == (5, 64)
    assert {row.tobytes() for row in batch["inputs"][batch["mask"]].astype(np.uint8)} <= {
        im.tobytes() for im in images}


def test_pathx_uses_resolution_128_folder(tmp_path):
    _write_pathfinder(tmp_path, resolution=128, num=10, files=1)
    ds = get_dataset({"name": "pathx", "data_dir": str(tmp_path), "cache_dir": str(tmp_path / "c")})
    assert ds.info.seq_len == 16384 and len(ds.train) == 8
    assert next(BatchIterator(ds.train, 2, seed=0))["inputs"].shape == (2, 16384, 1)


def test_pathfinder_missing_dir_prints_expected_tree(tmp_path):
    _write_pathfinder(tmp_path, resolution=8, folder="curv_baseline")
    with pytest.raises(FileNotFoundError) as err:
        get_dataset({"name": "pathfinder", "data_dir": str(tmp_path), "resolution": 8})
    message = str(err.value)
    assert "pathfinder8/curv_contour_length_14/metadata" in message
    assert "lra_release.gz" in message and "imgs/0/sample_0.png" in message


def test_pathfinder_wrong_image_size(tmp_path):
    _write_pathfinder(tmp_path, resolution=8, num=4, files=1)
    (tmp_path / "lra_release" / "pathfinder16").symlink_to(tmp_path / "lra_release" / "pathfinder8")
    with pytest.raises(ValueError, match="expected 16x16"):
        get_dataset({"name": "pathfinder", "data_dir": str(tmp_path), "resolution": 16,
                     "use_cache": False})


def test_pathfinder_bad_metadata_and_missing_image(tmp_path):
    _write_pathfinder(tmp_path, resolution=8, num=4, files=1)
    meta = tmp_path / "lra_release" / "pathfinder8" / "curv_contour_length_14" / "metadata" / "0.npy"
    good = meta.read_text()
    meta.write_text("imgs/0 sample_0.png\n")
    cfg = {"name": "pathfinder", "data_dir": str(tmp_path), "resolution": 8, "use_cache": False}
    with pytest.raises(ValueError, match="<img subdir> <img name>"):
        get_dataset(cfg)
    meta.write_text(good + "imgs/0 sample_99.png 99 1\n")
    with pytest.raises(FileNotFoundError, match="sample_99.png"):
        get_dataset(cfg)


@pytest.mark.parametrize("cfg,match", [
    ({"difficulty": "medium"}, "unknown difficulty"),
    ({"input_kind": "pixels"}, "input_kind"),
    ({"train_fraction": 0.95}, "fraction"),
])
def test_pathfinder_bad_config(tmp_path, cfg, match):
    with pytest.raises(ValueError, match=match):
        get_dataset({"name": "pathfinder", "data_dir": str(tmp_path), **cfg})


def test_listops_loader_accepts_lra_root(tmp_path):
    from ssm_jax.data import listops as lo

    folder = tmp_path / "lra_release" / "listops-1000"
    folder.mkdir(parents=True)
    for suffix in ("train", "val", "test"):
        lo.write_tsv(folder / f"basic_{suffix}.tsv", [("( ( ( [MAX 2 ) 9 ) ] )", 9)] * 3)
    ds = get_dataset({"name": "listops", "data_dir": str(tmp_path), "use_cache": False})
    assert ds.info.seq_len == 2000 and ds.train.labels.tolist() == [9, 9, 9]
