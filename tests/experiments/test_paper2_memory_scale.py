"""Paper 2's memory-capacity and output-scale verdicts: the trained read-out's R^2 against a
case worked by hand, its bias correction against the population capacity, the pooled
equivalence rule, and the output-scale claims' bootstrap rules on synthetic fits (float64)."""
from __future__ import annotations

import numpy as np
import pytest

from ssm_jax.experiments import runner
from ssm_jax.experiments.claims import CONSISTENT
from ssm_jax.experiments.paper2 import memory, output_scale
from ssm_jax.experiments.paper2.common import family_modes


def test_trained_r2_by_hand():
    # L = 2, one feature z = x_0, three training sequences (1, 2), (2, 0), (0, 1):
    # w = (z.z)^-1 z^T X = (1/5) (5, 2) = (1, 0.4); R^2_test(s) = 2 (Q^T W)_ss - ||w_s||^2:
    # s = 0: 2 - 1 = 1, s = 1: 0 - 0.16 = -0.16; c = r / (n - r - 1) = 1: (R^2 + 1) / 2.
    Q = np.array([[1.0, 0.0]])
    X = np.array([[1.0, 2.0], [2.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(memory.trained_r2(Q, X, unbiased=False), [-0.16, 1.0])
    np.testing.assert_allclose(memory.trained_r2(Q, X), [0.42, 1.0])
    with pytest.raises(ValueError, match="train_sequences"):
        memory.trained_r2(Q, X[:2])


def test_population_capacity_is_the_rank_and_the_trained_one_is_unbiased():
    L, step = 64, 1 / 8
    for re, long_pop in ((0.0, 7.5), (-0.5, 0.2698)):
        Lam = family_modes("lin", 8, real_part=re)
        pop = memory.recall_r2(Lam, step, L)
        Q = memory.orthonormal_rows(memory.features(Lam, step, L))
        assert Q.shape[0] == 15 and pop.sum() == pytest.approx(15.0, abs=1e-9)  # Im of mode 0 = 0
        assert pop[32:].sum() == pytest.approx(long_pop, abs=1e-3)
        est = [memory.trained_r2(Q, np.random.default_rng(s).standard_normal((256, L)))
               for s in range(4)]
        long = np.array([r[32:].sum() for r in est])
        # unbiased: within 4 standard errors of the population value (uncorrected, the 32 long
        # delays would lose about c = 15/240 each: -2)
        assert abs(long.mean() - pop[32:].sum()) < 4 * long.std(ddof=1) / 2 + 0.05


def test_equivalence_verdict_rule_by_hand():
    # one cell, diffs (-0.1, 0, 0.1): se 0.0577; 90% normal interval +-1.645 se = +-0.095
    v, ours = memory.equivalence_verdict([[-0.1, 0.0, 0.1]], 0.5, 0.95)
    assert v == "reproduced" and "[-0.095, +0.095] (90%)" in ours
    assert memory.equivalence_verdict([[3.0, 3.1, 2.9]], 0.5, 0.95)[0] == "not reproduced"
    assert memory.equivalence_verdict([[-1.0, 0.0, 1.0]], 0.5, 0.95)[0] == "inconclusive"


def test_memory_claims_on_synthetic_seeds():
    e = runner.load_module_config(memory, "tiny", ()).settings
    seeds = [dict(L=L, seed=s, total_zero=15.0 + 0.01 * s, total_neg=15.0 - 0.01 * s,
                  long_zero=7.5 + 0.02 * s, long_neg=0.3 - 0.02 * s)
             for L in (32, 64) for s in range(3)]
    pop = [dict(L=64, delta="auto", real_part=0.0, capacity=15.0)]
    long_claim, total_claim = memory.claims(type("E", (), {"settings": e}),
                                            dict(seeds=seeds, summary=pop))
    assert long_claim.verdict == "reproduced" and "equivalence margin" in long_claim.rule
    assert total_claim.verdict == CONSISTENT and "equivalence margin" in total_claim.rule
    flat = [dict(r, long_zero=r["long_neg"] + 0.001 * (r["seed"] - 1)) for r in seeds]
    assert memory.claims(type("E", (), {"settings": e}),
                         dict(seeds=flat, summary=pop))[0].verdict == "not reproduced"


def fit(family, re, growth_auto, growth_logu, top_logu=0.0, top_delta=-0.5, predicted=-0.5,
        under=True):
    return dict(family=family, real_part=re, growth_auto=growth_auto,
                growth_loguniform=growth_logu, top_Ey2_auto=0.0, top_Ey2_loguniform=top_logu,
                under_bound=under, delta_exponent=top_delta, delta_exponent_top=top_delta,
                predicted=predicted)


def test_output_scale_claims_decide_with_bootstrap_intervals():
    e = runner.load_module_config(output_scale, "tiny", ()).settings
    E = type("E", (), {"settings": e})
    fams = ("white", "ar1_0.9", "ar1_0.99")
    good = [fit(f, 0.0, 2.0, 32.0) for f in fams] + [fit(f, -0.5, 1.0, 1.0, 0.01) for f in fams]
    claims = output_scale.claims(E, dict(fits=good))
    # every family: growth ratio 16 > 4 (degenerate bootstrap interval [16, 16]); |slope| 0.01;
    # exponent error 0
    assert [c.verdict for c in claims] == [CONSISTENT] * 3
    assert "x16 [x16, x16]" in claims[0].ours
    # one family above the bound is a counterexample
    above = [dict(r, under_bound=False) if r["family"] == "white" else r for r in good]
    assert output_scale.claims(E, dict(fits=above))[0].verdict == "not reproduced"
    # Re < 0 growing with L for every summable family; exponents off by 0.3 for every family
    grow = [dict(r, top_Ey2_loguniform=0.5, delta_exponent_top=-0.8) for r in good]
    assert [c.verdict for c in output_scale.claims(E, dict(fits=grow))[1:]] == \
        ["not reproduced", "not reproduced"]
    # one family of three off by 0.3: a resample's median is 0.3 when 2 or 3 of its 3 draws
    # are that family, probability 7/27 > 2.5%, so the interval is [0, 0.3]: inconclusive
    mixed = [dict(r, delta_exponent_top=-0.8) if r["family"] == "white" else r for r in good]
    v = output_scale.claims(E, dict(fits=mixed))[2]
    assert v.verdict == "inconclusive" and "[0.000, 0.300]" in v.ours
    # a single summable family cannot give an interval: inconclusive, never a verdict from a point
    one = [fit("white", 0.0, 2.0, 32.0), fit("white", -0.5, 1.0, 1.0, 0.01)]
    assert output_scale.claims(E, dict(fits=one))[1].verdict == "inconclusive"


def test_memory_settings_one_line_errors():
    from ssm_jax.options import OptionError

    with pytest.raises(OptionError, match="train_sequences"):
        runner.load_module_config(memory, "tiny", ["experiment.train_sequences=16"])
    with pytest.raises(OptionError, match="real_parts"):
        runner.load_module_config(memory, "tiny", ["experiment.real_parts=[-0.5, -1.0]"])
