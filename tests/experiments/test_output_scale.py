"""Experiment 1 (output scale at initialization) end to end at the tiny scale."""

import json

from tests.experiments.conftest import assert_ok, assert_png, read_csv, run_experiment

RULES = ("none", "paper", "covariance")


def test_output_scale_tiny(tmp_path, xla_cache):
    proc = run_experiment("output_scale", "tiny", tmp_path, cache=xla_cache)
    assert_ok(proc)

    rows = read_csv(tmp_path / "table.csv")
    assert [(r["depth"], r["pattern"]) for r in rows] == [
        ("1", "white_noise"), ("1", "brownian"), ("2", "white_noise"), ("2", "brownian")]
    for r in rows:
        for q in ("ssm", "out"):
            for rule in RULES:
                assert float(r[f"{q}_{rule}"]) > 0
                assert f"{q}_{rule}_std" in r

    spread = read_csv(tmp_path / "spread.csv")
    assert len(spread) == 2 * 2 * len(RULES)  # depths x quantities x rules
    by = {(s["depth"], s["quantity"], s["rule"]): s for s in spread}
    # white noise and Brownian motion differ ~30x in SSM output scale without the rule;
    # the rule (on a batch of each pattern) brings them together
    assert float(by["1", "ssm", "none"]["max_over_min"]) > 5
    for rule in ("paper", "covariance"):
        assert float(by["1", "ssm", rule]["max_over_min"]) < float(by["1", "ssm", "none"]["max_over_min"])

    raw = read_csv(tmp_path / "raw.csv")
    assert len(raw) == 2 * 2 * len(RULES)  # depths x patterns x rules, one seed

    md = (tmp_path / "table.md").read_text()
    assert "| depth | pattern | ssm (none) | ssm (paper) | ssm (covariance) | out (none)" in md
    assert "## Spread over patterns" in md
    assert_png(tmp_path / "output_scale.png")
    assert json.loads((tmp_path / "config.json").read_text())["experiment"]["name"] == "output_scale_tiny"
    assert "| depth | pattern |" in proc.stdout  # the table is printed
