"""`ssm-jax reproduce`: one plan, one progress bar, REPORT.md with a verdict per claim, finished
work reused; the verdict helpers."""

import math
import os
import subprocess
import sys

import pytest

from ssm_jax.experiments.claims import (Claim, all_verdict, claims_table, interval_verdict, read_claims,
                                threshold_verdict, write_claims)
from tests.experiments.conftest import REPO


def run_reproduce(workdir, *args, cache=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    env.pop("XLA_FLAGS", None)
    if cache:
        env["SSM_JAX_COMPILATION_CACHE"] = cache
    return subprocess.run([sys.executable, "-m", "ssm_jax.cli", "reproduce", "--workdir",
                           str(workdir), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_reproduce_writes_the_report_and_reuses_finished_work(tmp_path, xla_cache):
    proc = run_reproduce(tmp_path, "--paper", "1", "--scale", "quick", "--only", "output_scale",
                         cache=xla_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (tmp_path / "REPORT.md").read_text()
    assert "## Paper 1: Liu & Li" in report and "### output_scale (scale `quick`)" in report
    assert "| claim | paper | ours | verdict |" in report
    # the four verdicts are counted apart, per paper and over the report
    assert "**Summary:** 8 claims: " in report and "consistent (reconstruction check)" in report
    assert "## Paper 1: Liu & Li" in report and "\n\n8 claims: " in report
    # the SSM output of the theorem's model is what the theorem bounds: the covariance rule
    # equalizes it across patterns by construction (a reconstruction check)
    ssm_line = next(line for line in report.splitlines() if "output scale of an SSM" in line
                    and "theorem model" in line and "rule 'covariance'" in line)
    assert "**consistent (reconstruction check)**" in ssm_line
    assert "spread over patterns /" in ssm_line and "bootstrap interval" in ssm_line
    for link in ("table.md", "reduction.csv", "spread.csv", "output_scale.png"):
        assert f"(paper1/output_scale/{link})" in report
        assert (tmp_path / "paper1" / "output_scale" / link).exists()
    assert "reproduce (quick)" in proc.stderr or "paper 1: output_scale" in proc.stderr  # the bar
    scale, claims = read_claims(tmp_path / "paper1" / "output_scale" / "claims.json")
    assert scale == "quick" and len(claims) == 8  # (paper, covariance) x (theorem, deep_2) x (ssm, out)
    # unknown experiment names and scales are one-line errors before any compute
    bad = run_reproduce(tmp_path, "--paper", "1", "--only", "nope")
    assert bad.returncode == 2 and "unknown experiment(s) ['nope']" in bad.stderr


def test_verdict_rules():
    assert interval_verdict(0.1, 0.5) == "reproduced"
    assert interval_verdict(-0.5, -0.1) == "not reproduced"
    assert interval_verdict(-0.1, 0.5) == "inconclusive"
    assert interval_verdict(math.nan, 1.0) == "inconclusive"
    rule = lambda v: threshold_verdict(v, lambda x: x >= 2, lambda x: x <= 1)
    assert [rule(v) for v in (3.0, 0.5, 1.5, math.nan)] == [
        "reproduced", "not reproduced", "inconclusive", "inconclusive"]
    assert all_verdict(["reproduced", "reproduced"]) == "reproduced"
    assert all_verdict(["reproduced", "inconclusive"]) == "inconclusive"
    assert all_verdict(["reproduced", "not reproduced"]) == "not reproduced"
    with pytest.raises(ValueError, match="verdict must be one of"):
        Claim(1, "x", "t", "p", "o", "maybe", "r")


def test_effect_verdict_with_an_equivalence_margin_and_the_counts():
    from ssm_jax.experiments.claims import CONSISTENT, effect_verdict, verdict_counts

    assert effect_verdict(0.1, 0.5, 0.2) == "reproduced"
    assert effect_verdict(-0.5, -0.1, 0.2) == "not reproduced"
    # inside the margin: no effect larger than it
    assert effect_verdict(-0.05, 0.1, 0.2) == "not reproduced"
    assert effect_verdict(-0.3, 0.1, 0.2) == "inconclusive"  # reaches past -margin
    assert effect_verdict(-0.3, 0.1, 0.2, eq_low=-0.1, eq_high=0.05) == "not reproduced"
    claims = [Claim(1, "x", "t", "p", "o", v, "r") for v in
              ("reproduced", "reproduced", "inconclusive", CONSISTENT)]
    assert verdict_counts(claims) == ("4 claims: 2 reproduced, 0 not reproduced, 1 inconclusive, "
                                      "1 consistent (reconstruction check)")


def test_claims_round_trip_and_table(tmp_path):
    c = Claim(3, "exp", "a | b", "0.5", "0.4 ± 0.1", "inconclusive", "CI contains 0", ("t.md",))
    write_claims(str(tmp_path), [c], scale="cpu")
    assert read_claims(str(tmp_path / "claims.json")) == ("cpu", [c])
    table = claims_table([c])
    assert "| a \\| b | 0.5 | 0.4 ± 0.1 | **inconclusive** (CI contains 0) |" in table


def test_paired_effect_equivalence_agrees_with_tost():
    """The 'no effect larger than the margin' verdict of paired_effect is the TOST of
    experiments/stats.py at level 1 - confidence (a significant effect smaller than the margin
    still has its sign: reproduced)."""
    import numpy as np

    from ssm_jax.experiments.claims import paired_effect
    from ssm_jax.experiments.stats import tost

    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        d = rng.normal(rng.uniform(-0.02, 0.02), rng.uniform(0.001, 0.02), size=rng.integers(3, 12))
        verdict, ours, rule = paired_effect(list(d), 0.01)
        equivalent = tost(d, 0.01)["p"] < 0.05
        if equivalent:  # no effect beyond the margin (unless the small effect is significant)
            assert verdict in ("not reproduced", "reproduced")
        seen.add((verdict, equivalent))
        assert "equivalence margin 0.01" in rule
    assert ("not reproduced", True) in seen and ("inconclusive", False) in seen
    assert ("reproduced", False) in seen


def test_cells_verdict_holm_on_both_sides():
    from ssm_jax.experiments.claims import cells_verdict

    assert cells_verdict([0.001, 0.02], [0.99, 0.9], 0.05)[0] == "reproduced"  # 0.002, 0.02
    assert cells_verdict([0.001, 0.04], [0.99, 0.9], 0.05)[0] == "reproduced"  # 0.002, 0.04
    assert cells_verdict([0.03, 0.04], [0.9, 0.9], 0.05)[0] == "inconclusive"  # 0.06, 0.06
    # one cell against at raw p 0.03: with 3 cells Holm makes it 0.09, not a contradiction
    assert cells_verdict([0.01, 0.5, 0.5], [0.99, 0.03, 0.5], 0.05)[0] == "inconclusive"
    assert cells_verdict([0.01, 0.5, 0.5], [0.99, 0.01, 0.5], 0.05)[0] == "not reproduced"
    verdict, text = cells_verdict([0.01], [0.99], 0.05)
    assert verdict == "reproduced" and "Holm-adjusted" in text
