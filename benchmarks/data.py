"""Batches per second of the data loaders that run offline, at the papers' batch sizes.

    python benchmarks/data.py [--seconds 0.5]

For each dataset: the time to build it (generate / read / tokenize, first run fills the cache
in a temporary folder, the second ("again") reads it; synthetic sets are regenerated) and the batches per second of ``BatchIterator``
(shuffled training batches) at each batch size. File loaders run on small fixture files
written in their real formats (ListOps TSV, AAN TSV, Pathfinder PNG + metadata).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BATCH_SIZES = (32, 50, 64, 256)


def write_fixtures(root: Path) -> dict:
    """Small ListOps / AAN / Pathfinder files under ``root``; returns extra config per dataset."""
    from PIL import Image

    from ssm_jax.data import listops

    listops.write_splits(root / "listops", num_train=2000, num_val=200, num_test=200, seed=0,
                         min_length=50, max_length=200)
    aan = root / "lra_release" / "tsv_data"
    aan.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for suffix, n in (("train", 1000), ("eval", 100), ("test", 100)):
        lines = []
        for i in range(n):
            t1, t2 = ("".join(rng.choice(list("abcdef ghij"), size=int(rng.integers(500, 4000))))
                      for _ in range(2))
            lines.append(f"{i % 2}\tid{i}a\tid{i}b\t{t1}\t{t2}\n")
        (aan / f"new_aan_pairs.{suffix}.tsv").write_text("".join(lines))
    task = root / "lra_release" / "pathfinder32" / "curv_contour_length_14"
    (task / "imgs" / "0").mkdir(parents=True)
    (task / "metadata").mkdir()
    lines = []
    for i in range(2000):
        image = rng.integers(0, 256, (32, 32), dtype=np.uint8)
        Image.fromarray(image).save(task / "imgs" / "0" / f"sample_{i}.png")
        lines.append(f"imgs/0 sample_{i}.png {i} {i % 2}\n")
    (task / "metadata" / "0.npy").write_text("".join(lines))
    return {"listops_files": {"name": "listops", "data_dir": str(root / "listops")},
            "aan (fixture)": {"name": "aan", "data_dir": str(root)},
            "pathfinder (fixture)": {"name": "pathfinder", "data_dir": str(root)}}


def numpy_copy_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Bytes/s (read + write) of copying a float32 NumPy array of ``megabytes``."""
    src = np.ones(megabytes * 2 ** 18, np.float32)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best


def batches_per_second(split, batch_size: int, seconds: float) -> float:
    from ssm_jax.data import BatchIterator

    if len(split) < batch_size:
        return float("nan")
    it = BatchIterator(split, batch_size, seed=0)
    next(it)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(it)
        count += 1
    return count / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SSM_JAX_CACHE"] = str(Path(tmp) / "cache")
        from ssm_jax.data import get_dataset

        configs = {
            "digits": {"name": "digits"},
            "synthetic_regression": {"name": "synthetic_regression", "process": "gaussian_process",
                                     "seq_len": 1024, "num_train": 2048},
            "majority": {"name": "majority", "seq_len": 1000, "num_train": 2000, "noise": 0.1},
            "listops (generated)": {"name": "listops"},
            "mnist_small": {"name": "mnist_small"},
            "ucr GunPoint": {"name": "ucr", "ucr_name": "GunPoint", "validation_fraction": 0.1},
        }
        configs.update(write_fixtures(Path(tmp) / "fixtures"))
        bandwidth = numpy_copy_bandwidth()
        header = f"{'dataset':<24} {'L':>6} {'build s':>8} {'again s':>8} " + " ".join(
            f"{'B=' + str(b) + ' b/s':>11}" for b in BATCH_SIZES) + f" {'GB/s (% copy)':>15}"
        print(f"batches per second; GB/s: bytes of the batches handed out per second at the "
              f"largest batch size, against a {bandwidth / 1e9:.1f} GB/s NumPy copy of 256 MB "
              "measured in this process (the loaders are NumPy)")
        print(header)
        print("-" * len(header))
        for label, cfg in configs.items():
            start = time.perf_counter()
            get_dataset(cfg)
            build = time.perf_counter() - start
            start = time.perf_counter()
            ds = get_dataset(cfg)
            cached = time.perf_counter() - start
            rates = [batches_per_second(ds.train, b, args.seconds) for b in BATCH_SIZES]
            one = ds.train.take(np.arange(min(BATCH_SIZES[-1], len(ds.train))))
            gbs = rates[-1] * sum(v.nbytes for v in one.values()) / 1e9
            print(f"{label:<24} {ds.info.seq_len:>6} {build:>8.2f} {cached:>8.2f} "
                  + " ".join(f"{r:>11.0f}" for r in rates)
                  + f" {gbs:>8.2f} ({100 * gbs * 1e9 / bandwidth:.0f}%)")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
