"""The verdict statistics (experiments/stats.py), each against a case worked by hand here and
against scipy where scipy has the function."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from ssm_jax.experiments import stats


def test_holm_worked_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.04*1, 0.06) = 0.06
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = stats.holm([0.02, float("nan")])  # NaN is not counted as a test
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1])


def test_tost_against_two_one_sided_t_tests():
    d = np.array([0.2, -0.1, 0.05, 0.15, -0.05, 0.1])
    res = stats.tost(d, 0.3)
    lo = sps.ttest_1samp(d + 0.3, 0.0, alternative="greater").pvalue  # mean > -0.3
    hi = sps.ttest_1samp(d - 0.3, 0.0, alternative="less").pvalue  # mean < 0.3
    assert res["p_low"] == pytest.approx(lo) and res["p_high"] == pytest.approx(hi)
    assert res["p"] == pytest.approx(max(lo, hi)) and res["p"] < 0.05
    assert stats.tost(d, 0.05)["p"] > 0.05  # a margin below the spread: not equivalent
    # by hand: mean 0.5, se 0 -> outside a margin of 0.4, inside one of 0.6
    assert stats.tost([0.5, 0.5, 0.5], 0.4)["p"] == 1.0
    assert stats.tost([0.5, 0.5, 0.5], 0.6)["p"] == 0.0
    assert math.isnan(stats.tost([0.1], 1.0)["p"])
    with pytest.raises(ValueError, match="margin"):
        stats.tost(d, 0.0)


def test_kendall_null_worked_by_hand():
    # permutations of 3 have 0, 1, 1, 2, 2, 3 inversions: S = 3 - 2 I
    null = stats.kendall_null(3)
    assert null == pytest.approx({3: 1 / 6, 1: 2 / 6, -1: 2 / 6, -3: 1 / 6})
    assert sum(stats.kendall_null(7).values()) == pytest.approx(1.0)


def test_blocked_kendall_one_block_equals_scipy_exact():
    x = np.arange(8.0)
    y = np.array([0.3, 0.1, 0.5, 0.4, 0.9, 0.7, 0.6, 1.0])
    res = stats.blocked_kendall(x, y, np.zeros(8))
    ref = sps.kendalltau(x, y, method="exact")
    assert res["exact"] and res["tau"] == pytest.approx(ref.statistic)
    assert res["p"] == pytest.approx(ref.pvalue)


def test_blocked_kendall_combines_blocks_by_hand():
    # two blocks of 3 in perfect order: S = 3 + 3 = 6, the maximum; P = (1/6)^2
    x = [1, 2, 3, 1, 2, 3]
    y = [5, 6, 7, 0.1, 0.2, 0.3]  # the blocks' levels differ: pooled, tau would be lower
    res = stats.blocked_kendall(x, y, [0, 0, 0, 1, 1, 1])
    assert res["S"] == 6 and res["tau"] == 1.0 and res["blocks"] == 2
    assert res["p_greater"] == pytest.approx(1 / 36)
    pooled = stats.blocked_kendall(x, y, [0] * 6)
    assert pooled["tau"] < 1.0  # the between-block order is what blocking removes
    # a between-block effect only: within each block no order, pooled a strong one
    xb, yb = [1, 2, 3, 4, 1, 2, 3, 4], [1, 3, 4, 2, 11, 13, 14, 12]
    xb = [v + 4 * (i >= 4) for i, v in enumerate(xb)]  # the second block sits higher in x too
    blocked = stats.blocked_kendall(xb, yb, [0] * 4 + [1] * 4)
    assert blocked["S"] == 4 and blocked["p"] > 0.2  # 2 per block (4 of 6 pairs concordant)
    assert sps.kendalltau(xb, yb).pvalue < 0.05


def test_blocked_kendall_with_ties_uses_a_permutation_null():
    x = [1, 1, 2, 3, 1, 2, 2, 3]
    y = [0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.6, 0.9]
    res = stats.blocked_kendall(x, y, [0, 0, 0, 0, 1, 1, 1, 1], draws=2000)
    assert not res["exact"] and res["S"] > 0 and 0 < res["p_greater"] < 0.2


def test_random_effects_worked_by_hand():
    # equal standard errors 1, estimates 1 and 3: fixed mean 2, Q = 2, sum w = 2, sum w^2 = 2
    # -> tau^2 = (2 - 1) / (2 - 1) = 1; weights 1/2 each: mean 2, se = 1/sqrt(1) = 1
    res = stats.random_effects([1.0, 3.0], [1.0, 1.0])
    assert res == pytest.approx(dict(mean=2.0, se=1.0, tau2=1.0, k=2))
    # homogeneous cells: tau^2 = 0 and the inverse-variance mean
    res = stats.random_effects([1.0, 1.0, 1.0], [1.0, 2.0, 2.0])
    assert res["tau2"] == 0.0 and res["mean"] == pytest.approx(1.0)
    assert res["se"] == pytest.approx(1 / math.sqrt(1 + 0.25 + 0.25))
    assert stats.random_effects([float("nan")], [1.0])["k"] == 0


def test_pooled_effect_worked_by_hand():
    """Two cells with equal spread: DerSimonian-Laird by hand, normal intervals, margin."""
    from scipy.stats import norm

    from ssm_jax.experiments.claims import pooled_effect

    a, b = [1.0, 2.0, 3.0], [2.0, 3.0, 4.0]  # means 2 and 3, se 1/sqrt(3) each
    se = 1 / math.sqrt(3)
    # Q = 2 * 3 * 0.25 = 1.5 > k - 1 = 1: tau2 = 0.5 / (6 - 18/6) = 1/6
    tau2 = 0.5 / 3.0
    pooled_se = 1 / math.sqrt(2 / (se ** 2 + tau2))
    verdict, ours, rule = pooled_effect([a, b], margin=0.5)
    low = 2.5 - norm.ppf(0.975) * pooled_se
    assert f"[{low:+.3g}," in ours and "2 cells" in ours
    assert verdict == "reproduced" and low > 0
    assert "equivalence margin 0.5" in rule
    # centred on 0 with a small spread: equivalent inside a wide margin, not inside a tight one
    near = [[-0.01, 0.01, 0.0], [0.01, -0.01, 0.0]]
    assert pooled_effect(near, margin=0.1)[0] == "not reproduced"
    assert pooled_effect(near, margin=1e-4)[0] == "inconclusive"
    assert pooled_effect([[-3.0, -2.0, -1.0]], margin=0.1)[0] == "not reproduced"


def test_interval_threshold_and_kendall_verdicts():
    from ssm_jax.experiments.claims import interval_threshold_verdict, kendall_verdict

    assert interval_threshold_verdict(2.1, 3.0, 2.0) == "reproduced"
    assert interval_threshold_verdict(1.9, 3.0, 2.0) == "inconclusive"  # the point alone would pass
    assert interval_threshold_verdict(1.0, 1.9, 2.0) == "not reproduced"
    assert interval_threshold_verdict(1.0, 1.9, 2.0, 1.5) == "inconclusive"
    assert interval_threshold_verdict(float("nan"), 3.0, 2.0) == "inconclusive"
    # three blocks of 4 perfectly ordered runs: S = 18, exact p = (1/24)^3
    x = [1, 2, 3, 4] * 3
    blocks = [0] * 4 + [1] * 4 + [2] * 4
    verdict, ours, r = kendall_verdict(x, x, blocks, 0.05)
    assert verdict == "reproduced" and r["S"] == 18
    assert r["p_greater"] == pytest.approx(24.0 ** -3)
    assert kendall_verdict(x, [-v for v in x], blocks, 0.05)[0] == "not reproduced"
