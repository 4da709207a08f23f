"""Experiment configs: the schema with defaults, loading `configs/*.py:arg`, command-line
overrides `--config.a.b=value`, and validation before any compute."""

from __future__ import annotations

import ast
import importlib.util
import os

import ml_collections

from ssm_jax.data import resolve_config
from ssm_jax.bound import MEASURES, REDUCTIONS
from ssm_jax.kernels import DISCRETIZATIONS, LAMBDA_INITS, SCAN_METHODS
from ssm_jax.layers import ACTIVATIONS, NORMS, SSM_LAYERS
from ssm_jax.layers.s4d import S4D_MODES
from ssm_jax.models import ENCODERS, POOLINGS
from ssm_jax.training.optim import SCHEDULES


# Keyword arguments each SSM layer accepts in `model.ssm` (besides `features`, set from d_model).
SSM_KWARGS = {
    "s4d": ("d_state", "ssm_init", "dt_min", "dt_max", "discretization", "mode", "scan_method",
            "conj_sym", "bidirectional", "clip_eigs"),
    "s5": ("d_state", "blocks", "dt_min", "dt_max", "discretization", "scan_method", "conj_sym",
           "bidirectional", "clip_eigs"),
}
SSM_KWARG_TYPES = {"d_state": int, "blocks": int, "dt_min": float, "dt_max": float, "conj_sym": bool,
                   "bidirectional": bool, "clip_eigs": bool}


class ConfigError(ValueError):
    """A config key or value that cannot be used; the message names the key and allowed values."""


def default_config() -> ml_collections.ConfigDict:
    """Every config key with its default. Experiment configs start from this."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.data = ml_collections.ConfigDict({"name": "digits"})  # keys checked by the data registry
    c.model = ml_collections.ConfigDict(dict(
        layer="s4d", d_model=64, n_layers=4, encoder="auto", norm="layer", prenorm=True,
        activation="glu", dropout=0.0, pooling="mean",
    ))
    c.model.ssm = ml_collections.ConfigDict(dict(d_state=64, dt_min=1e-3, dt_max=1e-1))
    c.optim = ml_collections.ConfigDict(dict(
        lr=3e-3, ssm_lr=1e-3, weight_decay=0.01, warmup_steps=100, schedule="cosine",
        grad_clip=0.0, b1=0.9, b2=0.999,
    ))
    c.train = ml_collections.ConfigDict(dict(
        batch_size=64, eval_batch_size=256, num_steps=1000, log_every=50, eval_every=200,
        checkpoint_every=200, keep_checkpoints=2, progress=True,
    ))
    c.bound = ml_collections.ConfigDict(dict(
        init_scaling=False, reg_lambda=0.0, measure="paper", channel_reduce="mean",
        layer_reduce="sum", stop_gradient_stats=True, init_batch_size=256,
    ))
    c.distributed = ml_collections.ConfigDict(dict(
        multihost=False, coordinator_address="", num_processes=1, process_id=0,
    ))
    return c


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Load ``path/to/config.py[:arg]`` by calling its ``get_config(arg)``."""
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    module_spec = importlib.util.spec_from_file_location("_ssm_jax_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path!r} has no get_config(arg) function")
    try:
        cfg = module.get_config(arg) if arg else module.get_config()
    except (TypeError, ValueError, KeyError, AttributeError) as e:  # e.g. a value of the wrong type
        raise ConfigError(f"config file {spec!r}: {_one_line(e)}") from None
    return cfg


def _one_line(e: BaseException) -> str:
    """The message of ``e`` (of the exception it wraps, for ml_collections' errors) on one line."""
    while e.args and isinstance(e.args[0], BaseException):
        e = e.args[0]
    text = e.args[0] if len(e.args) == 1 and isinstance(e.args[0], str) else str(e)
    return "; ".join(line.strip() for line in text.splitlines() if line.strip()) or type(e).__name__


def _parse_value(text: str, current):
    """Parse ``text`` to the type of ``current`` (the existing value of the key)."""
    if isinstance(current, bool):
        low = text.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ValueError(f"expected a bool (true/false), got {text!r}")
    for kind in (int, float):
        if isinstance(current, kind):
            try:
                return kind(text)
            except ValueError:
                raise ValueError(f"expected {'an int' if kind is int else 'a float'}, got {text!r}") from None
    if isinstance(current, str):
        return text
    if text.strip().lower() in ("true", "false"):  # new key (open sections): bool as in the CLI
        return text.strip().lower() == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(cfg: ml_collections.ConfigDict, overrides) -> ml_collections.ConfigDict:
    """Apply ``["a.b=value", ...]`` (the part after ``--config.``) to ``cfg``; keys must exist
    (except under ``data`` and ``model.ssm``, whose keys are checked by their owners)."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like key=value")
        parts = key.split(".")
        node = cfg
        for depth, part in enumerate(parts[:-1]):
            if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
                raise ConfigError(f"unknown config key {'.'.join(parts[:depth + 1])!r}; "
                                  f"allowed: {', '.join(sorted(node.keys()))}")
            node = node[part]
        leaf = parts[-1]
        open_section = parts[:-1] in (["data"], ["model", "ssm"])
        if leaf not in node and not open_section:
            raise ConfigError(f"unknown config key {key!r}; allowed: {', '.join(sorted(node.keys()))}")
        current = node[leaf] if leaf in node else None
        try:
            value = _parse_value(text, current)
        except ValueError as e:
            raise ConfigError(f"config key {key!r}: {e}") from None
        with node.ignore_type():
            node[leaf] = value
    return cfg


def _check_keys(section, reference, prefix):
    for key in section.keys():
        if key not in reference:
            raise ConfigError(f"unknown config key {prefix + key!r}; allowed: "
                              f"{', '.join(sorted(reference.keys()))}")
        if isinstance(reference[key], ml_collections.ConfigDict) and prefix + key not in ("data", "model.ssm"):
            if not isinstance(section[key], ml_collections.ConfigDict):
                raise ConfigError(f"config key {prefix + key!r} must be a section")
            _check_keys(section[key], reference[key], prefix + key + ".")
        elif not isinstance(reference[key], ml_collections.ConfigDict):
            _check_type(prefix + key, section[key], type(reference[key]))


def _check_type(key, val, kind):
    ok = (isinstance(val, bool) if kind is bool else
          isinstance(val, (int, float)) and not isinstance(val, bool) if kind is float else
          isinstance(val, int) and not isinstance(val, bool) if kind is int else
          isinstance(val, str) if kind is str else True)
    if not ok:
        raise ConfigError(f"config key {key!r} must be of type {kind.__name__}, got {val!r}")


def _choice(key, value, allowed):
    if value not in allowed:
        raise ConfigError(f"config key {key!r} = {value!r} is not allowed; allowed values: "
                          f"{', '.join(map(repr, allowed))}")


def _positive(key, value, strict=True):
    if value < 0 or (strict and value == 0):
        raise ConfigError(f"config key {key!r} must be {'> 0' if strict else '>= 0'}, got {value}")


def validate_config(cfg: ml_collections.ConfigDict) -> None:
    """Check every key and value against the schema; raise ConfigError with one clear line."""
    _check_keys(cfg, default_config(), "")
    m, o, t, b = cfg.model, cfg.optim, cfg.train, cfg.bound
    _choice("model.layer", m.layer, tuple(SSM_LAYERS))
    _choice("model.encoder", m.encoder, ENCODERS + ("auto",))
    _choice("model.norm", m.norm, NORMS)
    _choice("model.activation", m.activation, ACTIVATIONS)
    _choice("model.pooling", m.pooling, POOLINGS)
    for key in ("d_model", "n_layers"):
        _positive(f"model.{key}", m[key])
    if not 0 <= m.dropout < 1:
        raise ConfigError(f"config key 'model.dropout' must be in [0, 1), got {m.dropout}")
    allowed = SSM_KWARGS[m.layer]
    for key in m.ssm.keys():
        if key not in allowed:
            raise ConfigError(f"unknown config key 'model.ssm.{key}' for layer {m.layer!r}; "
                              f"allowed: {', '.join(allowed)}")
    ssm = m.ssm
    for key, kind in SSM_KWARG_TYPES.items():
        if key in ssm:
            _check_type(f"model.ssm.{key}", ssm[key], kind)
    if "d_state" in ssm:
        _positive("model.ssm.d_state", ssm.d_state)
    d_state, blocks = ssm.get("d_state", 64), ssm.get("blocks", 1)
    _positive("model.ssm.blocks", blocks)
    if m.layer == "s5" and d_state % blocks:
        raise ConfigError(f"config key 'model.ssm.d_state' = {d_state} must be divisible by "
                          f"model.ssm.blocks = {blocks}")
    if ssm.get("conj_sym", True) and (d_state // blocks) % 2:
        raise ConfigError(f"config key 'model.ssm.d_state' = {d_state} must be even (per block) "
                          "with model.ssm.conj_sym=True")
    if "ssm_init" in ssm:
        _choice("model.ssm.ssm_init", ssm.ssm_init, LAMBDA_INITS)
    if "discretization" in ssm:
        _choice("model.ssm.discretization", ssm.discretization, DISCRETIZATIONS)
    if "mode" in ssm:
        _choice("model.ssm.mode", ssm.mode, S4D_MODES)
    if "scan_method" in ssm:
        _choice("model.ssm.scan_method", ssm.scan_method, SCAN_METHODS)
    if not 0 < ssm.get("dt_min", 1e-3) <= ssm.get("dt_max", 1e-1):
        raise ConfigError("config keys 'model.ssm.dt_min'/'dt_max' need 0 < dt_min <= dt_max, "
                          f"got {ssm.get('dt_min')}, {ssm.get('dt_max')}")
    for key in ("lr", "ssm_lr"):
        _positive(f"optim.{key}", o[key])
    _positive("optim.weight_decay", o.weight_decay, strict=False)
    _positive("optim.warmup_steps", o.warmup_steps, strict=False)
    _positive("optim.grad_clip", o.grad_clip, strict=False)
    _choice("optim.schedule", o.schedule, SCHEDULES)
    for key in ("batch_size", "eval_batch_size", "num_steps", "log_every", "eval_every",
                "checkpoint_every", "keep_checkpoints"):
        _positive(f"train.{key}", t[key])
    _choice("bound.measure", b.measure, tuple(MEASURES))
    _choice("bound.channel_reduce", b.channel_reduce, tuple(REDUCTIONS))
    _choice("bound.layer_reduce", b.layer_reduce, tuple(REDUCTIONS))
    _positive("bound.reg_lambda", b.reg_lambda, strict=False)
    _positive("bound.init_batch_size", b.init_batch_size)
    try:
        resolve_config(cfg.data)  # dataset name and keys, checked by the data registry
    except ValueError as e:
        raise ConfigError(f"config section 'data': {e}") from None
