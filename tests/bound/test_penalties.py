"""Data-independent penalties (kernel L2/L1, C L2) against sums written here."""
import jax
import jax.numpy as jnp
import numpy as np

from ssm_jax.bound.penalties import c_penalty, kernel_penalty, make_penalty
from ssm_jax.layers import find_layers


def test_kernel_penalties_against_sums(sown):
    for name in ("s4d_3_layernorm", "s4d_bidirectional", "s5_2"):
        state = sown(name)
        layers = [state[b]["ssm"] for b in sorted(state) if b.startswith("block")]
        for kind, f in (("kernel_l2", lambda K: (K ** 2).reshape(K.shape[0], -1).sum(-1)),
                        ("kernel_l1", lambda K: np.abs(K).reshape(K.shape[0], -1).sum(-1))):
            expected = 0.0
            for layer in layers:
                value = f(np.asarray(layer["kernel"][0]))
                if "kernel_rev" in layer:
                    value = value + f(np.asarray(layer["kernel_rev"][0]))
                expected += value.mean()
            np.testing.assert_allclose(kernel_penalty(state, kind), expected, rtol=1e-10)


def test_c_penalty_and_loss_term(models):
    model, variables, x = models("s4d_bidirectional")
    layers = find_layers(model, x)
    params = variables["params"]
    expected = 0.0
    for b in ("block_0", "block_1"):
        p = params[b]["ssm"]
        expected += sum(np.asarray(p[k]) ** 2 for k in ("C_re", "C_im", "C_re_rev", "C_im_rev")).sum(-1).mean()
    np.testing.assert_allclose(c_penalty(params, layers), expected, rtol=1e-10)
    term = make_penalty("c_l2", layers)
    assert term.uses_params
    np.testing.assert_allclose(term({}, None, params), expected, rtol=1e-10)
    # scaling C by 2 scales the penalty by 4 (it reads the output map, nothing else)
    doubled = jax.tree_util.tree_map_with_path(
        lambda path, v: 2 * v if path[-1].key.startswith("C_") else v, params)
    np.testing.assert_allclose(c_penalty(doubled, layers), 4 * expected, rtol=1e-10)
    assert not make_penalty("kernel_l2").__dict__.get("uses_params", False)
