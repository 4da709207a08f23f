"""Experiment 2 (generalization gap: regularizer sweep and factor sweeps) end to end at the
tiny scale, with resume; the claims' statistics are tested on synthetic rows in
test_gen_gap_claims.py."""

import json
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
    sweep_ids = ["n16", "n48", "n32_dt0.01", "n32_dt1"]
    assert sorted(r["run_id"] for r in runs) == sorted(
        [f"mean_var_n32_measure_lam{lam}_s{s}" for lam in ("0", "1") for s in (0, 1)]
        + [f"mean_var_n32_kernel_l2_lam1_s{s}" for s in (0, 1)]
        + [f"mean_var_{t}_measure_lam0_s{s}" for t in sweep_ids for s in (0, 1)])
    assert all(r["step"] == "20" for r in runs)  # the last checkpoint
    sizes = {r["run_id"]: r["train_size"] for r in runs}
    assert sizes["mean_var_n48_measure_lam0_s1"] == "48"
    # the effect, not only the plumbing: the regularizer lowers tau in every seed
    tau = {(r["penalty"], r["reg_lambda"], r["seed"]): float(r["tau"]) for r in runs}
    for s in ("0", "1"):
        assert tau["measure", "1.0", s] < 0.95 * tau["measure", "0.0", s]
    # the penalty's weight is matched (not the nominal lambda)
    weights = {float(r["weight"]) for r in runs if r["penalty"] == "kernel_l2"}
    assert all(w > 0 and abs(w - 1.0) > 1e-3 for w in weights)
    sweep = read_csv(tmp_path / "sweep.csv")
    assert [(r["factor"], float(r["value"])) for r in sweep] == [
        ("n", 16), ("n", 32), ("n", 48), ("dt_max", 0.01), ("dt_max", 0.1), ("dt_max", 1.0)]
    assert all(r["seeds"] == "2" for r in sweep)
    slopes = read_csv(tmp_path / "slopes.csv")
    assert [(s["factor"], s["seed"], s["points"]) for s in slopes] == [
        ("n", "0", "3"), ("n", "1", "3")]
    corr = read_csv(tmp_path / "correlation.csv")
    assert [(c["factors"], c["process"], c["in_claim"]) for c in corr] == [
        (f, p, str(f == "dt_max")) for f in ("n", "dt_max") for p in ("mean_var", "all")]
    assert corr[-1]["blocks"] == "2" and corr[-1]["pairs"] == "6"
    assert -1 <= float(corr[-1]["kendall_tau"]) <= 1
    md = (tmp_path / "table.md").read_text()
    assert "| process | n | penalty | lambda | weight | train MSE | test MSE | gap | tau |" in md
    assert "## Factor sweeps" in md and "Kendall" in md
    assert_png(tmp_path / "gen_gap.png")
    with open(tmp_path / "claims.json") as f:
        claims = json.load(f)["claims"]
    starts = ["The regularizer (9) reduces the generalization gap",
              "The data-dependent regularizer (9) lowers the gap more than the data-independent "
              "kernel_l2 penalty at matched strength",
              "The measure tau tracks the generalization gap",
              "The generalization gap decreases with the training-set size n"]
    assert len(claims) == len(starts)
    assert all(c["text"].startswith(t) for c, t in zip(claims, starts))
    for c in claims[:2]:
        assert "equivalence margin 10%" in c["rule"] and "primary metric" in c["rule"]
    assert "exact null" in claims[2]["rule"] and "direction only" in claims[3]["rule"]

    # a rerun skips the finished runs
    reports = sorted((tmp_path / "runs").glob("*/report.json"))
    assert len(reports) == 14
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
    """The same runs trained in vmapped groups and one by one give the same table (the
    regularizer sweep; the factor sweeps are off to keep the one-by-one run short)."""
    vec, one = tmp_path / "vec", tmp_path / "one"
    small = ["--config.experiment.size_sweep=[]", "--config.experiment.length_sweep=[]",
             "--config.experiment.dt_max_sweep=[]", "--config.experiment.correlation_factors=[]"]
    assert_ok(run_experiment("gen_gap", "tiny", vec, *small, cache=xla_cache))
    assert_ok(run_experiment("gen_gap", "tiny", one, *small, "--config.experiment.vectorize=False",
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
