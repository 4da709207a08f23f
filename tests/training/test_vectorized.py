"""Vectorized members give the numbers of training them one by one; a diverging member stops
only itself; members must share the shape-determining config."""
import jax
import numpy as np
import pytest

from ssm_jax.training.checkpoint import load_variables
from ssm_jax.training.config import apply_overrides, default_config, parse_config
from ssm_jax.training.loop import train_and_evaluate
from ssm_jax.training.vectorized import load_member_params, train_members

from .test_paper3_recipe import paper_overrides


def base_config(extra=()):
    c = default_config()
    c.data.update(name="majority", seq_len=12, num_train=48, num_val=16, num_test=32, noise=0.1)
    apply_overrides(c, paper_overrides(["train.num_epochs=2", *extra]))
    return parse_config(c)


def test_members_match_one_by_one(tmp_path):
    base = base_config()
    members = [base.replace(**{"seed": 0, "data.seed": 0}),
               base.replace(**{"seed": 1, "data.seed": 1, "model.ssm.s_A": -0.05}),
               base.replace(**{"seed": 2, "data.seed": 0, "optim.lr": 0.003,
                               "optim.weight_decay": 1e-3})]
    dirs = [str(tmp_path / f"v{i}") for i in range(3)]
    reports = train_members(members, dirs)
    for i, cfg in enumerate(members):
        single = train_and_evaluate(cfg, str(tmp_path / f"s{i}"))
        want = load_variables(str(tmp_path / f"s{i}"), single["num_steps"], "last")["params"]
        got = load_member_params(dirs[i])
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)
        assert reports[i]["test"]["accuracy"] == pytest.approx(single["test"]["accuracy"], abs=1e-6)
        assert reports[i]["failed_step"] is None


def test_diverging_member_stops_only_itself(tmp_path):
    base = base_config()
    members = [base.replace(**{"seed": 0}), base.replace(**{"seed": 0, "optim.lr": 1e30})]
    dirs = [str(tmp_path / "ok"), str(tmp_path / "bad")]
    reports = train_members(members, dirs)
    assert reports[1]["failed_step"] is not None and reports[1]["failed_step"] <= 2
    assert reports[0]["failed_step"] is None
    single = train_and_evaluate(members[0], str(tmp_path / "single"))
    want = load_variables(str(tmp_path / "single"), single["num_steps"], "last")["params"]
    for a, b in zip(jax.tree.leaves(load_member_params(dirs[0])), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)


def test_members_must_share_shapes(tmp_path):
    base = base_config()
    with pytest.raises(ValueError, match="data.seq_len"):
        train_members([base, base.replace(**{"data.seq_len": 8})],
                      [str(tmp_path / "a"), str(tmp_path / "b")])
