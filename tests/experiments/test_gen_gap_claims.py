"""Paper 1's gen_gap claims on synthetic run rows (no training): the runs of the sweeps, the
aggregation, and each claim's verdict against numbers worked by hand here."""

import math
import re

import pytest

from ssm_jax.experiments import config as excfg
from ssm_jax.experiments import sweeps
from ssm_jax.experiments.paper1 import gen_gap
from ssm_jax.training.config import ConfigError


def load(*overrides):
    """The tiny config with an L sweep (the tiny scale trains none) and the overrides."""
    sweep = ["experiment.length_sweep=[16, 32, 48]",
             "experiment.correlation_factors=['L', 'dt_max']"]
    return excfg.load("configs/paper1/gen_gap.py:tiny", gen_gap.Settings, sweep + list(overrides))


def distinct(m):
    """A tau without ties inside any sweep block (a tie would switch the exact null off)."""
    return 1.0 + m["train_size"] / 1000 + m["seq_len"] / 100 + m["dt_max"]


def rows_of(exp, gap, tau=distinct):
    """One row per run of ``exp`` as ``run_sweep`` returns it, with ``gap(meta)`` (train MSE 1,
    test MSE 1 + gap) and ``tau(meta)``."""
    out = []
    for run in gen_gap.make_runs(exp, match=False):
        g = float(gap(run.meta))
        out.append({"run_id": run.run_id, "meta": run.meta, "trained": True,
                    "result": dict(step=20, train_mse=1.0, test_mse=1.0 + g, gap=g,
                                   tau=float(tau(run.meta)))})
    return out


def claim(claims, start):
    return next(c for c in claims if c.text.startswith(start))


def number(text, after):
    """The signed number that follows ``after`` in ``text``."""
    return float(re.search(re.escape(after) + r"([+-][0-9.]+)", text).group(1))


def test_runs_share_the_base_point_and_the_dt_max_runs_train_with_the_lambdas():
    exp = load()  # n {16, 32, 48}, L {16, 32, 48}, dt_max {0.01, 0.1, 1}; base n 32, L 32
    runs = gen_gap.make_runs(exp, match=False)
    ids = [r.run_id for r in runs]
    assert len(ids) == len(set(ids)) == 18
    assert {i for i in ids if "_s0" in i} == {
        "mean_var_n32_measure_lam0_s0", "mean_var_n32_measure_lam1_s0",
        "mean_var_n32_kernel_l2_lam1_s0", "mean_var_n16_measure_lam0_s0",
        "mean_var_n48_measure_lam0_s0", "mean_var_n32_L16_measure_lam0_s0",
        "mean_var_n32_L48_measure_lam0_s0", "mean_var_n32_dt0.01_measure_lam0_s0",
        "mean_var_n32_dt1_measure_lam0_s0"}
    by_id = {r.run_id: r for r in runs}
    for run in runs:  # one seed: one data draw and one init
        assert run.cfg.seed == run.cfg.data["seed"] == run.meta["seed"]
    assert by_id["mean_var_n32_L48_measure_lam0_s1"].cfg.data["seq_len"] == 48
    assert by_id["mean_var_n32_dt1_measure_lam0_s1"].cfg.model.ssm.dt_max == 1.0
    assert by_id["mean_var_n48_measure_lam0_s1"].cfg.data["num_train"] == 48
    # dt_max is init-only: with it as a member key those runs join the lambda group
    groups = sweeps.vector_groups(runs, 0, ("model.ssm.dt_max",))
    first = next(g for g in groups if g[0].run_id == "mean_var_n32_measure_lam0_s0")
    assert {r.run_id for r in first} == {
        f"mean_var_n32{t}_measure_lam{lam}_s{s}" for s in (0, 1)
        for t, lam in (("", 0), ("", 1), ("_dt0.01", 0), ("_dt1", 0))}
    assert len(sweeps.vector_groups(runs)) == len(groups) + 2  # without it, a group per dt_max
    with pytest.raises(ValueError, match="init-only"):
        sweeps.vector_groups(runs, 0, ("data.seq_len",))


def test_execute_groups_the_dt_max_runs_with_the_lambdas(monkeypatch):
    exp = load()
    seen = {}

    def stop(runs, directory, evaluate, desc, bar, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop before training")

    monkeypatch.setattr(gen_gap.sweeps, "run_sweep", stop)
    with pytest.raises(RuntimeError, match="stop before training"):
        gen_gap.execute(exp, "unused", [], None)
    runs = gen_gap.make_runs(exp, match=False)
    groups = sweeps.vector_groups(runs, seen["max_members"], seen["member_keys"])
    assert any({"mean_var_n32_measure_lam1_s0", "mean_var_n32_dt1_measure_lam0_s0"}
               <= {r.run_id for r in g} for g in groups)


def test_bad_sweeps_are_one_line_errors():
    for override, needle in [("experiment.size_sweep=[16, 32]", "at least 3 distinct"),
                             ("experiment.length_sweep=[16, 16, 32]", "at least 3 distinct"),
                             ("experiment.correlation_factors=['width']", "width_sweep"),
                             ("experiment.sweep_processes=['ou']", "not in"),
                             ("experiment.gap_margin=0", "gap_margin")]:
        with pytest.raises(ConfigError, match=needle):
            load(override)


def test_gap_claims_pool_relative_reductions_over_cells_by_hand():
    """Two processes; gaps in units of each cell's baseline gap, pooled by DerSimonian-Laird."""
    exp = load("experiment.processes=['white_noise', 'mean_var']", "experiment.num_seeds=3",
               "experiment.size_sweep=[]", "experiment.length_sweep=[]",
               "experiment.dt_max_sweep=[]", "experiment.correlation_factors=[]")
    base = {"white_noise": 10.0, "mean_var": 4.0}
    # reductions: white_noise 1, 2, 3 (0.1, 0.2, 0.3 of 10); mean_var 0.2, 0.4, 0.6 (0.05,
    # 0.1, 0.15 of 4); kernel_l2 gaps half-way between the baseline and the regularizer
    step = {"white_noise": 1.0, "mean_var": 0.2}

    def gap(m):
        cut = step[m["process"]] * (m["seed"] + 1) if m["reg_lambda"] > 0 else 0.0
        return base[m["process"]] - (cut if m["penalty"] == "measure" else cut / 2)

    summary = gen_gap.aggregate(exp, rows_of(exp, gap))
    claims = gen_gap.claims(exp, summary)
    assert [c.text for c in claims] == [
        "The regularizer (9) reduces the generalization gap",
        "The data-dependent regularizer (9) lowers the gap more than the data-independent "
        "kernel_l2 penalty at matched strength"]
    # by hand: cell means 0.2 and 0.1, standard errors 0.1/sqrt(3) and 0.05/sqrt(3);
    # w = 300, 1200; fixed mean 0.12; Q = 300*0.08^2 + 1200*0.02^2 = 2.4;
    # tau2 = (2.4 - 1) / (1500 - (300^2 + 1200^2)/1500) = 1.4/480;
    # w* = 1/(1/300 + tau2) = 160, 1/(1/1200 + tau2) = 800/3; mean = (32 + 80/3) / (1280/3)
    mean = (32 + 80 / 3) / (1280 / 3)
    se = 1 / math.sqrt(1280 / 3)
    assert mean == pytest.approx(0.1375)
    reg = claims[0]
    assert reg.verdict == "reproduced"
    assert number(reg.ours, "pooled ") == pytest.approx(100 * mean, abs=0.05)
    assert number(reg.ours, "% [") == pytest.approx(100 * (mean - 1.959964 * se), abs=0.005)
    assert "2 cells" in reg.ours and "equivalence margin 10%" in reg.rule
    assert "primary metric: the gap" in reg.rule and "random-effects" in reg.rule
    # regularizer vs kernel_l2: half the reductions, same baseline: the pooled mean halves
    assert claims[1].verdict == "reproduced"
    assert number(claims[1].ours, "pooled ") == pytest.approx(100 * mean / 2, abs=0.05)
    assert summary["table"][0]["baseline_gap"] == pytest.approx(10.0)


def test_one_cell_uses_the_paired_t_interval_and_the_margin():
    exp = load("experiment.num_seeds=3", "experiment.penalties=['measure']",
               "experiment.size_sweep=[]", "experiment.length_sweep=[]",
               "experiment.dt_max_sweep=[]", "experiment.correlation_factors=[]")
    # baseline gap 4 in every seed; reductions 0.2, 0.4, 0.6 = 5%, 10%, 15% of 4
    gap = lambda m: 4.0 - (0.2 * (m["seed"] + 1) if m["reg_lambda"] > 0 else 0.0)
    c = claim(gen_gap.claims(exp, gen_gap.aggregate(exp, rows_of(exp, gap))), "The regularizer")
    # by hand: mean 10%, sd 5%, se 5/sqrt(3); t(0.975, 2) = 4.3027 -> [-2.42, +22.42];
    # t(0.95, 2) = 2.9200 -> [+1.57, +18.43] is not inside +-10%: inconclusive
    assert c.verdict == "inconclusive"
    assert "paired +10.00% [-2.42, +22.42] (95%), [+1.57, +18.43] (90%)" in c.ours
    assert "one cell: 95% t-interval" in c.rule
    # reductions 1%, 2%, 3%: the 90% interval [+0.31, +3.69] lies inside +-10%
    gap = lambda m: 4.0 - (0.04 * (m["seed"] + 1) if m["reg_lambda"] > 0 else 0.0)
    c = claim(gen_gap.claims(exp, gen_gap.aggregate(exp, rows_of(exp, gap))), "The regularizer")
    assert c.verdict == "not reproduced" and "[+0.31, +3.69] (90%)" in c.ours
    # no positive baseline gap: nothing to reduce, the cell is left out
    c = claim(gen_gap.claims(exp, gen_gap.aggregate(exp, rows_of(exp, lambda m: -1.0))),
              "The regularizer")
    assert c.verdict == "inconclusive" and "left out" in c.ours


def test_tau_tracks_the_gap_within_seed_blocks_not_between_seeds():
    """Seed s shifts tau and the gap together by 10 s (the confound the review found); within
    every (seed, factor) block tau rises while the gap falls: Kendall within blocks says
    'not reproduced', a correlation over all runs would say the opposite."""
    exp = load("experiment.num_seeds=3")
    rank = {16: 0, 32: 1, 48: 2, 0.01: 0, 0.1: 1, 1.0: 2}

    def k(m):  # the rank of the factor that differs from the base point (1 at the base)
        for key, base in (("seq_len", 32), ("dt_max", 0.1), ("train_size", 32)):
            if m[key] != base:
                return rank[m[key]]
        return 1

    summary = gen_gap.aggregate(exp, rows_of(exp, gap=lambda m: 10.0 * m["seed"] + 5 - k(m),
                                             tau=lambda m: 10.0 * m["seed"] + k(m)))
    c = claim(gen_gap.claims(exp, summary), "The measure tau tracks")
    # 3 seeds x 2 factors = 6 blocks of 3 runs, every pair discordant: S = -18, exact
    # p(S <= -18) = (1/6)^6
    assert c.verdict == "not reproduced"
    assert "Kendall tau -1.00 within 6 blocks (18 pairs)" in c.ours
    row = next(r for r in summary["correlation"] if r["in_claim"] and r["process"] == "all")
    assert row["p_less"] == pytest.approx(6.0 ** -6) and row["exact"]
    assert "differ in one factor (L in {16, 32, 48}, dt_max in {0.01, 0.1, 1}" in c.rule
    # the n sweep is reported per factor but is not in the claim
    assert any(r["factors"] == "n" and not r["in_claim"] for r in summary["correlation"])


def test_gap_vs_n_direction_and_exponent_by_hand():
    exp = load("experiment.penalties=['measure']")
    # gap = c_seed * n^-1/2 exactly (times a factor of L and dt_max, constant over the n
    # sweep, so the other sweeps have no ties): exponent -0.5 in every seed
    other = lambda m: 1 + m["seq_len"] / 100 + m["dt_max"]
    summary = gen_gap.aggregate(exp, rows_of(
        exp, lambda m: (3.0 + m["seed"]) * m["train_size"] ** -0.5 * other(m)))
    c = claim(gen_gap.claims(exp, summary), "The generalization gap decreases with")
    # 2 seed blocks of 3 sizes, every pair concordant for (n, -gap): p = (1/6)^2 < 0.05
    assert c.verdict == "reproduced"
    assert "Kendall tau(n, -gap) +1.00 within 2 blocks (6 pairs), one-sided p 0.028" in c.ours
    exps = [s["exponent"] for s in summary["slopes"] if s["factor"] == "n"]
    assert exps == pytest.approx([-0.5, -0.5])
    assert "exponent of the gap in n -0.5" in c.ours
    # a gap that rises with n: not reproduced
    summary = gen_gap.aggregate(exp, rows_of(exp, lambda m: m["train_size"] ** 0.5 * other(m)))
    assert claim(gen_gap.claims(exp, summary), "The generalization gap decreases").verdict \
        == "not reproduced"


def test_gap_vs_length_exponent_bound_by_hand():
    exp = load("experiment.num_seeds=3", "experiment.penalties=['measure']")

    other = lambda m: 1 + m["train_size"] / 100 + m["dt_max"]  # constant over the L sweep

    def claim_for(exponents):
        gap = lambda m: 2.0 * m["seq_len"] ** exponents[m["seed"]] * other(m)
        summary = gen_gap.aggregate(exp, rows_of(exp, gap))
        return claim(gen_gap.claims(exp, summary), "The generalization gap grows at most")

    # exponents 0.1, 0.15, 0.2: mean 0.15, se 0.05/sqrt(3); t = -0.35/se = -12.124 with 2
    # degrees of freedom: p = (1 - |t|/sqrt(t^2 + 2)) / 2 = 0.00338 < 0.05
    t_stat = -0.35 / (0.05 / math.sqrt(3))
    p = (1 - abs(t_stat) / math.sqrt(t_stat ** 2 + 2)) / 2
    c = claim_for([0.1, 0.15, 0.2])
    assert c.verdict == "reproduced" and f"p(< 0.5) {p:.2g}" in c.ours
    assert "our rule" in c.rule and "below 0.5" in c.rule
    assert claim_for([0.9, 1.0, 1.1]).verdict == "not reproduced"  # about linear in L
    assert claim_for([0.3, 0.5, 0.7]).verdict == "inconclusive"
    # a seed whose gap is not positive has no exponent and is left out
    gap = lambda m: (-1.0 if m["seed"] == 0 else 2.0) * m["seq_len"] ** 0.1 * other(m)
    summary = gen_gap.aggregate(exp, rows_of(exp, gap))
    c = claim(gen_gap.claims(exp, summary), "The generalization gap grows at most")
    assert "2 of 3 seeds with positive gaps" in c.ours


def test_exponent_and_one_sided_t():
    assert gen_gap.exponent([16, 32, 64], [4.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert math.isnan(gen_gap.exponent([16, 32, 64], [4.0, 0.0, 1.0]))
    below, above = gen_gap.one_sided_t([0.1, 0.15, 0.2], 0.5)
    assert below + above == pytest.approx(1.0) and below < 0.01
    assert gen_gap.one_sided_t([0.2, 0.2], 0.5) == (0.0, 1.0)
    assert all(math.isnan(p) for p in gen_gap.one_sided_t([0.2], 0.5))
