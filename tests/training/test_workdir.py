"""Work directories that cannot be corrupted: one run at a time, resume only with the config
the checkpoints were written with, corrupt and half-deleted checkpoints, unusable paths."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from ssm_jax.training.workdir import WorkdirError, WorkdirLock, prepare_workdir

from .conftest import FAST, REPO, cli_env, error_lines, run_cli, step_dirs, train_args

pytestmark = pytest.mark.slow


def copy_run(smoke_run, tmp_path):
    workdir = tmp_path / "A"
    shutil.copytree(smoke_run["workdir"], workdir)
    return workdir


def test_a_second_run_on_a_busy_workdir_fails_at_once(tmp_path):
    workdir = tmp_path / "busy"
    workdir.mkdir()
    with WorkdirLock(str(workdir)):  # held by this process, as a running training would
        proc = run_cli(train_args(workdir, *FAST), timeout=120)
    assert proc.returncode == 2
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "is in use by another run" in lines[0] and str(os.getpid()) in lines[0]
    assert not (workdir / "metrics.csv").exists()
    # the lock is released with its holder: the same command now runs
    with WorkdirLock(str(workdir)):
        pass


def test_two_concurrent_runs_never_share_a_workdir(tmp_path):
    workdir = tmp_path / "race"
    args = train_args(workdir, *FAST)
    procs = [subprocess.Popen(args, env=cli_env(), cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = outs[[p.returncode for p in procs].index(2)]
    assert "is in use by another run" in loser[1]
    keys = [line.split(",")[:3] for line in (workdir / "metrics.csv").read_text().splitlines()[1:]]
    assert len(keys) == len({tuple(k) for k in keys})  # no interleaved or duplicated rows


@pytest.mark.parametrize("override,needle", [
    ("--config.model.d_model=8", "model.d_model (16 -> 8)"),
    ("--config.train.num_steps=20", f"train.num_steps ({FAST[0].split('=')[1]} -> 20)"),
    ("--config.optim.lr=0.5", "optim.lr (0.01 -> 0.5)"),
    ("--config.data.seed=3", "data.seed (0 -> 3)"),
])
def test_resume_with_another_config_is_refused(smoke_run, tmp_path, override, needle):
    workdir = copy_run(smoke_run, tmp_path)
    before = sorted(os.listdir(workdir / "checkpoints" / "last"))
    proc = run_cli(train_args(workdir, *[o for o in FAST if not o.startswith(override.split("=")[0])],
                              override), timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "cannot resume" in lines[0] and needle in lines[0], lines
    assert sorted(os.listdir(workdir / "checkpoints" / "last")) == before


def test_harmless_changes_are_applied_and_reported(smoke_run, tmp_path):
    workdir = copy_run(smoke_run, tmp_path)
    overrides = [o for o in FAST if "eval_every" not in o] + ["--config.train.eval_every=9"]
    proc = run_cli(train_args(workdir, *overrides), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "resuming with changed train.eval_every: 10 -> 9" in proc.stdout
    saved = json.loads((workdir / "checkpoints" / "config.json").read_text())
    assert saved["train"]["eval_every"] == 9


def test_extend_raises_num_steps_on_resume_and_says_so(smoke_run, tmp_path):
    """A finished run continues to a larger num_steps only with --extend (refused without it,
    with the hint); the resumed run starts at its last step and ends at the new one."""
    workdir = copy_run(smoke_run, tmp_path)
    old = int(FAST[0].split("=")[1])
    more = [o for o in FAST if not o.startswith("--config.train.num_steps")] + \
        [f"--config.train.num_steps={old + 10}"]
    refused = run_cli(train_args(workdir, *more), timeout=120)
    assert refused.returncode == 2 and "needs --extend" in refused.stderr
    proc = run_cli(train_args(workdir, *more, "--extend"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"extending the run: train.num_steps {old} -> {old + 10}" in proc.stdout
    assert f"resumed from checkpoint at step {old}" in proc.stdout
    report = json.loads((workdir / "report.json").read_text())
    assert max(step_dirs(workdir / "checkpoints" / "last")) == old + 10, report


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(smoke_run, tmp_path):
    workdir = copy_run(smoke_run, tmp_path)
    last = workdir / "checkpoints" / "last"
    newest = max(step_dirs(last))
    for root, _, names in os.walk(last / str(newest) / "state"):
        for name in names:  # garble every array file (same sizes: the manifest still matches)
            path = os.path.join(root, name)
            size = os.path.getsize(path)
            with open(path, "wb") as f:
                f.write(b"\x00" * size)
    proc = run_cli(train_args(workdir, *FAST), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"the checkpoint at step {newest} cannot be restored" in proc.stderr
    previous = sorted(step_dirs(last))[0]
    assert f"resumed from checkpoint at step {previous}" in proc.stdout
    assert (workdir / "checkpoints" / "corrupt" / f"last-{newest}").is_dir()  # kept aside
    assert newest in step_dirs(last)  # trained again up to the end


def test_half_deleted_old_checkpoint_is_moved_aside_at_the_next_start(smoke_run, tmp_path):
    workdir = copy_run(smoke_run, tmp_path)
    last = workdir / "checkpoints" / "last"
    oldest = min(step_dirs(last))
    victims = sorted((last / str(oldest)).rglob("*"))
    for path in [p for p in victims if p.is_file()][: len(victims) // 2]:
        path.unlink()  # a clean-up killed half-way
    proc = run_cli(train_args(workdir, *FAST), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"the checkpoint {last / str(oldest)} differs from its manifest" in proc.stderr
    assert oldest not in step_dirs(last)
    assert (workdir / "checkpoints" / "corrupt" / f"last-{oldest}").is_dir()  # never deleted


def test_unusable_workdirs(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(WorkdirError, match="is a file, not a directory"):
        prepare_workdir(str(a_file))
    unwritable = "/proc/ssm_jax_workdir" if os.geteuid() == 0 else str(tmp_path / "ro" / "w")
    if os.geteuid() != 0:
        (tmp_path / "ro").mkdir(mode=0o500)
    with pytest.raises(WorkdirError, match="is not writable"):
        prepare_workdir(unwritable)
    for path, needle in [(a_file, "is a file"), (unwritable, "is not writable")]:
        proc = run_cli(train_args(path, *FAST), timeout=120)
        lines = error_lines(proc.stderr)
        assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr
