"""The package as a user installs it: configs found by name from any directory (the files of
``configs/`` installed as ``ssm_jax.configs``), configs that import only ml_collections and the
library (never experiment code), experiments under ``ssm_jax.experiments`` with their data
under the results folder, ``reproduce`` overrides, and the README's API and load sections
(executed here). The wheel itself is checked by ``.ci/package_check`` (``make test``)."""

from __future__ import annotations

import ast
import os
import pathlib
import re

import pytest

import ssm_jax
from ssm_jax.experiments import config as exp_config
from ssm_jax.experiments import reproduce, runner
from ssm_jax.training.config import ConfigError, config_file, load_config, shipped_configs

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_every_config_file_is_shipped_by_name():
    files = sorted(str(p.relative_to(REPO / "configs"))[:-3] for p in (REPO / "configs").rglob("*.py")
                   if "def get_config" in p.read_text())
    assert shipped_configs() == files
    assert "smoke" in files and "paper3/majority" in files


def test_a_config_by_name_is_the_file_from_any_directory(tmp_path, monkeypatch):
    by_path = load_config(str(REPO / "configs" / "paper3" / "majority.py") + ":tiny")
    monkeypatch.chdir(tmp_path)  # no configs/ here
    assert load_config("paper3/majority:tiny") == by_path
    assert load_config("configs/paper3/majority.py:tiny") == by_path  # the old path form too
    assert os.path.samefile(config_file("smoke"), REPO / "configs" / "smoke.py")


def test_a_local_file_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smoke").write_text("import ml_collections\n\ndef get_config():\n"
                                    "    return ml_collections.ConfigDict({'mine': 1})\n")
    assert load_config("smoke").mine == 1


def test_an_unknown_name_is_one_error_listing_the_shipped_configs():
    with pytest.raises(ConfigError) as e:
        load_config("paper3/majorty")
    message = str(e.value)
    assert "\n" not in message and "'paper3/majorty'" in message and "paper3/majority" in message


def test_configs_import_only_ml_collections_and_the_library():
    """No config imports experiment code (configs sit below experiments)."""
    for path in (REPO / "configs").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in ("ml_collections", "ssm_jax", "os", "math"), (path, name)
                assert not name.startswith("ssm_jax.experiments"), (path, name)


def test_experiments_are_a_subpackage_of_ssm_jax():
    assert reproduce.experiment_modules(3)[0].__name__.startswith("ssm_jax.experiments.paper3.")
    assert runner.config_path(reproduce.experiment_modules(2)[0]).startswith("paper2/")


def test_generated_data_goes_beside_the_results_folder(tmp_path):
    module = next(m for m in reproduce.experiment_modules(3) if runner.module_name(m) == "sA_sweep")
    exp = runner.load_module_config(module, "quick")
    assert exp.settings.data_dir == ""  # the default: decided by where the results go
    placed = runner.placed(exp, str(tmp_path / "w" / "paper3" / "sA_sweep"))
    assert placed.settings.data_dir == str(tmp_path / "w" / "paper3" / "data")
    mine = runner.placed(runner.load_module_config(module, "quick", ["experiment.data_dir=/d"]), "x/y")
    assert mine.settings.data_dir == "/d"  # a folder the user names is kept


def test_reproduce_overrides_reach_the_experiments_that_have_the_key():
    spec = "paper3/sA_sweep:quick"
    module = next(m for m in reproduce.experiment_modules(3) if runner.module_name(m) == "sA_sweep")
    overrides = ["train.num_epochs=1", "experiment.num_seeds=2", "experiment.no_such_key=1"]
    assert exp_config.applicable(spec, module.Settings, overrides) == overrides[:2]
    exp = runner.load_module_config(module, "quick", overrides[:2])
    assert exp.settings.num_seeds == 2 and all(t.train.num_epochs == 1 for t in exp.tasks.values())


def test_reproduce_refuses_an_override_no_experiment_has(tmp_path):
    with pytest.raises(ValueError, match=r"--config.train.bogus=1 matches no key"):
        reproduce.reproduce(papers=3, scale="quick", workdir=str(tmp_path), overrides=["train.bogus=1"])
    assert not any(tmp_path.iterdir())  # refused before anything is written


def readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def test_readme_api_section_lists_exactly_the_public_names():
    section = readme_section("API")
    listed = set(re.findall(r"^\| ([^|]+) \|", section, re.M)) - {"name", "---"}
    names = {n.strip(" `") for cell in listed for n in cell.split(",")}
    assert names == set(ssm_jax.__all__) - {"__version__"}
    for name in names:
        assert getattr(ssm_jax, name) is not None


@pytest.mark.slow
def test_readme_load_section_runs_on_a_trained_run(tmp_path, monkeypatch):
    """The README's load example, executed on a short smoke run trained here."""
    cfg = load_config("smoke")
    cfg.train.update(num_steps=6, eval_every=3, checkpoint_every=3, log_every=3, progress=False)
    workdir = tmp_path / "results" / "digits"
    report = ssm_jax.train_and_evaluate(ssm_jax.parse_config(cfg), str(workdir))
    code = re.search(r"```python\n(.*?)```", readme_section("Load a trained run"), re.S).group(1)
    assert 'load_run("results/digits")' in code
    monkeypatch.chdir(tmp_path)
    printed = []
    monkeypatch.setattr("builtins.print", lambda *a, **k: printed.append(a))
    exec(compile(code, "README.md", "exec"), {})
    (metrics,) = printed[-1]
    assert metrics == pytest.approx(report["test"], rel=1e-6)
