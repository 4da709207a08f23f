"""Sweeps over the trainer: a run's config is the task's with checked changes."""

import os

import pytest

from ssm_jax.experiments import sweeps
from ssm_jax.training.config import ConfigError, default_config, parse_config


def test_run_config_copies_and_validates():
    base = parse_config(default_config())
    cfg = sweeps.run_config(base, **{"seed": 4, "bound.reg_lambda": 0.1})
    assert (cfg.seed, cfg.bound.reg_lambda, cfg.train.progress) == (4, 0.1, False)
    assert (base.seed, base.bound.reg_lambda, base.train.progress) == (0, 0.0, True)
    with pytest.raises(ConfigError):
        sweeps.run_config(base, **{"bound.reg_lambda": -1.0})


def test_check_runs_refuses_a_directory_of_another_config(tmp_path):
    from ssm_jax.training.config import save_config

    base = parse_config(default_config())
    run = sweeps.Run("r", sweeps.run_config(base))
    sweeps.check_runs([run], str(tmp_path))  # nothing there yet
    save_config(run.cfg, str(tmp_path / "runs" / "r"))
    sweeps.check_runs([run], str(tmp_path))  # the same config
    other = sweeps.Run("r", sweeps.run_config(base, **{"optim.lr": 0.5}))
    with pytest.raises(ValueError, match=r"different config \(optim.lr\)"):
        sweeps.check_runs([other], str(tmp_path))
    with pytest.raises(ValueError, match="not unique"):
        sweeps.check_runs([run, run], str(tmp_path))


class CountingBar:
    def __init__(self):
        self.n, self.at_group = 0, []

    def update(self, n=1):
        self.n += n

    def set_postfix_str(self, s):
        if "vectorized" in s or s.startswith("g"):
            self.at_group.append(self.n)


def test_the_bar_counts_trained_runs_as_their_groups_finish(tmp_path, monkeypatch):
    """The plan's ETA moves while a sweep trains: each group advances the bar by its runs when
    it finishes; a reused run counts once, when it is read."""
    base = parse_config(default_config())
    runs = [sweeps.Run(f"g{i}", sweeps.run_config(base, **{"seed": i})) for i in range(5)]
    reused = tmp_path / "runs" / "g4"
    reused.mkdir(parents=True)
    (reused / "report.json").write_text("{}")

    def fake_train(group):  # what training leaves behind: a report per run
        for w in group.workdirs:
            os.makedirs(w, exist_ok=True)
            with open(os.path.join(w, "report.json"), "w") as f:
                f.write("{}")

    monkeypatch.setattr(sweeps.Group, "train", fake_train)
    monkeypatch.setattr(sweeps, "vector_groups", lambda todo, *a: [todo[:3], todo[3:]])
    bar = CountingBar()
    rows = sweeps.run_sweep(runs, str(tmp_path), bar=bar, vectorize=True)
    assert bar.at_group[:2] == [0, 3]  # the second group starts with the first one's 3 counted
    assert bar.n == 5 and [r["trained"] for r in rows] == [True] * 4 + [False]
