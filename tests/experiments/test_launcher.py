"""``ssm-jax reproduce --launcher submitit`` with submitit's local executor (real subprocesses,
no SLURM): a plan of 3 units ends in the same REPORT.md as ``--launcher local``; a unit whose
job is killed mid-run is resubmitted by the rerun and resumed; two concurrent submissions of
the same plan send each unit once."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.training.conftest import REPO, cli_env

pytest.importorskip("submitit")
pytestmark = pytest.mark.slow

# paper 3's length experiment, shrunk: one unit (a vectorized group of 2 seeds) per length
PLAN = ["--paper", "3", "--scale", "quick", "--only", "length_independence",
        "--config.train.num_epochs=1", "--config.data.num_train=32", "--config.data.num_test=32",
        "--config.experiment.majority_lengths=[10,20,30]", "--config.experiment.num_seeds=2"]
SUBMITIT = ["--launcher", "submitit", "--config.launcher.cluster=local",
            "--config.launcher.timeout_min=20"]


def reproduce(workdir, *extra, popen=False):
    args = [sys.executable, "-m", "ssm_jax.cli", "reproduce", *PLAN, "--workdir", str(workdir), *extra]
    if popen:
        return subprocess.Popen(args, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    proc = subprocess.run(args, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def markers(workdir) -> list:
    return [json.load(open(p)) | {"path": os.path.dirname(p)}
            for p in glob.glob(os.path.join(workdir, "**", ".submitted.json"), recursive=True)]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def wait_for_jobs(workdir, timeout=240) -> None:
    deadline = time.time() + timeout
    while any(alive(int(m["job_id"])) for m in markers(workdir)):
        assert time.time() < deadline, "jobs still running"
        time.sleep(0.5)


def children(pid: int) -> list:
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # the parent pid
            out.append(int(stat.split("/")[2]))
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL a job's controller and its task, as a node failure would."""
    for child in children(pid):
        kill_tree(child)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def submitted(stdout: str) -> int:
    match = re.search(r"submitted (\d+) job\(s\)", stdout)
    return int(match.group(1)) if match else 0


def body(workdir) -> str:
    """REPORT.md from the first paper section on (the header names the time and duration)."""
    text = open(os.path.join(workdir, "REPORT.md")).read()
    return text[text.index("## Paper"):]


@pytest.fixture(scope="module")
def local_report(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("local")
    reproduce(workdir)
    return body(workdir)


def test_a_plan_sent_to_the_local_executor_gives_the_local_report(tmp_path, local_report):
    out = reproduce(tmp_path, *SUBMITIT)
    assert submitted(out) == 3 and "3 unit(s) to train: 3 new" in out, out
    assert len({m["job_id"] for m in markers(tmp_path)}) == 3
    assert not (tmp_path / "REPORT.md").exists()  # not before every unit has finished
    wait_for_jobs(tmp_path)
    status = reproduce(tmp_path, "--status")
    assert "paper3/length_independence: done" in status
    out = reproduce(tmp_path, *SUBMITIT)
    assert submitted(out) == 0 and "every unit has finished" in out
    assert body(tmp_path) == local_report


def test_a_killed_unit_is_resubmitted_and_resumed_by_the_rerun(tmp_path, local_report):
    out = reproduce(tmp_path, *SUBMITIT)
    assert submitted(out) == 3
    victim = sorted(markers(tmp_path), key=lambda m: m["path"])[0]
    deadline = time.time() + 120  # kill it once it trains (its run directory has a log)
    while not os.path.exists(os.path.join(victim["path"], "train.log")) and time.time() < deadline:
        time.sleep(0.05)
    kill_tree(int(victim["job_id"]))
    wait_for_jobs(tmp_path)
    if os.path.exists(os.path.join(victim["path"], "report.json")):
        pytest.skip("the job finished before it was killed")
    status = reproduce(tmp_path, *SUBMITIT[2:], "--status")
    assert "1 failed" in status and submitted(status) == 0, status
    out = reproduce(tmp_path, *SUBMITIT)
    assert submitted(out) == 1, out  # only the killed unit
    wait_for_jobs(tmp_path)
    out = reproduce(tmp_path, *SUBMITIT)
    assert "every unit has finished" in out
    assert body(tmp_path) == local_report


def test_concurrent_submissions_send_each_unit_once(tmp_path):
    procs = [reproduce(tmp_path, *SUBMITIT, popen=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    counts = sorted(submitted(out) for out, _ in outs)
    assert counts == [0, 3], outs
    assert len(markers(tmp_path)) == 6  # 3 units of 2 runs, each marked once
    assert len({m["job_id"] for m in markers(tmp_path)}) == 3
    wait_for_jobs(tmp_path)


def test_launcher_keys_are_checked_before_anything_is_sent(tmp_path):
    args = [sys.executable, "-m", "ssm_jax.cli", "reproduce", *PLAN, "--workdir", str(tmp_path),
            "--launcher", "submitit", "--config.launcher.gpus=2"]
    proc = subprocess.run(args, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: unknown config key 'launcher.gpus'; allowed: "
                                   "array_parallelism, cluster, cpus_per_job, folder, "
                                   "gpus_per_job, mem_gb, partition, sbatch, timeout_min")
    assert not any(tmp_path.iterdir())


def test_a_preempted_job_requeues_the_same_unit():
    """submitit calls ``checkpoint`` at preemption or the time limit: the same unit is
    resubmitted, and the trainer resumes its runs from their checkpoints."""
    from ssm_jax.experiments.launcher import Job
    from ssm_jax.experiments.sweeps import Group

    unit = Group(cfgs=(), workdirs=("w",), vectorize=True)
    again = Job().checkpoint(unit)
    assert isinstance(again.function, Job) and again.args == (unit,)
