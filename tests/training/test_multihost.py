"""Multi-host data parallelism, tested: 2 processes on localhost with jax.distributed (CPU
collectives over gloo), each reading only its own half of every global batch, train the smoke
config and reach the parameters and metrics of one process with the same global batch; killed
with SIGKILL after a checkpoint, the 2 processes resume where they stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import jax
import numpy as np
import pytest

from ssm_jax.training.metrics import read_metrics

from .conftest import FAST, REPO, cli_env, restore_checkpoint, step_dirs, train_args

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def start(workdir, port):
    procs = []
    for k in range(2):
        args = train_args(workdir, *FAST, "--config.distributed.multihost=true",
                          f"--config.distributed.coordinator_address=localhost:{port}",
                          "--config.distributed.num_processes=2",
                          f"--config.distributed.process_id={k}")
        procs.append(subprocess.Popen(args, env=cli_env(), cwd=REPO, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True,
                                      start_new_session=True))
    return procs


def finish(procs, timeout=420):
    outs = [p.communicate(timeout=timeout)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-4000:]
    return outs


def restore_like(directory, target):
    """The newest checkpoint of a 2-process run, restored onto this process's device with the
    structure of ``target``."""
    import orbax.checkpoint as ocp

    mgr = ocp.CheckpointManager(os.path.abspath(directory), item_names=("state", "data"))
    try:
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        out = mgr.restore(mgr.latest_step(), args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))
    finally:
        mgr.close()
    return out


def curves(workdir):
    rows = read_metrics(os.path.join(workdir, "metrics.csv"))
    return {(r["step"], r["split"], r["metric"]): r["value"] for r in rows
            if r["metric"] != "examples_per_s"}


def test_two_processes_match_one_and_resume_after_a_kill(smoke_run, tmp_path):
    one = smoke_run["workdir"]
    two = tmp_path / "two"
    procs = start(two, free_port())
    deadline = time.monotonic() + 300
    while not step_dirs(two / "checkpoints" / "last"):  # the first finished checkpoint
        assert all(p.poll() is None for p in procs), procs[0].stdout.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.2)
    for p in procs:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    killed_at = max(step_dirs(two / "checkpoints" / "last"))
    assert killed_at < int(FAST[0].split("=")[1])

    outs = finish(start(two, free_port()))
    assert f"resumed from checkpoint at step {killed_at}" in outs[0]
    # one checkpoint set, written by both processes together; one metrics file, by process 0
    assert step_dirs(two / "checkpoints" / "last") == step_dirs(os.path.join(one, "checkpoints", "last"))
    _, a = restore_checkpoint(os.path.join(one, "checkpoints", "last"))
    b = restore_like(two / "checkpoints" / "last", a["state"])
    for x, y in zip(jax.tree.leaves(a["state"]["params"]), jax.tree.leaves(b["state"]["params"])):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)
    c1, c2 = curves(one), curves(two)
    assert c1.keys() == c2.keys()
    np.testing.assert_allclose([c2[k] for k in sorted(c1)], [c1[k] for k in sorted(c1)],
                               rtol=1e-4, atol=1e-5)
