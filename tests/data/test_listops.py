"""ListOps generator, evaluator, tokenizer, TSV files, CLI and loader."""

import numpy as np
import pytest

from ssm_jax.data import get_dataset
from ssm_jax.data import listops as lo

WINDOW = {"min_length": 20, "max_length": 60}


@pytest.fixture(scope="module")
def examples():
    return lo.generate(150, seed=3, **WINDOW)


def test_generate_is_deterministic_per_seed(examples):
    assert lo.generate(150, seed=3, **WINDOW) == examples
    assert lo.generate(150, seed=4, **WINDOW) != examples


def test_generated_labels_agree_with_evaluate(examples):
    assert all(lo.evaluate(source) == label for source, label in examples)
    assert len({label for _, label in examples}) > 3


def test_lengths_inside_window_and_distinct(examples):
    lengths = [len(lo.source_tokens(source)) for source, _ in examples]
    assert min(lengths) > WINDOW["min_length"] and max(lengths) < WINDOW["max_length"]
    assert len({source for source, _ in examples}) == len(examples)


def _depth_and_arity(tree, depth=1):
    """(deepest node depth, [number of children of each operator])."""
    if isinstance(tree, int):
        return depth, []
    deepest, arities = depth, [len(tree[1])]
    for child in tree[1]:
        d, a = _depth_and_arity(child, depth + 1)
        deepest, arities = max(deepest, d), arities + a
    return deepest, arities


def test_tree_shape_limits():
    for source, _ in lo.generate(100, seed=0, min_length=10, max_length=400, max_depth=4,
                                 max_args=3):
        deepest, arities = _depth_and_arity(_parse(source))
        assert deepest <= 4 and all(2 <= a <= 3 for a in arities)


def test_lra_string_format():
    assert lo.to_string(("[MAX", [2, 9])) == "( ( ( [MAX 2 ) 9 ) ] )"
    nested = ("[SM", [("[MIN", [4, 3]), 8])
    assert lo.to_string(nested) == "( ( ( [SM ( ( ( [MIN 4 ) 3 ) ] ) ) 8 ) ] )"
    assert lo.evaluate(lo.to_string(nested)) == (3 + 8) % 10


@pytest.mark.parametrize("source,value", [
    ("[MAX 2 9 ]", 9), ("[MIN 2 9 0 ]", 0), ("[SM 5 7 9 ]", 1), ("[MED 1 8 3 ]", 3),
    ("[MED 2 5 ]", 3), ("[MED 1 2 3 9 ]", 2), ("7", 7),
    ("[MAX 1 [MIN 8 [SM 3 4 ] ] 2 ]", 7),
])
def test_evaluate_operators(source, value):
    assert lo.evaluate(source) == value
    assert lo.evaluate(source) == lo.tree_value(_parse(source))


def _parse(source):
    stack = [("root", [])]
    for tok in lo.source_tokens(source):
        if tok in lo.OPERATORS:
            stack.append((tok, []))
        elif tok == "]":
            node = stack.pop()
            stack[-1][1].append(node)
        else:
            stack[-1][1].append(int(tok))
    return stack[0][1][0]


def test_median_matches_numpy_truncation():
    rng = np.random.default_rng(0)
    for _ in range(200):
        args = rng.integers(0, 10, size=rng.integers(2, 11)).tolist()
        assert lo.apply_operator(lo.MED, args) == int(np.median(args))


@pytest.mark.parametrize("source", ["[MAX 2 9", "[MAX ]", "2 3", "[FOO 1 ]", "12"])
def test_evaluate_rejects_malformed(source):
    with pytest.raises(ValueError):
        lo.evaluate(source)


def test_tokenize():
    ids = lo.tokenize("( ( ( [MAX 2 ) 9 ) ] )")
    assert ids.tolist() == [lo.TOKEN_IDS["[MAX"], 3, 10, lo.TOKEN_IDS["]"]]
    assert lo.VOCAB_SIZE == 16 and lo.TOKEN_IDS["<pad>"] == 0
    with pytest.raises(ValueError, match="unknown ListOps token"):
        lo.tokenize("[MAX 2 x ]")


@pytest.mark.parametrize("window,match", [
    ({"min_length": 100, "max_length": 100}, "impossible"),
    ({"min_length": 1, "max_length": 4}, "impossible"),
    ({"min_length": 50, "max_length": 5000, "max_depth": 3, "max_args": 3}, "impossible"),
])
def test_impossible_window(window, match):
    with pytest.raises(ValueError, match=match):
        lo.generate(10, seed=0, **window)
    with pytest.raises(ValueError, match=match):
        get_dataset({"name": "listops", "use_cache": False, **window})


def test_too_few_distinct_trees_is_an_error():
    with pytest.raises(RuntimeError, match="distinct"):
        # only length-4 trees [OP d d]: 4 * 10 * 10 = 400 distinct ones
        lo.generate(401, seed=0, min_length=3, max_length=5, max_depth=2, max_args=2,
                    max_attempts=20000)


def test_tsv_roundtrip_uses_lra_format(tmp_path, examples):
    path = tmp_path / "x.tsv"
    lo.write_tsv(path, examples[:3])
    raw = path.read_bytes().decode()
    assert raw.startswith("Source\tTarget\r\n")
    assert raw.splitlines()[1] == f"{examples[0][0]}\t{examples[0][1]}"
    assert lo.read_tsv(path) == examples[:3]


def test_read_tsv_rejects_wrong_header(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("label\ttext\n1\tfoo\n")
    with pytest.raises(ValueError, match="Source<TAB>Target"):
        lo.read_tsv(path)


def test_cli_writes_basic_and_windowed_files(tmp_path):
    lo.main(["--out", str(tmp_path), "--num-train", "20", "--num-val", "5", "--num-test", "5",
             "--min-length", "20", "--max-length", "60", "--windows", "60-120", "--seed", "1"])
    for task in ("basic", "len60-120"):
        for suffix in ("train", "val", "test"):
            assert (tmp_path / f"{task}_{suffix}.tsv").is_file()
    train = lo.read_tsv(tmp_path / "basic_train.tsv")
    assert len(train) == 20 and all(lo.evaluate(s) == y for s, y in train)
    long = lo.read_tsv(tmp_path / "len60-120_test.tsv")
    assert all(60 < len(lo.source_tokens(s)) < 120 for s, _ in long)


def test_cli_rejects_impossible_window_before_writing(tmp_path):
    with pytest.raises(ValueError, match="impossible"):
        lo.main(["--out", str(tmp_path / "o"), "--windows", "9-10"])
    assert not (tmp_path / "o").exists()


def test_loader_from_files(tmp_path, examples):
    for suffix, rows in (("train", examples[:100]), ("val", examples[100:120]),
                         ("test", examples[120:])):
        lo.write_tsv(tmp_path / f"basic_{suffix}.tsv", rows)
    ds = get_dataset({"name": "listops", "data_dir": str(tmp_path), "seq_len": 64,
                      "cache_dir": str(tmp_path / "cache")})
    info = ds.info
    assert (info.vocab_size, info.num_classes, info.input_kind, info.seq_len) == (16, 10, "tokens", 64)
    assert [len(ds.splits[s]) for s in ("train", "validation", "test")] == [100, 20, 30]
    split = ds.validation
    for row, (source, label) in enumerate(examples[100:120]):
        ids = lo.tokenize(source)
        assert split.lengths[row] == len(ids) and split.labels[row] == label
        np.testing.assert_array_equal(split.inputs[row, :len(ids)], ids)
        assert (split.inputs[row, len(ids):] == 0).all()


def test_loader_truncates_to_seq_len(tmp_path, examples):
    for suffix in ("train", "val", "test"):
        lo.write_tsv(tmp_path / f"basic_{suffix}.tsv", examples[:10])
    ds = get_dataset({"name": "listops", "data_dir": str(tmp_path), "seq_len": 8,
                      "use_cache": False})
    assert ds.train.inputs.shape == (10, 8) and (ds.train.lengths == 8).all()


def test_loader_missing_files_explains_layout(tmp_path):
    (tmp_path / "basic_train.tsv").write_text("Source\tTarget\n")
    with pytest.raises(FileNotFoundError) as err:
        get_dataset({"name": "listops", "data_dir": str(tmp_path)})
    message = str(err.value)
    assert "basic_val.tsv" in message and "lra_release" in message and "listops-1000" in message


def test_loader_generated_and_cached(tmp_path):
    cfg = {"name": "listops", "num_train": 40, "num_val": 10, "num_test": 10, "seed": 2,
           "cache_dir": str(tmp_path), **WINDOW}
    ds = get_dataset(cfg)
    assert ds.info.seq_len == 60 and ds.train.inputs.shape == (40, 60)
    assert len(list(tmp_path.iterdir())) == 1  # one cache entry
    again = get_dataset(cfg)
    np.testing.assert_array_equal(again.test.inputs, ds.test.inputs)
    expected = lo.generate(60, seed=2, **WINDOW)
    assert ds.test.labels.tolist() == [y for _, y in expected[50:]]
    get_dataset({**cfg, "seed": 3})
    assert len(list(tmp_path.iterdir())) == 2  # other options, other entry
