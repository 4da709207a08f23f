"""Synthetic input processes, the regression dataset and majority."""

import numpy as np
import pytest

from ssm_jax.data import get_dataset
from ssm_jax.data import synthetic as syn

N, L = 4000, 32


def _empirical_cov(x):
    x = x[:, :, 0].astype(np.float64)
    return np.cov(x, rowvar=False)


@pytest.mark.parametrize("name", sorted(syn.PROCESSES))
def test_process_shape_dtype_and_seed(name):
    params = dict(syn.REGRESSION_DEFAULTS)
    a = syn.sample_process(name, 5, 12, 3, seed=1, params=params)
    b = syn.sample_process(name, 5, 12, 3, seed=1, params=params)
    c = syn.sample_process(name, 5, 12, 3, seed=2, params=params)
    assert a.shape == (5, 12, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_white_noise_statistics():
    x = syn.white_noise(N, L, seed=0, std=2.0)
    np.testing.assert_allclose(_empirical_cov(x), 4 * np.eye(L), atol=0.4)
    assert abs(x.mean()) < 0.05


@pytest.mark.parametrize("profile", syn.MEAN_PROFILES)
def test_mean_profiles(profile):
    x = syn.white_noise_with_mean(N, L, seed=0, profile=profile, level=2.0, amplitude=1.0,
                                  period=8.0)
    expected = syn.mean_profile(L, profile, level=2.0, amplitude=1.0, period=8.0)
    np.testing.assert_allclose(x[:, :, 0].mean(axis=0), expected, atol=0.08)
    assert np.ptp(expected) > 0 or profile == "constant"


def test_mean_profile_values():
    np.testing.assert_allclose(syn.mean_profile(5, "linear", level=4.0), [0, 1, 2, 3, 4])
    np.testing.assert_allclose(syn.mean_profile(3, "constant", level=0.5), [0.5] * 3)
    np.testing.assert_allclose(syn.mean_profile(5, "sine", level=0, amplitude=1, period=4),
                               [0, 1, 0, -1, 0], atol=1e-12)


def test_ornstein_uhlenbeck_covariance():
    tau = 5.0
    x = syn.ornstein_uhlenbeck(N, L, seed=0, tau=tau, std=1.0)
    lag = np.abs(np.subtract.outer(np.arange(L), np.arange(L)))
    np.testing.assert_allclose(_empirical_cov(x), np.exp(-lag / tau), atol=0.1)


def test_brownian_motion_variance_grows_linearly():
    x = syn.brownian_motion(N, L, seed=0)
    var = x[:, :, 0].var(axis=0)
    np.testing.assert_allclose(var / np.arange(1, L + 1), 1.0, atol=0.12)
    increments = np.diff(x[:, :, 0], axis=1)
    assert abs(np.corrcoef(increments[:, 3], increments[:, 4])[0, 1]) < 0.05


def test_gaussian_process_covariance_and_smoothness():
    x = syn.gaussian_process(N, L, seed=0, length_scale=4.0)
    np.testing.assert_allclose(_empirical_cov(x), syn.squared_exponential_kernel(L, 4.0), atol=0.1)
    rough = syn.gaussian_process(200, L, seed=0, length_scale=0.5)
    assert np.abs(np.diff(x[:200], axis=1)).mean() < 0.5 * np.abs(np.diff(rough, axis=1)).mean()


def test_gaussian_process_large_length_scale_does_not_fail():
    x = syn.gaussian_process(3, 256, seed=0, length_scale=200.0)
    assert np.isfinite(x).all()


def test_target_kernels():
    rho = syn.target_kernel(4, "decaying_oscillation", decay=2.0, period=4.0)
    np.testing.assert_allclose(rho, np.exp(-np.arange(4) / 2) * np.cos(np.pi * np.arange(4) / 2),
                               atol=1e-12)
    np.testing.assert_allclose(syn.target_kernel(3, "exponential", decay=1.0), np.exp(-np.arange(3)))


def test_regression_target_formula():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5, 2))
    rho = rng.standard_normal(5)
    y = syn.regression_target(x, rho)
    expected = [sum(rho[5 - 1 - s] * x[n, s, c] for s in range(5) for c in range(2)) for n in range(6)]
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    noisy = syn.regression_target(x, rho, noise=0.1, seed=1)
    assert 0 < np.std(noisy - y) < 0.3


def test_synthetic_regression_dataset():
    cfg = {"name": "synthetic_regression", "process": "ornstein_uhlenbeck", "seq_len": 16,
           "num_train": 20, "num_val": 5, "num_test": 7, "tau": 3.0, "noise": 0.0, "seed": 3}
    ds = get_dataset(cfg)
    info = ds.info
    assert info.num_classes is None and info.target_shape == () and info.input_kind == "floats"
    assert [len(ds.splits[s]) for s in ("train", "validation", "test")] == [20, 5, 7]
    assert ds.train.inputs.shape == (20, 16, 1) and ds.train.labels.dtype == np.float32
    rho = syn.target_kernel(16, decay=16.0, period=8.0)
    np.testing.assert_allclose(ds.test.labels, syn.regression_target(ds.test.inputs, rho), rtol=1e-4)
    assert not np.allclose(ds.train.inputs[:5], ds.test.inputs[:5])  # splits use different seeds
    np.testing.assert_array_equal(get_dataset(cfg).train.inputs, ds.train.inputs)


@pytest.mark.parametrize("key,value,match", [
    ("process", "levy", "unknown process 'levy'"),
    ("target_kernel", "boxcar", "unknown target_kernel"),
    ("mean_profile", "cubic", "unknown mean_profile"),
    ("num_train", 0, "num_train must be positive"),
    ("noise", -1.0, "noise must be >= 0"),
])
def test_synthetic_regression_bad_config(key, value, match):
    with pytest.raises(ValueError, match=match):
        get_dataset({"name": "synthetic_regression", key: value})


def test_process_parameter_errors():
    with pytest.raises(ValueError, match="tau > 0"):
        syn.ornstein_uhlenbeck(2, 4, seed=0, tau=0.0)
    with pytest.raises(ValueError, match="length_scale > 0"):
        syn.gaussian_process(2, 4, seed=0, length_scale=-1.0)


# ------------------------------------------------------------------------------ majority


def test_majority_labels_correct_and_seeded():
    x, y = syn.majority(500, 11, seed=0)
    assert x.shape == (500, 11) and set(np.unique(x)) == {0, 1}
    np.testing.assert_array_equal(y, [int(sum(row) > 5.5) for row in x])
    assert 0.3 < y.mean() < 0.7
    x2, y2 = syn.majority(500, 11, seed=0)
    np.testing.assert_array_equal(x, x2)
    assert not np.array_equal(x, syn.majority(500, 11, seed=1)[0])


def test_majority_tie_is_zero():
    assert syn.majority_labels(np.array([[1, 0, 1, 0], [1, 1, 1, 0]])).tolist() == [0, 1]


def test_majority_noise_preserves_labels_and_only_removes_ones():
    clean, y = syn.majority(400, 20, seed=5)
    noisy, y_noisy = syn.majority(400, 20, seed=5, noise=0.5)
    np.testing.assert_array_equal(y, y_noisy)
    np.testing.assert_array_equal(syn.majority_labels(noisy), y)
    assert (noisy <= clean).all()  # only ones turned into zeros
    removed = clean.sum(1) - noisy.sum(1)
    ones = clean.sum(1)
    assert removed.sum() > 0
    label0 = y == 0
    np.testing.assert_array_equal(removed[label0], np.floor(0.5 * ones[label0]))
    assert (noisy.sum(1)[y == 1] == 11).any()  # label-1 rows are capped at a bare majority


def test_majority_dataset_noise_only_on_train():
    cfg = {"name": "majority", "seq_len": 15, "num_train": 50, "num_val": 30, "num_test": 30,
           "noise": 0.3}
    ds = get_dataset(cfg)
    clean = get_dataset({**cfg, "noise": 0.0})
    assert ds.info.input_kind == "tokens" and ds.info.vocab_size == 2 and ds.info.num_classes == 2
    assert not np.array_equal(ds.train.inputs, clean.train.inputs)
    np.testing.assert_array_equal(ds.train.labels, clean.train.labels)
    np.testing.assert_array_equal(ds.test.inputs, clean.test.inputs)
    np.testing.assert_array_equal(ds.validation.inputs, clean.validation.inputs)
    for split in ds.splits.values():
        np.testing.assert_array_equal(syn.majority_labels(split.inputs), split.labels)


@pytest.mark.parametrize("noise", [-0.1, 1.5])
def test_majority_bad_noise(noise):
    with pytest.raises(ValueError, match="noise must be in"):
        get_dataset({"name": "majority", "noise": noise})
    with pytest.raises(ValueError, match="noise must be in"):
        syn.majority(3, 4, seed=0, noise=noise)


@pytest.mark.parametrize("length_scale", [2.0, 50.0, 1e4])
def test_gaussian_process_kernel_root_reproduces_kernel(length_scale):
    root = syn._kernel_root(64, length_scale, 1.5)
    kernel = syn.squared_exponential_kernel(64, length_scale, 1.5)
    np.testing.assert_allclose(root @ root.T, kernel, atol=1e-5)


def test_majority_counts_follows_the_paper_rng_order():
    """Written out with the legacy global-RNG calls of the paper's code."""
    from ssm_jax.data import get_dataset
    from ssm_jax.data.synthetic import majority_counts

    T, m = 9, 6
    np.random.seed(3)
    n1 = np.random.randint(0, T + 1, size=m)
    x = np.zeros((m, T), np.int64)
    for i in range(m):
        x[i, :n1[i]] = 1
        np.random.shuffle(x[i])
    n1t = np.random.randint(0, T + 1, size=m)
    xt = np.zeros((m, T), np.int64)
    for i in range(m):
        xt[i, :n1t[i]] = 1
        np.random.shuffle(xt[i])
    noise = np.random.rand(m, T)
    x[(noise < 0.25) & (x == 1)] = 0
    got = majority_counts(m, m, T, seed=3, noise=0.25)
    np.testing.assert_array_equal(got[0], x)
    np.testing.assert_array_equal(got[1], (n1 > T / 2).astype(int))
    np.testing.assert_array_equal(got[2], xt)
    np.testing.assert_array_equal(got[3], (n1t > T / 2).astype(int))
    ds = get_dataset({"name": "majority_counts", "seq_len": T, "num_train": m, "num_test": m,
                      "seed": 3})
    assert len(ds.validation) == 0 and ds.info.vocab_size == 2
    np.testing.assert_array_equal(ds.train.inputs, x)
