#!/usr/bin/env python
"""Speed and memory of the selective SSM layer (``ssm_jax.layers.SelectiveSSM``): the kernel
defaults (``scan_method="auto"``, ``chunk_size=None``, ``backward="auto"``: chosen from the
shapes by ``ssm_jax.kernels.selective.default_chunk_size`` / ``default_backward``) beside
tuned cells: associative vs sequential scan, each without and with chunks of 64, and the
hand-written adjoint backward (``backward="adjoint"``) against JAX's autodiff of the scan
(``backward="autodiff"``, the baseline).

Cases (float32, batch x T x d, the layer module itself, parameters and inputs as jit
arguments): the paper form at the selective-SSM paper's size (d=16, N=4, T=500, batch 64) and
at d=128, N=16; the mamba form at d=256, N=16, T=2048. Each cell: compile (not timed), one
warm-up, then ``--repeats`` rounds in which every cell runs in turn (alternating, so that a
change of the machine's load hits all cells alike; the forward, which is cheap,
``--forward-repeats`` times in a row); a cell's time is its minimum over the rounds. Forward
(y) and forward+backward (value and gradient of mean(y^2) w.r.t. all parameters). Ratios are
to the fastest cell of the row, measured side by side in this
process. "bwd temp MiB" is XLA's temporary buffer size of the compiled forward+backward
(``memory_analysis``), i.e. what the backward pass keeps.
"traffic MiB" is the minimum memory traffic of the implementation's forward+backward
(float32): ``inputs + outputs`` per sequence for the fused scan without remat state
(``4 (d + 1 + 2N) L`` bytes read, ``4 d L`` written, twice for the backward), plus what it
materializes: the (L, d, N) coefficients a, b and states x (associative: ``3 L d N`` written
and read), or the stored per-step states of the backward (unchunked sequential ``L d N``,
chunked ``(L/K + K) d N``); the adjoint stores ``L/K`` chunk-entry states and, per chunk,
writes and reads six ``(K, d, N)`` arrays (a, the input term, x, G, the shifted x, P):
``6 L d N`` in all.

The paper's PyTorch layer: when ``torch`` is importable, ``torch_paper_layer`` below (written
here after the authors' ``models/selective_ssm.py``; the model is in
``docs/theory.md#paper-3-the-selective-model``: Abar and BU materialized for all steps, then a
Python loop over time, x_t = Abar_t * x_{t-1} + BU_t, y_t = x_t C_t) is timed in this process
at the first case's size with ``torch.set_num_threads`` = the JAX CPU count, in alternating
rounds with the layer's kernel defaults, and the speed-ups are the ratios of the minima.
Without torch, the numbers measured elsewhere on a 2-core CPU (forward 0.040 s,
forward+backward 0.555 s; issue 9) are printed instead, marked as such.

Usage: python benchmarks/selective.py [--quick] [--repeats 3] [--lengths 16384]
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp

from ssm_jax.kernels.selective import default_backward, default_chunk_size
from ssm_jax.kernels.scan import auto_method
from ssm_jax.layers import SelectiveSSM

TORCH_REFERENCE_BY_KEY = {"forward": 0.040, "backward": 0.555}  # issue 9, measured elsewhere
VARIANTS = {  # name -> (scan_method, chunk_size, backward); None / "auto": the kernel's choice
    "defaults": ("auto", None, "auto"),
    "assoc": ("associative", 0, "autodiff"),
    "seq": ("sequential", 0, "autodiff"),
    "assoc-chunk": ("associative", 64, "autodiff"),
    "seq-chunk": ("sequential", 64, "autodiff"),
    "seq-adj": ("sequential", 0, "adjoint"),
    "seq-chunk-adj": ("sequential", 64, "adjoint"),
    "assoc-chunk-adj": ("associative", 64, "adjoint"),
}


def torch_paper_layer(d, N, T, B):
    """``{"forward": fn, "backward": fn}``: one forward and one forward+backward of the paper's
    PyTorch loop, or None without torch."""
    try:
        import torch
    except ImportError:
        return None

    torch.set_num_threads(os.cpu_count() or 1)
    g = torch.Generator().manual_seed(0)
    A = (-0.1 - 10 * torch.rand(d, N, generator=g)).requires_grad_()
    W_B, W_C = (torch.randn(N, d, generator=g).requires_grad_() for _ in range(2))
    q, p = torch.randn(d, generator=g).requires_grad_(), torch.zeros(1).requires_grad_()
    u = torch.randn(B, T, d, generator=g) * 0.5

    def forward():
        delta = torch.nn.functional.softplus(p + u @ q)  # (B, T)
        Bt, Ct = u @ W_B.T, u @ W_C.T  # (B, T, N)
        Abar = torch.exp(delta[..., None, None] * A)  # (B, T, d, N)
        BU = delta[..., None, None] * Bt[:, :, None, :] * u[..., None]
        x = torch.zeros(B, d, N)
        ys = []
        for t in range(T):
            x = Abar[:, t] * x + BU[:, t]
            ys.append((x * Ct[:, t, None, :]).sum(-1))
        return torch.stack(ys, 1)

    def fwd():
        with torch.no_grad():
            forward()

    def fwd_bwd():
        (forward() ** 2).mean().backward()

    return {"forward": fwd, "backward": fwd_bwd}


def cases(quick: bool, lengths=()):
    """(name, form, d, N, T, B) of each case; ``lengths`` add the paper form d=16 N=4 B=64 at
    those T (e.g. 16384, as ``gpu_check.py`` asks)."""
    extra = [(f"paper d=16 N=4 T={T} B=64", "paper", 16, 4, T, 64) for T in lengths]
    if quick:
        return [("paper d=4 N=2 T=64 B=4", "paper", 4, 2, 64, 4),
                ("mamba d=8 N=2 T=128 B=2", "mamba", 8, 2, 128, 2)] + extra
    return [("paper d=16 N=4 T=500 B=64", "paper", 16, 4, 500, 64),
            ("paper d=128 N=16 T=500 B=64", "paper", 128, 16, 500, 64),
            ("mamba d=256 N=16 T=2048 B=4", "mamba", 256, 16, 2048, 4)] + extra


def time_rounds(calls, repeats, inner=None):
    """``{name: {key: seconds}}``: each call once as warm-up, then ``repeats`` rounds in which
    every call runs in turn, ``inner[key]`` times in a row (default 1); the minimum over all
    runs. calls: {name: {key: fn}}."""
    inner = inner or {}
    for fns in calls.values():
        for fn in fns.values():
            fn()
    runs = {name: {key: [] for key in fns} for name, fns in calls.items()}
    for _ in range(repeats):
        for name, fns in calls.items():
            for key, fn in fns.items():
                for _ in range(inner.get(key, 1)):
                    t = time.perf_counter()
                    fn()
                    runs[name][key].append(time.perf_counter() - t)
    return {name: {key: min(v) for key, v in r.items()} for name, r in runs.items()}


def settings(form, d, N, T):
    """The kernel's choice for one sequence of a case: (method, chunk size, backward)."""
    backend = jax.default_backend()
    backward = default_backward(form == "paper", backend)
    K = default_chunk_size(T, d, N, backward, backend)
    return auto_method(), K, backward


def traffic_mib(method, chunk, backward, d, N, T, B):
    if chunk == T:
        chunk = 0
    io = 4 * ((d + 1 + 2 * N) * T + d * T) * 2  # forward + backward reads/writes of u, delta, B, C, y
    state = 4 * T * d * N
    if backward == "adjoint":
        extra = 6 * state + (4 * (T // chunk) * d * N if chunk else 0)
    elif method == "associative":
        extra = 3 * state * (2 if not chunk else 3)  # a, b, x (recomputed once with chunks)
    else:
        extra = state if not chunk else 4 * (T // chunk + chunk) * d * N
    return B * (io + extra) / 2 ** 20


def run_case(name, form, d, N, T, B, repeats, extra=None, forward_repeats=3):
    """Every variant's forward and forward+backward times, backward temp memory and traffic;
    ``extra`` ({name: {key: fn}}, e.g. the PyTorch layer) is timed in the same rounds."""
    key = jax.random.key(0)
    u = jax.random.normal(key, (B, T, d), jnp.float32) * 0.5
    calls, out = {}, {}
    for v, (method, chunk, backward) in VARIANTS.items():
        layer = SelectiveSSM(features=d, d_state=N, form=form, s_A=-0.1, scan_method=method,
                             chunk_size=chunk, backward=backward)
        params = layer.init(key, u[:1, :8])
        fwd = jax.jit(layer.apply).lower(params, u).compile()
        loss = lambda p, x, layer=layer: jnp.mean(layer.apply(p, x) ** 2)
        fb = jax.jit(jax.value_and_grad(loss)).lower(params, u).compile()
        mem = fb.memory_analysis().temp_size_in_bytes / 2 ** 20
        if v == "defaults":
            method, chunk, backward = settings(form, d, N, T)
        calls[v] = {"forward": lambda f=fwd, p=params: jax.block_until_ready(f(p, u)),
                    "backward": lambda f=fb, p=params: jax.block_until_ready(f(p, u))}
        out[v] = dict(temp=mem, traffic=traffic_mib(method, chunk, backward, d, N, T, B))
    times = time_rounds({**calls, **(extra or {})}, repeats, {"forward": forward_repeats})
    for v in VARIANTS:
        out[v].update(times[v])
    return out, {k: times[k] for k in (extra or {})}


def print_table(title, rows, key):
    print(f"\n## {title}")
    print("| case | " + " | ".join(f"{v} ms (ratio)" for v in VARIANTS) + " |")
    print("|:---|" + "---:|" * len(VARIANTS))
    for name, res in rows:
        best = min(r[key] for r in res.values())
        cells = [f"{1e3 * res[v][key]:.2f} ({res[v][key] / best:.2f}x)" for v in VARIANTS]
        print(f"| {name} | " + " | ".join(cells) + " |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    p.add_argument("--repeats", type=int, default=3, help="alternating rounds (minimum taken)")
    p.add_argument("--forward-repeats", type=int, default=3,
                   help="forward calls of each cell in a row within a round")
    p.add_argument("--lengths", type=int, nargs="+", default=[],
                   help="extra cases: the paper form d=16 N=4 B=64 at these lengths T")
    args = p.parse_args(argv)
    print(f"# selective SSM layer: backend {jax.default_backend()}, jax {jax.__version__}, "
          f"min of {args.repeats} alternating rounds ({args.forward_repeats} forward calls per "
          f"cell and round), float32, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows, torch_times = [], None
    for i, (name, form, d, N, T, B) in enumerate(cases(args.quick, args.lengths)):
        torch_calls = torch_paper_layer(d, N, T, B) if i == 0 else None
        res, extra = run_case(name, form, d, N, T, B, args.repeats,
                              {"torch": torch_calls} if torch_calls else None,
                              args.forward_repeats)
        rows.append((name, res))
        torch_times = extra.get("torch", torch_times)
        print(f"  measured {name} (load average {os.getloadavg()[0]:.2f})", flush=True)
    print_table("forward", rows, "forward")
    print_table("forward+backward", rows, "backward")
    print("\n## memory of the forward+backward")
    print("| case | " + " | ".join(f"{v} bwd temp MiB / traffic MiB" for v in VARIANTS) + " |")
    print("|:---|" + "---:|" * len(VARIANTS))
    for name, res in rows:
        print(f"| {name} | " + " | ".join(f"{res[v]['temp']:.1f} / {res[v]['traffic']:.1f}"
                                          for v in VARIANTS) + " |")
    print("\n## kernel defaults beside the tuned cells (ratio: defaults / fastest tuned cell)")
    print("| row | case | forward ms | forward+backward ms | bwd temp MiB | settings |")
    print("|:---|:---|---:|---:|---:|:---|")
    for (name, res), (_, form, d, N, T, B) in zip(rows, cases(args.quick, args.lengths)):
        tuned = [v for v in VARIANTS if v != "defaults"]
        fast_f = min(tuned, key=lambda v: res[v]["forward"])
        fast_b = min(tuned, key=lambda v: res[v]["backward"])
        dflt = res["defaults"]
        method, K, backward = settings(form, d, N, T)
        print(f"| kernel defaults | {name} | {1e3 * dflt['forward']:.2f} | "
              f"{1e3 * dflt['backward']:.1f} | {dflt['temp']:.1f} | {method}, "
              f"K={'L' if K == T else K}, {backward} |")
        print(f"| fastest tuned cell | {name} | {1e3 * res[fast_f]['forward']:.2f} ({fast_f}) | "
              f"{1e3 * res[fast_b]['backward']:.1f} ({fast_b}) | {res[fast_b]['temp']:.1f} | |")
        print(f"| defaults / fastest | {name} | {dflt['forward'] / res[fast_f]['forward']:.2f}x | "
              f"{dflt['backward'] / res[fast_b]['backward']:.2f}x | "
              f"{dflt['temp'] / res[fast_b]['temp']:.2f}x | |")
    print("\n## adjoint backward against autodiff (forward+backward, same scan and chunks)")
    print("| case | seq autodiff / adjoint | seq-chunk autodiff / adjoint | assoc-chunk autodiff / adjoint |")
    print("|:---|---:|---:|---:|")
    for name, res in rows:
        cells = [f"{res[a]['backward'] / res[b]['backward']:.2f}x" for a, b in
                 (("seq", "seq-adj"), ("seq-chunk", "seq-chunk-adj"),
                  ("assoc-chunk", "assoc-chunk-adj"))]
        print(f"| {name} | " + " | ".join(cells) + " |")
    name, res = rows[0]
    where = "this process, alternating rounds" if torch_times else \
        "measured elsewhere, torch not installed"
    ref = torch_times or TORCH_REFERENCE_BY_KEY
    print(f"\n## against the paper's PyTorch layer ({where}; {name})")
    print("| pass | PyTorch loop s | kernel defaults s | speed-up | fastest tuned s (variant) | "
          "speed-up | target |")
    print("|:---|---:|---:|---:|---:|---:|---:|")
    for label, key, target in (("forward", "forward", 6), ("forward+backward", "backward", 20)):
        v = min(res, key=lambda k: res[k][key])
        ours, best = res["defaults"][key], res[v][key]
        print(f"| {label} | {ref[key]:.4f} | {ours:.4f} | {ref[key] / ours:.1f}x | {best:.4f} "
              f"({v}) | {ref[key] / best:.1f}x | {target}x: "
              f"{'met' if ref[key] / ours >= target else 'not met'} by the defaults |")
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
