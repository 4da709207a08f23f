"""Experiment 2 (generalization gap vs lambda) end to end at the tiny scale, with resume."""

import os

from tests.experiments.conftest import assert_ok, assert_png, read_csv, run_experiment


def test_gen_gap_tiny_resume_and_stale_runs(tmp_path, xla_cache):
    proc = run_experiment("gen_gap", "tiny", tmp_path, cache=xla_cache)
    assert_ok(proc)

    rows = read_csv(tmp_path / "table.csv")
    assert [(r["process"], r["train_size"], r["penalty"], float(r["reg_lambda"])) for r in rows] == [
        ("mean_var", "32", "measure", 0.0), ("mean_var", "32", "measure", 1.0),
        ("mean_var", "32", "kernel_l2", 1.0)]
    for r in rows:
        assert r["seeds"] == "2"
        assert abs(float(r["gap"]) - (float(r["test_mse"]) - float(r["train_mse"]))) < 1e-5
        assert float(r["tau"]) > 0
        assert {"train_mse_std", "test_mse_std", "gap_std", "tau_std"} <= set(r)
    runs = read_csv(tmp_path / "runs.csv")
    assert sorted(r["run_id"] for r in runs) == sorted(
        [f"mean_var_n32_measure_lam{lam}_s{s}" for lam in ("0", "1") for s in (0, 1)]
        + [f"mean_var_n32_kernel_l2_lam1_s{s}" for s in (0, 1)])
    assert all(r["step"] == "20" for r in runs)  # the last checkpoint
    # the effect, not only the plumbing: the regularizer lowers tau in every seed
    tau = {(r["penalty"], r["reg_lambda"], r["seed"]): float(r["tau"]) for r in runs}
    for s in ("0", "1"):
        assert tau["measure", "1.0", s] < 0.95 * tau["measure", "0.0", s]
    # the penalty's weight is matched (not the nominal lambda)
    weights = {float(r["weight"]) for r in runs if r["penalty"] == "kernel_l2"}
    assert all(w > 0 and abs(w - 1.0) > 1e-3 for w in weights)
    corr = read_csv(tmp_path / "correlation.csv")
    assert [(c["process"], c["train_size"]) for c in corr] == [("mean_var", "32")]
    assert corr[0]["runs"] == "4" and -1 <= float(corr[0]["spearman"]) <= 1
    md = (tmp_path / "table.md").read_text()
    assert "| process | n | penalty | lambda | weight | train MSE | test MSE | gap | tau |" in md
    assert "Spearman" in md
    assert_png(tmp_path / "gen_gap.png")

    # a rerun skips the finished runs
    reports = sorted((tmp_path / "runs").glob("*/report.json"))
    assert len(reports) == 6
    mtimes = [os.path.getmtime(p) for p in reports]
    proc = run_experiment("gen_gap", "tiny", tmp_path, cache=xla_cache)
    assert_ok(proc)
    assert [os.path.getmtime(p) for p in reports] == mtimes
    assert read_csv(tmp_path / "table.csv") == rows

    # run directories written with another config are an error, before any training
    proc = run_experiment("gen_gap", "tiny", tmp_path, "--config.train.num_steps=21",
                          cache=xla_cache)
    assert proc.returncode == 2
    assert "different config" in proc.stderr
    assert [os.path.getmtime(p) for p in reports] == mtimes
    assert '"num_steps": 20' in (tmp_path / "config.json").read_text()  # not overwritten


def test_gen_gap_vectorized_sweep_equals_one_by_one(tmp_path, xla_cache):
    """The same runs trained in vmapped groups and one by one give the same table."""
    vec, one = tmp_path / "vec", tmp_path / "one"
    assert_ok(run_experiment("gen_gap", "tiny", vec, cache=xla_cache))
    assert_ok(run_experiment("gen_gap", "tiny", one, "--config.experiment.vectorize=False",
                             cache=xla_cache))
    runs_vec = {r["run_id"]: r for r in read_csv(vec / "runs.csv")}
    runs_one = {r["run_id"]: r for r in read_csv(one / "runs.csv")}
    assert set(runs_vec) == set(runs_one) and len(runs_vec) == 6
    for run_id, r in runs_one.items():
        assert (vec / "runs" / run_id / "member.json").exists()  # trained in a group
        assert not (one / "runs" / run_id / "member.json").exists()
        for key in ("train_mse", "test_mse", "tau"):
            a, b = float(runs_vec[run_id][key]), float(r[key])
            assert abs(a - b) <= 1e-3 * abs(b) + 1e-5, (run_id, key, a, b)
