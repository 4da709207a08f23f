#!/usr/bin/env python
"""GPU check in one go: tests on the device, scan timings, LRA train steps, a short ListOps run.

Meant for the first hour on a machine with a GPU (no GPU numbers exist yet). Four parts, each
run in its own subprocess under a deadline (``--budget PART=SECONDS``; about 7.5 minutes in
all by default), everything written under ``--out``:

  tests    ``pytest -q tests/kernels tests/layers -m "not slow"`` on the device. There is no
           global float32 switch: the kernel tests run in float64 unless marked
           ``float32`` (``tests/kernels/conftest.py``), so the ``float32`` subset runs first,
           then the plain subset. Output: tests.txt.
  scan     ``benchmarks/scan.py`` (S5 associative vs sequential, B=16, H=128, P=64, L = 1024,
           4096, 16384) and ``benchmarks/selective.py`` (its paper and mamba cases, plus the
           paper form at T=16384). Output: scan.md, selective.md; the summary records what
           ``scan_method="auto"`` (``ssm_jax.kernels.auto_method``) and the selective
           kernel's defaults pick on this backend.
  steps    one training step of every ``:paper`` LRA config (``paper1/ablation:paper``, one
           per task, and ``paper2/lra:<task>``) on synthetic batches of the task's shapes:
           the library's own step (``build_run``, ``make_optimizer``, ``group_objective``,
           ``make_train_step``, as ``ssm_jax.training.run.fit`` builds it), jitted; compile
           time, steps/s, and peak device memory (``memory_stats()["peak_bytes_in_use"]``,
           "n/a" where the backend has none). Each config in its own process, so each peak
           is its own. Output: steps.md.
  listops  ``train_and_evaluate`` of the paper-3 ListOps task
           (``ssm_jax.configs.paper3.tasks.listops_task``, generated data, one epoch) in
           listops_run/. Output: listops.md.

A part that fails is recorded in the summary and the script goes on; the exit code is 1 if any
part failed. A part that runs out of time keeps what it wrote and lists what it skipped (not a
failure). ``--tiny``: tiny sizes everywhere and one small test file, for a CPU smoke test
(under 2 minutes). summary.md gets one table per part, the device, the jax version and the
total time; it is also printed.

Usage: python benchmarks/gpu_check.py [--out results/gpu_check] [--tiny] [--parts tests scan]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
import traceback

ROOT = pathlib.Path(__file__).resolve().parents[1]
PARTS = ("tests", "scan", "steps", "listops")
BUDGET = {"tests": 120, "scan": 170, "steps": 120, "listops": 40}  # seconds, 450 in all
TINY_BUDGET = {"tests": 60, "scan": 90, "steps": 60, "listops": 40}
STEP_CONFIGS = ([f"paper1/ablation:paper#{t}" for t in
                 ("listops", "imdb", "aan", "cifar10", "pathfinder", "pathx")]
                + [f"paper2/lra:{t}" for t in ("listops", "imdb", "aan", "cifar10", "pathfinder")])
TINY_STEP_CONFIGS = ["paper1/ablation:paper#listops", "paper1/ablation:paper#aan",
                     "paper2/lra:cifar10"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="results/gpu_check", help="output folder")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (CPU smoke test)")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    p.add_argument("--budget", nargs="+", default=[], metavar="PART=SECONDS",
                   help=f"deadline per part (default {BUDGET}; tiny {TINY_BUDGET})")
    p.add_argument("--step-repeats", type=int, default=None,
                   help="timed train steps per config (default 10; tiny 2)")
    # internal: the subprocesses of the steps and listops parts
    p.add_argument("--step-worker", nargs="+", default=None, help=argparse.SUPPRESS)
    p.add_argument("--listops-worker", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --------------------------------------------------------------------------- subprocesses

def child_env():
    """The environment of the subprocesses: the device of this machine (the tests' conftest
    would pick CPU unless JAX_PLATFORMS is set), the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("JAX_PLATFORMS", PLATFORM)
    if "XLA_PYTHON_CLIENT_PREALLOCATE" in USER_PREALLOCATE:
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = USER_PREALLOCATE["XLA_PYTHON_CLIENT_PREALLOCATE"]
    else:
        env.pop("XLA_PYTHON_CLIENT_PREALLOCATE", None)
    return env


def run_logged(cmd, log, timeout):
    """Run ``cmd`` with stdout and stderr appended to the file ``log`` (what it wrote survives
    a timeout). Returns (exit code or "timeout", seconds)."""
    t0 = time.perf_counter()
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        if timeout <= 1:
            f.write("(skipped: no time left in this part)\n")
            return "skipped", 0.0
        try:
            rc = subprocess.run(cmd, cwd=ROOT, env=child_env(), stdout=f, stderr=subprocess.STDOUT,
                                timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
            f.write(f"\n(stopped at the part's deadline, after {timeout:.0f} s)\n")
    return rc, time.perf_counter() - t0


def json_lines(path):
    """The ``RESULT {...}`` lines a worker printed into ``path``."""
    out = []
    for line in pathlib.Path(path).read_text().splitlines():
        if line.startswith("RESULT "):
            out.append(json.loads(line[len("RESULT "):]))
    return out


class Part:
    """One part's outcome: its table rows, what it skipped, its error and its time."""

    def __init__(self, name, budget):
        self.name, self.budget, self.start = name, budget, time.perf_counter()
        self.lines, self.skipped, self.error, self.seconds = [], [], None, 0.0

    def left(self):
        return self.budget - (time.perf_counter() - self.start)


# --------------------------------------------------------------------------- part 1: tests

def part_tests(part, out, tiny):
    log = out / "tests.txt"
    log.write_text("")
    if tiny:
        runs = [("float32 subset of tests/kernels/test_discretize.py",
                 ["tests/kernels/test_discretize.py", "-m", "float32 and not slow"])]
    else:
        runs = [("float32 subset (kernels)", ["tests/kernels", "-m", "float32 and not slow"]),
                ("plain subset (kernels, layers)",
                 ["tests/kernels", "tests/layers", "-m", "not slow"])]
    part.lines = ["| run | exit code | seconds | last line |", "|:---|---:|---:|:---|"]
    failed = []
    for label, args in runs:
        size = log.stat().st_size
        rc, sec = run_logged([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              *args], log, part.left())
        with open(log) as f:
            f.seek(size)
            tail = [l for l in f.read().splitlines() if l.strip() and not l.startswith("(")]
        part.lines.append(f"| {label} | {rc} | {sec:.0f} | {tail[-1] if tail else ''} |")
        if rc in ("timeout", "skipped"):
            part.skipped.append(f"{label}: {rc}")
        elif rc != 0:
            failed.append(f"{label}: exit code {rc}")
    if failed:
        part.error = "; ".join(failed) + " (see tests.txt)"


# --------------------------------------------------------------------------- part 2: scans

def kernel_choices(lengths):
    """What the kernel defaults pick on this backend: the scan method of ``"auto"`` and the
    selective kernel's chunk size and backward at the benchmark's shapes."""
    import jax

    from ssm_jax.kernels import auto_method
    from ssm_jax.kernels.selective import default_backward, default_chunk_size
    backend = jax.default_backend()
    rows = [f'| S4D / S5 `scan_method="auto"` | any | {auto_method()} |']
    for form, d, N, T in [("paper", 16, 4, 500), ("paper", 128, 16, 500), ("mamba", 256, 16, 2048)] \
            + [("paper", 16, 4, L) for L in lengths]:
        backward = default_backward(form == "paper", backend)
        K = default_chunk_size(T, d, N, backward, backend)
        rows.append(f"| selective {form} d={d} N={N} | T={T} | {auto_method()}, chunk "
                    f"{'L' if K == T else K}, backward {backward} |")
    return rows


def part_scan(part, out, tiny):
    lengths = [256] if tiny else [1024, 4096, 16384]
    sel_lengths = [64] if tiny else [16384]
    scan_cmd = [sys.executable, "benchmarks/scan.py", "--cases", "s5-assoc", "s5-seq",
                "--lengths", *map(str, lengths)]
    scan_cmd += ["--quick"] if tiny else ["--cell-seconds", "15"]
    sel_cmd = [sys.executable, "benchmarks/selective.py", "--lengths", *map(str, sel_lengths)]
    sel_cmd += ["--quick", "--repeats", "1"] if tiny else ["--repeats", "2"]
    part.lines = ["| script | exit code | seconds | output |", "|:---|---:|---:|:---|"]
    failed = []
    for name, cmd, share in (("scan", scan_cmd, 0.45), ("selective", sel_cmd, 1.0)):
        log = out / f"{name}.md"
        log.write_text("")
        rc, sec = run_logged(cmd, log, part.left() * share)
        part.lines.append(f"| benchmarks/{name}.py | {rc} | {sec:.0f} | {name}.md |")
        if rc in ("timeout", "skipped"):
            part.skipped.append(f"benchmarks/{name}.py: {rc} (partial output in {name}.md)")
        elif rc != 0:
            failed.append(f"benchmarks/{name}.py: exit code {rc}")
    part.lines += ["", "What the kernel defaults pick on this backend:", "",
                   "| kernel | shape | choice |", "|:---|:---|:---|", *kernel_choices(sel_lengths)]
    if failed:
        part.error = "; ".join(failed)


# --------------------------------------------------------------------------- part 3: steps

def dataset_info(data_cfg, tiny):
    """``DatasetInfo`` of an LRA task from its config's data section and the loaders' values
    (ssm_jax/data/lra.py, listops.py, tfds_data.py), without reading any data."""
    from ssm_jax.data import listops
    from ssm_jax.data.lra import BYTE_VOCAB_SIZE
    from ssm_jax.data.registry import DatasetInfo, resolve_config
    d = resolve_config({k: v for k, v in data_cfg.items()})
    name = d["name"]
    floats = d.get("input_kind") == "floats"
    if name == "listops":
        info = dict(seq_len=d["seq_len"] or listops.LRA_LISTOPS_SEQ_LEN, vocab_size=listops.VOCAB_SIZE,
                    num_classes=10, pad_id=listops.PAD_ID)
    elif name in ("imdb", "aan"):
        info = dict(seq_len=d["seq_len"], vocab_size=BYTE_VOCAB_SIZE, num_classes=2,
                    num_documents=2 if name == "aan" else 1)
    elif name == "cifar10":  # grayscale 32x32, as LRA Image
        info = dict(seq_len=1024, vocab_size=None if floats else 256, num_classes=10)
    elif name in ("pathfinder", "pathx"):
        info = dict(seq_len=d["resolution"] ** 2, vocab_size=None if floats else 256, num_classes=2)
    else:
        raise ValueError(f"no synthetic shapes for dataset {name!r}")
    if tiny:
        info["seq_len"] = 32
    return DatasetInfo(name=name, input_kind="floats" if floats else "tokens", in_channels=1, **info)


def synthetic_dataset(info, n, seed=0):
    """A ``Dataset`` of ``n`` random examples of ``info``'s shapes (every split the same)."""
    import numpy as np

    from ssm_jax.data.registry import Dataset, Split
    rng = np.random.default_rng(seed)
    lead = (n, 2) if info.num_documents == 2 else (n,)
    if info.input_kind == "tokens":
        inputs = rng.integers(1, info.vocab_size, lead + (info.seq_len,), dtype=np.int32)
    else:
        inputs = rng.normal(size=lead + (info.seq_len, info.in_channels)).astype(np.float32)
    lengths = np.full(lead, info.seq_len, np.int32)
    labels = rng.integers(0, info.num_classes, n, dtype=np.int32)
    split = Split(inputs, lengths, labels)
    return Dataset(info, {"train": split, "validation": split, "test": split})


def peak_bytes():
    import jax
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def time_train_step(item, tiny, repeats):
    """Compile time, steps/s and peak memory of the library's jitted train step for one
    config ``spec[#task]`` on a synthetic batch."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import ssm_jax
    from ssm_jax.training.optim import make_optimizer
    from ssm_jax.training.run import build_run, group_objective, projection
    from ssm_jax.training.state import TrainState
    from ssm_jax.training.steps import make_train_step
    spec, _, task = item.partition("#")
    raw = ssm_jax.load_config(spec)
    raw = raw.tasks[task] if task else raw
    if tiny:
        raw.model.update(d_model=8, n_layers=1)
        raw.model.ssm.d_state = 4
        raw.train.batch_size = 2
        raw.bound.init_batch_size = 2
    info = dataset_info(raw.data, tiny)
    cfg = ssm_jax.parse_config(raw)
    B = cfg.train.batch_size
    dataset = synthetic_dataset(info, max(B, cfg.bound.init_batch_size))
    t0 = time.perf_counter()
    run = build_run(cfg, dataset)
    init_s = time.perf_counter() - t0
    tx = make_optimizer(cfg.optim, run.schedule.num_steps, run.layers,
                        steps_per_epoch=run.schedule.steps_per_epoch)
    objective, weights = group_objective([run])
    weights = {k: v[0] for k, v in weights.items()}
    step = jax.jit(make_train_step(objective, projection(run), cfg.train.failure))
    state = TrainState.create(apply_fn=run.model.apply, variables=run.variables, tx=tx, rng=run.rng)
    batch = {k: jnp.asarray(v) for k, v in dataset.train.take(np.arange(B)).items()}
    t0 = time.perf_counter()
    state, metrics = step(state, batch, weights)
    jax.block_until_ready(metrics)
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(repeats):
        state, metrics = step(state, batch, weights)
    jax.block_until_ready(metrics)
    sec = (time.perf_counter() - t0) / repeats
    params = sum(x.size for x in jax.tree.leaves(state.params))
    return dict(config=item, B=B, L=info.seq_len, kind=info.input_kind,
                docs=info.num_documents, width=cfg.model.d_model, layers=cfg.model.n_layers,
                params=int(params), init_s=init_s, compile_s=first_s, step_ms=1e3 * sec,
                steps_per_s=1 / sec, peak=peak_bytes(), loss=float(metrics["loss"]))


def step_worker(items, tiny, repeats):
    """Subprocess of the steps part: one ``RESULT {json}`` line per config."""
    for item in items:
        try:
            res = time_train_step(item, tiny, repeats)
        except Exception as e:  # recorded, the next config still runs
            traceback.print_exc()
            res = dict(config=item, error=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
        print("RESULT " + json.dumps(res), flush=True)


def fmt_mib(b):
    return "n/a" if b is None else f"{b / 2 ** 20:.0f}"


def part_steps(part, out, tiny, repeats):
    log = out / "steps.log"
    log.write_text("")
    items = TINY_STEP_CONFIGS if tiny else STEP_CONFIGS
    # one process per config (its own peak memory); the tiny run shares one (faster)
    groups = [items] if tiny else [[i] for i in items]
    results, failed = [], []
    for group in groups:
        cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--step-worker", *group,
               "--step-repeats", str(repeats)] + (["--tiny"] if tiny else [])
        size = log.stat().st_size
        rc, _ = run_logged(cmd, log, part.left())
        with open(log) as f:
            f.seek(size)
            got = [json.loads(l[7:]) for l in f.read().splitlines() if l.startswith("RESULT ")]
        results += got
        done = {r["config"] for r in got}
        for item in group:
            if item not in done:
                if rc in ("timeout", "skipped"):
                    part.skipped.append(f"{item}: {rc}")
                else:
                    results.append(dict(config=item, error=f"worker exit code {rc} (steps.log)"))
    part.lines = ["| config | B | L | input | width x layers | params | compile+first s | "
                  "step ms | steps/s | peak MiB |", "|:---|---:|---:|:---|:---|---:|---:|---:|---:|---:|"]
    for r in results:
        if "error" in r:
            failed.append(r["config"])
            part.lines.append(f"| {r['config']} | error: {r['error']} |||||||||")
            continue
        kind = r["kind"] + (" x2 docs" if r["docs"] == 2 else "")
        part.lines.append(
            f"| {r['config']} | {r['B']} | {r['L']} | {kind} | {r['width']}x{r['layers']} | "
            f"{r['params']:,} | {r['compile_s']:.1f} | {r['step_ms']:.1f} | {r['steps_per_s']:.2f} | "
            f"{fmt_mib(r['peak'])} |")
    part.lines += ["", "The library's train step (`make_train_step` of `group_objective`, with "
                   "`make_optimizer` and the config's projection, as `fit` builds it) on a "
                   "synthetic batch; the paper-1 configs as the `w/o` variant (no init rule, no "
                   "regularizer); peak = `peak_bytes_in_use` of the config's own process "
                   + ("(tiny: all configs in one process, so a running maximum)" if tiny else "")
                   + "."]
    (out / "steps.md").write_text("\n".join(part.lines) + "\n")
    if failed:
        part.error = "failed: " + ", ".join(failed) + " (see steps.log)"


# --------------------------------------------------------------------------- part 4: ListOps

def listops_setting(tiny):
    return dict(T=16, m=64, epochs=1, batch=32) if tiny else dict(T=100, m=1000, epochs=1, batch=64)


def listops_worker(workdir, tiny):
    """Subprocess of the listops part: a ``RESULT {json}`` line with the run's time."""
    import ssm_jax
    from ssm_jax.configs.paper3.tasks import listops_task
    cfg = listops_task(**listops_setting(tiny))
    cfg.data.data_dir = None  # generated
    cfg.data.cache_dir = str(pathlib.Path(workdir) / "cache")
    t0 = time.perf_counter()
    report = ssm_jax.train_and_evaluate(cfg, workdir)
    sec = time.perf_counter() - t0
    acc = {f"{split} {k}": v for split in ("validation", "test")
           for k, v in (report.get(split) or {}).items() if "acc" in k}
    print("RESULT " + json.dumps(dict(seconds=sec, steps=report.get("num_steps"), accuracy=acc)),
          flush=True)


def part_listops(part, out, tiny):
    log = out / "listops.log"
    log.write_text("")
    workdir = out / "listops_run"
    if workdir.exists():
        import shutil
        shutil.rmtree(workdir)
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--listops-worker",
           str(workdir)] + (["--tiny"] if tiny else [])
    rc, sec = run_logged(cmd, log, part.left())
    res = json_lines(log)
    s = listops_setting(tiny)
    part.lines = ["| setting | exit code | process s | train_and_evaluate s | steps | accuracy |",
                  "|:---|---:|---:|---:|---:|:---|"]
    r = res[0] if res else {}
    acc = ", ".join(f"{k} {v:.3f}" for k, v in sorted(r.get("accuracy", {}).items()))
    train_s = f"{r['seconds']:.1f}" if r else "-"
    part.lines.append(f"| T={s['T']}, m={s['m']}, epochs={s['epochs']}, batch={s['batch']} | {rc} "
                      f"| {sec:.0f} | {train_s} | {r.get('steps', '-')} | {acc} |")
    (out / "listops.md").write_text("\n".join(part.lines) + "\n")
    if rc in ("timeout", "skipped"):
        part.skipped.append(f"ListOps run: {rc}")
    elif rc != 0 or not res:
        part.error = f"exit code {rc} (see listops.log)"


# --------------------------------------------------------------------------- summary

def summary(parts, out, total, device, tiny):
    lines = [f"# GPU check{' (tiny)' if tiny else ''}", "",
             f"Device: {device}; Python {sys.version.split()[0]}; total {total:.0f} s, "
             f"{time.strftime('%Y-%m-%d %H:%M')}.", ""]
    titles = {"tests": "## Part 1: tests on the device", "scan": "## Part 2: scan timings",
              "steps": "## Part 3: LRA train steps", "listops": "## Part 4: paper-3 ListOps run"}
    for name, part in parts.items():
        status = "failed" if part.error else ("incomplete" if part.skipped else "ok")
        lines += [titles[name], "", f"Status: {status}, {part.seconds:.0f} s of a "
                  f"{part.budget:.0f} s budget.", ""]
        if part.error:
            lines += [f"Error: {part.error}", ""]
        if part.skipped:
            lines += ["Skipped: " + "; ".join(part.skipped), ""]
        lines += part.lines + [""]
    skipped = [n for n in PARTS if n not in parts]
    if skipped:
        lines += [f"Parts not asked for (--parts): {', '.join(skipped)}", ""]
    text = "\n".join(lines)
    (out / "summary.md").write_text(text)
    return text


def budgets(args):
    b = dict(TINY_BUDGET if args.tiny else BUDGET)
    for item in args.budget:
        name, _, sec = item.partition("=")
        if name not in b:
            raise SystemExit(f"--budget: unknown part {name!r}")
        b[name] = float(sec)
    return b


def main(argv=None):
    args = parse_args(argv)
    repeats = args.step_repeats or (2 if args.tiny else 10)
    if args.step_worker:
        return step_worker(args.step_worker, args.tiny, repeats)
    if args.listops_worker:
        return listops_worker(args.listops_worker, args.tiny)
    t_start = time.perf_counter()
    out = pathlib.Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # this process only names the device: it must not take the GPU memory the parts need
    global PLATFORM, USER_PREALLOCATE
    USER_PREALLOCATE = {k: os.environ[k] for k in ("XLA_PYTHON_CLIENT_PREALLOCATE",)
                        if k in os.environ}
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    import jax
    dev = jax.devices()[0]
    PLATFORM = jax.default_backend()
    device = f"{dev.device_kind} ({PLATFORM}, {jax.device_count()} device(s)), jax {jax.__version__}"
    print(f"# gpu_check: {device}; output in {out}", flush=True)
    b = budgets(args)
    parts = {}
    for name in args.parts:
        part = parts[name] = Part(name, b[name])
        print(f"## {name} (budget {b[name]:.0f} s)", flush=True)
        try:
            if name == "tests":
                part_tests(part, out, args.tiny)
            elif name == "scan":
                part_scan(part, out, args.tiny)
            elif name == "steps":
                part_steps(part, out, args.tiny, repeats)
            else:
                part_listops(part, out, args.tiny)
        except Exception as e:  # the next part still runs
            part.error = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        part.seconds = time.perf_counter() - part.start
    text = summary(parts, out, time.perf_counter() - t_start, device, args.tiny)
    print(text)
    return 1 if any(p.error for p in parts.values()) else 0


PLATFORM, USER_PREALLOCATE = "cpu", {}

if __name__ == "__main__":
    sys.exit(main())
