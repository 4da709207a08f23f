"""SequenceModel: shapes, dtypes, masking (padding never changes the pooled output),
determinism under a fixed seed, exposed intermediates, and bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssm_jax.models import SequenceModel

pytestmark = pytest.mark.usefixtures("fast_compile")

CASES = [
    ("s4d", {"d_state": 8}, "layer", True),
    ("s4d", {"d_state": 8, "bidirectional": True}, "batch", False),
    ("s4d", {"d_state": 8, "mode": "recurrent", "bidirectional": True}, "layer", True),
    ("s5", {"d_state": 8, "bidirectional": True}, "layer", False),
]


@pytest.mark.parametrize("layer,ssm,norm,prenorm", CASES)
@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_padding_never_changes_pooled_output(layer, ssm, norm, prenorm, pooling):
    model = SequenceModel(num_outputs=3, d_model=8, n_layers=2, layer=layer, ssm=ssm, norm=norm,
                          prenorm=prenorm, pooling=pooling)
    x = jax.random.normal(jax.random.key(0), (4, 16, 2))
    lengths = jnp.array([16, 9, 4, 1])
    v = model.init(jax.random.key(1), x, lengths)
    y = model.apply(v, x, lengths)
    chex.assert_shape(y, (4, 3))
    # Garbage in the padded positions of every sequence but the first.
    garbage = jax.random.normal(jax.random.key(2), x.shape) * 50
    pad = jnp.arange(16)[None, :, None] >= lengths[:, None, None]
    y_garbage = model.apply(v, jnp.where(pad, garbage, x), lengths)
    np.testing.assert_allclose(y_garbage, y, rtol=1e-5, atol=1e-5)
    # A shorter copy of a sequence (no padding at all) gives the same output as its padded version.
    y_short = model.apply(v, x[1:2, :9], lengths[1:2])
    np.testing.assert_allclose(y_short, y[1:2], rtol=1e-4, atol=1e-5)


def test_token_inputs_and_per_position_outputs():
    model = SequenceModel(num_outputs=5, d_model=8, n_layers=1, encoder="embedding", vocab_size=11,
                          pooling="none", ssm={"d_state": 4})
    tokens = jax.random.randint(jax.random.key(0), (2, 7), 0, 11)
    v = model.init(jax.random.key(1), tokens)
    y = model.apply(v, tokens)
    chex.assert_shape(y, (2, 7, 5))
    chex.assert_type(y, jnp.float32)


def test_determinism_under_fixed_seed():
    model = SequenceModel(num_outputs=2, d_model=8, n_layers=2, dropout=0.3, ssm={"d_state": 4})
    x = jnp.ones((2, 6, 1))
    v1 = model.init(jax.random.key(7), x)
    v2 = model.init(jax.random.key(7), x)
    chex.assert_trees_all_equal(v1, v2)
    v3 = model.init(jax.random.key(8), x)
    assert not np.allclose(v1["params"]["head"]["kernel"], v3["params"]["head"]["kernel"])
    a = model.apply(v1, x, train=True, rngs={"dropout": jax.random.key(3)})
    b = model.apply(v1, x, train=True, rngs={"dropout": jax.random.key(3)})
    c = model.apply(v1, x, train=True, rngs={"dropout": jax.random.key(4)})
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_every_ssm_layer_exposes_its_kernel_and_input():
    for layer, ssm, kernel_shape in [("s4d", {"d_state": 4}, (8, 6)), ("s5", {"d_state": 4}, (8, 8, 6))]:
        model = SequenceModel(num_outputs=2, d_model=8, n_layers=3, layer=layer, ssm=ssm)
        x = jnp.ones((2, 6, 1))
        v = model.init(jax.random.key(0), x)
        _, state = model.apply(v, x, mutable=["intermediates"])
        inter = state["intermediates"]
        assert sorted(inter) == ["block_0", "block_1", "block_2"]
        for i in range(3):
            chex.assert_shape(inter[f"block_{i}"]["ssm"]["input"][0], (2, 6, 8))
            chex.assert_shape(inter[f"block_{i}"]["ssm"]["kernel"][0], kernel_shape)


def test_bad_configuration_and_input():
    x = jnp.ones((2, 6, 1))
    with pytest.raises(ValueError, match="valid names: 'mean', 'last', 'last_position', 'none'"):
        SequenceModel(num_outputs=2, pooling="max").init(jax.random.key(0), x)
    # every registered layer is listed (also those other tests register in this process)
    with pytest.raises(ValueError, match="unknown layer 's6'; valid names: 's4d', 's4', 's5', 'selective'"):
        SequenceModel(num_outputs=2, layer="s6").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="needs vocab_size"):
        SequenceModel(num_outputs=2, encoder="embedding").init(jax.random.key(0), jnp.ones((2, 6), int))
    with pytest.raises(ValueError, match=r"inputs must be \(batch, L, C\) floats.*got shape \(2, 6\)"):
        SequenceModel(num_outputs=2).init(jax.random.key(0), jnp.ones((2, 6)))
    with pytest.raises(ValueError, match=r"lengths must have shape \(batch,\) = \(2,\), got \(3,\)"):
        SequenceModel(num_outputs=2).init(jax.random.key(0), x, jnp.ones((3,), int))


def test_bare_blocks_are_the_ssm_alone():
    """norm/projection "none" and no residual: each block is its SSM layer, nothing else."""
    from ssm_jax.layers import S4D

    model = SequenceModel(num_outputs=2, d_model=4, n_layers=2, ssm={"d_state": 4}, norm="none",
                          projection="none", residual=False, pooling="none", head_bias=False)
    x = jax.random.normal(jax.random.key(0), (3, 7, 1))
    v = model.init(jax.random.key(1), x)
    p = v["params"]
    assert set(p) == {"encoder", "block_0", "block_1", "head"}
    assert set(p["block_0"]) == {"ssm"} and set(p["head"]) == {"kernel"}
    h = x @ p["encoder"]["kernel"] + p["encoder"]["bias"]
    for i in range(2):
        h = S4D(features=4, d_state=4).apply({"params": p[f"block_{i}"]["ssm"]}, h)
    np.testing.assert_allclose(model.apply(v, x), h @ p["head"]["kernel"], rtol=1e-5, atol=1e-6)


def test_last_position_pooling_processes_pads_and_reads_the_last_position():
    """The selective-SSM authors' ListOps read-out: pad tokens are embedded and run through the
    SSM, the head reads the last padded position (so the pads change the output), while "last"
    reads the last real token with pads masked."""
    kw = dict(num_outputs=3, d_model=4, n_layers=1, layer="selective", encoder="embedding",
              vocab_size=6, norm="none", projection="none", residual=False,
              ssm={"form": "paper", "d_state": 2, "s_A": -0.5})
    tokens = jnp.array([[1, 2, 3, 4, 5, 0, 0], [2, 2, 3, 1, 4, 5, 1]])
    lengths = jnp.array([5, 7])
    authors = SequenceModel(pooling="last_position", **kw)
    ours = SequenceModel(pooling="last", **kw)
    v = authors.init(jax.random.key(0), tokens, lengths)
    y_authors = authors.apply(v, tokens, lengths)
    # == the model on the padded tokens as if they were real (lengths ignored)
    np.testing.assert_allclose(y_authors, ours.apply(v, tokens, jnp.array([7, 7])), rtol=1e-6)
    y_ours = ours.apply(v, tokens, lengths)
    np.testing.assert_allclose(y_ours[0], ours.apply(v, tokens[:1, :5])[0], rtol=1e-5)
    assert not np.allclose(y_authors[0], y_ours[0])  # the two pads changed the read-out
    np.testing.assert_allclose(y_authors[1], y_ours[1], rtol=1e-6)  # no pads: the same


def test_a_model_built_with_the_defaults_is_the_trainers_default_model():
    """One schema: SequenceModel's defaults are the ``model`` config section's (issue 20)."""
    from ssm_jax.data import DatasetInfo
    from ssm_jax.training.config import default_config, parse_config
    from ssm_jax.training.loop import build_model

    info = DatasetInfo(name="floats", seq_len=16, input_kind="floats", vocab_size=None,
                       in_channels=1, num_classes=10)
    trainer = build_model(parse_config(default_config()).model, info)
    assert type(trainer) is SequenceModel
    assert SequenceModel(num_outputs=10) == trainer
