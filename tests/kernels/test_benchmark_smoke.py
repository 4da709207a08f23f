"""Smoke test: benchmarks/scan.py --quick times the real layers and prints its tables."""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run_benchmark(script: str, *args) -> subprocess.CompletedProcess:
    """``benchmarks/<script> args`` on the CPU; asserts it exits 0 (its output tails otherwise)."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *map(str, args)],
                          cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_scan_benchmark_quick():
    proc = run_benchmark("scan.py", "--quick")
    out = proc.stdout
    assert ("| L | s4d-conv ms (ratio) | s4d-assoc ms (ratio) | s4d-seq ms (ratio) | "
            "s5-assoc ms (ratio) | s5-seq ms (ratio) |") in out, out
    assert "## forward" in out and "## forward+backward" in out, out
    assert 'scan_method="auto" on this backend picks:' in out, out
    assert "OOM" not in out and "Error" not in out, out
    assert "## roofline: forward+backward" in out and "% of peak FLOP/s" in out, out


@pytest.mark.slow
def test_projection_benchmark_quick():
    proc = run_benchmark("projections.py", "--quick")
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| S")]
    assert len(rows) == 4 + 8, proc.stdout  # 4 timing rows, 8 roofline rows
    for row in rows[:4]:  # the new layers give the previous outputs
        assert float(row.rstrip(" |").split("|")[-1]) < 1e-4, row


@pytest.mark.slow
def test_scaling_benchmark_quick(tmp_path):
    png = tmp_path / "scaling.png"
    proc = run_benchmark("scaling.py", "--quick", "--out", str(png))
    assert "| layer | time exponent a (time ~ L^a) | memory exponent b | L range |" in proc.stdout
    assert "| S4D conv |" in proc.stdout and "| S5 scan |" in proc.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_selective_benchmark_quick():
    proc = run_benchmark("selective.py", "--quick", "--repeats", "1")
    out = proc.stdout
    assert "## forward+backward" in out and "## memory of the forward+backward" in out, out
    assert "## against the paper's PyTorch layer" in out, out
    try:
        import torch  # noqa: F401
    except ImportError:
        assert "measured elsewhere" in out and "0.555" in out, out
    assert "## adjoint backward against autodiff" in out, out
    rows = [l for l in out.splitlines() if l.startswith("| paper d=4") or l.startswith("| mamba d=8")]
    assert len(rows) == 8, out  # two cases in four tables


@pytest.mark.slow
def test_vectorized_seeds_benchmark_quick():
    proc = run_benchmark("vectorized_seeds.py", "--sweep", "paper3", "--T", "16", "--seeds", "2",
                         "--epochs", "1", "--m", "64")
    row = [l for l in proc.stdout.splitlines() if l.startswith("| paper 3 quick")]
    assert len(row) == 1 and row[0].endswith("test accuracy 0 |"), proc.stdout


@pytest.mark.slow
def test_gpu_check_tiny(tmp_path):
    out = tmp_path / "gpu_check"
    proc = run_benchmark("gpu_check.py", "--tiny", "--out", str(out))
    summary = (out / "summary.md").read_text()
    for heading in ("## Part 1: tests on the device", "## Part 2: scan timings",
                    "## Part 3: LRA train steps", "## Part 4: paper-3 ListOps run"):
        assert heading in summary, summary
    assert "Status: failed" not in summary, summary
    for name in ("tests.txt", "scan.md", "selective.md", "steps.md", "listops.md"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "listops_run").is_dir()
    assert "| paper2/lra:cifar10 | 2 | 32 | floats |" in summary, summary
