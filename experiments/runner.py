"""Running one experiment module, standalone (``python -m ssm_jax.experiments.paperN.<name>``) or as
part of ``ssm-jax reproduce``.

An experiment module defines:

* ``PAPER`` (1, 2 or 3), ``NAME`` (the module name) and ``Settings``: a frozen dataclass of
  option fields, the ``experiment`` section of its config ``configs/paper<PAPER>/<NAME>.py``, whose
  ``get_config(scale)`` supports at least the scales ``quick``, ``cpu`` and ``paper``;
* ``prepare(exp, directory) -> list``: every check that can fail (data present, run
  directories consistent), before anything is written; returns the units of work (runs or
  cases), which the progress bar counts;
* ``execute(exp, directory, units, bar) -> summary``: does the work (reusing finished runs),
  advances ``bar`` by one per unit, writes its tables (CSV, markdown) and figures (PNG);
* ``claims(exp, summary) -> list[Claim]``: the claims it tests, with their verdicts.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

from ssm_jax.experiments.claims import claims_table, write_claims
from ssm_jax.experiments.config import load
from ssm_jax.experiments.sweeps import enable_compilation_cache
from ssm_jax.training.config import ConfigError, save_config


def module_name(module) -> str:
    """The experiment's name (``NAME``; its config is ``configs/paper<N>/<NAME>.py``)."""
    return getattr(module, "NAME", None) or module.__name__.rsplit(".", 1)[-1]


def config_path(module) -> str:
    """The name of the module's shipped config, ``paper<N>/<NAME>`` (found from any directory,
    see :func:`ssm_jax.training.config.config_file`)."""
    return f"paper{module.PAPER}/{module_name(module)}"


def load_module_config(module, scale: str, overrides=()):
    """The module's experiment config at ``scale`` (parsed)."""
    return load(f"{config_path(module)}:{scale}", module.Settings, overrides)


def placed(exp, directory: str):
    """``exp`` with an empty ``data_dir`` setting (data an experiment generates and shares with
    the other experiments of its paper) set to ``data/`` beside ``directory``, so everything a
    run writes stays under its results folder (``--workdir`` of ``ssm-jax reproduce``)."""
    if getattr(exp.settings, "data_dir", None) != "":
        return exp
    data_dir = os.path.join(os.path.dirname(os.path.normpath(directory)), "data")
    return dataclasses.replace(exp, settings=dataclasses.replace(exp.settings, data_dir=data_dir))


def run(module, exp, directory: str, bar=None) -> tuple:
    """prepare -> save config -> execute -> claims; returns ``(summary, claims)`` and writes
    ``directory/claims.json``."""
    units = module.prepare(exp, directory)
    save_config(exp, directory)
    enable_compilation_cache()
    own_bar = bar is None
    if own_bar:
        from tqdm import tqdm

        bar = tqdm(total=len(units), desc=module_name(module), dynamic_ncols=True, file=sys.stderr)
    start = time.perf_counter()
    summary = module.execute(exp, directory, units, bar)
    if own_bar:
        bar.close()
    claims = module.claims(exp, summary)
    write_claims(directory, claims, scale=exp.spec.partition(":")[2] or None)
    summary = dict(summary, elapsed=time.perf_counter() - start)
    return summary, claims


def main(module, argv=None) -> int:
    """Command line of one experiment: ``--config`` (default its ``:cpu`` scale), ``--out``,
    ``--config.KEY=VALUE`` overrides. Prints its table and its claims. Config, data and run
    directory errors are one ``error: ...`` line and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = [a[len("--config."):] for a in argv if a.startswith("--config.")]
    argv = [a for a in argv if not a.startswith("--config.")]
    name = module_name(module)
    parser = argparse.ArgumentParser(prog=f"python -m {module.__name__}",
                                     description=(module.__doc__ or "").splitlines()[0],
                                     epilog="override any config key with --config.KEY=VALUE")
    parser.add_argument("--config", default=f"{config_path(module)}:cpu",
                        help="a shipped config name or a path, with an optional :scale "
                             "(default %(default)s)")
    parser.add_argument("--out", default=None,
                        help=f"results folder (default results/paper{module.PAPER}/<experiment.name>)")
    args = parser.parse_args(argv)
    try:
        exp = load(args.config, module.Settings, overrides)
        directory = args.out or os.path.join("results", f"paper{module.PAPER}", exp.settings.name)
        summary, claims = run(module, placed(exp, directory), directory)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    table = os.path.join(directory, "table.md")
    print(f"wrote {directory}/ ({name})")
    if os.path.exists(table):
        with open(table) as f:
            print(f.read())
    print(claims_table(claims))
    return 0
