"""Typed options: the one place where a configurable value is declared and checked.

A field made with :func:`option` carries its type, default, allowed values and help text. A
frozen dataclass of such fields is the validated, hashable form of a config section: the
options of an SSM layer (``ssm_jax.layers``), the trainer's sections (``ssm_jax.training.
config``), the ``bound`` section (``ssm_jax.bound.config``), an experiment's settings.
:func:`parse` builds one from a mapping and raises :class:`OptionError` with a single line
naming the key and what is allowed; :func:`describe` gives the help text. Nothing here
imports JAX.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Callable, Sequence

KINDS = (bool, int, float, str, tuple)


class OptionError(ValueError):
    """A key or value that cannot be used; the message is one line naming the key."""


def option(default, help: str, *, kind=None, choices: Sequence | Callable | None = None,
           minimum=None, maximum=None, exclusive_minimum: bool = False,
           exclusive_maximum: bool = False, positive: bool = False, item_kind=None,
           nullable: bool = False):
    """A dataclass field with its checks.

    Args:
      default: default value (a tuple for list-valued options).
      help: one line for the help text.
      kind: bool, int, float, str or tuple; default ``type(default)``.
      choices: the allowed values, or a function returning them (evaluated when checking, so
        that a registry can grow, e.g. layer names).
      minimum, maximum: bounds for numbers (and for the items of a tuple of numbers).
      exclusive_minimum, exclusive_maximum: strict bounds.
      positive: shorthand for ``minimum=0, exclusive_minimum=True`` (``> 0``).
      item_kind: kind of the items of a tuple option.
      nullable: None is allowed (as "not set").
    """
    kind = kind or type(default)
    if positive:
        minimum, exclusive_minimum = 0, True
    if kind not in KINDS:
        raise TypeError(f"option kind must be one of {KINDS}, got {kind!r}")
    meta = dict(help=help, kind=kind, choices=choices, minimum=minimum, maximum=maximum,
                exclusive_minimum=exclusive_minimum, exclusive_maximum=exclusive_maximum,
                item_kind=item_kind, nullable=nullable)
    return dataclasses.field(default=default, metadata=meta)


def is_option(field: dataclasses.Field) -> bool:
    return "kind" in field.metadata and "help" in field.metadata


def option_fields(cls) -> list:
    """The :func:`option` fields of a dataclass (or of a Flax module class), in order."""
    return [f for f in dataclasses.fields(cls) if is_option(f)]


def option_of(cls, name: str):
    """A new field declared as the field ``name`` of the dataclass ``cls`` (a Flax module class
    included): the same default, checks and help, so that a class built around another one
    (the model around its blocks) does not restate its options."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return dataclasses.field(default=f.default, metadata=f.metadata)


def options_class(cls, name: str, *, exclude: Sequence[str] = (), namespace: Mapping | None = None,
                  doc: str | None = None) -> type:
    """Frozen (hashable) dataclass ``name`` of the init fields of the dataclass ``cls`` (a Flax
    module class included), in ``cls``'s order: its :func:`option` fields with their checks,
    and the other fields passed through unchecked; without ``exclude`` and Flax's ``parent``
    and ``name``. The validated form of the options a module declares once (an SSM layer's
    ``Options``, the model's :data:`~ssm_jax.models.ArchitectureOptions`).

    Args:
      namespace: methods and attributes of the new class.
      doc: its docstring.
    """
    fields = []
    for f in dataclasses.fields(cls):
        if f.name in exclude or f.name in ("parent", "name") or not f.init:
            continue
        kind = f.metadata["kind"] if is_option(f) else object
        fields.append((f.name, kind, dataclasses.field(default=f.default, metadata=f.metadata)))
    namespace = {**(namespace or {}), "__module__": cls.__module__,
                 "__doc__": doc or f"Options of {cls.__name__} (frozen, hashable)."}
    return dataclasses.make_dataclass(name, fields, frozen=True, namespace=namespace)


def _kind_name(kind) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str", tuple: "list"}[kind]


def _check_scalar(key: str, value, kind, meta: Mapping):
    """``value`` checked against ``kind`` and the bounds; returns it (ints made floats)."""
    if kind is bool:
        if not isinstance(value, bool):
            raise OptionError(f"config key {key!r} must be a bool (true/false), got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise OptionError(f"config key {key!r} must be of type int, got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionError(f"config key {key!r} must be of type float, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise OptionError(f"config key {key!r} must be a finite float, got {value!r}")
    elif kind is str:
        if not isinstance(value, str):
            raise OptionError(f"config key {key!r} must be of type str, got {value!r}")
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if kind in (int, float) and (lo is not None or hi is not None):
        lo_open, hi_open = meta.get("exclusive_minimum"), meta.get("exclusive_maximum")
        bad_lo = lo is not None and (value <= lo if lo_open else value < lo)
        bad_hi = hi is not None and (value >= hi if hi_open else value > hi)
        if bad_lo or bad_hi:
            raise OptionError(f"config key {key!r} must be {_range_text(meta)}, got {value!r}")
    choices = meta.get("choices")
    if choices is not None:
        allowed = tuple(choices() if callable(choices) else choices)
        if value not in allowed:
            raise OptionError(f"config key {key!r} = {value!r} is not allowed; valid names: "
                              f"{', '.join(map(repr, allowed))}")
    return value


def _range_text(meta: Mapping) -> str:
    lo, hi = meta.get("minimum"), meta.get("maximum")
    lo, hi = (None if v is None else f"{v:g}" for v in (lo, hi))
    if lo is not None and hi is not None:
        return (f"in {'(' if meta.get('exclusive_minimum') else '['}{lo}, "
                f"{hi}{')' if meta.get('exclusive_maximum') else ']'}")
    if lo is not None:
        return f"{'>' if meta.get('exclusive_minimum') else '>='} {lo}"
    return f"{'<' if meta.get('exclusive_maximum') else '<='} {hi}"


def check_value(key: str, value, meta: Mapping):
    """Check one value against an option's metadata; returns the value in canonical form
    (floats for float options, tuples for list options)."""
    if value is None and meta.get("nullable"):
        return None
    kind = meta["kind"]
    if kind is tuple:
        if not isinstance(value, (tuple, list)):
            raise OptionError(f"config key {key!r} must be a list, got {value!r}")
        item_kind = meta.get("item_kind")
        if item_kind is None:
            return tuple(value)
        item_meta = {**meta, "kind": item_kind, "nullable": False}
        return tuple(_check_scalar(f"{key}[{i}]", v, item_kind, item_meta)
                     for i, v in enumerate(value))
    return _check_scalar(key, value, kind, meta)


def _as_mapping(values) -> dict:
    if values is None:
        return {}
    if dataclasses.is_dataclass(values) and not isinstance(values, type):
        return {f.name: getattr(values, f.name) for f in dataclasses.fields(values)}
    if hasattr(values, "to_dict"):  # ml_collections.ConfigDict
        return dict(values.to_dict())
    if isinstance(values, Mapping):
        return dict(values)
    raise OptionError(f"expected a mapping of options, got {type(values).__name__}")


def parse(cls, values=None, prefix: str = "", **extra_checks):
    """Build the frozen dataclass ``cls`` from a mapping, checking every key and value.

    Args:
      cls: a dataclass whose fields are :func:`option` fields (other fields keep their
        defaults or take the value given, unchecked: e.g. nested sections parsed by the caller).
      values: mapping (dict, ConfigDict) or an instance of ``cls``; missing keys take the
        defaults.
      prefix: dotted prefix for error messages, e.g. ``"model.ssm."``.

    Returns:
      an instance of ``cls``; ``cls.check(self, prefix)`` (cross-field checks) is called when
      defined.

    Raises:
      OptionError naming the key (``prefix + name``) and the allowed keys or values.
    """
    if isinstance(values, cls):
        return values
    values = _as_mapping(values)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise OptionError(f"unknown config key {prefix + unknown[0]!r}; allowed: "
                          f"{', '.join(sorted(fields))}")
    out = {}
    for name, value in values.items():
        f = fields[name]
        out[name] = check_value(prefix + name, value, f.metadata) if is_option(f) else value
    obj = cls(**out)
    check = getattr(obj, "check", None)
    if callable(check):
        check(prefix)
    return obj


def replace(obj, prefix: str = "", **changes):
    """``dataclasses.replace`` that checks the changed values (and the cross-field rules)."""
    return parse(type(obj), {**_as_mapping(obj), **changes}, prefix)


def to_dict(obj) -> dict:
    """Nested plain dict of a dataclass of options (tuples become lists, for JSON); fields that
    are not options are left out while they hold their default."""
    def plain(v):
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return to_dict(v)
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        return v

    # a pass-through field (not an option, e.g. a layer's ``param_dtype``) at its default is
    # left out: parsing fills it in again, and a JSON config holds only what it can load
    return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)
            if is_option(f) or getattr(obj, f.name) is not f.default}


def describe(cls, prefix: str = "") -> list:
    """Help lines ``prefix.name (kind, default D; allowed ...): help`` for every option."""
    lines = []
    for f in option_fields(cls):
        meta = f.metadata
        extra = [f"{_kind_name(meta['kind'])}", f"default {f.default!r}"]
        if meta.get("choices") is not None:
            c = meta["choices"]
            extra.append("one of " + ", ".join(map(repr, c() if callable(c) else c)))
        elif meta.get("minimum") is not None or meta.get("maximum") is not None:
            extra.append(_range_text(meta))
        lines.append(f"{prefix}{f.name} ({'; '.join(extra)}): {meta['help']}")
    return lines


def defaults(cls) -> dict:
    """``{name: default}`` of the option fields of ``cls``."""
    return {f.name: f.default for f in option_fields(cls)}


def require(condition: bool, key: str, message: str) -> None:
    """Raise OptionError ``config key 'key' message`` unless ``condition`` (cross-field checks)."""
    if not condition:
        raise OptionError(f"config key {key!r} {message}")


__all__ = ["OptionError", "check_value", "defaults", "describe", "is_option", "option",
           "option_fields", "option_of", "options_class", "parse", "replace", "require",
           "to_dict"]
