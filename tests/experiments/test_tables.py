"""Table helpers: mean ± std, intervals, markdown and CSV."""

import math

import numpy as np
import pytest

from ssm_jax.experiments import tables


def test_tables(tmp_path):
    assert tables.mean_std([1.0, 3.0]) == (2.0, pytest.approx(2 ** 0.5))
    assert tables.mean_std([2.0]) == (2.0, 0.0)
    assert tables.pm(0.12345, 0.01) == "0.123 ± 0.01"
    rows = [{"a": 1, "b": 0.5}, {"a": 2, "b": float("nan")}]
    assert tables.markdown_table(rows, ["a", "b"]) == "| a | b |\n|---|---|\n| 1 | 0.5 |\n| 2 | - |"
    path = tables.write_csv(str(tmp_path / "t.csv"), rows, ["a", "b"])
    assert open(path).read().splitlines() == ["a,b", "1,0.5", "2,nan"]


def test_t_interval_against_the_formula():
    from scipy.stats import t

    values = [1.0, 2.0, 4.0, 7.0]
    mean, lo, hi = tables.t_interval(values, 0.9)
    sd = (sum((v - 3.5) ** 2 for v in values) / 3) ** 0.5
    half = t.ppf(0.95, 3) * sd / 2
    assert (mean, lo, hi) == pytest.approx((3.5, 3.5 - half, 3.5 + half))
    assert tables.t_interval([1.0])[1] != tables.t_interval([1.0])[1]  # NaN with one value


def test_sign_test_worked_by_hand():
    from ssm_jax.experiments.tables import sign_test

    assert sign_test(5, 5)[0] == pytest.approx(1 / 32)  # all five below: (1/2)^5
    assert sign_test(4, 5)[0] == pytest.approx(6 / 32)  # P(X >= 4) = (5 + 1) / 32
    assert sign_test(0, 5)[1] == pytest.approx(1 / 32)
    assert all(math.isnan(p) for p in sign_test(0, 0))


def test_bootstrap_interval_against_a_loop_written_here():
    from ssm_jax.experiments.tables import bootstrap_interval

    values = [0.3, -0.1, 0.05, 0.2, 0.0, 0.15, None, float("nan")]
    point, low, high = bootstrap_interval(values, resamples=500, seed=3)
    v = np.array([0.3, -0.1, 0.05, 0.2, 0.0, 0.15])
    rng = np.random.default_rng(3)
    draws = rng.choice(v, size=(500, 6), replace=True)
    meds = sorted(float(np.median(d)) for d in draws)
    assert point == pytest.approx(np.median(v))
    assert (low, high) == pytest.approx(tuple(np.quantile(meds, [0.025, 0.975])))
    assert low <= point <= high
    assert bootstrap_interval([1.0, 1.0, 1.0])[1:] == (1.0, 1.0)
