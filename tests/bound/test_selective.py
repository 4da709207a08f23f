"""Paper-3 bound terms against direct sums (float64)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssm_jax.bound.selective import (decay_sums, model_bound_report, selective_bound_terms,
                                     selective_norms, spectral_abscissa)


def direct(rho, T):
    return sum(rho ** t for t in range(T)), sum(t * rho ** t for t in range(T))


@pytest.mark.parametrize("rho", [0.3, 0.9, 0.999, 1 - 1e-7, 1.0, 1 + 1e-9, 1 + 1e-6, 1.001, 1.05])
@pytest.mark.parametrize("T", [1, 2, 7, 100, 1000])
def test_decay_sums_match_direct_sums(rho, T):
    S1, S2 = decay_sums(rho, T)
    d1, d2 = direct(rho, T)
    assert S1 == pytest.approx(d1, rel=1e-9, abs=1e-12)
    assert S2 == pytest.approx(d2, rel=1e-8, abs=1e-12)


def test_rho_one_is_exact_and_quadratic():
    for T in (1, 10, 1234):
        S1, S2 = decay_sums(1.0, T)
        assert S1 == T and S2 == T * (T - 1) / 2


def test_bound_terms_closed_forms_and_regimes():
    s_A, p, Bq, Bu, T = -0.1, 0.3, 1.5, 2.0, 50
    t = selective_bound_terms(s_A, p, Bq, Bu, T)
    Dmin = math.log1p(math.exp(p - Bq * Bu))
    assert t["Delta_min"] == pytest.approx(Dmin, rel=1e-12)
    assert t["M_Delta"] == pytest.approx(math.log1p(math.exp(p + Bq * Bu)), rel=1e-12)
    assert t["rho_A"] == pytest.approx((1 + math.exp(p - Bq * Bu)) ** s_A, rel=1e-12)
    d1, d2 = direct(t["rho_A"], T)
    assert t["S_1"] == pytest.approx(d1, rel=1e-10) and t["S_2"] == pytest.approx(d2, rel=1e-10)
    # s_A < 0: S_2 bounded in T; s_A = 0: T(T-1)/2; s_A > 0: grows faster than T^2
    stable = [selective_bound_terms(-0.5, 0.0, 1.0, 1.0, T)["S_2"] for T in (100, 1000, 10000)]
    assert stable[2] == pytest.approx(stable[1], rel=1e-6)
    assert selective_bound_terms(0.0, 0.0, 1.0, 1.0, 1000)["S_2"] == 1000 * 999 / 2
    unstable = [selective_bound_terms(0.1, 0.0, 1.0, 1.0, T)["S_2"] for T in (100, 200)]
    assert unstable[1] / unstable[0] > 4 * 5
    eta = selective_bound_terms(0.0, 0.0, 1.0, 1.0, 100, eta=0.01)
    assert eta["rho_A"] > 1


def test_norms_and_capacity():
    rng = np.random.default_rng(0)
    d, N = 3, 4
    params = dict(A=rng.normal(size=(d, N)) - 1, W_B=rng.normal(size=(N, d)),
                  W_C=rng.normal(size=(N, d)), q=rng.normal(size=(d,)), p=np.array([0.4]))
    w, emb = rng.normal(size=(d, 1)), rng.normal(size=(5, d))
    u = rng.normal(size=(2, 6, d))
    n = selective_norms(params, w, emb, u)
    assert n["s_A"] == params["A"].max()
    assert n["B_B"] == pytest.approx(np.linalg.svd(params["W_B"], compute_uv=False)[0])
    assert n["B_B_F"] == pytest.approx(np.sqrt((params["W_B"] ** 2).sum()))
    assert n["M_C"] == pytest.approx(sum(abs(x) for x in params["W_C"].ravel()))
    assert n["B_A"] == pytest.approx(max(abs(x) for x in params["A"].ravel()))
    assert n["B_u"] == pytest.approx(max(np.sqrt((r ** 2).sum()) for r in emb))
    assert n["max_u"] == pytest.approx(max(np.sqrt((u[i, t] ** 2).sum()) for i in range(2)
                                           for t in range(6)))
    t = selective_bound_terms(n["s_A"], n["p"], n["B_q"], n["B_u"], 20, norms=n)
    expected = (math.sqrt(d) * t["M_Delta"] * n["B_w"] * n["B_u"] ** 3 * n["B_B"] * n["B_C"]
                * n["B_A"] * t["S_2"])
    assert t["C_F"] == pytest.approx(expected, rel=1e-12)


def test_spectral_abscissa_real_and_complex():
    assert spectral_abscissa(np.array([[-1.0, 0.2], [-3.0, 0.1]])) == 0.2
    assert spectral_abscissa(np.array([-1 + 5j, 0.05 - 2j])) == 0.05


def test_model_report_from_a_sequence_model():
    from ssm_jax.layers import find_layers
    from ssm_jax.models import SequenceModel

    model = SequenceModel(num_outputs=1, d_model=4, n_layers=1, layer="selective",
                          ssm={"d_state": 2, "s_A": 0.05}, encoder="embedding", vocab_size=2,
                          norm="none", projection="none", residual=False, pooling="last",
                          head_bias=False)
    x = jnp.zeros((1, 5), jnp.int32)
    v = model.init(jax.random.key(0), x)
    rep = model_bound_report(v["params"], find_layers(model, x), T=5)
    assert rep["s_A"] == pytest.approx(0.05, abs=1e-6)
    assert {"rho_A", "S_1", "S_2", "C_F", "B_u", "B_w"} <= set(rep)
