"""Long Range Arena release files: Retrieval (AAN) and Pathfinder / Path-X.

The files come from the LRA release archive ``lra_release.gz`` linked from the
google-research/long-range-arena README (unpack it; it holds ``lra_release/``). The root
directory is the config key ``data_dir``, default ``$SSM_JAX_DATA``, else ``./data``; each
loader accepts the root above ``lra_release/``, ``lra_release/`` itself, or the task's own
folder. ListOps files are read by ``ssm_jax.data.listops`` (``data_dir`` there).

Retrieval (``aan``): ``new_aan_pairs.{train,eval,test}.tsv``, no header, tab-separated
columns ``label id1 id2 text1 text2`` (label written as ``0``/``1`` or ``0.0``/``1.0``).
Each text is encoded as UTF-8 bytes, id = byte + 1 (pad 0, vocab 257, as tfds'
``ByteTextEncoder`` in LRA), truncated to ``seq_len`` (4000 in LRA).
Batches: ``inputs (batch, 2, L) int32``, ``lengths (batch, 2) int32``, ``labels (batch,) int32``.

Pathfinder (``pathfinder``, default resolution 32) and Path-X (``pathx`` = resolution 128):
``pathfinder{R}/{difficulty}/metadata/*.npy`` and the PNGs they name. Despite the suffix,
each metadata file is *text*: one line per image, space-separated fields
``<image subdir> <image file name> <?> <label> ...`` (the LRA TFDS builder reads field 0 and
1 as the path relative to ``{difficulty}/`` and ``int(field 3)`` as the label). Images are
grayscale ``R x R`` PNGs, flattened row by row to length ``R*R``. Examples follow the sorted
metadata file names and line order; they are split 80/10/10 by a seeded permutation
(``seed``). The pixels are cached (uint8, memory-mapped ``.npy``) under the cache dir.
``input_kind="floats"`` gives ``(batch, R*R, 1)`` float32 pixel/255; ``"tokens"`` gives
``(batch, R*R)`` int32 pixel values 0..255 (vocab 256; no padding, all lengths full).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ssm_jax.data.cache import cached_splits
from ssm_jax.data.registry import Dataset, DatasetInfo, Split, register
from ssm_jax.data.splits import check_fractions, pad_tokens, random_split_indices

ARCHIVE_NOTE = ("Download the LRA release archive lra_release.gz linked from the "
                "google-research/long-range-arena README and unpack it under data_dir "
                "(config key data_dir, or $SSM_JAX_DATA, else ./data).")


def data_root(data_dir: str | os.PathLike | None) -> Path:
    """``data_dir``, else ``$SSM_JAX_DATA``, else ``./data``."""
    return Path(data_dir or os.environ.get("SSM_JAX_DATA") or "data").expanduser()


def find_task_dir(root: Path, task_path: str, probe: str) -> Path | None:
    """The folder for ``task_path`` (e.g. ``"tsv_data"``) that contains ``probe``.

    Tried in order: ``root/lra_release/<task_path>``, ``root/<task_path>``, ``root``.
    """
    for candidate in (root / "lra_release" / task_path, root / task_path, root):
        if (candidate / probe).exists():
            return candidate
    return None


# ------------------------------------------------------------------------------- retrieval

AAN_SPLITS = (("train", "train"), ("validation", "eval"), ("test", "test"))
AAN_TREE = """\
  <data_dir>/lra_release/tsv_data/
    new_aan_pairs.train.tsv
    new_aan_pairs.eval.tsv
    new_aan_pairs.test.tsv
  (tab-separated, no header: label id1 id2 text1 text2)"""
BYTE_VOCAB_SIZE = 257


def aan_files(data_dir) -> dict:
    """``{split: path}`` of the AAN TSV files; FileNotFoundError with the expected tree."""
    root = data_root(data_dir)
    folder = find_task_dir(root, "tsv_data", "new_aan_pairs.train.tsv")
    paths = {split: (folder or root) / f"new_aan_pairs.{suffix}.tsv" for split, suffix in AAN_SPLITS}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if folder is None or missing:
        raise FileNotFoundError(
            f"LRA Retrieval (AAN) files not found under {root} (missing: {', '.join(missing)}).\n"
            f"Expected:\n{AAN_TREE}\n{ARCHIVE_NOTE}")
    return paths


def encode_bytes(text: str) -> np.ndarray:
    """UTF-8 bytes + 1 (0 is pad): ``(num_bytes,) int32``."""
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32) + 1


def read_aan_tsv(path: str | os.PathLike) -> list:
    """``[(label, text1, text2)]`` from one AAN TSV file (no quote handling, as LRA)."""
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 5:
                raise ValueError(f"{path}:{number}: expected 5 tab-separated fields "
                                 f"(label id1 id2 text1 text2), got {len(fields)}")
            try:
                label = int(float(fields[0]))
            except ValueError:
                raise ValueError(f"{path}:{number}: label {fields[0]!r} is not a number") from None
            rows.append((label, fields[3], fields[4]))
    return rows


def aan_split(rows: list, seq_len: int) -> Split:
    """``Split`` with ``inputs (n, 2, seq_len)``, ``lengths (n, 2)``, ``labels (n,)`` int32."""
    docs = [encode_bytes(text) for _, t1, t2 in rows for text in (t1, t2)]
    tokens, lengths = pad_tokens(docs, seq_len, 0)
    n = len(rows)
    labels = np.array([label for label, _, _ in rows], dtype=np.int32)
    return Split(tokens.reshape(n, 2, seq_len), lengths.reshape(n, 2), labels)


def _file_options(paths: dict) -> dict:
    return {s: [str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size] for s, p in paths.items()}


@register("aan", defaults={"data_dir": None, "seq_len": 4000, "cache_dir": None,
                           "use_cache": True})
def build_aan(cfg: dict) -> Dataset:
    """LRA Retrieval: byte-level document pairs, label 1 when one cites the other."""
    paths = aan_files(cfg["data_dir"])
    seq_len = cfg["seq_len"]
    options = {"files": _file_options(paths), "seq_len": seq_len}

    def build():
        return {split: aan_split(read_aan_tsv(path), seq_len) for split, path in paths.items()}

    splits = cached_splits("aan", options, build, cache_dir=cfg["cache_dir"],
                           use_cache=cfg["use_cache"])
    info = DatasetInfo(name="aan", seq_len=seq_len, input_kind="tokens",
                       vocab_size=BYTE_VOCAB_SIZE, in_channels=1, num_classes=2,
                       num_documents=2)
    return Dataset(info, splits)


# ------------------------------------------------------------------------------ pathfinder

DIFFICULTIES = {"easy": "curv_baseline", "intermediate": "curv_contour_length_9",
                "hard": "curv_contour_length_14"}
PATHFINDER_TREE = """\
  <data_dir>/lra_release/pathfinder{res}/{folder}/
    metadata/0.npy, 1.npy, ...   (text: '<img subdir> <img name> <?> <label> ...' per line)
    imgs/0/sample_0.png, ...     (grayscale {res}x{res} PNG)"""


class ScaledPixels:
    """Read-only view of ``(n, L) uint8`` pixels as ``(n, L, 1) float32`` in [0, 1].

    Indexing (``view[index]``) converts only the rows asked for, so a memory-mapped Path-X
    array stays on disk.
    """

    def __init__(self, pixels: np.ndarray):
        self.pixels = pixels
        self.shape = pixels.shape + (1,)
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index) -> np.ndarray:
        return (np.asarray(self.pixels[index], dtype=np.float32) / 255.0)[..., None]

    def __array__(self, dtype=None, copy=None):
        return self[:].astype(dtype or np.float32)


def pathfinder_dir(data_dir, resolution: int, difficulty: str) -> Path:
    """``.../pathfinder{resolution}/{difficulty folder}``; FileNotFoundError with the tree."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"unknown difficulty {difficulty!r}; choose from {sorted(DIFFICULTIES)}")
    root = data_root(data_dir)
    folder = DIFFICULTIES[difficulty]
    task = f"pathfinder{resolution}"
    base = find_task_dir(root, task, f"{folder}/metadata")
    if base is not None:
        return base / folder
    if root.name == folder and (root / "metadata").is_dir():
        return root
    raise FileNotFoundError(
        f"Pathfinder folder {task}/{folder}/metadata not found under {root}.\nExpected:\n"
        + PATHFINDER_TREE.format(res=resolution, folder=folder) + "\n" + ARCHIVE_NOTE)


def read_pathfinder_metadata(task_dir: Path) -> list:
    """``[(image path, label)]`` from ``task_dir/metadata/*.npy`` (sorted by file name, numeric
    names numerically), lines in file order."""
    files = sorted((task_dir / "metadata").glob("*.npy"),
                   key=lambda p: (0, int(p.stem), "") if p.stem.isdigit() else (1, 0, p.stem))
    if not files:
        raise FileNotFoundError(f"no metadata/*.npy files in {task_dir}.\nExpected:\n"
                                + PATHFINDER_TREE.format(res="R", folder=task_dir.name))
    examples = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 4 or not fields[3].lstrip("-").isdigit():
                raise ValueError(f"{path}:{number}: expected '<img subdir> <img name> <?> <label>"
                                 f" ...', got {line[:80]!r}")
            examples.append((task_dir / fields[0] / fields[1], int(fields[3])))
    return examples


def read_gray_image(path: Path, resolution: int) -> np.ndarray:
    """One grayscale PNG flattened row by row: ``(resolution**2,) uint8``."""
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.uint8)
    if pixels.shape != (resolution, resolution):
        raise ValueError(f"{path} is {pixels.shape[1]}x{pixels.shape[0]}, expected "
                         f"{resolution}x{resolution}")
    return pixels.reshape(-1)


def load_pathfinder_pixels(examples: list, resolution: int) -> tuple:
    """``pixels (n, R*R) uint8`` and ``labels (n,) int32`` for ``[(image path, label)]``."""
    missing = [str(p) for p, _ in examples if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} Pathfinder images named in the metadata are "
                                f"missing, e.g. {missing[0]}")
    pixels = np.empty((len(examples), resolution * resolution), dtype=np.uint8)
    for row, (path, _) in enumerate(examples):
        pixels[row] = read_gray_image(path, resolution)
    return pixels, np.array([label for _, label in examples], dtype=np.int32)


PATHFINDER_DEFAULTS = {"data_dir": None, "resolution": 32, "difficulty": "hard",
                       "input_kind": "floats", "seed": 0, "train_fraction": 0.8,
                       "validation_fraction": 0.1, "cache_dir": None, "use_cache": True}


def build_pathfinder_like(cfg: dict, name: str) -> Dataset:
    """Pathfinder at ``cfg['resolution']``; pixels cached as memory-mapped uint8 ``.npy``."""
    if cfg["input_kind"] not in ("floats", "tokens"):
        raise ValueError(f"input_kind must be 'floats' or 'tokens', got {cfg['input_kind']!r}")
    check_fractions(cfg["train_fraction"], cfg["validation_fraction"])
    resolution = cfg["resolution"]
    task_dir = pathfinder_dir(cfg["data_dir"], resolution, cfg["difficulty"])
    examples = read_pathfinder_metadata(task_dir)
    meta = sorted((task_dir / "metadata").glob("*.npy"))
    options = {"dir": str(task_dir.resolve()), "resolution": resolution, "seed": cfg["seed"],
               "fractions": [cfg["train_fraction"], cfg["validation_fraction"]],
               "metadata": [[p.name, p.stat().st_mtime_ns, p.stat().st_size] for p in meta]}
    seq_len = resolution * resolution

    def build():
        pixels, labels = load_pathfinder_pixels(examples, resolution)
        indices = random_split_indices(len(labels), cfg["train_fraction"],
                                       cfg["validation_fraction"], cfg["seed"])
        lengths = np.full(len(labels), seq_len, dtype=np.int32)
        return {s: Split(pixels[i], lengths[i], labels[i]) for s, i in indices.items()}

    raw = cached_splits(name, options, build, cache_dir=cfg["cache_dir"], mmap=True,
                        use_cache=cfg["use_cache"])
    if cfg["input_kind"] == "floats":
        splits = {s: Split(ScaledPixels(sp.inputs), sp.lengths, sp.labels) for s, sp in raw.items()}
        info = DatasetInfo(name=name, seq_len=seq_len, input_kind="floats", vocab_size=None,
                           in_channels=1, num_classes=2)
    else:
        splits = {s: Split(_AsInt32(sp.inputs), sp.lengths, sp.labels) for s, sp in raw.items()}
        info = DatasetInfo(name=name, seq_len=seq_len, input_kind="tokens", vocab_size=256,
                           in_channels=1, num_classes=2)
    return Dataset(info, splits)


class _AsInt32(ScaledPixels):
    """Read-only view of ``(n, L) uint8`` pixels as ``(n, L) int32`` token ids."""

    def __init__(self, pixels: np.ndarray):
        super().__init__(pixels)
        self.shape, self.dtype = pixels.shape, np.dtype(np.int32)

    def __getitem__(self, index) -> np.ndarray:
        return np.asarray(self.pixels[index], dtype=np.int32)

    def __array__(self, dtype=None, copy=None):
        return self[:].astype(dtype or np.int32)


@register("pathfinder", defaults=PATHFINDER_DEFAULTS)
def build_pathfinder(cfg: dict) -> Dataset:
    """LRA Pathfinder (default 32x32, hard = curv_contour_length_14), split 80/10/10."""
    return build_pathfinder_like(cfg, "pathfinder")


@register("pathx", defaults={**PATHFINDER_DEFAULTS, "resolution": 128})
def build_pathx(cfg: dict) -> Dataset:
    """LRA Path-X: Pathfinder at 128x128 (length 16384), hard split, 80/10/10."""
    return build_pathfinder_like(cfg, "pathx")
