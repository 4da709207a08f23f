"""Paper 3's model and training recipe as trainer configs, for the config files of
``configs/paper3/`` (and notebooks): the authors' ``gen_err_sel_ssm`` settings, one builder per
task. Imports only ml_collections and the library, like every config."""

import ml_collections

from ssm_jax.training.config import default_config


def paper_model(c, d: int, N: int, s_A: float):
    """Embedding -> one paper-form selective block (no norm, no projection, no residual) ->
    linear read-out of the last step, N(0, 1) embedding and head, no head bias."""
    c.model.update(layer="selective", d_model=d, n_layers=1, norm="none", projection="none",
                   residual=False, pooling="last", head_bias=False, init_std=1.0, dropout=0.0,
                   encoder="embedding")
    c.model.ssm = ml_collections.ConfigDict(dict(form="paper", d_state=N, s_A=s_A,
                                                 scan_method="sequential", chunk_size=64))


def paper_recipe(c, epochs: int, batch: int):
    """Adam lr 1e-2 + coupled L2 1e-5, reduce-on-plateau (0.9, 5, 1%) on the epoch-mean
    training loss, global-norm clip 5, collapse penalty 10 * max(0, 0.1 - std(sigmoid)), with
    the authors' semantics (each an option): torch's plateau cut (after more than 5 bad
    epochs, from the next epoch), the last partial batch trained (``drop_last=False``), and
    their failure checks (NaN/Inf outputs, NaN loss or gradients; an Inf loss passes)."""
    c.optim.update(recipe="adam_l2", lr=1e-2, weight_decay=1e-5, grad_clip=5.0,
                   plateau_factor=0.9, plateau_patience=5, plateau_rtol=0.01, warmup_steps=0,
                   plateau_semantics="torch")
    c.train.update(batch_size=batch, eval_batch_size=500, num_epochs=epochs, num_steps=1,
                   eval_every=10 ** 9, checkpoint_every=10 ** 9, keep_checkpoints=1,
                   collapse_penalty=10.0, collapse_min_std=0.1, progress=False,
                   drop_last=False, failure="authors")


def majority_task(T: int = 100, m: int = 1000, d: int = 4, N: int = 4, epochs: int = 40,
                  batch: int = 64, s_A: float = 0.0, noise: float = 0.25):
    c = default_config()
    c.data = ml_collections.ConfigDict(dict(name="majority_counts", seq_len=T, num_train=m,
                                            num_test=m, noise=noise, seed=0))
    paper_model(c, d, N, s_A)
    c.model.binary_logit = True  # one logit, BCE
    paper_recipe(c, epochs, batch)
    return c


def listops_task(T: int = 100, m: int = 1000, d: int = 16, N: int = 4, epochs: int = 50,
                 batch: int = 64, s_A: float = 0.0):
    c = default_config()
    c.data = ml_collections.ConfigDict(dict(name="listops", data_dir=None, seq_len=T + 4,
                                            num_train=m, num_val=1, num_test=m, use_cache=True,
                                            min_length=T - 5, max_length=T + 5, seed=0))
    paper_model(c, d, N, s_A)
    c.model.pooling = "last_position"  # the authors' read-out (Protocol.readout)
    paper_recipe(c, epochs, batch)
    return c


def imdb_task(T: int = 500, m: int = 0, d: int = 16, N: int = 4, epochs: int = 30,
              batch: int = 256, s_A: float = 0.0):
    """The paper's IMDb setting (d=16, N=4, 30 epochs, batch 256, scalar logit) on tfds
    ``imdb_reviews``. Tokens: bytes by default (vocab 257; a byte sequence of length T covers
    about T/4.5 words, so the same T sees less of a review), or the paper's bert-base-uncased
    WordPiece ids with ``data.tokenizer=wordpiece`` and ``data.vocab_file`` (its vocab.txt,
    which the user provides; nothing is downloaded). ``m``: training and test examples (0: all
    25k / 25k)."""
    c = default_config()
    c.data = ml_collections.ConfigDict(dict(name="imdb", data_dir=None, seq_len=T, num_train=m,
                                            num_test=m, validation_fraction=0.0, seed=0,
                                            tokenizer="bytes", vocab_file=""))
    paper_model(c, d, N, s_A)
    c.model.pooling = "last_position"  # the authors' read-out (Protocol.readout)
    c.model.binary_logit = True
    paper_recipe(c, epochs, batch)
    return c
