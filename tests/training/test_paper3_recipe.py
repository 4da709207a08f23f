"""The selective-SSM paper's training recipe as trainer options: one-logit BCE, the collapse
penalty, coupled L2 + Adam + reduce-on-plateau on the epoch-mean loss, epochs, per-epoch
parameter norms and bound terms in metrics.csv, and training without a validation split."""
import csv
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssm_jax.training.config import apply_overrides, default_config, parse_config
from ssm_jax.training.steps import collapse_penalty, task_loss


def paper_overrides(extra=()):
    return ["model.layer=selective", "model.ssm.form=paper", "model.ssm.d_state=2",
            "model.ssm.s_A=0.0", "model.d_model=4", "model.n_layers=1", "model.norm=none",
            "model.projection=none", "model.residual=false", "model.pooling=last",
            "model.head_bias=false", "model.init_std=1.0", "optim.recipe=adam_l2",
            "optim.lr=0.01", "optim.weight_decay=1e-5", "optim.grad_clip=5.0",
            "train.batch_size=16", "train.num_epochs=3", "train.progress=false",
            "train.eval_every=1000", "train.checkpoint_every=1000",
            "train.collapse_penalty=10.0", *extra]


def test_bce_single_logit_matches_formula():
    logits = jnp.array([[2.0], [-1.0], [0.5]])
    labels = jnp.array([1, 1, 0])
    loss, sums = task_loss(logits, labels, "classification")
    z, y = np.array([2.0, -1.0, 0.5]), np.array([1, 1, 0])
    expected = np.mean(np.log1p(np.exp(-z)) * y + np.log1p(np.exp(z)) * (1 - y))
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert float(sums["accuracy"]) == 1.0  # only the first logit is on the right side of 0


def test_bce_accuracy_counts_threshold_at_zero():
    _, sums = task_loss(jnp.array([[2.0], [-1.0], [0.5]]), jnp.array([1, 0, 0]), "classification")
    assert float(sums["accuracy"]) == 2.0


def test_collapse_penalty_matches_numpy():
    out = np.array([[0.1, 0.2], [0.15, 0.05]], np.float32)
    s = 1 / (1 + np.exp(-out.reshape(-1)))
    assert float(collapse_penalty(jnp.asarray(out))) == pytest.approx(max(0, 0.1 - s.std(ddof=1)),
                                                                      rel=1e-5)
    spread = np.array([[-5.0], [5.0]], np.float32)
    assert float(collapse_penalty(jnp.asarray(spread))) == 0.0


def test_adam_l2_is_coupled_l2_then_adam_and_plateau_cuts_lr():
    from ssm_jax.training.optim import paper3_optimizer

    cfg = parse_config(default_config())
    cfg = cfg.replace(**{"optim.recipe": "adam_l2", "optim.lr": 0.1, "optim.weight_decay": 0.5,
                         "optim.grad_clip": 0.0, "optim.plateau_patience": 1,
                         "optim.plateau_factor": 0.5})
    tx = paper3_optimizer(cfg.optim, steps_per_epoch=2)
    p = {"w": jnp.array([1.0, -2.0])}
    g = {"w": jnp.array([0.3, 0.1])}
    ref = optax.adam(0.1)
    u, _ = tx.update(g, tx.init(p), p, value=jnp.float32(1.0))
    u_ref, _ = ref.update({"w": g["w"] + 0.5 * p["w"]}, ref.init(p), p)
    np.testing.assert_allclose(np.asarray(u["w"]), np.asarray(u_ref["w"]), rtol=1e-6)
    # a constant loss is a plateau: after patience + 1 epochs (of 2 steps) the scale is cut
    state = tx.init(p)
    for _ in range(2 * 4):
        _, state = tx.update(g, state, p, value=jnp.float32(1.0))
    scale = float(state.inner_state[-1].scale)  # the chain inside the injected hyperparameters
    assert scale < 1.0
    state = tx.init(p)
    for i in range(2 * 4):  # a loss falling by 50% per epoch is never a plateau
        _, state = tx.update(g, state, p, value=jnp.float32(0.5 ** (i // 2)))
    assert float(state.inner_state[-1].scale) == 1.0


def _rows(workdir):
    with open(os.path.join(workdir, "metrics.csv")) as f:
        return list(csv.DictReader(f))


def test_paper_recipe_trains_with_epochs_and_logs_bound_terms(tmp_path):
    c = default_config()
    c.data.update(name="majority", seq_len=10, num_train=64, num_val=16, num_test=32)
    apply_overrides(c, paper_overrides())
    from ssm_jax.training.loop import train_and_evaluate

    report = train_and_evaluate(parse_config(c), str(tmp_path / "run"))
    assert report["num_steps"] == 3 * 4
    rows = _rows(tmp_path / "run")
    params = [r for r in rows if r["split"] == "params"]
    steps = sorted({int(r["step"]) for r in params})
    assert steps == [0, 4, 8, 12]  # init and once per epoch
    names = {r["metric"] for r in params}
    for name in ("s_A", "L_p", "B_q", "B_B_F", "M_B", "B_C_F", "M_C", "B_A", "B_u", "rho_A",
                 "S_1", "S_2", "C_F"):
        assert name in names, name
    s_A0 = [float(r["value"]) for r in params if r["metric"] == "s_A" and r["step"] == "0"][0]
    assert s_A0 == pytest.approx(0.0, abs=1e-7)
    train_metrics = {r["metric"] for r in rows if r["split"] == "train"}
    assert "collapse" in train_metrics


def test_lra_files_with_header_only_val(tmp_path):
    """LRA-format ListOps TSVs with an empty basic_val.tsv (as the paper's released files):
    trains, selects the last step and reports train/test."""
    from ssm_jax.data import listops
    from ssm_jax.training.loop import train_and_evaluate

    rows = listops.generate(48, seed=0, min_length=10, max_length=20)
    d = tmp_path / "data"
    d.mkdir()
    listops.write_tsv(d / "basic_train.tsv", rows[:32])
    listops.write_tsv(d / "basic_val.tsv", [])
    listops.write_tsv(d / "basic_test.tsv", rows[32:])
    c = default_config()
    c.data.update(name="listops", data_dir=str(d), seq_len=20, use_cache=False)
    apply_overrides(c, paper_overrides(["train.num_epochs=1", "train.eval_every=1"]))
    report = train_and_evaluate(parse_config(c), str(tmp_path / "run"))
    assert report["validation"] == {} and report["selection"] == "last"
    assert report["best_step"] == 2 and 0.0 <= report["test"]["accuracy"] <= 1.0
    with open(tmp_path / "run" / "report.json") as f:
        assert json.load(f)["selection"] == "last"


def test_collapse_penalty_gradient_is_zero_when_all_outputs_saturate():
    """A batch whose outputs all saturate with one sign has zero spread: the penalty's gradient
    is 0 for every parameter (PyTorch's std backward), not NaN (jnp.std's 0 * inf)."""
    import flax.linen as nn

    model = nn.Dense(1)
    x = jnp.full((8, 3), 50.0, jnp.float32)  # sigmoid(logit) == 1.0 exactly in float32
    params = model.init(jax.random.PRNGKey(0), x)
    params = jax.tree.map(lambda p: jnp.abs(p) + 1.0, params)  # logits >= 150 for every row
    out = model.apply(params, x)
    assert np.all(np.asarray(jax.nn.sigmoid(out)) == 1.0)
    loss = lambda p: 10.0 * collapse_penalty(model.apply(p, x))
    value, grads = jax.value_and_grad(loss)(params)
    assert float(value) == pytest.approx(1.0)  # 10 * (0.1 - 0)
    for g in jax.tree.leaves(grads):
        assert np.all(np.isfinite(np.asarray(g)))
        np.testing.assert_array_equal(np.asarray(g), 0.0)


def test_std_zero_grad_matches_jnp_std_and_its_gradient_elsewhere():
    from ssm_jax.training.steps import std_zero_grad

    x = jnp.asarray(np.random.default_rng(0).normal(size=(5, 4)), jnp.float32)
    assert float(std_zero_grad(x)) == pytest.approx(float(jnp.std(x, ddof=1)), rel=1e-6)
    np.testing.assert_allclose(np.asarray(jax.grad(std_zero_grad)(x)),
                               np.asarray(jax.grad(lambda v: jnp.std(v, ddof=1))(x)), rtol=1e-5)


def _torch_plateau_lrs(epoch_losses, factor, patience, rtol):
    """torch.optim.lr_scheduler.ReduceLROnPlateau (mode min, rel threshold, cooldown 0) written
    out: the lr factor in force during each epoch."""
    best, bad, scale, out = float("inf"), 0, 1.0, []
    for loss in epoch_losses:
        out.append(scale)
        if loss < best * (1 - rtol):
            best, bad = loss, 0
        else:
            bad += 1
        if bad > patience:
            scale, bad = scale * factor, 0
    return out


@pytest.mark.parametrize("semantics", ["torch", "optax"])
def test_plateau_semantics_torch_matches_the_torch_scheduler(semantics):
    from ssm_jax.training.optim import plateau_transform

    cfg = parse_config(default_config()).replace(**{
        "optim.recipe": "adam_l2", "optim.plateau_patience": 2, "optim.plateau_factor": 0.5,
        "optim.plateau_rtol": 0.01, "optim.plateau_semantics": semantics})
    spe = 3
    epoch_losses = [5.0, 4.0, 4.0, 4.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    tx = plateau_transform(cfg.optim, spe)
    p = {"w": jnp.zeros(2)}
    state, scales = tx.init(p), []
    for loss in epoch_losses:
        for _ in range(spe):  # the step's loss; the epoch mean is `loss`
            u, state = tx.update({"w": jnp.ones(2)}, state, p, value=jnp.float32(loss))
            scales.append(float(u["w"][0]))
    per_epoch = [scales[i * spe] for i in range(len(epoch_losses))]  # the scale at an epoch's start
    expected = _torch_plateau_lrs(epoch_losses, 0.5, 2, 0.01)
    if semantics == "torch":
        assert per_epoch == pytest.approx(expected)
        assert all(scales[i] == scales[i - i % spe] for i in range(len(scales)))  # whole epochs
    else:  # optax cuts one bad epoch earlier: the torch option is what differs
        assert per_epoch != pytest.approx(expected)


def test_keep_last_partial_batch_counts_the_authors_steps_per_epoch():
    from ssm_jax.training.loop import steps_per_epoch

    cfg = parse_config(default_config()).replace(**{"train.batch_size": 64})
    assert steps_per_epoch(cfg, 1000) == 15
    assert steps_per_epoch(cfg.replace(**{"train.drop_last": False}), 1000) == 16


def test_keep_last_partial_batch_trains_it(tmp_path):
    c = default_config()
    c.data.update(name="majority", seq_len=10, num_train=40, num_val=8, num_test=16)
    apply_overrides(c, paper_overrides(["train.num_epochs=2", "train.drop_last=false"]))
    from ssm_jax.training.loop import train_and_evaluate

    report = train_and_evaluate(parse_config(c), str(tmp_path / "run"))
    assert report["num_steps"] == 2 * 3  # 16 + 16 + 8 examples per epoch


def _failed(rule, loss, out, grad, new):
    from ssm_jax.training.steps import step_failed

    metrics = {"loss": jnp.float32(loss), "outputs_finite": jnp.all(jnp.isfinite(jnp.asarray(out)))}
    return bool(step_failed(rule, metrics, {"g": jnp.asarray(grad)}, {"p": jnp.asarray(new)}))


def test_failure_rules_ours_and_the_authors():
    inf, nan = float("inf"), float("nan")
    ok = dict(loss=1.0, out=[1.0], grad=[1.0], new=[1.0])
    for rule in ("nonfinite", "authors"):
        assert not _failed(rule, **ok)
        assert _failed(rule, **{**ok, "loss": nan})
        assert _failed(rule, **{**ok, "new": [nan]})
    # an Inf loss or gradient passes the authors' checks, not ours
    assert _failed("nonfinite", **{**ok, "loss": inf})
    assert not _failed("authors", **{**ok, "loss": inf})
    assert not _failed("authors", **{**ok, "grad": [inf]})
    # NaN gradients and Inf outputs fail the authors' run
    assert _failed("authors", **{**ok, "grad": [nan]})
    assert _failed("authors", **{**ok, "out": [inf]})
    assert not _failed("nonfinite", **{**ok, "out": [inf]})


def test_authors_failure_rule_in_the_trainer_names_the_step(tmp_path):
    from ssm_jax.training.loop import NonFiniteError, train_and_evaluate

    c = default_config()
    c.data.update(name="majority", seq_len=10, num_train=32, num_val=8, num_test=16)
    apply_overrides(c, paper_overrides(["train.failure=authors", "optim.lr=1e30"]))
    with pytest.raises(NonFiniteError, match="NaN/Inf outputs, a NaN loss, gradient or parameter") as e:
        train_and_evaluate(parse_config(c), str(tmp_path / "run"))
    assert e.value.step is not None and e.value.step <= 6


def test_keep_last_partial_batch_feeds_it_to_the_step(tmp_path, monkeypatch):
    """With train.drop_last=false the trainer's iterator yields the 8-example remainder of
    every epoch (16, 16, 8); with the default it never does."""
    from ssm_jax.training import loop
    from ssm_jax.training import run as run_module

    seen = []

    class Recording(run_module.BatchIterator):
        def __next__(self):
            batch = super().__next__()
            seen.append(len(batch["labels"]))
            return batch

    monkeypatch.setattr(run_module, "BatchIterator", Recording)
    for drop, expected in ((False, [16, 16, 8] * 2), (True, [16, 16] * 2)):
        seen.clear()
        c = default_config()
        c.data.update(name="majority", seq_len=10, num_train=40, num_val=8, num_test=16)
        apply_overrides(c, paper_overrides(["train.num_epochs=2", f"train.drop_last={drop}"]))
        loop.train_and_evaluate(parse_config(c), str(tmp_path / f"run_{drop}"))
        assert seen == expected


def test_vectorized_members_keep_the_partial_batch_and_the_authors_failure_rule(tmp_path):
    """The vectorized trainer trains the same partial batches as the one-by-one trainer (equal
    test metrics), and a diverging member fails alone under train.failure='authors'."""
    from ssm_jax.training.loop import train_and_evaluate
    from ssm_jax.training.vectorized import train_members

    def cfg(seed, extra=()):
        c = default_config()
        c.data.update(name="majority", seq_len=10, num_train=40, num_val=8, num_test=16)
        apply_overrides(c, paper_overrides([
            "train.num_epochs=3", "train.drop_last=false", "train.failure=authors",
            "optim.plateau_semantics=torch", f"seed={seed}", *extra]))
        return parse_config(c)

    reports = train_members([cfg(0), cfg(1), cfg(2, ["optim.lr=1e30"])],
                            [str(tmp_path / f"m{i}") for i in range(3)])
    assert [r["num_steps"] for r in reports] == [9, 9, 9]  # 3 epochs of 16 + 16 + 8
    assert reports[0]["failed_step"] is None and reports[1]["failed_step"] is None
    assert reports[2]["failed_step"] is not None
    single = train_and_evaluate(cfg(0), str(tmp_path / "single"))
    assert reports[0]["test"]["loss"] == pytest.approx(single["test"]["loss"], rel=1e-4)
    assert reports[0]["test"]["accuracy"] == single["test"]["accuracy"]


def test_torch_plateau_equals_the_real_torch_scheduler():
    """Where torch is installed (not in CI): the same factors as torch's ReduceLROnPlateau on
    random epoch losses with plateaus."""
    torch = pytest.importorskip("torch")
    from ssm_jax.training.optim import torch_reduce_on_plateau

    rng = np.random.default_rng(0)
    for _ in range(20):
        losses = np.minimum.accumulate(rng.uniform(0.5, 2.0, 30)) * rng.choice([1, 1.02], 30)
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, "min", factor=0.9, patience=5,
                                                           threshold=0.01)
        tx = torch_reduce_on_plateau(0.9, 5, 0.01, 2)
        state, p = tx.init({}), {"w": jnp.ones(())}
        for loss in losses:
            u, state = tx.update(p, state, value=jnp.float32(loss))  # first step of the epoch
            assert float(u["w"]) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-5)
            _, state = tx.update(p, state, value=jnp.float32(loss))
            sched.step(float(loss))
