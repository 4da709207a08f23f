"""Experiment 1 (output scale at initialization) end to end at the tiny scale."""

import json

from tests.experiments.conftest import assert_ok, assert_png, read_csv, run_experiment

RULES = ("none", "paper", "covariance")


def test_output_scale_tiny(tmp_path, xla_cache):
    proc = run_experiment("output_scale", "tiny", tmp_path, cache=xla_cache)
    assert_ok(proc)

    rows = read_csv(tmp_path / "table.csv")
    cases = [(m, L, p) for m in ("theorem", "deep_2") for L in ("32", "64")
             for p in ("white_noise", "brownian")]
    assert [(r["model"], r["L"], r["pattern"]) for r in rows] == cases
    for r in rows:
        for q in ("ssm", "out"):
            for rule in RULES:
                assert float(r[f"{q}_{rule}"]) > 0
                assert f"{q}_{rule}_std" in r

    spread = read_csv(tmp_path / "spread.csv")
    assert len(spread) == 2 * 2 * 2 * len(RULES)  # models x lengths x quantities x rules
    by = {(s["model"], s["L"], s["quantity"], s["rule"]): s for s in spread}
    # the effect, not only the plumbing: on the theorem's model white noise and Brownian
    # motion differ > 5x in output scale without the rule; the rule (on a batch of each
    # pattern) shrinks that spread, most of all with the covariance measure (scale ~1)
    for L in ("32", "64"):
        none = float(by["theorem", L, "ssm", "none"]["max_over_min"])
        assert none > 5
        for rule in ("paper", "covariance"):
            assert float(by["theorem", L, "ssm", rule]["max_over_min"]) < none / 2
        assert float(by["theorem", L, "ssm", "covariance"]["max_over_min"]) < 1.5

    raw = read_csv(tmp_path / "raw.csv")
    assert len(raw) == 2 * 2 * 2 * len(RULES)  # models x lengths x patterns x rules, one seed

    md = (tmp_path / "table.md").read_text()
    assert "| model | L | pattern | ssm (none) | ssm (paper) | ssm (covariance) | out (none)" in md
    assert "## Spread over patterns" in md
    assert_png(tmp_path / "output_scale.png")
    assert json.loads((tmp_path / "config.json").read_text())["experiment"]["name"] == "output_scale_tiny"
    assert "| model | L | pattern |" in proc.stdout  # the table is printed
