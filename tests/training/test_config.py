"""Config loading (`configs/x.py[:arg]`), `--config.a.b=value` overrides and validation: every
bad key or value is one clear line naming the key and what is allowed, before any compute."""

from __future__ import annotations

import os
import textwrap

import pytest

from ssm_jax import cli
from ssm_jax.training.config import (ConfigError, apply_overrides, default_config, load_config,
                                     parse_config)

from .conftest import REPO, SMOKE, error_lines, run_cli, train_args

DIGITS = os.path.join(REPO, "configs", "digits.py")


@pytest.fixture
def arg_config(tmp_path):
    """A config file whose get_config records the argument it got."""
    path = tmp_path / "arg_config.py"
    path.write_text(textwrap.dedent("""
        from ssm_jax.training.config import default_config

        def get_config(arg="cpu"):
            c = default_config()
            c.data.name = "digits"
            c.train.num_steps = {"cpu": 10, "paper": 5000}[arg]
            return c
    """))
    return str(path)


# ------------------------------------------------------------------ load_config


def test_load_config_without_arg_uses_the_default(arg_config):
    cfg = load_config(arg_config)
    assert cfg.train.num_steps == 10
    parse_config(cfg)


def test_load_config_passes_the_arg(arg_config):
    assert load_config(arg_config + ":paper").train.num_steps == 5000
    assert load_config(arg_config + ":cpu").train.num_steps == 10


@pytest.mark.parametrize("path", [SMOKE, DIGITS, SMOKE + ":cpu"])
def test_shipped_configs_are_valid(path):
    parse_config(load_config(path))


def test_load_config_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "nope.py"))


def test_load_config_without_get_config(tmp_path):
    path = tmp_path / "empty.py"
    path.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="get_config"):
        load_config(str(path))


def test_load_config_wrong_type_inside_the_file_is_a_config_error(tmp_path):
    path = tmp_path / "bad_type.py"
    path.write_text(textwrap.dedent("""
        from ssm_jax.training.config import default_config

        def get_config(arg=None):
            c = default_config()
            c.train.batch_size = "many"
            return c
    """))
    with pytest.raises(ConfigError, match="batch_size") as e:
        load_config(str(path))
    assert "\n" not in str(e.value)


def test_load_config_typo_in_a_section_name_is_one_line(tmp_path):
    path = tmp_path / "typo.py"
    path.write_text(textwrap.dedent("""
        from ssm_jax.training.config import default_config

        def get_config(arg=None):
            c = default_config()
            c.trian.lr = 1.0
            return c
    """))
    with pytest.raises(ConfigError, match="trian") as e:
        load_config(str(path))
    assert "\n" not in str(e.value) and "train" in str(e.value)


# ------------------------------------------------------------------ apply_overrides


def test_overrides_parse_to_the_type_of_the_key():
    cfg = apply_overrides(default_config(), [
        "train.progress=false", "model.prenorm=True", "seed=7", "train.batch_size=16",
        "optim.lr=1e-4", "optim.weight_decay=0", "model.pooling=last", "data.name=digits",
    ])
    assert cfg.train.progress is False and cfg.model.prenorm is True
    assert cfg.seed == 7 and type(cfg.seed) is int
    assert cfg.train.batch_size == 16 and type(cfg.train.batch_size) is int
    assert cfg.optim.lr == 1e-4 and type(cfg.optim.lr) is float
    assert cfg.optim.weight_decay == 0.0 and type(cfg.optim.weight_decay) is float
    assert cfg.model.pooling == "last"
    parse_config(cfg)


@pytest.mark.parametrize("text,value", [("true", True), ("False", False), ("1", True), ("no", False),
                                        ("YES", True), ("0", False)])
def test_bool_override_spellings(text, value):
    assert apply_overrides(default_config(), [f"train.progress={text}"]).train.progress is value


def test_overrides_of_open_sections_parse_literals():
    cfg = apply_overrides(default_config(), [
        "model.ssm.d_state=16", "model.ssm.dt_max=0.5", "model.ssm.bidirectional=true",
        "model.ssm.conj_sym=False", "model.ssm.ssm_init=lin", "data.seed=3",
    ])
    assert cfg.model.ssm.d_state == 16 and type(cfg.model.ssm.d_state) is int
    assert cfg.model.ssm.dt_max == 0.5
    assert cfg.model.ssm.bidirectional is True and cfg.model.ssm.conj_sym is False
    assert cfg.model.ssm.ssm_init == "lin"
    assert cfg.data.seed == 3
    parse_config(cfg)


@pytest.mark.parametrize("override,needle", [
    ("train.batchsize=3", "'train.batchsize'"),
    ("foo=1", "'foo'"),
    ("trian.batch_size=3", "'trian'"),
    ("train.batch_size.x=3", "'train.batch_size'"),
])
def test_override_of_an_unknown_key_fails(override, needle):
    with pytest.raises(ConfigError, match="unknown config key") as e:
        apply_overrides(default_config(), [override])
    assert needle in str(e.value) and "allowed" in str(e.value)


@pytest.mark.parametrize("override,needle", [
    ("train.batch_size=abc", "an int"),
    ("train.batch_size=2.5", "an int"),
    ("optim.lr=fast", "a float"),
    ("train.progress=maybe", "bool"),
])
def test_override_with_a_value_of_the_wrong_type_fails(override, needle):
    with pytest.raises(ConfigError, match=needle) as e:
        apply_overrides(default_config(), [override])
    assert repr(override.split("=")[0]) in str(e.value)


def test_override_without_equals_fails():
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(default_config(), ["train.batch_size"])


# ------------------------------------------------------------------ parse_config


def _invalid(*overrides):
    cfg = apply_overrides(load_config(SMOKE), list(overrides))
    with pytest.raises(ConfigError) as e:
        parse_config(cfg)
    message = str(e.value)
    assert "\n" not in message
    return message


# (override, text the message must contain: the key and the allowed values)
BAD = [
    ("optim.lr=-1", ["'optim.lr'", "> 0"]),
    ("optim.ssm_lr=0", ["'optim.ssm_lr'", "> 0"]),
    ("optim.weight_decay=-0.1", ["'optim.weight_decay'", ">= 0"]),
    ("optim.schedule=linear", ["'optim.schedule'", "'cosine'", "'constant'"]),
    ("model.layer=s6", ["'model.layer'", "'s4d'", "'s5'"]),
    ("model.pooling=max", ["'model.pooling'", "'mean'", "'last'", "'none'"]),
    ("model.norm=group", ["'model.norm'", "'layer'", "'batch'"]),
    ("model.dropout=1.5", ["'model.dropout'", "[0, 1)"]),
    ("model.ssm.dt_min=0.5", ["dt_min", "dt_max", "0 < dt_min <= dt_max"]),
    ("model.ssm.blocks=2", ["'model.ssm.blocks'", "'s4d'", "d_state", "conj_sym"]),
    ("model.ssm.ssm_init=random", ["'model.ssm.ssm_init'", "'legs'"]),
    ("model.ssm.d_state=7", ["'model.ssm.d_state'", "even"]),
    ("model.ssm.bidirectional=2", ["'model.ssm.bidirectional'", "bool"]),
    ("train.batch_size=0", ["'train.batch_size'", "> 0"]),
    ("train.num_steps=-5", ["'train.num_steps'", "> 0"]),
    ("bound.measure=other", ["'bound.measure'", "'paper'", "'covariance'"]),
    ("data.name=imagenet", ["data", "'imagenet'", "digits"]),
    ("data.colour=1", ["data", "'colour'", "train_fraction"]),
]


@pytest.mark.parametrize("override,needles", BAD, ids=[b[0] for b in BAD])
def test_validate_rejects_impossible_values(override, needles):
    message = _invalid(override)
    for needle in needles:
        assert needle in message, message


def test_validate_checks_the_ssm_keys_of_the_chosen_layer():
    # `blocks` is an S5 key: fine for s5, an error for s4d.
    parse_config(apply_overrides(load_config(SMOKE), ["model.layer=s5", "model.ssm.blocks=2"]))
    assert "'model.ssm.blocks'" in _invalid("model.layer=s4d", "model.ssm.blocks=2")
    assert "'model.ssm.mode'" in _invalid("model.layer=s5", "model.ssm.mode=conv")
    assert "divisible" in _invalid("model.layer=s5", "model.ssm.blocks=3")


def test_validate_rejects_unknown_keys_and_wrong_types_set_in_code():
    cfg = load_config(SMOKE)
    cfg.train.unlock()
    cfg.train.batchsize = 3
    with pytest.raises(ConfigError, match="unknown config key 'train.batchsize'; allowed: batch_size"):
        parse_config(cfg)
    cfg = load_config(SMOKE)
    with cfg.ignore_type():
        cfg.train.num_steps = 2.5
    with pytest.raises(ConfigError, match="'train.num_steps' must be of type int"):
        parse_config(cfg)


# ------------------------------------------------------------------ the command line


CLI_BAD = [
    ("--config.train.foo=1", ["config error", "'train.foo'", "allowed", "batch_size"]),
    ("--config.train.batch_size=abc", ["config error", "'train.batch_size'", "int"]),
    ("--config.optim.lr=-1", ["config error", "'optim.lr'", "> 0"]),
    ("--config.model.layer=s6", ["config error", "'model.layer'", "'s4d', 's4', 's5', 'selective'"]),
    ("--config.model.pooling=max", ["config error", "'model.pooling'", "'mean'"]),
    ("--config.model.ssm.dt_min=1.0", ["config error", "dt_min", "dt_max"]),
    ("--config.model.ssm.blocks=2", ["config error", "'model.ssm.blocks'", "'s4d'"]),
    ("--config.data.name=nope", ["config error", "'nope'", "digits"]),
]


@pytest.mark.parametrize("override,needles", CLI_BAD, ids=[b[0] for b in CLI_BAD])
def test_cli_config_error_is_one_line_and_creates_nothing(tmp_path, capsys, override, needles):
    workdir = tmp_path / "run"
    rc = cli.main(["train", "--config", SMOKE, "--workdir", str(workdir), override])
    out, err = capsys.readouterr()
    assert rc != 0
    lines = error_lines(err)
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not workdir.exists()


def test_cli_missing_config_file(tmp_path, capsys):
    rc = cli.main(["train", "--config", str(tmp_path / "missing.py"), "--workdir", str(tmp_path / "w")])
    assert rc != 0
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "does not exist" in lines[0]
    assert not (tmp_path / "w").exists()


def test_cli_config_error_in_a_subprocess(tmp_path):
    """The installed entry point: non-zero exit, one stderr line, no traceback, no workdir."""
    workdir = tmp_path / "run"
    proc = run_cli(train_args(workdir, "--config.optim.lr=-0.1", "--config.model.layer=s5"), timeout=120)
    assert proc.returncode != 0
    lines = error_lines(proc.stderr)
    assert lines == ["config error: config key 'optim.lr' must be > 0, got -0.1"], proc.stderr
    assert not workdir.exists()


# ------------------------------------------------------------------ what a new user slips in


NEW_USER_BAD = [
    ("--config.optim.lr=nan", "'optim.lr' must be a finite float, got nan"),
    ("--config.optim.ssm_lr=inf", "'optim.ssm_lr' must be a finite float, got inf"),
    ("--config.bound.reg_lambda=nan", "'bound.reg_lambda' must be a finite float, got nan"),
    ("--config.optim.weight_decay=-inf", "'optim.weight_decay' must be a finite float"),
    ("--config.model.dropout=nan", "'model.dropout' must be a finite float"),
    ("--config.model.ssm.dt_max=inf", "'model.ssm.dt_max' must be a finite float"),
    ("--config.data.train_fraction=nan", "'data.train_fraction' must be a finite float"),
    ("--config.optim.b1=1.0", "'optim.b1' must be in [0, 1), got 1.0"),
    ("--config.optim.b2=-0.1", "'optim.b2' must be in [0, 1), got -0.1"),
    ("--config.seed=-1", "'seed' must be >= 0, got -1"),
    ("--config.distributed.process_id=-2", "'distributed.process_id' must be >= 0"),
]


@pytest.mark.parametrize("override,needle", NEW_USER_BAD, ids=[b[0] for b in NEW_USER_BAD])
def test_cli_rejects_non_finite_and_out_of_range_values(tmp_path, capsys, override, needle):
    rc = cli.main(["train", "--config", SMOKE, "--workdir", str(tmp_path / "w"), override])
    lines = error_lines(capsys.readouterr().err)
    assert rc == 2 and len(lines) == 1 and needle in lines[0], lines
    assert not (tmp_path / "w").exists()


def test_a_sequence_length_that_cannot_fit_in_memory_is_refused(tmp_path, capsys):
    rc = cli.main(["train", "--config", SMOKE, "--workdir", str(tmp_path / "w"),
                   "--config.data.name=synthetic_regression", "--config.data.seq_len=1000000000"])
    lines = error_lines(capsys.readouterr().err)
    assert rc == 2 and len(lines) == 1, lines
    assert "'data.seq_len' = 1000000000" in lines[0] and "GB" in lines[0]
    assert "lower data.seq_len" in lines[0]
    # the check is a lower bound: the shipped sizes pass
    from ssm_jax.training.config import check_memory, parse_config

    cfg = parse_config(apply_overrides(load_config(SMOKE), [
        "data.name=synthetic_regression", "data.seq_len=100000", "data.num_train=8",
        "data.num_val=8", "data.num_test=8"]))
    check_memory(cfg, available=64 * 2 ** 30)
    with pytest.raises(ConfigError, match="one training step with train.batch_size = 32"):
        check_memory(cfg, available=2 ** 28)
    with pytest.raises(ConfigError, match="the synthetic_regression dataset needs at least"):
        check_memory(cfg.replace(**{"data.num_train": 10 ** 5}), available=2 ** 30)


@pytest.mark.parametrize("body,needle", [
    ("def get_config(arg=None)\n    return 1\n", "has a syntax error at line 1"),
    ("import no_such_module_here\n", "cannot be loaded: ModuleNotFoundError"),
    ("def get_config(arg=None):\n    raise RuntimeError('boom')\n", "raised RuntimeError: boom"),
    ("def get_config(arg=None):\n    return None\n", "must return an ml_collections.ConfigDict, got NoneType"),
    ("x = 1\n", "has no get_config(arg) function"),
])
def test_broken_config_files_are_one_line_errors(tmp_path, capsys, body, needle):
    path = tmp_path / "broken.py"
    path.write_text(body)
    rc = cli.main(["train", "--config", str(path), "--workdir", str(tmp_path / "w")])
    lines = error_lines(capsys.readouterr().err)
    assert rc == 2 and len(lines) == 1 and needle in lines[0], lines
    assert lines[0].startswith("config error: ")


def test_an_unknown_scale_suffix_is_refused(tmp_path, capsys, arg_config):
    for spec, needle in [(SMOKE + ":bogus", "unknown scale 'bogus'; valid names: 'cpu'"),
                         (DIGITS + ":paper", "unknown scale 'paper'"),
                         (arg_config + ":bogus", "raised KeyError")]:
        rc = cli.main(["train", "--config", spec, "--workdir", str(tmp_path / "w")])
        lines = error_lines(capsys.readouterr().err)
        assert rc == 2 and len(lines) == 1 and needle in lines[0], lines
    # a file without SCALES whose get_config ignores its argument
    path = tmp_path / "ignores.py"
    path.write_text("from ssm_jax.training.config import default_config\n"
                    "def get_config(arg='cpu'):\n    return default_config()\n")
    with pytest.raises(ConfigError, match="ignores the scale 'bogus'"):
        load_config(f"{path}:bogus")
    assert load_config(f"{path}:cpu") is not None  # its own default is fine


def test_the_cli_parses_the_config_exactly_once(tmp_path, monkeypatch):
    from ssm_jax.training import config as config_module
    from ssm_jax.training import loop

    calls = []
    real = config_module._model
    monkeypatch.setattr(config_module, "_model", lambda section: calls.append(1) or real(section))
    monkeypatch.setattr(loop, "fit", lambda runs, workdirs, **kw: [{"ok": True}])  # no training
    assert cli.main(["train", "--config", SMOKE, "--workdir", str(tmp_path / "w")]) == 0
    assert len(calls) == 1


def test_options_lists_every_key_with_its_help(capsys):
    assert cli.main(["options", "model.ssm"]) == 0
    out = capsys.readouterr().out
    assert "model.ssm.ssm_init (str; default 'legs'; one of 'legs', 'lin', 'inv', 'real')" in out
    assert "model.ssm.blocks (int; default 1; > 0): J blocks" in out
    assert cli.main(["options"]) == 0
    out = capsys.readouterr().out
    for key in ("optim.b1", "train.num_steps", "bound.reg_lambda", "distributed.multihost",
                "model.projection"):
        assert f"\n{key} (" in out


def test_the_old_activation_key_still_works():
    cfg = load_config(SMOKE)
    cfg.model.unlock()
    del cfg.model["projection"]
    cfg.model.activation = "glu"
    assert parse_config(cfg).model.projection == "glu"
