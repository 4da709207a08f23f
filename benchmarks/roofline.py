"""Roofline helpers for the benchmarks: the machine's peaks measured in the same process, and
the arithmetic and memory traffic each SSM layer mode needs.

Peaks: ``peak_flops`` times a large float32 matrix product (2 n^3 flops), ``peak_bandwidth``
a large array copy (it reads and writes every byte once: 2 x size). Both are what this
process reaches on this machine now (other processes share the cores), not a data sheet.

Work per layer and mode (float32 / complex64, forward pass; ``batch`` sequences of length
``L``, ``H`` features, ``M`` complex modes per channel (S4D) or in total (S5)):

* projections as real products: ``2 * rows * cols`` flops per output row;
* the diagonal recurrence: a complex multiply-add per state and step, 8 flops;
* a real FFT of size n: ``2.5 n log2 n`` flops (half a complex one);
* the Vandermonde kernel: a complex exponential (counted as 20 flops) and a complex
  multiply-add (8) per mode and tap.

Bytes: the inputs read and outputs written, plus every state-sized intermediate the
implementation materializes (written once and read once). Forward+backward is counted as 3x
the forward work (the usual rule: the backward pass costs about twice the forward one).
These are models of the needed work, stated so that the fractions can be checked; XLA's own
cost analysis counts a loop body once, whatever the trip count, so it cannot be used for scans.
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp

F32, C64 = 4, 8  # bytes


def _best_time(fn, *args, repeats: int = 5) -> float:
    compiled = jax.jit(fn).lower(*args).compile()
    jax.block_until_ready(compiled(*args))
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def peak_flops(n: int = 2048) -> float:
    """FLOP/s of an (n, n) x (n, n) float32 matrix product."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    return 2 * n ** 3 / _best_time(lambda x, y: x @ y, a, a)


def peak_bandwidth(megabytes: int = 256) -> float:
    """Bytes/s of copying a float32 array of ``megabytes`` (read + write)."""
    x = jnp.zeros((megabytes * 2 ** 20 // F32,), jnp.float32)
    return 2 * x.size * F32 / _best_time(lambda v: v * 1.0, x)


def peaks() -> dict:
    return {"flops": peak_flops(), "bandwidth": peak_bandwidth()}


def _fft(n: int) -> float:
    return 2.5 * n * math.log2(n)


def s4d_work(batch: int, L: int, H: int, M: int, mode: str) -> tuple:
    """(flops, bytes) of an S4D layer forward pass in ``mode`` "conv" or "recurrent"."""
    io = 2 * batch * L * H * F32
    if mode == "conv":
        n = 2 * L
        kernel = H * M * L * (20 + 8)
        ffts = batch * H * 2 * _fft(n) + H * _fft(n) + batch * H * (n // 2 + 1) * 6
        flops = kernel + ffts
        bytes_ = io + 2 * H * L * F32 + 2 * 2 * batch * H * (n // 2 + 1) * C64
    else:
        state = batch * L * H * M
        flops = state * (2 + 8 + 4)  # input map (2 real products), recurrence, read-out
        bytes_ = io + 2 * 2 * state * C64  # B u and the states, written and read
    return flops, bytes_


def s5_work(batch: int, L: int, H: int, M: int) -> tuple:
    """(flops, bytes) of an S5 layer forward pass (real-arithmetic projections)."""
    rows = batch * L
    flops = 2 * rows * H * 2 * M + rows * M * 8 + 2 * rows * 2 * M * H
    bytes_ = 2 * rows * H * F32 + 2 * 2 * rows * M * C64
    return flops, bytes_


def roofline_row(name: str, seconds: float, work: tuple, peak: dict, backward: bool) -> dict:
    """Achieved GFLOP/s and GB/s of one timed cell and their fractions of the peaks."""
    factor = 3.0 if backward else 1.0
    flops, bytes_ = (factor * w for w in work)
    return {"name": name, "ms": 1e3 * seconds, "gflops": flops / seconds / 1e9,
            "gbs": bytes_ / seconds / 1e9, "flops_frac": flops / seconds / peak["flops"],
            "bw_frac": bytes_ / seconds / peak["bandwidth"],
            "intensity": flops / bytes_}


def print_roofline(rows: list, peak: dict, title: str) -> None:
    print(f"\n## roofline: {title}\n")
    print(f"peaks measured in this process: {peak['flops'] / 1e9:.1f} GFLOP/s (float32 matmul), "
          f"{peak['bandwidth'] / 1e9:.1f} GB/s (array copy); ridge point "
          f"{peak['flops'] / peak['bandwidth']:.1f} flop/byte\n")
    print("| cell | ms | GFLOP/s | % of peak FLOP/s | GB/s | % of peak GB/s | flop/byte |")
    print("|:---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['ms']:.1f} | {r['gflops']:.2f} | {100 * r['flops_frac']:.1f} | "
              f"{r['gbs']:.2f} | {100 * r['bw_frac']:.1f} | {r['intensity']:.2f} |")
