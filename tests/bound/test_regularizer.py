"""The regularizer: value, gradient against separately computed kernels, reductions, config."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ssm_jax import options as opt
from ssm_jax.bound import (
    BoundOptions, batch_measure, collect_layers, generalization_measure, input_statistics,
    layer_measures, layer_taus, make_regularizer, regularizer,
)
from ssm_jax.kernels import mimo_kernel, ssm_kernel
from ssm_jax.layers import get_layer
from ssm_jax.options import to_dict

from .conftest import H, L


def separate_kernels(model, params, i):
    """(K, K_rev or None) of block i, computed from its parameters, not from the forward pass."""
    module = get_layer(model.layer)(features=H, **model.ssm.as_kwargs())
    p = {"params": params[f"block_{i}"]["ssm"]}
    if model.layer == "s4d":
        fn = lambda m: [ssm_kernel(*m.discrete(d), L, conj_sym=m.conj_sym) for d in m.directions]
    else:
        fn = lambda m: [mimo_kernel(*m.discrete(), m.C_params[d][..., 0] + 1j * m.C_params[d][..., 1], L,
                                    conj_sym=m.conj_sym) for d in m.directions]
    kernels = module.apply(p, method=fn)
    return kernels[0], (kernels[1] if len(kernels) == 2 else None)


def hand_regularizer(model, params, variables, x, stop_gradient_stats):
    """Mean over channels, sum over layers of generalization_measure, assembled by hand."""
    apply = lambda params: model.apply({**variables, "params": params}, x, mutable=["intermediates"])[1]
    sown = apply(jax.lax.stop_gradient(params) if stop_gradient_stats else params)["intermediates"]
    total = 0.0
    for i in range(model.n_layers):
        K, K_rev = separate_kernels(model, params, i)
        mean, std = input_statistics(sown[f"block_{i}"]["ssm"]["input"][0])
        tau = generalization_measure(K, mean, std)
        if K_rev is not None:
            # the backward direction read out at its own final time t = 0:
            # y_rev(0) = sum_s K_rev[s] u(s), i.e. the forward formula with K_rev reversed
            tau = (tau + generalization_measure(K_rev[..., ::-1], mean, std)) / 2
        total = total + jnp.mean(tau)
    return total


def model_regularizer(model, params, variables, x, **kwargs):
    _, state = model.apply({**variables, "params": params}, x, mutable=["intermediates"])
    return regularizer(state["intermediates"], **kwargs)


@pytest.mark.parametrize("name,stop", [("s4d_3_layernorm", False), ("s5_2", True),
                                       ("s4d_bidirectional", True)])
def test_gradient_equals_gradient_of_separately_computed_measure(models, name, stop):
    model, variables, x = models(name)
    params = variables["params"]

    @jax.jit
    def both(params):
        f = lambda p: model_regularizer(model, p, variables, x, stop_gradient_stats=stop)
        g = lambda p: hand_regularizer(model, p, variables, x, stop)
        return jax.value_and_grad(f)(params), jax.value_and_grad(g)(params)

    (value, grad), (hand_value, hand_grad) = both(params)
    np.testing.assert_allclose(value, hand_value, rtol=1e-10)
    taus = layer_measures(model, variables, x)
    np.testing.assert_allclose(value, sum(float(t.mean()) for t in taus), rtol=1e-10)
    flat, hand_flat = jax.tree_util.tree_leaves_with_path(grad), jax.tree_util.tree_leaves(hand_grad)
    for (path, g), h in zip(flat, hand_flat):
        np.testing.assert_allclose(g, h, rtol=1e-8, atol=1e-12, err_msg=jax.tree_util.keystr(path))
    encoder = np.abs(grad["encoder"]["kernel"]).max()
    assert (encoder == 0) if stop else (encoder > 0)  # stop_gradient_stats: kernels only


def test_reductions_and_measures(sown):
    state = sown("s4d_3_layernorm")
    for measure in ("paper", "covariance"):
        taus = np.stack([batch_measure(l.kernel, l.input, measure=measure) for l in collect_layers(state)])
        for channel, layer_reduce, expected in [("mean", "sum", taus.mean(1).sum()),
                                                ("sum", "mean", taus.sum(1).mean()),
                                                ("max", "max", taus.max())]:
            value = regularizer(state, measure=measure, channel_reduce=channel, layer_reduce=layer_reduce)
            np.testing.assert_allclose(value, expected, rtol=1e-10)


def test_bad_names_and_missing_intermediates():
    with pytest.raises(ValueError, match="unknown channel_reduce 'median'; valid names: 'mean', 'sum', 'max'"):
        regularizer({}, channel_reduce="median")
    with pytest.raises(ValueError, match="unknown layer_reduce 'prod'; valid names: 'mean', 'sum', 'max'"):
        regularizer({}, layer_reduce="prod")
    with pytest.raises(ValueError, match="unknown measure 'x'; valid names: 'paper', 'covariance'"):
        regularizer({}, measure="x")
    with pytest.raises(ValueError, match="mutable=\\['intermediates'\\]"):
        regularizer({"block_0": {"norm": {}}})


def test_bound_options():
    """The ``bound`` section parsed as parse_config parses it (``opt.parse(BoundOptions, ...)``)."""
    parse = lambda section: opt.parse(BoundOptions, section, "bound.")
    cfg = ml_collections.ConfigDict({"bound": {"reg_lambda": 1e-3, "init_scaling": True}})
    out = parse(cfg.bound)
    assert out.reg_lambda == 1e-3 and out.init_scaling and out.measure == "paper"
    assert parse({"reg_lambda": 1}).reg_lambda == 1.0
    from ssm_jax.training.config import default_config  # the trainer's bound section is valid
    assert set(to_dict(parse(default_config().bound))) == set(opt.defaults(BoundOptions))
    # one message format for every option (ssm_jax.options): the key, then what is allowed
    bad = [({"measure": "l1"}, "'bound.measure' = 'l1' is not allowed; valid names: 'paper', 'covariance'"),
           ({"channel_reduce": "min"}, "'bound.channel_reduce' = 'min' is not allowed; valid names: 'mean', 'sum', 'max'"),
           ({"layer_reduce": None}, "'bound.layer_reduce' must be of type str, got None"),
           ({"reg_lambda": -1.0}, "'bound.reg_lambda' must be >= 0, got -1.0"),
           ({"reg_lambda": "1e-3"}, "'bound.reg_lambda' must be of type float"),
           ({"reg_lambda": float("nan")}, "'bound.reg_lambda' must be a finite float, got nan"),
           ({"init_scaling": 1}, "'bound.init_scaling' must be a bool"),
           ({"stop_gradient_stats": "yes"}, "'bound.stop_gradient_stats' must be a bool"),
           ({"init_batch_size": 0}, "'bound.init_batch_size' must be >= 1, got 0"),
           ({"lambda": 0.1}, "unknown config key 'bound.lambda'; allowed: channel_reduce, init_batch_size")]
    for section, message in bad:
        with pytest.raises(ValueError, match=message):
            parse(section)


def test_make_regularizer_is_the_configured_loss_term(sown):
    state = sown("s4d_3_layernorm")
    cfg = {"bound": {"measure": "covariance", "channel_reduce": "sum", "layer_reduce": "mean",
                     "stop_gradient_stats": False}}
    term = make_regularizer(cfg)
    expected = regularizer(state, measure="covariance", channel_reduce="sum", layer_reduce="mean",
                           stop_gradient_stats=False)
    np.testing.assert_allclose(term(state, {"inputs": None}), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="bound.measure"):
        make_regularizer({"measure": "nope"})


def test_regularizer_statistics_come_from_a_pass_without_dropout(x64):
    """With dropout, the loss's regularizer equals the regularizer of a train-mode forward pass
    with dropout off (the pass the init rule (8) uses), not of the dropped-out pass the task loss
    sees; the second pass runs only when the model has dropout."""
    from ssm_jax.bound import forward_intermediates
    from ssm_jax.models import SequenceModel
    from ssm_jax.training.steps import make_loss

    model = SequenceModel(3, d_model=H, n_layers=2, ssm={"d_state": 4, "param_dtype": jnp.float64},
                          dropout=0.5, projection="glu", residual=False)  # layer 1 sees the dropout
    x = jax.random.normal(jax.random.PRNGKey(2), (8, L, 2), jnp.float64)
    lengths = jnp.full((8,), L)
    batch = dict(inputs=x, lengths=lengths, labels=jnp.arange(8) % 3)
    variables = model.init(jax.random.PRNGKey(0), x)
    calls = []

    def apply_fn(*args, **kwargs):
        calls.append(kwargs.get("rngs"))
        return model.apply(*args, **kwargs)

    def reg_value(term):
        calls.clear()
        loss_fn = make_loss("classification", {"reg": (1.0, term)})
        _, (metrics, _) = loss_fn(variables["params"], apply_fn, None, batch, jax.random.PRNGKey(5))
        return float(metrics["reg"]), len(calls)

    term = make_regularizer({}, pooling=model.pooling, dropout=0.5)
    assert term.without_dropout
    clean = forward_intermediates(model, variables, x, lengths)
    expected = float(regularizer(clean, readout="top_mean"))
    top = float(jnp.mean(layer_taus(clean, readout="top_mean")[1]))  # the layer dropout reaches
    value, passes = reg_value(term)
    np.testing.assert_allclose(value, expected, rtol=1e-10)
    assert passes == 2
    # the dropped-out pass (the statistics the loss used before) gives another number
    plain = make_regularizer({}, pooling=model.pooling, dropout=0.0)
    assert not plain.without_dropout
    dropped, passes = reg_value(plain)
    assert passes == 1 and abs(dropped - expected) > 0.1 * top


def test_trainer_marks_the_regularizer_from_the_model_dropout():
    from ssm_jax.training.config import default_config, parse_config
    from ssm_jax.training.loop import loss_terms

    for dropout in (0.0, 0.1):
        cfg = default_config()
        cfg.model.dropout = dropout
        cfg.bound.reg_lambda = 0.1
        (weight, term), = loss_terms(parse_config(cfg)).values()
        assert weight == 0.1 and term.without_dropout == (dropout > 0)
