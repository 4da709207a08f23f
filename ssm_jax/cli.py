"""`ssm-jax` command line: train, plot, options, reproduce.

Every user error (a bad config key or value, a config file that cannot be loaded, an unusable
or busy work directory, missing data, a bad plot argument) is one ``error: ...`` line on
stderr and exit code 2, before any compute; a run stopped by NaN/Inf exits with 3.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys

from ssm_jax import __version__

USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)


def _error(prefix: str, e: BaseException) -> int:
    text = " ".join(str(e).split()) or type(e).__name__
    print(f"{prefix}: {text}", file=sys.stderr)
    return 2


def split_overrides(argv):
    """``(argv without the overrides, [KEY=VALUE, ...])`` for overrides written
    ``--config.KEY=VALUE`` or ``--config.KEY VALUE``."""
    rest, overrides, i = [], [], 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("--config."):
            rest.append(a)
        elif "=" in a:
            overrides.append(a[len("--config."):])
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            overrides.append(f"{a[len('--config.'):]}={argv[i + 1]}")
            i += 1
        else:
            raise SystemExit(_error("error", ValueError(
                f"{a} needs a value: {a}=VALUE or {a} VALUE")))
        i += 1
    return rest, overrides


def _train(args, overrides):
    from ssm_jax.training.config import (ConfigError, apply_overrides, config_file, load_config,
                                         parse_config)
    from ssm_jax.training.loop import NonFiniteError, train_and_evaluate
    from ssm_jax.training.workdir import move_aside

    if args.extend:
        overrides = [*overrides, "train.extend=true"]
    try:
        cfg = parse_config(apply_overrides(load_config(args.config), overrides))
    except ConfigError as e:
        return _error("config error", e)
    logging.getLogger("ssm_jax").info("config %s (%s)", args.config, config_file(args.config.partition(":")[0]))
    try:
        if args.restart:
            moved = move_aside(args.workdir)
            if moved:
                print(f"--restart: moved the old run to {moved}")
        train_and_evaluate(cfg, args.workdir)
    except NonFiniteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except ConfigError as e:  # e.g. resuming a workdir written with another config
        return _error("config error", e)
    except KeyboardInterrupt:
        return _interrupted(args.workdir)
    except Exception as e:
        if _disk_full(e):
            return _no_space(args.workdir)
        if isinstance(e, USER_ERRORS):
            return _error("error", e)
        raise
    return 0


def _disk_full(e: BaseException) -> bool:
    """Whether ``e`` (or an error it wraps, as orbax and tensorstore wrap them) is ENOSPC."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if getattr(e, "errno", None) == errno.ENOSPC or "No space left on device" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def _no_space(workdir: str) -> int:
    import shutil

    free = shutil.disk_usage(workdir if os.path.isdir(workdir) else ".").free
    print(f"error: no space left on the device of {os.path.abspath(workdir)} ({free / 2 ** 20:.0f} "
          "MB free); free some space and rerun the same command to resume from the last "
          "checkpoint (a partial one is cleaned at the start)", file=sys.stderr)
    return 2


def _interrupted(workdir: str) -> int:
    from ssm_jax.training.checkpoint import checkpoint_steps

    steps = checkpoint_steps(workdir, "last") if os.path.isdir(workdir) else []
    where = f"the last checkpoint is at step {steps[-1]}" if steps else "no checkpoint was saved yet"
    print(f"interrupted ({where}); rerun the same command to resume", file=sys.stderr)
    return 130


def _plot(args, overrides):
    from ssm_jax.training.metrics import plot_metrics

    try:
        print(plot_metrics(args.workdir, args.out))
    except USER_ERRORS as e:
        return _error("error", e)
    return 0


def _options(args, overrides):
    from ssm_jax.training.config import describe_config

    lines = describe_config()
    if args.prefix:
        lines = [line for line in lines if line.lstrip().startswith(args.prefix)]
    try:
        print("\n".join(lines), flush=True)
    except BrokenPipeError:  # `ssm-jax options | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _reproduce(args, overrides):
    from ssm_jax.experiments.reproduce import on_cluster, reproduce

    try:
        if args.launcher == "submitit" or args.status or args.gather:
            print(on_cluster(papers=args.paper, scale=args.scale, workdir=args.workdir,
                             only=args.only, overrides=overrides,
                             send=args.launcher == "submitit" and not args.status,
                             gather=args.gather))
            return 0
        if any(item.startswith("launcher.") for item in overrides):
            raise ValueError("--config.launcher.* keys need --launcher submitit")
        path = reproduce(papers=args.paper, scale=args.scale, workdir=args.workdir,
                         only=args.only, overrides=overrides)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume (finished runs are kept)",
              file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        return _error("error", e)
    print(f"wrote {path}")
    return 0


class _CurrentStdout(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stdout`` is when a record is emitted."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def _log_to_stdout() -> None:
    """The library's ``ssm_jax`` logger (start-up blocks) prints its INFO lines on stdout, with
    the run's other messages (stderr holds only errors and the progress bar)."""
    log = logging.getLogger("ssm_jax")
    if not log.handlers:
        handler = _CurrentStdout()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def main(argv=None) -> int:
    _log_to_stdout()
    argv, overrides = split_overrides(list(sys.argv[1:] if argv is None else argv))
    parser = argparse.ArgumentParser(prog="ssm-jax", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ssm-jax {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train and evaluate a config; resumes from WORKDIR",
                       epilog="override any config key with --config.KEY=VALUE; "
                              "`ssm-jax options` lists every key")
    p.add_argument("--config", required=True,
                   help="a shipped config by name (smoke, digits, paper3/majority, ...; a name "
                        "that is not a file) or a path to a .py file, with an optional :scale")
    p.add_argument("--workdir", required=True)
    p.add_argument("--restart", action="store_true",
                   help="move an existing WORKDIR aside (to WORKDIR.old-N) and start a new run")
    p.add_argument("--extend", action="store_true",
                   help="resume with a larger train.num_steps or train.num_epochs "
                        "(= --config.train.extend=true)")
    p.set_defaults(func=_train)
    p = sub.add_parser("plot", help="draw learning curves of a workdir to PNG")
    p.add_argument("workdir")
    p.add_argument("--out", default=None, help="PNG path (default WORKDIR/learning_curves.png)")
    p.set_defaults(func=_plot)
    p = sub.add_parser("options", help="list every config key: type, default, allowed values")
    p.add_argument("prefix", nargs="?", default="", help="only keys starting with this, e.g. model.ssm")
    p.set_defaults(func=_options)
    p = sub.add_parser("reproduce", help="run a paper's experiments and write REPORT.md with "
                                         "a verdict for every claim")
    p.add_argument("--paper", default="all", choices=["1", "2", "3", "all"])
    p.add_argument("--scale", default="quick", choices=["quick", "cpu", "paper"])
    p.add_argument("--workdir", default="results/reproduce",
                   help="results and REPORT.md (default %(default)s)")
    p.add_argument("--only", default=None, help="comma-separated experiment names")
    p.add_argument("--launcher", default="local", choices=["local", "submitit"],
                   help="local: run the plan in this process; submitit: send each unit (a "
                        "group of runs, or an experiment) as a job of a SLURM array and return "
                        "(keys --config.launcher.*; rerun to gather)")
    p.add_argument("--status", action="store_true",
                   help="print the units of the plan by state (done, running, failed, new); "
                        "submit nothing")
    p.add_argument("--gather", action="store_true",
                   help="write REPORT.md from the experiments that have finished, naming the rest")
    p.epilog = ("--config.KEY=VALUE applies to every experiment of the plan whose config has "
                "KEY (e.g. --config.train.num_steps=10, --config.experiment.num_seeds=2); "
                "--config.launcher.KEY=VALUE sets the cluster options (partition, gpus_per_job, "
                "cpus_per_job, mem_gb, timeout_min, array_parallelism, sbatch, cluster, folder)")
    p.set_defaults(func=_reproduce)
    args = parser.parse_args(argv)
    if overrides and args.command not in ("train", "reproduce"):
        parser.error("--config.KEY=VALUE overrides only apply to `train` and `reproduce`")
    return args.func(args, overrides)


if __name__ == "__main__":
    sys.exit(main())
