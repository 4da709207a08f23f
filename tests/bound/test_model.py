"""layer_measures, rescale_init and collect_layers on SequenceModels."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssm_jax.bound import (
    collect_layers, generalization_measure, input_statistics, layer_measures, rescale_init,
)

from .conftest import MODELS, B, H, L


def test_collect_layers_natural_order_and_any_nesting():
    leaf = lambda i: {"input": (jnp.full((1, 2, 1), i),), "kernel": (jnp.ones((1, 2)),)}
    tree = {f"block_{i}": {"ssm": leaf(i)} for i in (10, 2, 0, 1)}
    tree["block_1"]["ssm"]["kernel_rev"] = (jnp.zeros((1, 2)),)
    for given in (tree, {"intermediates": tree}):
        layers = collect_layers(given)
        assert [l.name for l in layers] == ["block_0/ssm", "block_1/ssm", "block_2/ssm", "block_10/ssm"]
        assert [int(l.input[0, 0, 0]) for l in layers] == [0, 1, 2, 10]
        assert layers[0].path == ("block_0", "ssm") and layers[0].kernel_rev is None
        assert layers[1].kernel_rev is not None
    assert collect_layers({"block_0": {"out": {}}}) == []


def test_layer_measures_use_each_layers_own_input(models, sown):
    """The statistics are those of the layer's real argument, captured by intercepting the SSM
    layer's call (not the value it sowed), and the kernel is computed from its parameters."""
    import flax.linen as nn

    from ssm_jax.kernels import ssm_kernel
    from ssm_jax.layers import SSMLayer, get_layer

    model, variables, x = models("s4d_3_layernorm")
    captured = []

    def capture(next_fun, args, kwargs, context):
        if isinstance(context.module, SSMLayer) and context.method_name == "__call__":
            captured.append(args[0])
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(capture):
        model.apply(variables, x)
    taus = layer_measures(model, variables, x)
    assert len(taus) == len(captured) == 3
    layer = get_layer(model.layer)(features=H, **model.ssm.as_kwargs())
    kernel = lambda m: ssm_kernel(*m.discrete(""), L, conj_sym=m.conj_sym)
    for i, tau in enumerate(taus):
        K = layer.apply({"params": variables["params"][f"block_{i}"]["ssm"]}, method=kernel)
        expected = generalization_measure(K, *input_statistics(captured[i]))
        assert tau.shape == (H,)
        np.testing.assert_allclose(tau, expected, rtol=1e-10)
    # the layers' inputs differ (a test reading one layer's input for all would fail)
    assert float(jnp.abs(captured[1] - captured[0]).max()) > 1e-3


@pytest.mark.parametrize("name", list(MODELS))
def test_rescale_init_gives_measure_one_per_layer_and_channel(models, name):
    model, variables, x = models(name)
    before = layer_measures(model, variables, x)
    assert len(before) == MODELS[name]["n_layers"]
    assert max(float(t.max() / t.min()) for t in before) > 1.5  # per channel, not per layer
    scaled = rescale_init(model, variables, x)
    for tau in layer_measures(model, scaled, x):
        np.testing.assert_allclose(tau, 1.0, atol=1e-4)
    # only the output matrices change; BatchNorm statistics are kept
    changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), variables, scaled)
    for path, flag in jax.tree_util.tree_flatten_with_path(changed)[0]:
        key = path[-1].key
        assert flag == (key in ("C", "C_re", "C_im", "C_re_rev", "C_im_rev")), (path, flag)


def test_rescale_init_with_padding_and_old_intermediates(models):
    """Variable lengths: the measure of the masked (zero-padded) layer inputs is 1."""
    model, variables, x = models("s4d_1")
    lengths = jnp.array([L, L - 3, L, 5, L, L, 9, L])[:B]
    apply = jax.jit(lambda v, x, n: model.apply(v, x, n, mutable=["intermediates"]))
    _, state = apply(variables, x, lengths)
    scaled = rescale_init(model, {**variables, **state}, x, lengths)
    assert "intermediates" not in scaled
    np.testing.assert_allclose(layer_measures(model, scaled, x, lengths)[0], 1.0, atol=1e-4)


@pytest.mark.parametrize("name", ["s4d_1", "s5_2", "s4d_bidirectional"])
def test_scaling_c_by_alpha_scales_tau_by_alpha_squared(models, name):
    model, variables, x = models(name)
    alpha = -1.7
    scale = lambda path, p: p * alpha if path[-1].key.startswith("C") and path[1].key == "block_0" else p
    scaled = jax.tree_util.tree_map_with_path(scale, variables)
    np.testing.assert_allclose(layer_measures(model, scaled, x)[0],
                               alpha ** 2 * layer_measures(model, variables, x)[0], rtol=1e-10)


def test_unknown_measure(models):
    model, variables, x = models("s4d_1")
    with pytest.raises(ValueError, match="valid names: 'paper', 'covariance'"):
        rescale_init(model, variables, x, measure="sup")
