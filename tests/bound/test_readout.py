"""Read-outs ("last" / "mean"), padded batches, bidirectional layers and train-mode BatchNorm
in the measure, the regularizer and the init rule: float64 against loops written here."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssm_jax.bound import (
    direction_measures, generalization_measure, input_statistics, layer_measures,
    readout_measure, readout_weights, regularizer, rescale_init,
)
from ssm_jax.layers import SSMLayer
from ssm_jax.layers.s4d import S4D

from .conftest import B, H, L, N


def loop_weights(K, readout, n, reverse=False):
    """Weights of u[s], s < n, in the read-out of one sequence of n valid steps (numpy loops)."""
    K = np.asarray(K)
    w = np.zeros(K.shape[:-1] + (K.shape[-1],))
    for s in range(n):
        if readout == "last":
            w[..., s] = K[..., s] if reverse else K[..., n - 1 - s]
        else:  # mean over t < n of y[t]; forward y[t] sees u[s<=t] at lag t-s, backward s>=t
            for t in range(n):
                lag = (s - t) if reverse else (t - s)
                if lag >= 0:
                    w[..., s] += K[..., lag] / n
    return w


def loop_tau(w_per_seq, x):
    """tau = (sum_s std_b(p) + |sum_s mean_b(p)|)^2 with p[b, s] = w_b[s] x[b, s] (SISO)."""
    x = np.asarray(x)
    p = np.stack([np.stack([w[:, s] * x[b, s] for s in range(x.shape[1])]) for b, w in enumerate(w_per_seq)])
    mean = p.mean(0)  # (L, H)
    std = np.sqrt(((p - mean) ** 2).mean(0))
    return (std.sum(0) + np.abs(mean.sum(0))) ** 2


def random_kernel(seed, shape):
    t = np.arange(shape[-1])
    decay = np.exp(-0.2 * t) * np.cos(0.7 * t)
    return np.asarray(jax.random.normal(jax.random.PRNGKey(seed), shape, jnp.float64)) * decay


def test_mean_readout_against_loop_siso_and_mimo():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(L, 3)) + np.linspace(0, 2, L)[:, None]
    std = rng.uniform(0.1, 2.0, size=(L, 3))
    K = random_kernel(0, (3, L))
    w = loop_weights(K, "mean", L)
    expected = (np.sum(np.abs(w) * std.T, 1) + np.abs(np.sum(w * mean.T, 1))) ** 2
    np.testing.assert_allclose(generalization_measure(K, mean, std, readout="mean"), expected, rtol=1e-12)
    np.testing.assert_allclose(readout_weights(K, "mean"), w, rtol=1e-12)
    # "last" is the unchanged formula
    np.testing.assert_allclose(generalization_measure(K, mean, std, readout="last"),
                               generalization_measure(K, mean, std), rtol=1e-14)
    # MIMO: triangle inequality over input channels
    K3 = random_kernel(1, (2, 3, L))
    w3 = loop_weights(K3, "mean", L)
    expected = (np.einsum("ois,si->o", np.abs(w3), std) + np.abs(np.einsum("ois,si->o", w3, mean))) ** 2
    np.testing.assert_allclose(generalization_measure(K3, mean, std, readout="mean"), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="unknown readout 'max'; valid names: 'last', 'mean'"):
        generalization_measure(K, mean, std, readout="max")


@pytest.mark.parametrize("readout", ["last", "mean"])
@pytest.mark.parametrize("reverse", [False, True])
def test_padded_sequences_per_sequence_weights_against_loop(readout, reverse):
    lengths = np.array([L, L - 3, 5, L, 9, 1, L, 12])[:B]
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (B, L, H), jnp.float64)) + 0.7
    x = x * (np.arange(L)[None, :, None] < lengths[:, None, None])  # padded positions are zero
    K = random_kernel(2, (H, L))
    w = readout_weights(K, readout, reverse=reverse, lengths=jnp.asarray(lengths))
    assert w.shape == (B, H, L)
    loops = [loop_weights(K, readout, int(n), reverse) for n in lengths]
    np.testing.assert_allclose(w, np.stack(loops), rtol=1e-12, atol=1e-15)
    tau = readout_measure(w, x, per_sequence=True)
    np.testing.assert_allclose(tau, loop_tau(loops, x), rtol=1e-10)
    # full lengths: the per-sequence formula is the shared-weight formula
    full = readout_measure(readout_weights(K, readout, reverse=reverse, lengths=jnp.full((B,), L)),
                           x, per_sequence=True)
    shared = readout_measure(readout_weights(K, readout, reverse=reverse), x)
    np.testing.assert_allclose(full, shared, rtol=1e-10)
    # covariance: the batch mean/variance of each sequence's own read-out
    y = np.einsum("bhs,bsh->bh", np.stack(loops), x)
    expected = (y.std(0) + np.abs(y.mean(0))) ** 2
    np.testing.assert_allclose(readout_measure(w, x, measure="covariance", per_sequence=True),
                               expected, rtol=1e-10)


def layer_output_readout(layer, params, u, lengths, readout):
    """The layer's read-out (time mean over valid steps, or the last valid step) of its output
    without the D skip: what the measure bounds."""
    y = layer.apply(params, u) - params["params"]["D"] * u
    mask = np.arange(L)[None, :] < lengths[:, None]
    if readout == "mean":
        return (y * mask[..., None]).sum(1) / lengths[:, None]
    return y[np.arange(B), lengths - 1]


@pytest.mark.parametrize("readout", ["last", "mean"])
def test_readout_weights_reproduce_the_layer_output(readout):
    """sum_s w_b[s] u_b[s] is the read-out of the real S4D output (forward direction)."""
    layer = S4D(H, d_state=N, param_dtype=jnp.float64)
    lengths = np.array([L, L - 3, 5, L, 9, 2, L, 12])[:B]
    u = np.asarray(jax.random.normal(jax.random.PRNGKey(4), (B, L, H), jnp.float64))
    u = u * (np.arange(L)[None, :] < lengths[:, None])[..., None]
    params = layer.init(jax.random.PRNGKey(0), u)
    _, state = layer.apply(params, u, mutable=["intermediates"])
    K = state["intermediates"]["kernel"][0]
    w = readout_weights(K, readout, lengths=jnp.asarray(lengths))
    np.testing.assert_allclose(np.einsum("bhs,bsh->bh", w, u),
                               layer_output_readout(layer, params, u, lengths, readout), rtol=1e-9, atol=1e-12)


def test_bidirectional_mean_weights_reproduce_the_pooled_output():
    layer = S4D(H, d_state=N, bidirectional=True, param_dtype=jnp.float64)
    u = np.asarray(jax.random.normal(jax.random.PRNGKey(5), (B, L, H), jnp.float64))
    params = layer.init(jax.random.PRNGKey(1), u)
    _, state = layer.apply(params, u, mutable=["intermediates"])
    K, K_rev = state["intermediates"]["kernel"][0], state["intermediates"]["kernel_rev"][0]
    w = readout_weights(K, "mean") + readout_weights(K_rev, "mean", reverse=True)
    pooled = (layer.apply(params, u) - params["params"]["D"] * u).mean(1)
    np.testing.assert_allclose(np.einsum("hs,bsh->bh", w, u), pooled, rtol=1e-9, atol=1e-12)
    # the layer's mean-readout tau is the measure of these combined weights
    mean, std = input_statistics(u)
    expected = (np.einsum("hs,sh->h", np.abs(w), std) + np.abs(np.einsum("hs,sh->h", w, mean))) ** 2
    np.testing.assert_allclose(direction_measures(K, u, K_rev=K_rev, readout="mean")[0], expected, rtol=1e-10)


def test_bidirectional_regularizer_reaches_the_reverse_parameters(models):
    """Backward parameters equal to the forward ones and a batch closed under time reversal
    make the model time-reversal symmetric, so the regularizer's gradients with respect to the
    two directions must be equal. Before the fix the backward direction entered only through
    lag 0 of its kernel, and its gradients were 1e2-1e5 times smaller."""
    model, variables, x = models("s4d_bidirectional")
    x = jnp.concatenate([x, x[:, ::-1]])

    def mirror(layer):
        return {**layer, **{k + "_rev": layer[k] for k in layer if not k.endswith("_rev") and k != "D"}}

    params = {k: ({**v, "ssm": mirror(v["ssm"])} if k.startswith("block") else v)
              for k, v in variables["params"].items()}
    for readout in ("last", "mean"):
        def reg(params):
            _, state = model.apply({**variables, "params": params}, x, mutable=["intermediates"])
            return regularizer(state["intermediates"], readout=readout)

        g = jax.jit(jax.grad(reg))(params)
        for block in ("block_0", "block_1"):
            for name in ("C_re", "C_im", "Lambda_re", "Lambda_im", "B_re", "log_step"):
                fwd, rev = g[block]["ssm"][name], g[block]["ssm"][name + "_rev"]
                assert float(jnp.abs(fwd).max()) > 0
                np.testing.assert_allclose(rev, fwd, rtol=1e-6, atol=1e-10 * float(jnp.abs(fwd).max()),
                                           err_msg=f"{readout} {block} {name}")


@pytest.mark.parametrize("readout", ["last", "mean"])
def test_bidirectional_rescale_each_direction(models, readout):
    model, variables, x = models("s4d_bidirectional")
    scaled = rescale_init(model, variables, x, readout=readout)
    for tau in layer_measures(model, scaled, x, readout=readout):
        np.testing.assert_allclose(tau, 1.0, atol=1e-6)
    if readout == "last":  # every direction on its own has tau 1 (its C divided by its own tau)
        _, state = model.apply(scaled, x, mutable=["intermediates"])
        layer = state["intermediates"]["block_0"]["ssm"]
        _, per_direction = direction_measures(layer["kernel"][0], layer["input"][0],
                                              K_rev=layer["kernel_rev"][0], readout="last")
        for tau in per_direction.values():
            np.testing.assert_allclose(tau, 1.0, atol=1e-6)


def train_mode_taus(model, variables, x, lengths=None, readout="last"):
    """tau of every layer in a train-mode forward pass, from the layer's real argument
    (captured by intercepting the SSM layer's call, not from what it sowed) and its kernel."""
    captured = []

    def capture(next_fun, args, kwargs, context):
        if isinstance(context.module, SSMLayer) and context.method_name == "__call__":
            captured.append(args[0])
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(capture):
        _, state = model.apply(variables, x, lengths, train=True,
                               mutable=["intermediates", "batch_stats"])
    taus = []
    for i, u in enumerate(captured):
        K = state["intermediates"][f"block_{i}"]["ssm"]["kernel"][0]
        mean, std = input_statistics(u)
        taus.append(generalization_measure(K, mean, std, readout=readout))
    return taus


def test_batchnorm_rescale_in_train_mode(models):
    """3 post-norm BatchNorm blocks: after the rule the train-mode taus are 1/1/1 (the rule
    used to run BatchNorm with running statistics, the identity at init: 0.17/3.89/1.47)."""
    model, variables, x = models("s4d_3_batchnorm")
    scaled = rescale_init(model, variables, x)
    for tau in train_mode_taus(model, scaled, x):
        np.testing.assert_allclose(tau, 1.0, atol=1e-6)
    # the batch statistics are those of init (the train-mode updates are discarded)
    for a, b in zip(jax.tree.leaves(variables["batch_stats"]), jax.tree.leaves(scaled["batch_stats"])):
        np.testing.assert_array_equal(a, b)
    # evaluation mode is a different forward pass here: its taus are not all 1
    eval_taus = layer_measures(model, scaled, x, train=False)
    assert max(float(jnp.abs(t - 1).max()) for t in eval_taus) > 0.1
    for tau in layer_measures(model, rescale_init(model, variables, x, train=False), x, train=False):
        np.testing.assert_allclose(tau, 1.0, atol=1e-6)


def test_train_mode_switches_dropout_off(x64):
    from ssm_jax.models import SequenceModel
    model = SequenceModel(3, d_model=H, n_layers=2, ssm={"d_state": N, "param_dtype": jnp.float64},
                          dropout=0.5, projection="glu")
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (B, L, 2), jnp.float64))
    variables = model.init(jax.random.PRNGKey(0), x)
    scaled = rescale_init(model, variables, x)  # no dropout rng needed: dropout is off
    for a, b in zip(layer_measures(model, scaled, x), layer_measures(model, scaled, x, train=False)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
        np.testing.assert_allclose(a, 1.0, atol=1e-6)


@pytest.mark.parametrize("readout", ["last", "mean"])
def test_rescale_with_padding_and_readout(models, readout):
    model, variables, x = models("s4d_3_layernorm")
    lengths = jnp.array([L, L - 3, L, 5, L, L, 9, L])[:B]
    scaled = rescale_init(model, variables, x, lengths, readout=readout)
    for tau in layer_measures(model, scaled, x, lengths, readout=readout):
        np.testing.assert_allclose(tau, 1.0, atol=1e-6)
    # the other read-out gives other taus: the option is not a no-op
    other = "mean" if readout == "last" else "last"
    assert max(float(jnp.abs(t - 1).max()) for t in layer_measures(model, scaled, x, lengths, readout=other)) > 0.05


def test_stack_readouts_per_layer():
    from ssm_jax.bound import BoundOptions, layer_readouts, resolve_readout

    assert layer_readouts("top_mean", 3) == ("last", "last", "mean")
    assert layer_readouts("top_mean", 1) == ("mean",)  # one layer: the pooled one
    assert layer_readouts("last", 2) == ("last", "last")
    assert layer_readouts("mean", 2) == ("mean", "mean")
    with pytest.raises(ValueError, match="unknown readout 'first'"):
        layer_readouts("first", 2)
    assert BoundOptions().readout == "auto"
    # "auto": the final time below the top layer of a mean-pooled model, the mean at the top
    assert resolve_readout("auto", "mean") == "top_mean"
    for pooling in ("last", "last_position", "none", None):
        assert resolve_readout("auto", pooling) == "last"
    assert resolve_readout("mean", "last") == "mean"


def test_auto_readout_of_a_mean_pooled_model_is_last_below_the_top(models, sown):
    """The default read-out of a mean-pooled 3-layer model: every layer's tau is the one of its
    final-time output, except the top layer's, of its time mean (numpy loops over the sown
    inputs and kernels). The old default measured the time mean at every layer: another
    number, so this fails under it."""
    from ssm_jax.bound import make_regularizer

    model, variables, x = models("s4d_3_layernorm")
    assert model.pooling == "mean"
    state = sown("s4d_3_layernorm")
    expected = []
    for i, r in enumerate(("last", "last", "mean")):
        layer = state[f"block_{i}"]["ssm"]
        K, u = np.asarray(layer["kernel"][0]), np.asarray(layer["input"][0])
        expected.append(loop_tau([loop_weights(K, r, L)] * B, u))
    term = make_regularizer({}, pooling=model.pooling)  # the defaults
    want = sum(t.mean() for t in expected)
    np.testing.assert_allclose(term(state), want, rtol=1e-10)
    every_mean = regularizer(state, readout="mean")
    assert abs(float(every_mean) - want) > 0.05 * want
    for tau, e in zip(layer_measures(model, variables, x, readout="top_mean", train=False), expected):
        np.testing.assert_allclose(tau, e, rtol=1e-10)
    # the rule with this read-out: tau 1 at every layer, each measured by its own read-out
    scaled = rescale_init(model, variables, x, readout="top_mean")
    for tau in layer_measures(model, scaled, x, readout="top_mean"):
        np.testing.assert_allclose(tau, 1.0, atol=1e-6)
    first = layer_measures(model, scaled, x, readout="mean")[0]  # layer 0 was scaled for "last"
    assert float(jnp.abs(first - 1).max()) > 0.05
