"""Faults a user meets, each run as it happens (a damaged file, a deleted fingerprint, Ctrl-C, a
full disk, bad data, sizes that cannot work): the exit code, the one line it prints, and that
no result changes without saying so (the final report equals an uninterrupted run's, or says
why not)."""

from __future__ import annotations

import errno
import gzip
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ssm_jax import cli
from ssm_jax.data import listops
from ssm_jax.data.registry import Dataset, DatasetInfo, Split, check_dataset
from ssm_jax.training.config import ConfigError, check_memory, load_config, parse_config
from tests.training.conftest import (FAST, REPO, cli_env, error_lines, run_cli, step_dirs,
                                     train_args)

# ----------------------------------------------------------------------------- helpers


def copy_run(smoke_run, tmp_path):
    workdir = tmp_path / "A"
    shutil.copytree(smoke_run["workdir"], workdir)
    return workdir


def garble(folder, truncate: bool) -> None:
    """Damage the array files of a checkpoint: cut them in half (a size the manifest catches)
    or overwrite them with noise of the same size (only a restore finds it)."""
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            if os.sep + "d" + os.sep not in path + os.sep or name.endswith(".json"):
                continue
            size = os.path.getsize(path)
            with open(path, "r+b") as f:
                if truncate:
                    f.truncate(size // 2)
                else:
                    f.write(np.random.default_rng(0).bytes(size))


def one_line(stderr: str) -> str:
    lines = error_lines(stderr)
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-2000:]
    return lines[0]


def main(argv, capsys) -> tuple:
    """``ssm-jax`` in-process: ``(exit code, stdout, stderr)``."""
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------- checkpoints (slow)


@pytest.mark.slow
@pytest.mark.parametrize("truncate", [True, False], ids=["truncated", "corrupted"])
def test_a_damaged_best_checkpoint_is_moved_aside_and_the_report_says_so(smoke_run, tmp_path, truncate):
    workdir = copy_run(smoke_run, tmp_path)
    before = json.loads((workdir / "report.json").read_text())
    (best,) = step_dirs(workdir / "checkpoints" / "best")
    garble(workdir / "checkpoints" / "best" / str(best), truncate)
    for _ in range(2):  # the workdir is not stuck: a second rerun ends the same way
        proc = run_cli(train_args(workdir, *FAST), timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        report = json.loads((workdir / "report.json").read_text())
        assert report["selection"] == "last" and report["best_checkpoints_lost"] == [best]
        assert "best checkpoint lost" in report["note"] and "reporting the last step" in report["note"]
        assert "best checkpoint lost" in proc.stdout
    assert before["selection"] == "validation"
    assert (workdir / "checkpoints" / "corrupt" / f"best-{best}").is_dir()  # kept, not deleted
    assert "Traceback" not in proc.stderr and "DATA_LOSS" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_checkpoints_without_their_fingerprint_are_refused_until_restart(smoke_run, tmp_path):
    workdir = copy_run(smoke_run, tmp_path)
    (workdir / "checkpoints" / "config.json").unlink()
    metrics = (workdir / "metrics.csv").read_text()
    last = step_dirs(workdir / "checkpoints" / "last")
    proc = run_cli(train_args(workdir, *FAST, "--config.model.d_model=32"), timeout=120)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert "holds checkpoints but not" in line and "--restart" in line
    assert step_dirs(workdir / "checkpoints" / "last") == last  # nothing moved, nothing lost
    assert (workdir / "metrics.csv").read_text() == metrics
    proc = run_cli(train_args(workdir, *FAST, "--config.model.d_model=32", "--restart"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    old = tmp_path / "A.old-1"
    assert f"moved the old run to {old}" in proc.stdout
    assert (old / "metrics.csv").read_text() == metrics  # the old run, whole
    assert json.loads((workdir / "config.json").read_text())["model"]["d_model"] == 32


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_the_rerun_ends_as_an_uninterrupted_run(smoke_run, tmp_path):
    workdir = tmp_path / "int"
    args = train_args(workdir, *FAST)
    proc = subprocess.Popen(args, env=cli_env(), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not step_dirs(workdir / "checkpoints" / "last") and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the interrupt arrived")
    assert proc.returncode == 130, err[-2000:]
    line = one_line(err)
    assert line.startswith("interrupted (the last checkpoint is at step") and "rerun the same command" in line
    again = run_cli(args, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    want = json.loads((smoke_run_dir(smoke_run) / "report.json").read_text())
    got = json.loads((workdir / "report.json").read_text())
    assert got["test"] == pytest.approx(want["test"], rel=1e-5) and got["best_step"] == want["best_step"]


def smoke_run_dir(smoke_run):
    from pathlib import Path

    return Path(smoke_run["workdir"])


DISK_FULL = """
import errno, sys
from ssm_jax import cli
from ssm_jax.training import checkpoint
save, calls = checkpoint.Checkpoints.save, []
def full(self, *a, **k):
    calls.append(1)
    if len(calls) > 1:
        raise OSError(errno.ENOSPC, "No space left on device")
    return save(self, *a, **k)
checkpoint.Checkpoints.save = full
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_disk_full_is_one_line_and_the_rerun_resumes(tmp_path):
    workdir = tmp_path / "full"
    args = train_args(workdir, *FAST)[3:]  # after `python -m ssm_jax.cli`
    proc = subprocess.run([sys.executable, "-c", DISK_FULL, *args], env=cli_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert line.startswith("error: no space left on the device of") and "MB free" in line
    again = run_cli(train_args(workdir, *FAST), timeout=300)
    assert again.returncode == 0 and "resumed from checkpoint at step 5" in again.stdout


@pytest.mark.slow
def test_nan_at_the_first_step_names_the_keys_to_look_at(tmp_path, capsys):
    code, out, err = main(["train", "--config", "paper3/majority:tiny", "--workdir",
                           str(tmp_path / "w"), "--config.model.ssm.s_A=50",
                           "--config.data.seq_len=200"], capsys)
    assert code == 3
    assert "at the first step" in err and "model.ssm.s_A" in err


# ------------------------------------------------------------------------------- data


def write_listops(tmp_path, edit=None):
    paths = listops.write_splits(tmp_path / "lo", num_train=20, num_val=4, num_test=6,
                                 min_length=5, max_length=30, max_depth=3, max_args=3)
    if edit:
        edit(paths)
    return {"name": "listops", "data_dir": str(tmp_path / "lo"), "seq_len": 40, "use_cache": False}


def data_error(cfg) -> str:
    from ssm_jax.data import get_dataset

    with pytest.raises(ValueError) as e:
        get_dataset(cfg)
    assert "\n" not in str(e.value)
    return str(e.value)


def rewrite(path, fn):
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(fn(lines)))


def test_a_header_only_listops_test_file_is_one_error_naming_it(tmp_path):
    cfg = write_listops(tmp_path, lambda p: rewrite(p["test"], lambda lines: lines[:1]))
    message = data_error(cfg)
    assert "basic_test.tsv holds no examples" in message


@pytest.mark.parametrize("bad,needle", [
    (lambda row: row.replace("\t", "\t1", 1), "target 1"),  # label 1x: two digits, above 9
    (lambda row: row.split("\t")[0] + "\t-1\r\n", "target -1 is outside 0..9"),
    (lambda row: "( ( [MAX 2 3\t3\r\n", "unclosed"),
])
def test_bad_listops_rows_name_the_file_and_line(tmp_path, bad, needle):
    cfg = write_listops(tmp_path, lambda p: rewrite(p["train"], lambda lines: [lines[0], bad(lines[1]), *lines[2:]]))
    message = data_error(cfg)
    assert "basic_train.tsv, line 2" in message and needle in message


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    head = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return head + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_fashion(tmp_path, images: np.ndarray, code: int, truncate: bool = False):
    from ssm_jax.data.offline import IDX_FILES

    folder = tmp_path / "fashion"
    folder.mkdir()
    labels = np.zeros(len(images), np.uint8)
    for images_file, labels_file in IDX_FILES.values():
        data = idx_bytes(images, code)
        with gzip.open(folder / images_file, "wb") as f:
            f.write(data)
        if truncate:
            raw = (folder / images_file).read_bytes()
            (folder / images_file).write_bytes(raw[: len(raw) // 2])
        with gzip.open(folder / labels_file, "wb") as f:
            f.write(idx_bytes(labels, 0x08))
    return {"name": "fashion_mnist_idx", "data_dir": str(folder), "use_cache": False}


def test_nan_pixels_in_an_idx_file_are_one_error_naming_file_and_image(tmp_path):
    images = np.full((10, 4, 4), 3.0, np.float32)
    images[7, 1, 2] = np.nan
    message = data_error(write_fashion(tmp_path, images, 0x0D))
    assert "train-images-idx3-ubyte.gz: image 7 holds a pixel that is NaN" in message


def test_a_truncated_gzip_archive_is_one_error_naming_it(tmp_path):
    images = np.ones((50, 4, 4), np.uint8)
    message = data_error(write_fashion(tmp_path, images, 0x08, truncate=True))
    assert "idx3-ubyte.gz is truncated or not a valid gzip file" in message


def test_a_ucr_regression_set_is_refused_for_classification():
    pytest.importorskip("sktime")
    message = data_error({"name": "ucr", "ucr_name": "Covid3Month"})
    assert "is a regression set" in message


def test_every_dataset_is_checked_at_load():
    """Labels outside the classes, NaN inputs, an empty training or test split."""
    info = DatasetInfo(name="toy", seq_len=3, input_kind="floats", vocab_size=None,
                       in_channels=1, num_classes=2)
    good = lambda n=4: Split(np.zeros((n, 3, 1), np.float32), np.full(n, 3, np.int32),
                             np.zeros(n, np.int32))
    check_dataset(Dataset(info, {"train": good(), "validation": good(0), "test": good()}), {})
    cases = []
    bad = good()
    bad.labels[2] = 2
    cases.append(({"train": bad, "validation": good(0), "test": good()}, "train split, row 2: label 2 is outside 0..1"))
    bad = good()
    bad.labels[1] = -1
    cases.append(({"train": good(), "validation": good(0), "test": bad}, "test split, row 1: label -1"))
    bad = good()
    bad.inputs[3, 1, 0] = np.inf
    cases.append(({"train": bad, "validation": good(0), "test": good()}, "row 3: the input holds NaN or Inf"))
    cases.append(({"train": good(0), "validation": good(0), "test": good()}, "the training split is empty"))
    cases.append(({"train": good(), "validation": good(0), "test": good(0)}, "the test split is empty"))
    for splits, needle in cases:
        with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
            check_dataset(Dataset(info, splits), {})
    check_dataset(Dataset(info, {"train": good(), "validation": good(0), "test": good(0)}),
                  {"num_test": 0})  # the config asks for no test split


@pytest.mark.parametrize("override,needle", [
    ("--config.data.seq_len=0", "'data.seq_len' of dataset 'majority_counts' must be >= 1, got 0"),
    ("--config.model.ssm.s_A=-1e30", "config key 'model.ssm.s_A' must be in [-50, 50]"),
    ("--config.model.ssm.s_A=1e30", "config key 'model.ssm.s_A' must be in [-50, 50]"),
])
def test_sizes_and_scales_that_cannot_work_are_one_line(tmp_path, capsys, override, needle):
    code, _, err = main(["train", "--config", "paper3/majority:tiny", "--workdir",
                         str(tmp_path / "w"), override], capsys)
    assert code == 2 and needle in one_line(err)
    assert not (tmp_path / "w").exists()


def test_synthetic_data_out_of_range_is_one_line(tmp_path, capsys):
    code, _, err = main(["train", "--config", "smoke", "--workdir", str(tmp_path / "w"),
                         "--config.data.name=synthetic_regression", "--config.data.seq_len=-5"], capsys)
    assert code == 2 and "'data.seq_len' of dataset 'synthetic_regression' must be >= 1, got -5" in one_line(err)
    code, _, err = main(["train", "--config", "smoke", "--workdir", str(tmp_path / "v"),
                         "--config.data.name=synthetic_regression", "--config.data.process=white_noise_with_mean",
                         "--config.data.mean_level=1e39"], capsys)
    assert code == 2 and "the input holds NaN or Inf" in one_line(err)


def test_an_unquoted_list_override_is_read_as_a_list():
    from ssm_jax.experiments import config as exp_config, reproduce, runner

    module = next(m for m in reproduce.experiment_modules(3) if runner.module_name(m) == "sA_sweep")
    exp = exp_config.load("paper3/sA_sweep:tiny", module.Settings,
                          ["experiment.tasks=[majority, listops]", "experiment.s_A_values=[0.1, -0.1]"])
    assert exp.settings.tasks == ("majority", "listops") and exp.settings.s_A_values == (0.1, -0.1)
    with pytest.raises(ValueError, match="experiment.s_A_values: needs at least one"):
        module.prepare(exp_config.load("paper3/sA_sweep:tiny", module.Settings,
                                       ["experiment.s_A_values=[]"]), "unused")


# ----------------------------------------------------------------- memory, plots, plans


def test_memory_is_checked_for_evaluation_batches_and_wide_layers():
    cfg = load_config("paper3/majority")
    cfg.train.eval_batch_size = 10_000_000
    parse = parse_config(cfg)
    check_memory(parse, available=2 ** 34)  # the test split (1000) bounds the batch: fits
    cfg.data.num_test = 10_000_000
    with pytest.raises(ConfigError, match="'train.eval_batch_size' = 10000000"):
        check_memory(parse_config(cfg), available=2 ** 34)
    cfg = load_config("paper3/majority")
    cfg.model.ssm.update(form="mamba", dt_rank=1_000_000)
    with pytest.raises(ConfigError, match="model.ssm.dt_rank = 1000000"):
        check_memory(parse_config(cfg), available=2 ** 34)


def test_plot_says_the_file_it_writes_and_refuses_all_nan(tmp_path, capsys):
    workdir = tmp_path / "w"
    workdir.mkdir()
    header = "step,split,metric,value\n"
    (workdir / "metrics.csv").write_text(header + "1,train,loss,0.5\n2,train,loss,0.4\n")
    code, out, _ = main(["plot", str(workdir), "--out", str(tmp_path / "curves")], capsys)
    assert code == 0 and out.strip() == str(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0
    (workdir / "metrics.csv").write_text(header + "1,train,loss,nan\n2,train,loss,nan\n")
    code, _, err = main(["plot", str(workdir)], capsys)
    assert code == 2 and "every value is NaN or Inf" in one_line(err)


def test_reproduce_refuses_a_workdir_of_another_scale_before_writing(tmp_path, monkeypatch):
    from ssm_jax.experiments import reproduce

    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "plan.json").write_text(json.dumps({"scale": "quick"}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="holds a reproduction at scale 'quick'.*--scale cpu needs another"):
        reproduce.reproduce(papers=3, scale="cpu", workdir=str(workdir))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["plan.json", "w"]  # nothing written
