"""Seeded synthetic data (NumPy only): input processes, a linear regression target, majority.

Time is measured in steps: ``t = 0, 1, ..., L-1``; every time constant, length scale and
period below is a number of steps.

Input processes all return ``x: (num, L, C) float32``:

- ``white_noise``: i.i.d. ``N(0, std^2)``.
- ``white_noise_with_mean``: white noise plus a mean profile ``m(t)`` shared by all
  sequences and channels: ``"constant"`` ``m = level``, ``"linear"`` ``m = level * t/(L-1)``,
  ``"sine"`` ``m = level + amplitude * sin(2 pi t / period)``.
- ``ornstein_uhlenbeck``: stationary OU, exact discretisation:
  ``x_0 ~ N(0, std^2)``, ``x_t = a x_{t-1} + std sqrt(1 - a^2) eps_t`` with ``a = exp(-1/tau)``.
- ``brownian_motion``: ``x_t = std * sum_{s<=t} eps_s`` (so ``x_0 = std * eps_0``).
- ``gaussian_process``: zero-mean GP with kernel ``std^2 exp(-(t-t')^2 / (2 length_scale^2))``,
  sampled as ``x = S eps`` with ``S`` the Cholesky factor of ``K + jitter I`` (jitter at most
  ``1e-6 std^2``), or, if that fails, ``V diag(sqrt(max(w, 0)))`` from ``K = V diag(w) V^T``.

``std_ramp`` (any process): the deviation from the mean is multiplied by
``1 + std_ramp * t / (L-1)`` (a time-varying variance).

Regression target (``regression_target``): ``y = sum_c sum_s rho(L-1-s) x[s, c] + noise * eps``
with the target kernel ``rho`` from ``target_kernel``.
"""

from __future__ import annotations

import functools

import numpy as np

from ssm_jax.data.registry import Dataset, DatasetInfo, Split, register
from ssm_jax.data.splits import full_lengths

MEAN_PROFILES = ("constant", "linear", "sine")


def _check_shape(num: int, length: int, channels: int) -> None:
    if num < 0 or length <= 0 or channels <= 0:
        raise ValueError(f"need num >= 0, length > 0, channels > 0; got {num}, {length}, {channels}")


def white_noise(num: int, length: int, channels: int = 1, *, seed, std: float = 1.0) -> np.ndarray:
    """i.i.d. Gaussian noise. Returns ``x: (num, length, channels) float32``."""
    _check_shape(num, length, channels)
    rng = np.random.default_rng(seed)
    return (std * rng.standard_normal((num, length, channels))).astype(np.float32)


def mean_profile(length: int, kind: str = "constant", *, level: float = 1.0,
                 amplitude: float = 1.0, period: float = 16.0) -> np.ndarray:
    """Mean ``m(t)`` for ``t = 0..length-1``: ``(length,) float64`` (see module docstring)."""
    t = np.arange(length, dtype=np.float64)
    if kind == "constant":
        return np.full(length, level, dtype=np.float64)
    if kind == "linear":
        return level * t / max(length - 1, 1)
    if kind == "sine":
        if period <= 0:
            raise ValueError(f"sine mean profile needs period > 0, got {period}")
        return level + amplitude * np.sin(2 * np.pi * t / period)
    raise ValueError(f"unknown mean profile {kind!r}; choose from {MEAN_PROFILES}")


def white_noise_with_mean(num: int, length: int, channels: int = 1, *, seed, std: float = 1.0,
                          profile: str = "constant", level: float = 1.0, amplitude: float = 1.0,
                          period: float = 16.0) -> np.ndarray:
    """White noise plus ``mean_profile(...)``. Returns ``(num, length, channels) float32``."""
    mean = mean_profile(length, profile, level=level, amplitude=amplitude, period=period)
    noise = white_noise(num, length, channels, seed=seed, std=std)
    return (noise + mean[None, :, None]).astype(np.float32)


def ornstein_uhlenbeck(num: int, length: int, channels: int = 1, *, seed, tau: float = 10.0,
                       std: float = 1.0) -> np.ndarray:
    """Stationary OU process with time constant ``tau`` steps and stationary std ``std``.

    Returns ``(num, length, channels) float32``; ``Cov(x_s, x_t) = std^2 exp(-|t-s|/tau)``.
    """
    _check_shape(num, length, channels)
    if tau <= 0:
        raise ValueError(f"Ornstein-Uhlenbeck needs tau > 0, got {tau}")
    a = np.exp(-1.0 / tau)
    eps = np.random.default_rng(seed).standard_normal((num, length, channels))
    x = np.empty_like(eps)
    x[:, 0] = std * eps[:, 0]
    scale = std * np.sqrt(1 - a * a)
    for t in range(1, length):
        x[:, t] = a * x[:, t - 1] + scale * eps[:, t]
    return x.astype(np.float32)


def brownian_motion(num: int, length: int, channels: int = 1, *, seed,
                    std: float = 1.0) -> np.ndarray:
    """Brownian motion sampled at integer steps. Returns ``(num, length, channels) float32``;
    ``Var(x_t) = std^2 (t + 1)``."""
    eps = white_noise(num, length, channels, seed=seed, std=std).astype(np.float64)
    return np.cumsum(eps, axis=1).astype(np.float32)


def squared_exponential_kernel(length: int, length_scale: float, std: float = 1.0) -> np.ndarray:
    """``K[s, t] = std^2 exp(-(s-t)^2 / (2 length_scale^2))``: ``(length, length) float64``."""
    if length_scale <= 0:
        raise ValueError(f"gaussian process needs length_scale > 0, got {length_scale}")
    t = np.arange(length, dtype=np.float64)
    return std ** 2 * np.exp(-((t[:, None] - t[None, :]) ** 2) / (2.0 * length_scale ** 2))


@functools.lru_cache(maxsize=8)
def _kernel_root(length: int, length_scale: float, std: float) -> np.ndarray:
    """``S (length, length)`` with ``S @ S.T`` = the squared-exponential kernel (+ tiny jitter).

    Cholesky of ``K + jitter * std^2 * I`` for the smallest jitter in 1e-10, 1e-8, 1e-6 that
    works (the SE kernel is numerically singular for long length scales); if none does, the
    exact eigendecomposition root ``V diag(sqrt(max(w, 0)))``.
    """
    kernel = squared_exponential_kernel(length, length_scale, std)
    for jitter in (1e-10, 1e-8, 1e-6):
        try:
            return np.linalg.cholesky(kernel + jitter * std ** 2 * np.eye(length))
        except np.linalg.LinAlgError:
            continue
    w, v = np.linalg.eigh(kernel)
    return v * np.sqrt(np.clip(w, 0.0, None))[None, :]


def gaussian_process(num: int, length: int, channels: int = 1, *, seed,
                     length_scale: float = 8.0, std: float = 1.0) -> np.ndarray:
    """Smooth GP samples (squared-exponential kernel). Returns ``(num, length, channels) float32``."""
    _check_shape(num, length, channels)
    root = _kernel_root(length, float(length_scale), float(std))
    eps = np.random.default_rng(seed).standard_normal((num, length, channels))
    flat = eps.transpose(1, 0, 2).reshape(length, num * channels)  # (L, num * C)
    x = (root @ flat).reshape(length, num, channels).transpose(1, 0, 2)
    return np.ascontiguousarray(x, dtype=np.float32)


PROCESSES = {
    "white_noise": white_noise,
    "white_noise_with_mean": white_noise_with_mean,
    "ornstein_uhlenbeck": ornstein_uhlenbeck,
    "brownian_motion": brownian_motion,
    "gaussian_process": gaussian_process,
}

TARGET_KERNELS = ("decaying_oscillation", "exponential", "constant")


def target_kernel(length: int, kind: str = "decaying_oscillation", *, decay: float = 16.0,
                  period: float = 8.0) -> np.ndarray:
    """Target kernel ``rho(s)`` for lags ``s = 0..length-1``: ``(length,) float64``.

    ``"decaying_oscillation"``: ``exp(-s/decay) cos(2 pi s / period)``;
    ``"exponential"``: ``exp(-s/decay)``; ``"constant"``: ``1 / length``.
    """
    s = np.arange(length, dtype=np.float64)
    if kind == "decaying_oscillation":
        return np.exp(-s / decay) * np.cos(2 * np.pi * s / period)
    if kind == "exponential":
        return np.exp(-s / decay)
    if kind == "constant":
        return np.full(length, 1.0 / length)
    raise ValueError(f"unknown target kernel {kind!r}; choose from {TARGET_KERNELS}")


def regression_target(x: np.ndarray, rho: np.ndarray, *, noise: float = 0.0, seed=0) -> np.ndarray:
    """``y[n] = sum_c sum_s rho[L-1-s] x[n, s, c] + noise * eps[n]``.

    Args:
      x: ``(num, L, C)`` inputs.
      rho: ``(L,)`` target kernel, ``rho[k]`` = weight of the input ``k`` steps before the end.
    Returns:
      ``y: (num,) float32``.
    """
    if rho.shape != (x.shape[1],):
        raise ValueError(f"rho has shape {rho.shape}, expected ({x.shape[1]},)")
    clean = x.astype(np.float64).sum(axis=2) @ rho[::-1]
    eps = np.random.default_rng(seed).standard_normal(len(x))
    return (clean + noise * eps).astype(np.float32)


def sample_process(process: str, num: int, length: int, channels: int, *, seed,
                   params: dict) -> np.ndarray:
    """Dispatch to one of ``PROCESSES`` with the parameters it takes from ``params``.

    Returns ``(num, length, channels) float32``.
    """
    if process not in PROCESSES:
        raise ValueError(f"unknown process {process!r}; choose from {sorted(PROCESSES)}")
    ramp = float(params.get("std_ramp", 0.0) or 0.0)
    if ramp:  # time-varying variance: the deviation from the mean profile grows along time
        if ramp <= -1:
            raise ValueError(f"std_ramp must be > -1, got {ramp}")
        rest = {**params, "std_ramp": 0.0}
        x = sample_process(process, num, length, channels, seed=seed, params=rest)
        centre = sample_process(process, 1, length, channels, seed=seed, params={**rest, "std": 0.0}) \
            if process == "white_noise_with_mean" else 0.0
        profile = 1.0 + ramp * np.linspace(0.0, 1.0, length)[None, :, None]
        return np.asarray(centre + (x - centre) * profile, dtype=np.float32)
    std = params.get("std", 1.0)
    if process == "white_noise_with_mean":
        return white_noise_with_mean(num, length, channels, seed=seed, std=std,
                                     profile=params["mean_profile"], level=params["mean_level"],
                                     amplitude=params["mean_amplitude"],
                                     period=params["mean_period"])
    if process == "ornstein_uhlenbeck":
        return ornstein_uhlenbeck(num, length, channels, seed=seed, tau=params["tau"], std=std)
    if process == "gaussian_process":
        return gaussian_process(num, length, channels, seed=seed,
                                length_scale=params["length_scale"], std=std)
    return PROCESSES[process](num, length, channels, seed=seed, std=std)


REGRESSION_DEFAULTS = {
    "process": "white_noise", "seq_len": 64, "in_channels": 1,
    "num_train": 1024, "num_val": 256, "num_test": 256, "noise": 0.0, "seed": 0,
    "std": 1.0, "mean_profile": "constant", "mean_level": 1.0, "mean_amplitude": 1.0,
    "mean_period": 16.0, "tau": 10.0, "length_scale": 8.0, "std_ramp": 0.0,
    "target_kernel": "decaying_oscillation", "target_decay": 16.0, "target_period": 8.0,
}
_SPLIT_SIZES = (("train", "num_train"), ("validation", "num_val"), ("test", "num_test"))


def _check_regression_config(cfg: dict) -> None:
    if cfg["process"] not in PROCESSES:
        raise ValueError(f"unknown process {cfg['process']!r}; choose from {sorted(PROCESSES)}")
    if cfg["target_kernel"] not in TARGET_KERNELS:
        raise ValueError(f"unknown target_kernel {cfg['target_kernel']!r}; choose from {TARGET_KERNELS}")
    if cfg["mean_profile"] not in MEAN_PROFILES:
        raise ValueError(f"unknown mean_profile {cfg['mean_profile']!r}; choose from {MEAN_PROFILES}")
    if cfg["noise"] < 0:
        raise ValueError(f"noise must be >= 0, got {cfg['noise']}")
    for _, key in _SPLIT_SIZES:
        if cfg[key] <= 0:
            raise ValueError(f"{key} must be positive, got {cfg[key]}")
    _check_shape(1, cfg["seq_len"], cfg["in_channels"])


@register("synthetic_regression", defaults=REGRESSION_DEFAULTS)
def build_synthetic_regression(cfg: dict) -> Dataset:
    """Inputs from ``cfg.process``, targets ``y = sum_s rho(L-1-s) x_s + noise``.

    Split ``k`` (train 0, validation 1, test 2) draws its inputs with seed ``(seed, k, 0)`` and
    its noise with ``(seed, k, 1)``. Labels are ``(n,) float32``; ``num_classes`` is None.
    """
    _check_regression_config(cfg)
    length, channels = cfg["seq_len"], cfg["in_channels"]
    rho = target_kernel(length, cfg["target_kernel"], decay=cfg["target_decay"],
                        period=cfg["target_period"])
    splits = {}
    for k, (split, key) in enumerate(_SPLIT_SIZES):
        x = sample_process(cfg["process"], cfg[key], length, channels, seed=(cfg["seed"], k, 0),
                           params=cfg)
        y = regression_target(x, rho, noise=cfg["noise"], seed=(cfg["seed"], k, 1))
        splits[split] = Split(x, full_lengths(len(x), length), y)
    info = DatasetInfo(name="synthetic_regression", seq_len=length, input_kind="floats",
                       vocab_size=None, in_channels=channels, num_classes=None)
    return Dataset(info, splits)


# --------------------------------------------------------------------------------- majority


def majority_labels(x: np.ndarray) -> np.ndarray:
    """``y: (num,) int32``, 1 where more than half of the bits of ``x: (num, T)`` are ones."""
    return (2 * x.sum(axis=1) > x.shape[1]).astype(np.int32)


def label_preserving_flips(x: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Flip ones to zeros without changing any majority label.

    For a sequence with ``k`` ones, ``m = floor(noise * k)`` of its ones, chosen uniformly,
    become zeros, capped at ``k - (floor(T/2) + 1)`` for label-1 sequences (so they keep a
    strict majority of ones). Label-0 sequences only lose ones, so they stay label 0.

    Args:
      x: ``(num, T)`` int bits. Returns a new ``(num, T)`` int32 array.
    """
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"majority noise must be in [0, 1], got {noise}")
    x = np.array(x, dtype=np.int32)
    if noise == 0.0:
        return x
    length = x.shape[1]
    ones = x.sum(axis=1)
    flips = np.floor(noise * ones).astype(np.int64)
    is_majority = 2 * ones > length
    cap = np.where(is_majority, ones - (length // 2 + 1), ones)
    flips = np.minimum(flips, cap)
    for row in np.nonzero(flips > 0)[0]:
        positions = np.flatnonzero(x[row])
        x[row, rng.choice(positions, size=flips[row], replace=False)] = 0
    return x


def majority(num: int, length: int, *, seed, noise: float = 0.0) -> tuple:
    """Uniform random bit strings and their majority labels.

    Returns ``x: (num, length) int32`` in {0, 1} and ``y: (num,) int32`` (1 when more than
    half of the bits are ones; a tie is 0). ``noise > 0`` applies ``label_preserving_flips``
    after the labels are computed; the labels stay correct for the noisy ``x``.
    """
    if num < 0 or length <= 0:
        raise ValueError(f"need num >= 0 and length > 0, got {num}, {length}")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"majority noise must be in [0, 1], got {noise}")
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(num, length), dtype=np.int32)
    y = majority_labels(x)
    return label_preserving_flips(x, noise, rng), y


MAJORITY_DEFAULTS = {"seq_len": 100, "num_train": 1000, "num_val": 200, "num_test": 200,
                     "noise": 0.0, "seed": 0}


@register("majority", defaults=MAJORITY_DEFAULTS)
def build_majority(cfg: dict) -> Dataset:
    """Majority of random bits; ``noise`` is applied to the training split only.

    Tokens are the bits themselves (vocab_size 2). Every sequence has full length, so no
    padding is ever needed (``pad_id`` 0 is nominal). Split ``k`` uses seed ``(seed, k)``.
    """
    if not 0.0 <= cfg["noise"] <= 1.0:
        raise ValueError(f"majority noise must be in [0, 1], got {cfg['noise']}")
    for _, key in _SPLIT_SIZES:
        if cfg[key] <= 0:
            raise ValueError(f"{key} must be positive, got {cfg[key]}")
    length = cfg["seq_len"]
    splits = {}
    for k, (split, key) in enumerate(_SPLIT_SIZES):
        noise = cfg["noise"] if split == "train" else 0.0
        x, y = majority(cfg[key], length, seed=(cfg["seed"], k), noise=noise)
        splits[split] = Split(x, full_lengths(len(x), length), y)
    info = DatasetInfo(name="majority", seq_len=length, input_kind="tokens", vocab_size=2,
                       in_channels=1, num_classes=2)
    return Dataset(info, splits)


# ------------------------------------------------------------- majority (selective-SSM paper)


def majority_counts(num_train: int, num_test: int, length: int, *, seed: int,
                    noise: float = 0.25) -> tuple:
    """The majority data of the selective-SSM paper's code, in its RNG order.

    One legacy ``np.random.RandomState(seed)`` stream: train counts ``n1 ~ U{0..T}`` (one call
    of size ``num_train``), then each train row (its first ``n1`` entries set to 1, shuffled),
    then the same for test; labels ``1[n1 > T/2]`` from the counts; finally the train split's
    noise: every one whose uniform draw (one ``(num_train, T)`` array) is below ``noise``
    becomes 0 (after labelling: the labels of noisy rows may be wrong, which caps train
    accuracy; the test split is clean).

    Returns:
      ``(x_train (num_train, T), y_train, x_test (num_test, T), y_test)``, int32.
    """
    rng = np.random.RandomState(seed)

    def draw(num):
        counts = rng.randint(0, length + 1, size=num)
        x = np.zeros((num, length), np.int32)
        for i, c in enumerate(counts):
            x[i, :c] = 1
            rng.shuffle(x[i])
        return x, (counts > length / 2).astype(np.int32)

    x_tr, y_tr = draw(num_train)
    x_te, y_te = draw(num_test)
    flip = (rng.rand(num_train, length) < noise) & (x_tr == 1)
    x_tr = np.where(flip, 0, x_tr).astype(np.int32)
    return x_tr, y_tr, x_te, y_te


MAJORITY_COUNTS_DEFAULTS = {"seq_len": 100, "num_train": 1000, "num_test": 1000, "noise": 0.25,
                            "seed": 0}


@register("majority_counts", defaults=MAJORITY_COUNTS_DEFAULTS)
def build_majority_counts(cfg: dict) -> Dataset:
    """Majority as in the selective-SSM paper (:func:`majority_counts`): uniform counts of
    ones, ``noise`` flips on the train split only, no validation split (it is empty)."""
    if not 0.0 <= cfg["noise"] <= 1.0:
        raise ValueError(f"majority noise must be in [0, 1], got {cfg['noise']}")
    if cfg["num_train"] <= 0 or cfg["num_test"] <= 0:
        raise ValueError("num_train and num_test must be positive")
    T = cfg["seq_len"]
    x_tr, y_tr, x_te, y_te = majority_counts(cfg["num_train"], cfg["num_test"], T,
                                             seed=cfg["seed"], noise=cfg["noise"])
    empty = Split(np.zeros((0, T), np.int32), np.zeros((0,), np.int32), np.zeros((0,), np.int32))
    splits = {"train": Split(x_tr, full_lengths(len(x_tr), T), y_tr), "validation": empty,
              "test": Split(x_te, full_lengths(len(x_te), T), y_te)}
    info = DatasetInfo(name="majority_counts", seq_len=T, input_kind="tokens", vocab_size=2,
                       in_channels=1, num_classes=2)
    return Dataset(info, splits)
