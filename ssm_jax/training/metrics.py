"""Metrics: a long-format CSV (step, split, metric, value), TensorBoard event files written
without TensorFlow (tensorboardX), and learning-curve plots."""

from __future__ import annotations

import csv
import logging
import math
import os

FIELDS = ("step", "split", "metric", "value")


class MetricsWriter:
    """Appends metrics to ``workdir/metrics.csv`` and ``workdir/tensorboard``.

    On resume from ``resume_step``, rows logged after that step by the interrupted run are
    dropped (they will be logged again), so the file matches an uninterrupted run.
    """

    def __init__(self, workdir: str, resume_step: int = 0, tensorboard: bool = True,
                 enabled: bool = True):
        self.enabled, self.tb = enabled, None
        if not enabled:  # a secondary process of a multi-host run: process 0 writes
            return
        os.makedirs(workdir, exist_ok=True)
        self.path = os.path.join(workdir, "metrics.csv")
        rows = read_metrics(self.path) if os.path.exists(self.path) else []
        with open(self.path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(FIELDS)
            for r in rows:
                if r["step"] <= resume_step:
                    w.writerow([r[k] for k in FIELDS])
        if tensorboard:
            from tensorboardX import SummaryWriter

            # a diverging run logs Inf/NaN losses on purpose (metrics.csv keeps them): one
            # warning line per value from tensorboardX would bury the progress output
            logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)
            self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"),
                                    purge_step=resume_step + 1 if resume_step else None)

    def write(self, step: int, split: str, metrics: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", newline="") as f:
            w = csv.writer(f)
            for name, value in metrics.items():
                w.writerow([int(step), split, name, float(value)])
        if self.tb is not None:
            for name, value in metrics.items():
                self.tb.add_scalar(f"{split}/{name}", float(value), int(step))
            self.tb.flush()

    def write_text(self, tag: str, text: str, step: int = 0) -> None:
        """A text entry in TensorBoard (e.g. the run's config); not in metrics.csv."""
        if self.enabled and self.tb is not None:
            self.tb.add_text(tag, text, int(step))
            self.tb.flush()

    def close(self):
        if self.tb is not None:
            self.tb.close()


def read_metrics(path: str) -> list[dict]:
    """Rows of a metrics CSV as dicts with int step and float value.

    A last row cut short by a killed run (missing fields) is skipped; any other malformed row
    or header is a one-line ValueError naming the file and line.
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is not None and tuple(reader.fieldnames) != FIELDS:
            raise ValueError(f"{path}: not a metrics file (header {reader.fieldnames}, "
                             f"expected {list(FIELDS)})")
        rows = []
        for r in reader:
            if None in (r.get(k) for k in FIELDS):
                continue
            try:
                rows.append(dict(step=int(r["step"]), split=r["split"], metric=r["metric"],
                                 value=float(r["value"])))
            except ValueError:
                raise ValueError(f"{path}: malformed row at line {reader.line_num}: "
                                 f"{[r[k] for k in FIELDS]}") from None
        return rows


def plot_metrics(workdir: str, out: str | None = None) -> str:
    """Draw learning curves (one panel per metric, one line per split) to a PNG; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"no metrics.csv to plot: workdir {workdir!r} does not exist "
                                "(or is not a directory)")
    path = os.path.join(workdir, "metrics.csv")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no metrics.csv in {workdir!r}: run `ssm-jax train` with this workdir first")
    rows = read_metrics(path)
    if not rows:
        raise ValueError(f"{path} has no metric rows yet; nothing to plot")
    if not any(math.isfinite(r["value"]) for r in rows):
        raise ValueError(f"{path}: every value is NaN or Inf; nothing to plot")
    names = [m for m in ("loss", "accuracy", "task_loss", "reg") if any(r["metric"] == m for r in rows)]
    names = names or sorted({r["metric"] for r in rows})[:4]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        for split in sorted({r["split"] for r in rows}):
            pts = [(r["step"], r["value"]) for r in rows
                   if r["metric"] == name and r["split"] == split and math.isfinite(r["value"])]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o" if split != "train" else None, ms=3, label=split)
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out = out or os.path.join(workdir, "learning_curves.png")
    if os.path.isdir(out):  # a folder: the default file name inside it
        out = os.path.join(out, "learning_curves.png")
    elif not os.path.splitext(out)[1]:  # matplotlib would add .png: say the name it writes
        out += ".png"
    try:
        fig.savefig(out, dpi=120)
    except (OSError, ValueError) as e:  # a missing directory, no permission, an unknown format
        raise ValueError(f"cannot write the plot to {out!r}: {str(e).splitlines()[0]}") from None
    finally:
        plt.close(fig)
    return out
