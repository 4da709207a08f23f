"""Vectorized members give the numbers of training them one by one (paper 3's recipe; paper 1's
regularizer, init rule and BatchNorm); a diverging member stops only itself; a killed group
resumes; members must share the shape-determining config."""
import jax
import numpy as np
import pytest

from ssm_jax.training.checkpoint import load_variables
from ssm_jax.training.config import apply_overrides, default_config, parse_config
from ssm_jax.training.loop import train_and_evaluate
from ssm_jax.training.vectorized import train_members

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
        got = load_variables(dirs[i], None, "last")["params"]
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
    for a, b in zip(jax.tree.leaves(load_variables(dirs[0], None, "last")["params"]), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)


def test_members_must_share_shapes(tmp_path):
    base = base_config()
    with pytest.raises(ValueError, match="data.seq_len"):
        train_members([base, base.replace(**{"data.seq_len": 8})],
                      [str(tmp_path / "a"), str(tmp_path / "b")])


def paper1_config(**changes):
    """A tiny paper-1 run: one-layer S4D regression with BatchNorm, the tau regularizer."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_gap_cfg", "configs/paper1/gen_gap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config("tiny")
    del c.experiment
    c.data.update(num_train=32, process="white_noise_with_mean", mean_level=1.0)
    c.train.update(num_steps=6, log_every=2, eval_every=3, checkpoint_every=2, progress=False)
    return parse_config(c).replace(**changes)


def assert_same_params(got, want, rtol=2e-4, atol=2e-5):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def test_paper1_members_match_one_by_one(tmp_path):
    """Members differing in seed, regularizer weight and init rule: each equals its own run
    (final and best-validation checkpoints, report), and the regularizer changes the result."""
    members = [paper1_config(**{"seed": 0, "data.seed": 0, "bound.reg_lambda": 0.0}),
               paper1_config(**{"seed": 0, "data.seed": 0, "bound.reg_lambda": 0.5}),
               paper1_config(**{"seed": 1, "data.seed": 1, "bound.reg_lambda": 0.1,
                                "bound.init_scaling": True})]
    dirs = [str(tmp_path / f"v{i}") for i in range(3)]
    reports = train_members(members, dirs)
    for i, cfg in enumerate(members):
        single = train_and_evaluate(cfg, str(tmp_path / f"s{i}"))
        for which in ("last", "best"):
            want = load_variables(str(tmp_path / f"s{i}"), None, which)
            got = load_variables(dirs[i], None, which)
            assert_same_params(got["params"], want["params"])
            assert_same_params(got["batch_stats"], want["batch_stats"])
        assert reports[i]["best_step"] == single["best_step"]
        assert reports[i]["test"]["loss"] == pytest.approx(single["test"]["loss"], rel=1e-4)
    p0 = load_variables(dirs[0], None, "last")["params"]
    p1 = load_variables(dirs[1], None, "last")["params"]
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
               for a, b in zip(jax.tree.leaves(p0), jax.tree.leaves(p1)))
    assert diff > 1e-4, "the regularizer weight of member 1 had no effect"


def test_killed_group_resumes_to_the_same_parameters(tmp_path):
    members = [paper1_config(**{"seed": s, "data.seed": s, "bound.reg_lambda": 0.1})
               for s in (0, 1)]
    full = [str(tmp_path / f"full{i}") for i in range(2)]
    train_members(members, full)
    dirs = [str(tmp_path / f"m{i}") for i in range(2)]

    def kill(step, _):
        if step == 4:
            raise KeyboardInterrupt  # after the step-4 log, before its checkpoint

    with pytest.raises(KeyboardInterrupt):
        train_members(members, dirs, progress=kill)
    assert not (tmp_path / "m0" / "report.json").exists()
    seen = []
    reports = train_members(members, dirs, progress=lambda step, _: seen.append(step))
    assert seen == [3, 4, 6], seen  # resumed after the step-2 checkpoint (from scratch: 2, 3, ...)
    for i in range(2):
        assert_same_params(load_variables(dirs[i], None, "last")["params"],
                           load_variables(full[i], None, "last")["params"], rtol=1e-6, atol=1e-7)
        assert reports[i]["num_steps"] == 6


def test_members_must_share_the_penalty(tmp_path):
    with pytest.raises(ValueError, match="bound.penalty"):
        train_members([paper1_config(), paper1_config(**{"bound.penalty": "kernel_l2"})],
                      [str(tmp_path / "a"), str(tmp_path / "b")])
