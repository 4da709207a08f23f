"""Experiment configs, parsed once at the edge.

Config files stay ml_collections: ``configs/<name>.py`` defines ``get_config(arg)`` (``arg``
selects a scale such as ``cpu`` or ``paper``; a module-level ``SCALES`` tuple lists them) and
starts from :func:`default_config`. The command line (or an experiment) then

1. loads the file (:func:`load_config`: a missing file, a syntax or import error, a
   ``get_config`` that raises or returns no config, an unknown scale: one-line errors),
2. applies ``--config.a.b=value`` overrides (:func:`apply_overrides`, typed from the current
   value),
3. parses the result once into a frozen, typed :class:`Config` (:func:`parse_config`): every
   key and value is checked (types, NaN/Inf, ranges, allowed names, the layer's own options,
   the dataset's keys, whether a batch can fit in memory), and the one-line
   :class:`ConfigError` names the key and what is allowed.

Everything inside (trainer, models, layers) receives the parsed values and does not check them
again. The ``path:arg`` and ``--config.a.b=value`` syntax is that of
``ml_collections.config_flags``; its loader is not used because it ends in a traceback for an
unknown key or a syntax error in the file, cannot add the keys that the layer and the dataset
own (``model.ssm.*``, ``data.*``), and accepts any scale suffix a file ignores. The schema (defaults, types, allowed values, help) is the option fields of the
dataclasses below and of each layer (``ssm_jax.layers``) and of ``bound`` (``ssm_jax.bound``).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.machinery
import importlib.util
import inspect
import json
import math
import os
import sys
import types
from typing import Mapping

import ml_collections

from ssm_jax import options as opt
from ssm_jax.bound.config import BoundOptions
from ssm_jax.bound.timescale_init import InitOptions
from ssm_jax.data import resolve_config
from ssm_jax.files import write_json_atomic
from ssm_jax.layers import get_layer, layer_names, layer_options
from ssm_jax.models import ENCODERS, ArchitectureOptions
from ssm_jax.options import OptionError, option
from ssm_jax.training.optim import SCHEDULES

ConfigError = OptionError  # one error type for every bad key or value

# Sections whose keys are owned by someone else: the dataset (data registry) and the layer.
OPEN_SECTIONS = (("data",), ("model", "ssm"))


@dataclasses.dataclass(frozen=True)
class ModelOptions(ArchitectureOptions):
    """``model``: the model's architecture (:data:`ssm_jax.models.ArchitectureOptions`, the
    fields :class:`ssm_jax.models.ModelFields` declares, with their defaults; ``ssm``: the
    layer's options) and the trainer's own keys: ``encoder`` "auto" and ``binary_logit``."""

    encoder: str = option("auto", "input encoder ('auto': embedding for tokens, else linear)",
                          choices=ENCODERS + ("auto",))
    binary_logit: bool = option(False, "two classes: one logit trained with sigmoid BCE "
                                "(instead of two logits with softmax cross-entropy)")


@dataclasses.dataclass(frozen=True)
class OptimOptions:
    """``optim``: Adam for the SSM core (own learning rate, no weight decay), AdamW else."""

    lr: float = option(3e-3, "peak learning rate (regular group)", positive=True)
    ssm_lr: float = option(1e-3, "peak learning rate of the SSM core", positive=True)
    weight_decay: float = option(0.01, "AdamW weight decay (regular group)", minimum=0.0)
    warmup_steps: int = option(100, "linear warm-up steps", minimum=0)
    schedule: str = option("cosine", "learning-rate schedule after warm-up", choices=SCHEDULES)
    grad_clip: float = option(0.0, "global gradient-norm clip (0 = off)", minimum=0.0)
    b1: float = option(0.9, "Adam beta1", minimum=0.0, maximum=1.0, exclusive_maximum=True)
    b2: float = option(0.999, "Adam beta2", minimum=0.0, maximum=1.0, exclusive_maximum=True)
    recipe: str = option("groups", "'groups': Adam for the SSM core, AdamW else; 'adam_l2': "
                         "one Adam with coupled L2 (weight_decay added to the gradient), constant "
                         "lr reduced on plateaus of the epoch-mean training loss (the "
                         "selective-SSM paper's recipe)", choices=("groups", "adam_l2"))
    plateau_factor: float = option(0.9, "adam_l2: lr factor on a plateau", positive=True,
                                   maximum=1.0)
    plateau_patience: int = option(5, "adam_l2: epochs without improvement before a cut",
                                   minimum=0)
    plateau_rtol: float = option(0.01, "adam_l2: relative improvement that counts", minimum=0.0)
    plateau_semantics: str = option(
        "optax", "adam_l2: 'optax' (optax.contrib.reduce_on_plateau: cut at the patience-th bad "
        "epoch, applied from the epoch's last step) or 'torch' (torch ReduceLROnPlateau: cut "
        "when the bad epochs exceed patience, applied from the next epoch; the selective-SSM "
        "authors' code)", choices=("optax", "torch"))


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """``train``: steps, batches, logging, evaluation and checkpoints."""

    batch_size: int = option(64, "training batch size (global, split over devices)", positive=True)
    eval_batch_size: int = option(256, "evaluation batch size", positive=True)
    num_steps: int = option(1000, "optimizer steps", positive=True)
    log_every: int = option(50, "steps between train-metric rows", positive=True)
    eval_every: int = option(200, "steps between validation evaluations", positive=True)
    checkpoint_every: int = option(200, "steps between checkpoints", positive=True)
    keep_checkpoints: int = option(2, "newest checkpoints kept (plus the best)", positive=True)
    progress: bool = option(True, "show a progress bar")
    extend: bool = option(False, "allow resuming with a larger num_steps or num_epochs (the "
                          "learning-rate schedule becomes that of the new length from the "
                          "resumed step on); reported at the start")
    num_epochs: int = option(0, "epochs (> 0: replaces num_steps by num_epochs * batches per "
                             "epoch and logs once per epoch)", minimum=0)
    collapse_penalty: float = option(0.0, "weight c of the collapse penalty c * max(0, "
                                     "collapse_min_std - std(sigmoid(outputs))) (paper 3: 10)",
                                     minimum=0.0)
    collapse_min_std: float = option(0.1, "target std of the collapse penalty", minimum=0.0)
    drop_last: bool = option(True, "drop the last partial batch of every epoch (False: train "
                             "it too, as a torch DataLoader with drop_last=False)")
    failure: str = option(
        "nonfinite", "when a run has failed: 'nonfinite' (a NaN/Inf loss or parameter) or "
        "'authors' (the selective-SSM authors' checks: NaN/Inf outputs, a NaN loss or NaN "
        "gradients; an Inf loss passes)", choices=("nonfinite", "authors"))


@dataclasses.dataclass(frozen=True)
class DistributedOptions:
    """``distributed``: multi-host set-up through ``jax.distributed.initialize``."""

    multihost: bool = option(False, "call jax.distributed.initialize")
    coordinator_address: str = option("", "host:port of process 0 ('' = detected from the "
                                      "cluster environment)")
    num_processes: int = option(None, "number of processes (None = detected)", kind=int,
                                positive=True, nullable=True)
    process_id: int = option(None, "this process's id (None = detected)", kind=int, minimum=0,
                             nullable=True)


SECTIONS = {"model": ModelOptions, "optim": OptimOptions, "train": TrainOptions,
            "bound": BoundOptions, "distributed": DistributedOptions,
            "init": InitOptions}  # init: paper 2's timescale / eigenvalue init

# Keys a resumed run may change (applied and reported); any other change is refused. The
# distributed section (how the same run is spread over processes) may change freely.
RESUMABLE_CHANGES = ("train.log_every", "train.eval_every", "train.checkpoint_every",
                     "train.keep_checkpoints", "train.progress", "train.eval_batch_size",
                     "train.extend")
EXTENDABLE = ("train.num_steps", "train.num_epochs")  # raised on resume with train.extend
PLACEMENT = "distributed."


@dataclasses.dataclass(frozen=True)
class Config:
    """A parsed, validated run config (frozen). ``data`` is the dataset's resolved section."""

    seed: int
    data: Mapping
    model: ModelOptions
    optim: OptimOptions
    train: TrainOptions
    bound: BoundOptions
    distributed: DistributedOptions
    init: InitOptions = InitOptions()

    def to_dict(self) -> dict:
        """Plain nested dict (JSON-ready): what ``config.json`` holds."""
        return opt.to_dict(self)

    def replace(self, **changes) -> "Config":
        """A copy with ``{"section.key": value}`` changes (dots select sections), each checked:
        e.g. ``cfg.replace(**{"seed": 3, "bound.reg_lambda": 0.1, "model.ssm.d_state": 8})``."""
        return parse_config(_with_changes(self.to_dict(), changes))


def _with_changes(tree: dict, changes: Mapping) -> dict:
    for key, value in changes.items():
        node, parts = tree, key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"unknown config key {key!r}")
            node = node[part]
        node[parts[-1]] = value
    return tree


def default_config() -> ml_collections.ConfigDict:
    """Every config key with its default. Config files start from this."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.data = ml_collections.ConfigDict({"name": "digits"})  # keys checked by the data registry
    for name, cls in SECTIONS.items():
        c[name] = ml_collections.ConfigDict(opt.defaults(cls))
    c.model.ssm = ml_collections.ConfigDict()  # keys checked by the layer (model.layer)
    return c


# --------------------------------------------------------------------------------- loading


def _one_line(e: BaseException) -> str:
    """The message of ``e`` (of the exception it wraps, for ml_collections' errors) on one line."""
    while e.args and isinstance(e.args[0], BaseException):
        e = e.args[0]
    text = e.args[0] if len(e.args) == 1 and isinstance(e.args[0], str) else str(e)
    return "; ".join(line.strip() for line in text.splitlines() if line.strip()) or type(e).__name__


def shipped_configs() -> list:
    """Names of the configs installed with the package (``ssm_jax.configs``), e.g. ``smoke``,
    ``paper3/majority``: every ``configs/**.py`` with a ``get_config``."""
    import importlib.resources

    root = importlib.resources.files("ssm_jax.configs")
    names = []

    def walk(folder, prefix):
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.is_dir() and not entry.name.startswith(("_", ".")):
                walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith(".py") and "def get_config" in entry.read_text():
                names.append(prefix + entry.name[:-3])

    walk(root, "")
    return names


def config_file(name: str) -> str:
    """The file of a config given as a path (``configs/smoke.py``, any ``.py``) or by name
    (``smoke``, ``paper3/majority``: a config installed with the package, found through
    ``importlib.resources``, so names work from any directory). A path that exists wins.

    Raises:
      ConfigError: neither a file nor a shipped name (the message lists the names).
    """
    if os.path.exists(name):
        return name
    import importlib.resources

    stem = name[len("configs/"):] if name.startswith("configs/") else name
    stem = stem[:-3] if stem.endswith(".py") else stem
    if stem and all(part.isidentifier() for part in stem.split("/")):
        *folders, leaf = stem.split("/")
        entry = importlib.resources.files("ssm_jax.configs").joinpath(*folders, leaf + ".py")
        if entry.is_file():
            return str(entry)
    raise ConfigError(f"config file {name!r} does not exist, and it is not the name of a "
                      f"shipped config ({', '.join(shipped_configs())})")


def _load_module(path: str):
    path = config_file(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} is not a file")
    loader = importlib.machinery.SourceFileLoader("_ssm_jax_config", path)  # any file name
    spec = importlib.util.spec_from_file_location("_ssm_jax_config", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ConfigError(f"config file {path!r} has a syntax error at line {e.lineno}: {e.msg}") from None
    except Exception as e:  # an import error, or any error at import time
        raise ConfigError(f"config file {path!r} cannot be loaded: {type(e).__name__}: "
                          f"{_one_line(e)}") from None
    if not callable(getattr(module, "get_config", None)):
        raise ConfigError(f"config file {path!r} has no get_config(arg) function")
    return module


def _default_arg(fn):
    """The default of ``fn``'s first parameter, or ``inspect.Parameter.empty``; None if it
    takes no parameter."""
    params = list(inspect.signature(fn).parameters.values())
    return params[0].default if params else None


def _call(spec: str, fn, *args):
    try:
        cfg = fn(*args)
    except Exception as e:  # a value of the wrong type, an unknown scale, any bug in the file
        raise ConfigError(f"config file {spec!r}: get_config{'(%r)' % args[0] if args else '()'} "
                          f"raised {type(e).__name__}: {_one_line(e)}") from None
    if not isinstance(cfg, ml_collections.ConfigDict):
        raise ConfigError(f"config file {spec!r}: get_config must return an "
                          f"ml_collections.ConfigDict, got {type(cfg).__name__}")
    return cfg


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Load ``path/to/config.py[:arg]`` or ``name[:arg]`` (a shipped config, see
    :func:`config_file`) by calling its ``get_config(arg)``.

    A suffix must be one of the file's ``SCALES`` when it declares them; a file without
    ``SCALES`` whose ``get_config`` ignores the suffix (returns the same config as without it)
    is an error too, so a typo in the scale never trains the default.
    """
    path, _, arg = spec.partition(":")
    module = _load_module(path)
    get_config = module.get_config
    scales = getattr(module, "SCALES", None)
    if arg and scales is not None and arg not in scales:
        raise ConfigError(f"config file {path!r}: unknown scale {arg!r}; valid names: "
                          f"{', '.join(map(repr, scales))}")
    default = _default_arg(get_config)
    if not arg:
        return _call(spec, get_config)
    if default is None:
        raise ConfigError(f"config file {path!r} takes no scale argument, got {arg!r}")
    cfg = _call(spec, get_config, arg)
    if scales is None and arg != default and default is not inspect.Parameter.empty:
        if cfg.to_json_best_effort(sort_keys=True) == _call(spec, get_config).to_json_best_effort(sort_keys=True):
            raise ConfigError(f"config file {path!r} ignores the scale {arg!r} (get_config gives "
                              "the same config without it); drop the suffix or add SCALES")
    return cfg


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
    if text.strip().lower() in ("none", "null"):
        return None
    if text.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
        return float(text)  # rejected by the validation, with the key's name
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    body = text.strip()
    if body[:1] in "[(" and body[-1:] in "])":  # a list of unquoted words: [majority, listops]
        return [_parse_value(item.strip(), None) for item in body[1:-1].split(",") if item.strip()]
    if isinstance(current, (list, tuple)):
        raise ValueError(f"expected a list such as [a, b] or [1, 2], got {text!r}")
    return text


def _is_open(parts) -> bool:
    return any(tuple(parts[:len(s)]) == s for s in OPEN_SECTIONS)


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
        if leaf not in node and not _is_open(parts[:-1]):
            raise ConfigError(f"unknown config key {key!r}; allowed: {', '.join(sorted(node.keys()))}")
        current = node[leaf] if leaf in node else None
        try:
            value = _parse_value(text, current)
        except ValueError as e:
            raise ConfigError(f"config key {key!r}: {e}") from None
        with node.ignore_type():
            node[leaf] = value
    return cfg


# --------------------------------------------------------------------------------- parsing


def _section(cfg, name) -> dict:
    value = cfg[name]
    if isinstance(value, ml_collections.ConfigDict):
        return dict(value.to_dict())
    if isinstance(value, Mapping):
        return dict(value)
    if dataclasses.is_dataclass(value):
        return opt.to_dict(value)
    raise ConfigError(f"config key {name!r} must be a section")


def _model(section: dict) -> ModelOptions:
    if "activation" in section:  # the key's old name; its values named the output projection
        old = section.pop("activation")
        section.setdefault("projection", {"gelu": "linear"}.get(old, old))
        print("warning: config key 'model.activation' is deprecated: use model.projection "
              "('gelu' -> 'linear', 'glu' -> 'glu')", file=sys.stderr)
    ssm = section.pop("ssm", None) or {}
    model = opt.parse(ModelOptions, section, "model.")
    return dataclasses.replace(model, ssm=layer_options(model.layer, ssm, "model.ssm.",
                                                        options_only=True))


def _data(section: dict) -> Mapping:
    try:
        resolved = resolve_config(section)  # dataset name and keys, checked by the data registry
    except ValueError as e:
        raise ConfigError(f"config section 'data': {e}") from None
    for key, value in resolved.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config key 'data.{key}' must be a finite float, got {value!r}")
    return types.MappingProxyType(resolved)


def parse_config(cfg) -> Config:
    """Check every key and value of ``cfg`` and return the frozen :class:`Config`.

    Args:
      cfg: a ConfigDict (from a config file and overrides), a plain nested dict, or a Config.

    Raises:
      ConfigError: one line naming the key and the allowed values.
    """
    if isinstance(cfg, Config):
        return cfg
    keys = set(cfg.keys())
    allowed = {"seed", "data"} | set(SECTIONS)
    unknown = sorted(keys - allowed)
    if unknown:
        raise ConfigError(f"unknown config key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    seed = opt.check_value("seed", cfg["seed"] if "seed" in keys else 0,
                           dict(kind=int, minimum=0))
    parsed = {}
    for name, cls in SECTIONS.items():
        section = _section(cfg, name) if name in keys else {}
        parsed[name] = _model(section) if name == "model" else opt.parse(cls, section, name + ".")
    data = _data(_section(cfg, "data")) if "data" in keys else _data({"name": "digits"})
    config = Config(seed=seed, data=data, **parsed)
    check_memory(config)
    return config


def _available_memory() -> int:
    """Bytes of memory available to this process (MemAvailable; physical pages otherwise)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(cfg: Config, available: int | None = None) -> None:
    """ConfigError if the dataset, one training batch or one evaluation batch cannot fit in
    memory.

    Lower bounds, so that no config that fits is refused: the generated dataset holds
    ``(num_train + num_val + num_test) * L * channels`` float32 values; one training step
    keeps at least 4 activations of ``batch * L * W`` float32 values per block for the
    backward pass, W the widest per-position activation (``d_model``, or a layer's
    ``dt_rank``, ``d_state`` or ``expand * d_model`` when larger); one evaluation batch holds
    at least 2 of ``eval_batch * L * W`` (``eval_batch`` at most the validation or test size
    when the config gives it).
    """
    d = cfg.data
    length = d.get("seq_len") or d.get("max_length")
    if not isinstance(length, int) or length < 1:
        return
    available = _available_memory() if available is None else available
    gb = lambda n: f"{n / 2 ** 30:.3g} GB"
    counts = [d[k] for k in ("num_train", "num_val", "num_test") if isinstance(d.get(k), int)]
    data_bytes = sum(counts) * length * int(d.get("in_channels") or 1) * 4
    if data_bytes > available:
        raise ConfigError(f"config key 'data.seq_len' = {length}: the {d['name']} dataset "
                          f"needs at least {gb(data_bytes)} of memory, more than the "
                          f"{gb(available)} available; lower data.seq_len or data.num_train")
    # the widest activation per position: the features, or a layer's wider projection
    widths = {"model.d_model": cfg.model.d_model}
    for key in ("dt_rank", "d_state", "expand"):
        value = getattr(cfg.model.ssm, key, None)
        if isinstance(value, int) and value > 0:
            widths[f"model.ssm.{key}"] = value * (cfg.model.d_model if key == "expand" else 1)
    wide_key, width = max(widths.items(), key=lambda kv: kv[1])
    step_bytes = 4 * 4 * cfg.train.batch_size * length * width * cfg.model.n_layers
    if step_bytes > available:
        raise ConfigError(f"config key 'data.seq_len' = {length}: one training step with "
                          f"train.batch_size = {cfg.train.batch_size} and {wide_key} = {width} "
                          f"needs at least {gb(step_bytes)} of memory, more than the "
                          f"{gb(available)} available; lower data.seq_len, train.batch_size or "
                          f"{wide_key}")
    # evaluation runs batches of eval_batch_size (at most the size of the split), forward only
    sizes = [d[k] for k in ("num_val", "num_test") if isinstance(d.get(k), int) and d[k] > 0]
    eval_rows = min(cfg.train.eval_batch_size, max(sizes)) if sizes else cfg.train.eval_batch_size
    eval_bytes = 2 * 4 * eval_rows * length * width
    if eval_bytes > available:
        raise ConfigError(f"config key 'train.eval_batch_size' = {cfg.train.eval_batch_size}: one "
                          f"evaluation batch of {eval_rows} sequences of length {length} needs at "
                          f"least {gb(eval_bytes)} of memory, more than the {gb(available)} "
                          "available; lower train.eval_batch_size")


def config_digest(cfg) -> str:
    """A short fingerprint of a config (the first 12 hex digits of the SHA-256 of its JSON with
    sorted keys): equal configs, equal digests; printed at the start of a run."""
    import hashlib

    text = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def save_config(cfg: Config, directory: str, name: str = "config.json") -> str:
    """Write ``cfg`` (a Config, or anything with ``to_dict``) as JSON to ``directory/name``
    atomically; returns the path."""
    os.makedirs(directory, exist_ok=True)
    return write_json_atomic(os.path.join(directory, name), cfg.to_dict(), default=str)


def config_changes(old: Mapping, new: Mapping, prefix: str = "") -> list:
    """``[(key, old value, new value)]`` for every key that differs between two config dicts."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<unset>"), new.get(key, "<unset>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += config_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append((prefix + key, a, b))
    return out


def flatten(tree: Mapping, prefix: str = "") -> dict:
    """``{"a.b": value}`` of a nested config dict."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def describe_config() -> list:
    """Help lines for every key: the sections, then each layer's ``model.ssm`` options."""
    lines = ["seed (int; default 0): random seed of the init, dropout and batch order",
             "data.name (str; default 'digits'): dataset; its keys: `ssm_jax/data/README.md`"]
    for name, cls in SECTIONS.items():
        lines += opt.describe(cls, name + ".")
    for layer in layer_names():
        lines.append(f"model.ssm.* for model.layer={layer!r}:")
        lines += ["  " + line for line in opt.describe(get_layer(layer).Options, "model.ssm.")]
    return lines
