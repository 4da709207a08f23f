"""Paper 2's conditioning experiment: the continuous-time Gram against a numerical integral, GD
iteration counts and slopes against cases worked by hand, the claims' rules on synthetic
values, and the tiny scale end to end (all float64)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ssm_jax.experiments import runner
from ssm_jax.experiments.claims import CONSISTENT
from ssm_jax.experiments.paper2 import conditioning as cond


def settings(*overrides):
    return runner.load_module_config(cond, "tiny", overrides).settings


def test_continuous_gram_one_mode_by_hand():
    # w = -1/2 + i, B = 1: int e^{-t} cos^2 t = 1/(4a) + a/(4(a^2+b^2)) = 0.5 + 0.1,
    # int e^{-t} sin^2 t = 0.5 - 0.1, int e^{-t} cos t sin t = b/(4(a^2+b^2)) = 0.2
    G = cond.continuous_gram(np.array([-0.5 + 1j]))
    np.testing.assert_allclose(G, [[0.6, 0.2], [0.2, 0.4]], rtol=1e-14)
    # a real mode with real B has no imaginary feature: int e^{-2t} = 1/2, one feature
    np.testing.assert_allclose(cond.continuous_gram(np.array([-1.0 + 0j])), [[0.5]], rtol=1e-14)
    with pytest.raises(ValueError, match="Re w < 0"):
        cond.continuous_gram(np.array([0.0 + 1j]))


def test_continuous_gram_matches_numerical_integral_of_impulse_responses():
    rng = np.random.default_rng(0)
    w = np.concatenate([-rng.uniform(0.3, 1.5, 4) + 1j * rng.uniform(0, 6, 4), [-0.7 + 0j]])
    B = np.concatenate([rng.normal(size=4) + 1j * rng.normal(size=4), [1.3 + 0j]])
    # impulse responses on [0, 80] (decay >= e^-48 there), composite Simpson with 2^16 panels
    t = np.linspace(0.0, 80.0, 2 ** 16 + 1)
    phi = B[:, None] * np.exp(np.outer(w, t))
    feats = np.concatenate([phi.real, phi.imag[:4]])  # the real mode's Im phi is 0: dropped
    weights = np.ones_like(t)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    weights *= (t[1] - t[0]) / 3
    numeric = (feats * weights) @ feats.T
    G = cond.continuous_gram(w, B)
    order = list(range(5)) + list(range(5, 9))  # Re of 5 modes, Im of the 4 complex ones
    np.testing.assert_allclose(G, numeric[np.ix_(order, order)], rtol=1e-9, atol=1e-12)


def test_gd_iterations_by_hand_and_against_plain_gradient_descent():
    G = np.diag([1.0, 0.5])
    # step 1: the top mode is solved in one step; f_t = 0.5 * 0.25^t for c* = (1, 1),
    # f_0 = 1.5: 0.25^t <= 3e-3 first at t = 5. c* = (1, 0): one step.
    it = cond.gd_iterations(G, np.array([[1.0, 1.0], [1.0, 0.0]]), 1e-3, 1e9)
    np.testing.assert_array_equal(it, [5.0, 1.0])
    rng = np.random.default_rng(1)
    A = rng.normal(size=(6, 6)) + 1j * rng.normal(size=(6, 6))
    G = A @ A.conj().T + 0.05 * np.eye(6)
    c_star = rng.normal(size=6) + 1j * rng.normal(size=6)
    top = np.linalg.eigvalsh(G)[-1]
    f = lambda c: float(np.real((c - c_star).conj() @ G @ (c - c_star)))
    c, steps = np.zeros(6, complex), 0
    while f(c) > 1e-3 * f(np.zeros(6)):
        c = c - G @ (c - c_star) / top
        steps += 1
    assert cond.gd_iterations(G, c_star, 1e-3, 1e9)[0] == steps


def test_target_slopes_by_hand():
    kappa = np.array([1.0, math.e, math.e ** 2, 1e20, 10.0])
    iters = np.array([[1.0, 7.0], [math.e, 7.0], [math.e ** 2, 7.0], [5.0, 5.0], [1e9, 3.0]])
    slopes, used = cond.target_slopes(kappa, iters, max_kappa=1e12, cap=1e9)
    # rows 4 (kappa above max_kappa) and 5 (a capped count) are left out
    assert used == 3
    np.testing.assert_allclose(slopes, [1.0, 0.0], atol=1e-12)


def test_gd_claim_rule_on_synthetic_slopes():
    e = settings()
    # mean 0.2, sd 0.1, n 3: 95% t-interval 0.2 +- 4.303 * 0.1/sqrt(3) = [-0.048, 0.448]
    c = cond.gd_claim(e, np.array([0.1, 0.2, 0.3]), 10)
    assert c.verdict == "inconclusive" and "[-0.048, +0.448]" in c.ours
    assert "equivalence margin 0.1" in c.rule
    assert cond.gd_claim(e, np.array([0.30, 0.31, 0.32]), 10).verdict == "reproduced"
    assert cond.gd_claim(e, np.array([-0.30, -0.31, -0.32]), 10).verdict == "not reproduced"
    # inside the equivalence margin: no effect larger than the margin
    assert cond.gd_claim(e, np.array([0.01, 0.0, -0.01, 0.005]), 10).verdict == "not reproduced"


def test_tradeoff_claim_rule_on_synthetic_targets():
    e = settings("experiment.spacings=[0.1, 0.2, 0.5, 1.0, 2.0]", "experiment.alpha=0.05")
    s = np.array(e.spacings)
    kappa = 1 / s ** 4
    good = [dict(approx_error=s * (1 + 0.01 * i), kappa=kappa,
                 loss_after_budget=np.array([3.0, 1.0, 0.5, 2.0, 4.0])) for i in range(8)]
    trade = [dict(spacing=x, loss_after_budget=v) for x, v in zip(s, [3.0, 1.0, 0.5, 2.0, 4.0])]
    assert cond.tradeoff_claim(e, trade, good).verdict == "reproduced"
    # approximation error falling with the spacing contradicts the claim
    bad = [dict(t, approx_error=t["approx_error"][::-1]) for t in good]
    assert cond.tradeoff_claim(e, trade, bad).verdict == "not reproduced"
    # the best spacing at the edge for every target: contradicts "intermediate"
    edge = [dict(t, loss_after_budget=s.copy()) for t in good]
    assert cond.tradeoff_claim(e, trade, edge).verdict == "not reproduced"


def test_continuous_kappa_of_the_families():
    from ssm_jax.experiments.paper2.common import family_modes

    kap = {f: cond.continuous_kappa(family_modes(f, 8, real_part=-0.5, step=2 / 64, L=64))
           for f in ("lin", "dft", "clustered", "real")}
    assert kap["lin"] == pytest.approx(kap["dft"], rel=1e-12)  # Delta = 2/L: the same grid
    assert kap["lin"] < 10 and kap["clustered"] > 1e6 and kap["real"] > 1e6
    assert math.isnan(cond.continuous_kappa(family_modes("lin", 8, real_part=0.0)))


def test_family_claim_needs_both_arms():
    e = settings()
    row = lambda fam, re, k, kct: dict(input="white", modes=max(e.modes), delta="2/L",
                                       family=fam, real_part=re, kappa=k, kappa_ct=kct)
    good = [row("lin", 0.0, 1.05, math.nan), row("lin", -0.5, 6.0, 7.0),
            row("dft", 0.0, 1.05, math.nan), row("dft", -0.5, 6.0, 7.0),
            row("clustered", 0.0, 1e17, math.nan), row("clustered", -0.5, 1e17, 1e8),
            row("real", "own", 1e19, 1e19)]
    assert cond.family_claim(e, good).verdict == CONSISTENT
    # the continuous arm alone ordered the wrong way round makes it not reproduced
    bad = [dict(r, kappa_ct=1e9) if r["family"] == "lin" and r["real_part"] == -0.5 else r
           for r in good]
    assert cond.family_claim(e, bad).verdict == "not reproduced"


def test_settings_check_one_line_errors():
    from ssm_jax.options import OptionError

    with pytest.raises(OptionError, match="spacings"):
        settings("experiment.spacings=[0.1, 0.2]")
    with pytest.raises(OptionError, match="confidence"):
        settings("experiment.confidence=1.5")
