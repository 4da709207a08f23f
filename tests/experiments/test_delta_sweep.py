"""Paper 2's trained Delta sweep (experiments/paper2/delta_sweep.py): the best-Delta estimate,
the exponent fit and its verdict on synthetic rows (worked by hand), and one tiny run."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
from scipy import stats as sps

from ssm_jax.experiments import runner
from ssm_jax.experiments.claims import RECONSTRUCTION, VERDICTS
from ssm_jax.experiments.paper2 import delta_sweep as ds


def test_refine_minimum_finds_the_vertex_between_grid_points():
    x = np.arange(5.0)
    # exact parabola with its vertex at 2.3: the grid minimum is x = 2, the fit moves it
    log_x, interior = ds.refine_minimum(x, (x - 2.3) ** 2)
    assert interior and log_x == pytest.approx(2.3, abs=1e-12)
    # a minimum at an end of the grid is censored (returned as is, not interior)
    assert ds.refine_minimum(x, -x) == (4.0, False)
    assert ds.refine_minimum(x, x) == (0.0, False)
    # NaN losses count as +inf; all NaN: no minimum
    log_x, interior = ds.refine_minimum(x, [np.nan, 1.0, 0.0, 1.0, np.nan])
    assert interior and log_x == pytest.approx(2.0)
    assert math.isnan(ds.refine_minimum(x, [np.nan] * 5)[0])


def test_fit_slope_by_hand():
    assert ds.fit_slope([0, 1, 2], [1, 3, 5]) == pytest.approx(2.0)
    assert ds.fit_slope([0, 1, 2], [0, 1, 0]) == pytest.approx(0.0)
    assert math.isnan(ds.fit_slope([1, 1], [0, 1]))


def test_exponent_verdict_worked_by_hand():
    # slopes -0.5, -0.4, -0.6: mean -0.5, sd 0.1, se 0.1/sqrt(3) = 0.057735;
    # 90% t (df 2): 2.919986 * se = 0.168587 -> [-0.6686, -0.3314] inside -0.5 +- 0.25
    verdict, mean, ci, eq = ds.exponent_verdict([-0.5, -0.4, -0.6], -0.5, 0.25, 0.95)
    assert verdict == "reproduced" and mean == pytest.approx(-0.5)
    assert eq == pytest.approx((-0.5 - 0.168587, -0.5 + 0.168587), abs=1e-5)
    # 95% t (df 2): 4.302653 * se = 0.248414 (scipy agrees)
    half = sps.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)
    assert half == pytest.approx(0.248414, abs=1e-6)
    assert ci == pytest.approx((-0.5 - half, -0.5 + half))
    # slopes 0, 0.1, -0.1: 95% interval [-0.2484, +0.2484] lies above -0.5 + 0.25 = -0.25
    assert ds.exponent_verdict([0.0, 0.1, -0.1], -0.5, 0.25, 0.95)[0] == "not reproduced"
    # slopes -0.5, 0, -1: sd 0.5 -> the intervals straddle the band: inconclusive
    assert ds.exponent_verdict([-0.5, 0.0, -1.0], -0.5, 0.25, 0.95)[0] == "inconclusive"
    assert ds.exponent_verdict([-0.5], -0.5, 0.25, 0.95)[0] == "inconclusive"


def _settings(**kw):
    base = dict(real_parts=(0.0,), lengths=(16, 64, 256), first_seed=0, num_seeds=2,
                deltas=tuple(2.0 ** k for k in range(-10, 1)))
    return types.SimpleNamespace(**{**base, **kw})


def synthetic_rows(e, exponent, prefactor=0.37, censor=None):
    """Test MSE with log MSE = (log Delta - log Delta*(L))^2, Delta* = prefactor L^exponent."""
    rows = []
    for L in e.lengths:
        target = math.log(prefactor) + exponent * math.log(L)
        for s in range(e.num_seeds):
            for d in e.deltas:
                loss = math.exp((math.log(d) - target) ** 2)
                if censor == (L, s):
                    loss = d  # increasing: minimum at the smallest Delta
                rows.append(dict(real_part=0.0, L=L, seed=s, delta=d, test_loss=loss))
    return rows


def test_best_deltas_recover_an_exponent_off_the_grid():
    # Delta* = 0.37 L^-0.3 lies between grid points (log2 = -2.63, -3.23, -3.83): the grid
    # alone gives a slope of -0.25; the refined minima recover -0.3 exactly
    e = _settings()
    best = ds.best_deltas(synthetic_rows(e, -0.3), e)
    assert all(b["interior"] for b in best)
    slopes, censored = ds.seed_slopes(best, 0.0)
    assert censored == [] and list(slopes) == [0, 1]
    assert all(v == pytest.approx(-0.3, abs=1e-9) for v in slopes.values())
    grid = [b for b in best if b["seed"] == 0]
    grid_slope = ds.fit_slope(np.log([b["L"] for b in grid]),
                              np.log([b["grid_best"] for b in grid]))
    assert grid_slope == pytest.approx(-0.25)


def test_censored_seeds_are_left_out():
    e = _settings(num_seeds=3)
    best = ds.best_deltas(synthetic_rows(e, -0.5, censor=(64, 1)), e)
    slopes, censored = ds.seed_slopes(best, 0.0)
    assert censored == [1] and sorted(slopes) == [0, 2]


def test_delta_sweep_tiny(tmp_path):
    module = ds
    exp = runner.load_module_config(module, "tiny")
    summary, claims = runner.run(module, exp, str(tmp_path))
    for f in ("table.md", "table.csv", "runs.csv", "best.csv", "claims.json", "delta_sweep.png"):
        assert (tmp_path / f).exists(), f
    rows = summary["rows"]
    e = exp.settings
    assert len(rows) == len(e.lengths) * len(e.deltas) * e.num_seeds
    assert all(np.isfinite(r["test_loss"]) for r in rows)
    # the swept Delta is the init: after a few steps every run is still near its own Delta
    for r in rows:
        assert r["delta_after"] == pytest.approx(r["delta"], rel=0.2)
    # the rule's Delta falls with L (like L^-1/2 times the sampling inflation of lambda_max)
    rule = summary["rule"]
    assert rule[16] > rule[32] > rule[64]
    [claim] = claims
    assert claim.paper_value == RECONSTRUCTION and claim.verdict in VERDICTS
    assert "equivalence margin" in claim.rule and "primary metric" in claim.rule


def test_delta_sweep_config_errors():
    from ssm_jax.training.config import ConfigError

    with pytest.raises(ConfigError, match="lengths"):
        runner.load_module_config(ds, "tiny", ["experiment.lengths=[16,32]"])
    with pytest.raises(ConfigError, match="deltas"):
        runner.load_module_config(ds, "tiny", ["experiment.deltas=[0.8,0.2,0.05]"])
