"""Shared helpers of the experiment scripts: command line, configs, sweeps of training runs,
evaluation of a finished run, tables and figures.

An experiment config (``configs/<paper>/<name>.py``, ``get_config(arg)``) is one of:

* a trainer config (``ssm_jax.training.config.default_config()``) with an extra
  ``experiment`` section (the sweep settings), or
* ``experiment`` plus ``tasks``: one full trainer config per task (e.g. the LRA tasks).

Command-line overrides ``--config.KEY=VALUE``: keys under ``experiment.`` go to the sweep
settings, ``tasks.<task>.KEY`` to one task, and any other key to every trainer config.

Each training run has its own work directory ``<out>/runs/<run_id>/``; a rerun skips runs
that already have ``report.json`` (and ``result.json``, the experiment's own evaluation), and
the trainer resumes interrupted runs from their checkpoints. A run directory written with a
different config is an error, never silently reused.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import sys
from dataclasses import dataclass, field

import jax
import ml_collections
import numpy as np

from ssm_jax.training.config import (ConfigError, apply_overrides, load_config,
                                     validate_config)

RESULTS = os.path.join("results", "paper1")


# --------------------------------------------------------------------------------- configs


def check_names(key: str, values, allowed, what: str = "allowed") -> None:
    """ConfigError naming ``key`` if any of ``values`` is not in ``allowed``."""
    for v in values:
        if v not in allowed:
            raise ConfigError(f"{key}: unknown name {v!r}; {what}: {', '.join(map(repr, allowed))}")


def parse_args(name: str, argv=None, description: str = ""):
    """``(args, overrides)``: ``--config``, ``--out`` and the ``--config.KEY=VALUE`` list."""
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = [a[len("--config."):] for a in argv if a.startswith("--config.")]
    argv = [a for a in argv if not a.startswith("--config.")]
    parser = argparse.ArgumentParser(prog=f"python -m experiments.paper1.{name}",
                                     description=description,
                                     epilog="override any config key with --config.KEY=VALUE")
    parser.add_argument("--config", default=f"configs/paper1/{name}.py:cpu",
                        help="configs/paper1/<name>.py[:scale] (default %(default)s)")
    parser.add_argument("--out", default=None,
                        help=f"results folder (default {RESULTS}/<experiment.name>)")
    return parser.parse_args(argv), overrides


def trainer_configs(cfg) -> dict:
    """``{task: trainer config}`` of an experiment config (``{"main": ...}`` without tasks)."""
    if "tasks" in cfg:
        return dict(cfg.tasks.items())
    base = ml_collections.ConfigDict({k: v for k, v in cfg.items() if k != "experiment"})
    return {"main": base}


def apply_experiment_overrides(cfg, overrides):
    """Route ``KEY=VALUE`` overrides (see the module docstring); returns ``cfg``."""
    for item in overrides:
        key = item.partition("=")[0]
        if key.startswith("experiment.") or "tasks" not in cfg:
            apply_overrides(cfg, [item])
        elif key.startswith("tasks."):
            task, _, rest = item[len("tasks."):].partition(".")
            if task not in cfg.tasks:
                raise ConfigError(f"unknown task {task!r} in override {item!r}; "
                                  f"tasks: {', '.join(cfg.tasks.keys())}")
            apply_overrides(cfg.tasks[task], [rest])
        else:
            for task_cfg in cfg.tasks.values():
                apply_overrides(task_cfg, [item])
    return cfg


def load_experiment_config(spec: str, overrides=()):
    """Load ``path.py[:arg]``, apply the overrides and validate every trainer config."""
    cfg = load_config(spec)
    if "experiment" not in cfg:
        raise ConfigError(f"config {spec!r} has no 'experiment' section")
    apply_experiment_overrides(cfg, overrides)
    for name, task_cfg in trainer_configs(cfg).items():
        try:
            validate_config(task_cfg)
        except ConfigError as e:
            raise ConfigError(f"task {name!r}: {e}" if "tasks" in cfg else str(e)) from None
    return cfg


def out_dir(args, cfg) -> str:
    return args.out or os.path.join(RESULTS, cfg.experiment.name)


def save_config(cfg, directory: str) -> str:
    """Write the resolved config to ``directory/config.json``."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "config.json")
    with open(path, "w") as f:
        f.write(cfg.to_json_best_effort(indent=2))
    return path


def seeds(cfg) -> list:
    """``experiment.num_seeds`` seeds starting at the config's ``experiment.first_seed``."""
    return [cfg.experiment.first_seed + i for i in range(cfg.experiment.num_seeds)]


def run_config(task_cfg, **changes):
    """Copy of a trainer config with ``{"a.b": value}`` changes (inner progress bar off)."""
    cfg = ml_collections.ConfigDict(task_cfg.to_dict())
    cfg.train.progress = False
    for key, value in changes.items():
        node, parts = cfg, key.split(".")
        for part in parts[:-1]:
            node = node[part]
        with node.ignore_type():
            node[parts[-1]] = value
    validate_config(cfg)
    return cfg


def enable_compilation_cache() -> None:
    """Persistent XLA compilation cache, so the runs of a sweep (same model, new closures)
    compile once: ``$SSM_JAX_COMPILATION_CACHE``, else ``~/.cache/ssm_jax/xla``. Left
    alone when JAX already has a cache directory."""
    if jax.config.jax_compilation_cache_dir:
        return
    path = os.environ.get("SSM_JAX_COMPILATION_CACHE") or os.path.expanduser("~/.cache/ssm_jax/xla")
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def main_guard(fn, argv=None) -> int:
    """Run ``fn(argv)``; config and data errors become one ``error: ...`` line and exit code 2."""
    try:
        fn(argv)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


# ------------------------------------------------------------------------------------ runs


@dataclass
class Run:
    """One training run of a sweep: its id (work directory name), trainer config and the
    sweep coordinates that go into the tables (``meta``)."""

    run_id: str
    cfg: ml_collections.ConfigDict
    meta: dict = field(default_factory=dict)


def _same_config(workdir: str, cfg) -> bool:
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return True
    with open(path) as f:
        return json.load(f) == json.loads(cfg.to_json_best_effort())


def check_runs(runs, directory: str) -> None:
    """Unique run ids, and no run directory under ``directory`` written with another config."""
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"run ids are not unique: {ids}")
    for run in runs:
        workdir = os.path.join(directory, "runs", run.run_id)
        if not _same_config(workdir, run.cfg):
            raise ValueError(f"{workdir} holds a run with a different config; delete it or "
                             "choose another --out")


def run_sweep(runs, directory: str, evaluate, desc: str = "runs") -> list:
    """Train every run (skipping finished ones) and evaluate it; returns one row per run.

    Args:
      runs: list of :class:`Run`.
      directory: the experiment's results folder; run ``r`` works in ``directory/runs/<r.run_id>``.
      evaluate: ``evaluate(run, workdir, report) -> dict`` of extra numbers (cached in
        ``result.json`` of the run).
      desc: label of the progress bar.

    Returns:
      list of dicts: ``run_id``, ``meta``, the trainer's report under ``report``, the
      evaluation under ``result`` and ``trained`` (False when the run was reused).
    """
    from tqdm import tqdm

    from ssm_jax.training.loop import train_and_evaluate

    check_runs(runs, directory)
    rows = []
    bar = tqdm(runs, desc=desc, unit="run", dynamic_ncols=True, file=sys.stderr)
    for run in bar:
        bar.set_postfix_str(run.run_id)
        workdir = os.path.join(directory, "runs", run.run_id)
        report_path = os.path.join(workdir, "report.json")
        result_path = os.path.join(workdir, "result.json")
        trained = not os.path.exists(report_path)
        if not trained:
            with open(report_path) as f:
                report = json.load(f)
        else:
            os.makedirs(workdir, exist_ok=True)
            with open(os.path.join(workdir, "train.log"), "a") as log, \
                    contextlib.redirect_stdout(log):
                report = train_and_evaluate(run.cfg, workdir)
        if os.path.exists(result_path):
            with open(result_path) as f:
                result = json.load(f)
        else:
            result = evaluate(run, workdir, report)
            with open(result_path, "w") as f:
                json.dump(result, f, indent=2)
        rows.append({"run_id": run.run_id, "meta": run.meta, "report": report, "result": result,
                     "trained": trained})
    return rows


def timing_note(rows: list, elapsed: float) -> str:
    """One line for a table: wall-clock of this invocation and how many runs it trained."""
    trained = sum(r["trained"] for r in rows)
    return (f"Wall-clock of this invocation: {elapsed:.0f} s; {trained} of {len(rows)} runs "
            "trained (the others reused from runs/).")


# ---------------------------------------------------------------------- finished-run tools


_EVAL_FNS = {}


def evaluate_split(model, variables, split, batch_size: int) -> dict:
    """Mean task loss (and accuracy for classification) of ``variables`` on a whole split,
    in evaluation mode (as the trainer's eval step)."""
    from ssm_jax.training.steps import task_loss

    key = id(model)
    if key not in _EVAL_FNS or _EVAL_FNS[key][0] is not model:
        @jax.jit
        def fn(variables, batch):
            out = model.apply(variables, batch["inputs"], batch["lengths"], train=False)
            return task_loss(out, batch["labels"], model.head, batch["mask"])[1]
        _EVAL_FNS[key] = (model, fn)
    fn = _EVAL_FNS[key][1]
    totals = {}
    for batch in split.batches(min(batch_size, len(split))):
        for k, v in jax.device_get(fn(variables, batch)).items():
            totals[k] = totals.get(k, 0.0) + float(v)
    count = totals.pop("count")
    return {k: v / count for k, v in totals.items()}


def first_examples(split, n: int, seed: int) -> dict:
    """The first ``n`` examples of a seeded permutation of ``split`` (the trainer's init
    batch convention)."""
    n = min(n, len(split))
    return split.take(np.random.default_rng(seed).permutation(len(split))[:n])


def total_tau(model, variables, batch, measure: str = "paper") -> float:
    """Sum over SSM layers of the mean over channels of tau on ``batch``."""
    from ssm_jax.bound import layer_measures

    taus = layer_measures(model, variables, batch["inputs"], batch["lengths"], measure=measure)
    return float(sum(float(np.mean(jax.device_get(t))) for t in taus))


# ---------------------------------------------------------------------------------- tables


def mean_std(values) -> tuple:
    """Mean and sample std (ddof=1; 0 for one value) of finite values; NaN when none."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def fmt(x, digits: int = 4) -> str:
    """Number with ``digits`` significant digits (ints as ints, NaN as "-")."""
    if isinstance(x, str):
        return x
    if isinstance(x, (bool, np.bool_)):
        return str(x)
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.{digits}g}"


def pm(mean, std, digits: int = 3) -> str:
    """``mean ± std`` for markdown."""
    if not math.isfinite(mean):
        return "-"
    return f"{fmt(mean, digits)} ± {fmt(std, 2)}"


def write_csv(path: str, rows: list, columns: list) -> str:
    """Rows (dicts) as CSV with the given columns; floats at full precision."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({c: row.get(c, "") for c in columns})
    return path


def markdown_table(rows: list, columns: list, headers: list | None = None) -> str:
    """A GitHub markdown table; cells through :func:`fmt` unless already strings."""
    headers = headers or columns
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def write_markdown(path: str, sections: list) -> str:
    """Write ``sections`` (strings: titles, tables, notes) separated by blank lines."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write("\n\n".join(s.strip("\n") for s in sections) + "\n")
    return path


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
