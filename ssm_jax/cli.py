"""`ssm-jax` command line: train, plot."""

from __future__ import annotations

import argparse
import sys


def _train(args, overrides):
    from ssm_jax.training.config import ConfigError, apply_overrides, load_config, validate_config
    from ssm_jax.training.loop import NonFiniteError, train_and_evaluate

    try:
        cfg = apply_overrides(load_config(args.config), overrides)
        validate_config(cfg)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    try:
        train_and_evaluate(cfg, args.workdir)
    except NonFiniteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _plot(args, overrides):
    from ssm_jax.training.metrics import plot_metrics

    print(plot_metrics(args.workdir, args.out))
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = [a[len("--config."):] for a in argv if a.startswith("--config.")]
    argv = [a for a in argv if not a.startswith("--config.")]
    parser = argparse.ArgumentParser(prog="ssm-jax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train and evaluate a config; resumes from WORKDIR",
                       epilog="override any config key with --config.KEY=VALUE")
    p.add_argument("--config", required=True, help="configs/<file>.py[:scale]")
    p.add_argument("--workdir", required=True)
    p.set_defaults(func=_train)
    p = sub.add_parser("plot", help="draw learning curves of a workdir to PNG")
    p.add_argument("workdir")
    p.add_argument("--out", default=None)
    p.set_defaults(func=_plot)
    args = parser.parse_args(argv)
    if overrides and args.command != "train":
        parser.error("--config.KEY=VALUE overrides only apply to `train`")
    return args.func(args, overrides)


if __name__ == "__main__":
    sys.exit(main())
