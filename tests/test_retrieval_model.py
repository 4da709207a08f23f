"""The two-document (LRA Retrieval) model: one shared encoder, both documents' lengths
honoured, and the measure / init rule work on it (padded documents)."""
import jax
import jax.numpy as jnp
import numpy as np

from ssm_jax.bound import layer_measures, make_regularizer, regularizer, rescale_init
from ssm_jax.bound.init_scaling import forward_intermediates
from ssm_jax.layers import find_layers
from ssm_jax.models import RetrievalModel, SequenceModel


def make(seed=0):
    model = RetrievalModel(2, d_model=8, n_layers=2, vocab_size=11, encoder="embedding",
                           ssm={"d_state": 4})
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.integers(1, 11, size=(6, 2, 20)), jnp.int32)
    lengths = jnp.asarray(rng.integers(5, 21, size=(6, 2)), jnp.int32)
    x = x * (jnp.arange(20)[None, None, :] < lengths[..., None])
    return model, x, lengths


def test_shared_encoder_and_padding():
    model, x, lengths = make()
    variables = model.init(jax.random.PRNGKey(0), x, lengths)
    out = model.apply(variables, x, lengths)
    assert out.shape == (6, 2)
    assert set(find_layers(model, x, lengths)) == {("encoder_stack", "block_0", "ssm"),
                                                   ("encoder_stack", "block_1", "ssm")}
    # tokens after a document's length do not change the output
    noisy = jnp.where(jnp.arange(20)[None, None, :] < lengths[..., None], x, 7)
    np.testing.assert_allclose(model.apply(variables, noisy, lengths), out, rtol=1e-5, atol=1e-6)
    # swapping the documents changes the output (the a - b feature)
    assert not np.allclose(model.apply(variables, x[:, ::-1], lengths[:, ::-1]), out)
    # the stack is the single-document SequenceModel on each document
    stack = SequenceModel(8, d_model=8, n_layers=2, vocab_size=11, encoder="embedding",
                          ssm={"d_state": 4}, head="regression")
    feats = stack.apply({"params": variables["params"]["encoder_stack"]}, x[:, 0], lengths[:, 0])
    assert feats.shape == (6, 8)


def test_rule_and_regularizer_on_document_pairs():
    model, x, lengths = make(1)
    variables = model.init(jax.random.PRNGKey(0), x, lengths)
    scaled = rescale_init(model, variables, x, lengths, readout="mean")
    taus = layer_measures(model, scaled, x, lengths, readout="mean")
    assert len(taus) == 2
    for tau in taus:
        np.testing.assert_allclose(tau, 1.0, atol=1e-4)
    inter = forward_intermediates(model, scaled, x, lengths)
    term = make_regularizer({"readout": "mean"}, padded=True)
    np.testing.assert_allclose(term(inter, {"lengths": lengths}), 2.0, rtol=1e-4)
    assert abs(float(regularizer(inter, readout="mean")) - 2.0) > 1e-3  # lengths matter
