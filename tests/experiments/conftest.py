"""Helpers for the experiment tests: run ``python -m ssm_jax.experiments.paper1.<name>`` in a
subprocess at a tiny scale and read the tables it writes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def xla_cache(tmp_path_factory):
    """One persistent XLA compilation cache for the experiment subprocesses of a session."""
    return str(tmp_path_factory.getbasetemp() / "xla_cache")


def run_experiment(name: str, config_arg: str, out, *overrides, env=None, cache=None,
                   timeout=300) -> subprocess.CompletedProcess:
    """``python -m ssm_jax.experiments.paper1.<name> --config configs/paper1/<name>.py:<arg> --out OUT``."""
    full_env = dict(os.environ)
    full_env.update({"JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"})
    full_env.pop("XLA_FLAGS", None)
    if cache:
        full_env["SSM_JAX_COMPILATION_CACHE"] = cache
    full_env.update(env or {})
    args = [sys.executable, "-m", f"ssm_jax.experiments.paper1.{name}", "--config",
            f"configs/paper1/{name}.py:{config_arg}", "--out", str(out), *overrides]
    return subprocess.run(args, cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def read_csv(path) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n" \
                                 f"stderr:\n{proc.stderr[-3000:]}"


def assert_png(path) -> None:
    assert os.path.getsize(path) > 1000
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
