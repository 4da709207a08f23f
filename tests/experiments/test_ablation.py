"""Experiment 3 (four-way ablation) end to end at the tiny scale; the LRA (paper) configs
stop with the data registry's message before any training when the data is missing."""

import json

import pytest

from experiments.config import load
from experiments.paper1 import ablation
from tests.experiments.conftest import assert_ok, assert_png, read_csv, run_experiment

CONFIG = "configs/paper1/ablation.py"


def test_ablation_tiny(tmp_path, xla_cache):
    proc = run_experiment("ablation", "tiny", tmp_path, cache=xla_cache)
    assert_ok(proc)
    rows = read_csv(tmp_path / "table.csv")
    assert [r["variant"] for r in rows] == ["none", "scale", "reg", "both"]
    assert [r["label"] for r in rows] == ["w/o (8),(9)", "w/ (8)", "w/ (9)", "w/ (8),(9)"]
    for r in rows:
        assert r["task"] == "digits" and r["seeds"] == "1"
        assert 0 <= float(r["test_accuracy"]) <= 1 and 0 <= float(r["train_accuracy"]) <= 1
        assert float(r["tau"]) > 0
    runs = read_csv(tmp_path / "runs.csv")
    assert sorted(r["run_id"] for r in runs) == sorted(
        f"digits_{v}_s0" for v in ("none", "scale", "reg", "both"))
    for r in runs:  # the config of every run matches its variant
        cfg = json.loads((tmp_path / "runs" / r["run_id"] / "config.json").read_text())
        assert cfg["bound"]["init_scaling"] == (r["variant"] in ("scale", "both"))
        assert (cfg["bound"]["reg_lambda"] > 0) == (r["variant"] in ("reg", "both"))
        assert cfg["train"]["progress"] is False
    # the effect, not only the plumbing: the regularizer lowers tau (same seed and init)
    tau = {r["variant"]: float(r["tau"]) for r in runs}
    assert tau["reg"] < 0.95 * tau["none"]
    assert tau["both"] < 0.95 * tau["scale"]
    for r in runs:
        assert 0 <= float(r["test_accuracy_last"]) <= 1 and 0 <= float(r["train_accuracy_last"]) <= 1
    assert ("| task | variant | seeds | test acc (best val) | Δ test [CI] | train acc | "
            "test acc (last) | Δ last [CI] | train acc (last) | tau |") in proc.stdout
    assert "| digits | w/ (8),(9) |" in (tmp_path / "table.md").read_text()
    assert_png(tmp_path / "ablation.png")


def test_lra_paper_config_fails_before_training_without_data(tmp_path, xla_cache):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    proc = run_experiment("ablation", "paper", out, cache=xla_cache,
                          env={"SSM_JAX_DATA": str(empty), "TFDS_DATA_DIR": str(empty)})
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr
    assert "error: task 'listops': ListOps files missing" in err
    assert str(empty) in err and "basic_train.tsv" in err and "lra_release" in err
    assert not (out / "runs").exists()


@pytest.mark.parametrize("task, fragments", [
    ("listops", ["ListOps files missing", "basic_train.tsv", "python -m ssm_jax.data.listops"]),
    ("imdb", ["imdb_reviews", "is not prepared", "tfds build imdb_reviews"]),
    ("aan", ["Retrieval (AAN) files not found", "new_aan_pairs.train.tsv", "lra_release.gz"]),
    ("cifar10", ["cifar10", "is not prepared", "tfds build cifar10"]),
    ("pathfinder", ["pathfinder32/curv_contour_length_14/metadata not found", "lra_release.gz"]),
    ("pathx", ["pathfinder128/curv_contour_length_14/metadata not found", "lra_release.gz"]),
])
def test_each_lra_task_names_its_missing_data(tmp_path, monkeypatch, task, fragments):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("SSM_JAX_DATA", str(empty))
    monkeypatch.setenv("TFDS_DATA_DIR", str(empty))
    with pytest.raises(FileNotFoundError) as info:
        ablation.prepare(load(f"{CONFIG}:{task}", ablation.Settings), str(tmp_path / "out"))
    message = str(info.value)
    assert message.startswith(f"task {task!r}: ")
    for fragment in fragments:
        assert fragment in message
    assert not (tmp_path / "out").exists()


def test_lra_configs_follow_the_s4_repository():
    """The six tasks at the S4 repository's sizes; Path-X with dt_min 1e-4, batch 16; the
    retrieval task builds the two-document model."""
    exp = load(f"{CONFIG}:paper", ablation.Settings)
    px = exp.tasks["pathx"]
    assert (px.model.n_layers, px.model.d_model, px.model.ssm.d_state) == (6, 256, 64)
    assert px.model.ssm.dt_min == 1e-4 and px.train.batch_size == 16 and px.optim.lr == 0.002
    assert all(t.model.ssm.bidirectional and t.model.norm == "batch" for t in exp.tasks.values())
    from ssm_jax.data import DatasetInfo
    from ssm_jax.models import RetrievalModel
    from ssm_jax.training.loop import build_model
    info = DatasetInfo(name="aan", seq_len=16, input_kind="tokens", vocab_size=10,
                       in_channels=1, num_classes=2, num_documents=2)
    assert isinstance(build_model(exp.tasks["aan"].model, info), RetrievalModel)
    assert set(ablation.LRA_PAPER) == set(exp.tasks)


def test_data_dir_override_reaches_every_lra_task(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    exp = load(f"{CONFIG}:paper", ablation.Settings, [f"data.data_dir={empty}"])
    assert list(exp.settings.tasks) == ["listops", "imdb", "aan", "cifar10", "pathfinder", "pathx"]
    assert {t.data["data_dir"] for t in exp.tasks.values()} == {str(empty)}
    with pytest.raises(FileNotFoundError, match="task 'listops'"):
        ablation.check_data(exp)


@pytest.mark.parametrize("arg", ["cpu", "quick", "tiny", "ucr", "digits", "listops_small",
                                 "mnist_small", "paper", "listops", "imdb", "aan", "cifar10",
                                 "pathfinder", "pathx"])
def test_every_scale_validates(arg):
    exp = load(f"{CONFIG}:{arg}", ablation.Settings)
    ablation.check_experiment(exp)
    runs = ablation.make_runs(exp, list(exp.settings.tasks))
    e = exp.settings
    assert len(runs) == 4 * sum(len(ablation.task_seeds(e, t)) for t in e.tasks)
    if arg == "cpu":  # ItalyPowerDemand (1029 test sequences) gets 10 seeds
        assert len(ablation.task_seeds(e, "italy")) == 10
        assert len(runs) == 4 * (10 + 5 + 5 + 5)


def test_lra_sizes_follow_the_s4_configs():
    exp = load(f"{CONFIG}:paper", ablation.Settings)
    listops, cifar = exp.tasks["listops"], exp.tasks["cifar10"]
    assert (listops.model.n_layers, listops.model.d_model, listops.model.ssm.d_state) == (6, 256, 4)
    assert listops.model.prenorm is False and listops.model.ssm.bidirectional is True
    assert (listops.train.batch_size, listops.train.num_steps, listops.optim.warmup_steps) == (32, 120000, 12000)
    assert (cifar.model.d_model, cifar.model.ssm.d_state, cifar.model.dropout) == (512, 64, 0.1)
    assert exp.tasks["pathfinder"].optim.lr == 0.004


def test_listops_paper_config_runs_on_generated_files(tmp_path, xla_cache):
    """The LRA ListOps config (embedding encoder, bidirectional S4D, post-norm BatchNorm) end
    to end on a small generated ListOps file set, at a tiny width and a few steps."""
    from ssm_jax.data.listops import write_splits

    data = tmp_path / "data"
    write_splits(data, num_train=64, num_val=16, num_test=16, seed=0, min_length=50,
                 max_length=200)
    proc = run_experiment(
        "ablation", "listops", tmp_path / "out", f"--config.data.data_dir={data}",
        "--config.data.seq_len=200", "--config.train.num_steps=4", "--config.train.eval_every=2",
        "--config.train.checkpoint_every=4", "--config.train.batch_size=8",
        "--config.train.eval_batch_size=16", "--config.model.d_model=16",
        "--config.model.n_layers=2", "--config.optim.warmup_steps=1",
        "--config.bound.init_batch_size=8", "--config.experiment.num_seeds=1",
        "--config.experiment.tau_batch_size=8", cache=xla_cache)
    assert_ok(proc)
    rows = read_csv(tmp_path / "out" / "table.csv")
    assert [(r["task"], r["variant"]) for r in rows] == [
        ("listops", v) for v in ("none", "scale", "reg", "both")]
    cfg = json.loads((tmp_path / "out" / "runs" / "listops_both_s0" / "config.json").read_text())
    assert cfg["model"]["ssm"]["bidirectional"] is True and cfg["model"]["norm"] == "batch"
