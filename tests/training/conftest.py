"""Shared helpers for the training tests: tiny models and batches for in-process tests, and
`ssm-jax train` subprocess runs of configs/smoke.py for the end-to-end tests."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from ssm_jax.models import SequenceModel

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMOKE = os.path.join(REPO, "configs", "smoke.py")

# A short run of the smoke config: checkpoints every 5 steps and at the end (step 45), so
# keep_checkpoints=2 leaves steps 40 and 45. The first evaluation (step 10, which compiles the
# eval step) comes after the first checkpoint: a window of a second or more in which a test can
# kill the run between checkpoints.
NUM_STEPS = 45
FAST = [
    f"--config.train.num_steps={NUM_STEPS}", "--config.train.checkpoint_every=5",
    "--config.train.eval_every=10", "--config.train.log_every=5",
    "--config.train.keep_checkpoints=2", "--config.optim.warmup_steps=5",
    "--config.train.progress=false",
]


def cli_env(devices: int | None = None) -> dict:
    """Environment for a subprocess run on CPU, with ``devices`` host devices if given."""
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("XLA_FLAGS", None)
    if devices:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def train_args(workdir, *overrides, config=SMOKE) -> list:
    return [sys.executable, "-m", "ssm_jax.cli", "train", "--config", str(config),
            "--workdir", str(workdir), *overrides]


def run_cli(args, *, devices=None, timeout=300, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=cli_env(devices), capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or REPO)


def error_lines(stderr: str) -> list:
    """Non-empty stderr lines (the CLI prints exactly one for a usage/config error)."""
    return [line for line in stderr.splitlines() if line.strip()]


def step_dirs(directory) -> list:
    """Finished checkpoint steps under ``directory`` (orbax's temporary directories excluded)."""
    if not os.path.isdir(directory):
        return []
    return sorted(int(n) for n in os.listdir(directory) if n.isdigit())


def restore_checkpoint(directory, step=None):
    """``(step, {"state": ..., "data": ...})`` of a checkpoint written by the training loop."""
    import orbax.checkpoint as ocp

    mgr = ocp.CheckpointManager(os.path.abspath(directory), item_names=("state", "data"))
    try:
        step = mgr.latest_step() if step is None else step
        out = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(),
                                                         data=ocp.args.JsonRestore()))
    finally:
        mgr.close()
    return step, out


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, request):
    """One uninterrupted `ssm-jax train` run of the smoke config (``FAST`` overrides) on one
    device, shared by all tests and xdist workers of the session (read it, never modify it).

    Returns ``{"workdir", "returncode", "stdout", "stderr"}``.
    """
    if not hasattr(request.config, "workerinput"):  # not under xdist: this session's own directory
        root = tmp_path_factory.getbasetemp()
    else:  # the directory shared by the workers of this session
        root = tmp_path_factory.getbasetemp().parent
    workdir = root / "smoke_run_A"
    done = root / "smoke_run_A.json"
    with open(root / "smoke_run_A.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            proc = run_cli(train_args(workdir, *FAST))
            done.write_text(json.dumps({"workdir": str(workdir), "returncode": proc.returncode,
                                        "stdout": proc.stdout, "stderr": proc.stderr}))
    result = json.loads(done.read_text())
    assert result["returncode"] == 0, result["stderr"][-3000:]
    return result


# ---------------------------------------------------------------- in-process helpers


def tiny_model(layer="s4d", n_layers=1, d_model=4, d_state=4, bidirectional=False, **kw):
    ssm = dict(d_state=d_state, dt_min=1e-2, dt_max=1e-1, bidirectional=bidirectional)
    return SequenceModel(num_outputs=3, d_model=d_model, n_layers=n_layers, layer=layer, ssm=ssm,
                         encoder="linear", projection="linear", pooling="mean", **kw)


def tiny_batch(batch=8, length=12, channels=2, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "inputs": rng.normal(size=(batch, length, channels)).astype(np.float32),
        "lengths": rng.integers(length // 2, length + 1, size=(batch,)).astype(np.int32),
        "labels": rng.integers(0, 3, size=(batch,)).astype(np.int32),
    }


def init_params(model, batch, seed=0):
    """The model's initial parameters (jitted init: much faster than op by op)."""
    init = jax.jit(model.init)
    return init(jax.random.PRNGKey(seed), batch["inputs"], batch["lengths"])["params"]


def random_params(model, batch, seed=0):
    """Parameters with the model's structure and shapes and random values (no model compute)."""
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), batch["inputs"], batch["lengths"])
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jax.numpy.asarray(rng.normal(size=s.shape), s.dtype), shapes["params"])
