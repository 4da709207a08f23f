"""ListOps (Long Range Arena): seeded generator, evaluator, tokenizer, TSV files and loader.

Generation follows the LRA generator: a node at depth ``d < max_depth`` is an operator node
with probability 0.25 (else a digit leaf, uniform over 0..9); nodes at ``max_depth`` are
leaves; an operator node draws ``randint(2, max_args)`` children, recursively, then its
operator uniformly from MIN, MAX, MED, SM. A tree's "length" is its number of leaves plus 2
per operator (the operator and its closing ``]``). The root is at depth 1. Trees are kept
when ``min_length < length < max_length`` (both strict), duplicates dropped (first one
kept), and the first ``num_train`` go to train, the next ``num_val`` to validation, the
rest to test. Randomness comes from ``random.Random(seed)`` in the same call order as LRA.

Operators: MIN, MAX, MED = ``int(np.median(args))`` (for an even count the mean of the two
middle values, truncated: MED 2 5 -> 3), SM = ``sum(args) % 10``.

String format (LRA ``to_string``): the LRA generator folds an operator node with children
``c0..c{n-1}`` into nested pairs ``((((op, c0), c1), ...), "]")`` and writes each pair as
``( left right )``, so ``[MAX 2 9 ]`` is written ``( ( ( [MAX 2 ) 9 ) ] )``.
TSV files have a ``Source\\tTarget`` header and ``\\r\\n`` line ends (Python ``csv``), as the
released ``basic_{train,val,test}.tsv``.

Tokens (parentheses dropped): pad 0, digits ``0..9`` -> 1..10, ``[MIN [MAX [MED [SM`` ->
11..14, ``]`` -> 15; ``VOCAB_SIZE = 16``. (LRA's own pipeline used tfds' alphanumeric
tokenizer; dropping only the parentheses, as many SSM code bases do, keeps the ``]``.)
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
from pathlib import Path

import numpy as np

from ssm_jax.data.cache import cached_splits
from ssm_jax.data.registry import Dataset, DatasetInfo, Split, register
from ssm_jax.data.splits import pad_tokens

MIN, MAX, MED, SUM_MOD, END = "[MIN", "[MAX", "[MED", "[SM", "]"
OPERATORS = (MIN, MAX, MED, SUM_MOD)
VALUE_P = 0.25
PAD_ID = 0
VOCAB = ("<pad>",) + tuple(str(d) for d in range(10)) + OPERATORS + (END,)
TOKEN_IDS = {token: i for i, token in enumerate(VOCAB)}
VOCAB_SIZE = len(VOCAB)
SPLIT_FILES = (("train", "train"), ("validation", "val"), ("test", "test"))


# ------------------------------------------------------------------------------- generation


class _TooLong(Exception):
    """Raised inside ``_random_tree`` once a tree reaches the length limit."""


def _random_tree(rng: random.Random, depth: int, max_depth: int, max_args: int,
                 budget: list) -> object:
    """One random tree: an int leaf or ``(op, [children])``.

    ``budget`` is a one-element list holding the length still allowed; every leaf takes 1,
    every operator 2, and ``_TooLong`` is raised when it runs out (the caller rejects that
    tree; the accepted trees keep the LRA distribution, conditioned on the window).
    """
    r = rng.random() if depth < max_depth else 1.0
    if r > VALUE_P:
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooLong
        return rng.choice(range(10))
    budget[0] -= 2
    if budget[0] < 0:
        raise _TooLong
    num_children = rng.randint(2, max_args)
    children = [_random_tree(rng, depth + 1, max_depth, max_args, budget)
                for _ in range(num_children)]
    return rng.choice(OPERATORS), children


def random_tree(rng: random.Random, max_depth: int, max_args: int, max_length: int) -> tuple:
    """``(tree, length)`` of one random tree (root at depth 1), or ``(None, None)`` when its
    length would reach ``max_length``."""
    budget = [max_length - 1]
    try:
        tree = _random_tree(rng, 1, max_depth, max_args, budget)
    except _TooLong:
        return None, None
    return tree, max_length - 1 - budget[0]


def max_tree_length(max_depth: int, max_args: int) -> int:
    """Largest possible length: a full tree with ``max_args`` children down to ``max_depth``."""
    length = 1
    for _ in range(max_depth - 1):
        length = 2 + max_args * length
    return length


def check_window(min_length: int, max_length: int, max_depth: int, max_args: int) -> None:
    """Raise ValueError when no tree has ``min_length < length < max_length``."""
    if max_depth < 1 or max_args < 2:
        raise ValueError(f"need max_depth >= 1 and max_args >= 2, got {max_depth}, {max_args}")
    shortest_op = 4 if max_depth >= 2 else 1  # an operator with two leaves
    lo = max(min_length + 1, 1)
    hi = min(max_length - 1, max_tree_length(max_depth, max_args))
    if lo > hi or (hi < shortest_op and lo > 1):
        raise ValueError(
            f"impossible ListOps length window: need min_length < length < max_length with "
            f"lengths between 1 and {max_tree_length(max_depth, max_args)} "
            f"(max_depth={max_depth}, max_args={max_args}); got min_length={min_length}, "
            f"max_length={max_length}"
        )


def to_string(tree) -> str:
    """LRA source string of a tree (see module docstring)."""
    if isinstance(tree, int):
        return str(tree)
    op, children = tree
    parts = ["( " * (len(children) + 1) + op, to_string(children[0]), ")"]
    for child in children[1:]:
        parts += [to_string(child), ")"]
    parts += [END, ")"]
    return " ".join(parts)


def apply_operator(op: str, args: list) -> int:
    """Value of operator ``op`` on int ``args`` (MED: ``int(np.median(args))``)."""
    if op == MIN:
        return min(args)
    if op == MAX:
        return max(args)
    if op == MED:
        return int(statistics.median(args))  # same as int(np.median(args)) for ints
    if op == SUM_MOD:
        return sum(args) % 10
    raise ValueError(f"unknown ListOps operator {op!r}")


def tree_value(tree) -> int:
    """Value of a tree ``int | (op, [children])``."""
    if isinstance(tree, int):
        return tree
    op, children = tree
    return apply_operator(op, [tree_value(c) for c in children])


def generate(num: int, *, seed: int, min_length: int = 500, max_length: int = 2000,
             max_depth: int = 10, max_args: int = 10, max_attempts: int | None = None) -> list:
    """``num`` distinct ListOps examples as ``[(source, label)]`` with lengths in the window.

    Raises ValueError for an impossible window (before generating) and RuntimeError when
    ``max_attempts`` trees (default ``2000 * num + 100000``) give fewer than ``num`` distinct
    examples.
    """
    check_window(min_length, max_length, max_depth, max_args)
    rng = random.Random(seed)
    max_attempts = max_attempts or 2000 * num + 100_000
    examples: dict = {}
    for _ in range(max_attempts):
        if len(examples) >= num:
            break
        tree, length = random_tree(rng, max_depth, max_args, max_length)
        if tree is not None and length > min_length:
            source = to_string(tree)
            if source not in examples:
                examples[source] = tree_value(tree)
    if len(examples) < num:
        raise RuntimeError(f"only {len(examples)} of {num} distinct ListOps examples with "
                           f"{min_length} < length < {max_length} after {max_attempts} trees; "
                           "widen the window or lower num")
    return list(examples.items())


# ------------------------------------------------------------------------ parsing and tokens


def source_tokens(source: str) -> list:
    """Tokens of a source string with parentheses dropped, e.g. ``['[MAX', '2', '9', ']']``."""
    return [tok for tok in source.split() if tok not in ("(", ")")]


def evaluate(source: str) -> int:
    """Value of a ListOps source string (LRA format, parentheses optional)."""
    stack: list = []
    result = None
    for token in source_tokens(source):
        if token in OPERATORS:
            stack.append((token, []))
            continue
        if token == END:
            if not stack:
                raise ValueError(f"unbalanced ']' in ListOps source {source[:80]!r}")
            op, args = stack.pop()
            if not args:
                raise ValueError(f"operator {op} without arguments in {source[:80]!r}")
            value = apply_operator(op, args)
        elif token.isdigit() and len(token) == 1:
            value = int(token)
        else:
            raise ValueError(f"unknown ListOps token {token!r}")
        if stack:
            stack[-1][1].append(value)
        elif result is None:
            result = value
        else:
            raise ValueError(f"ListOps source has more than one top-level value: {source[:80]!r}")
    if stack or result is None:
        raise ValueError(f"incomplete ListOps source {source[:80]!r}")
    return result


def tokenize(source: str) -> np.ndarray:
    """Token ids of a source string: ``(num_tokens,) int32`` (see module docstring)."""
    try:
        return np.array([TOKEN_IDS[tok] for tok in source_tokens(source)], dtype=np.int32)
    except KeyError as err:
        raise ValueError(f"unknown ListOps token {err.args[0]!r}") from None


# ------------------------------------------------------------------------------- TSV files


def write_tsv(path: str | os.PathLike, examples: list) -> None:
    """Write ``[(source, label)]`` as an LRA ``Source\\tTarget`` TSV file."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["Source", "Target"])
        writer.writerows(examples)


def read_tsv(path: str | os.PathLike) -> list:
    """``[(source, label)]`` from an LRA ListOps TSV file (header ``Source\\tTarget``)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    if not rows or rows[0][:2] != ["Source", "Target"]:
        raise ValueError(f"{path} is not a ListOps TSV file: expected a 'Source<TAB>Target' "
                         f"header, got {rows[0][:2] if rows else 'an empty file'}")
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            source, label = row[0], int(row[1])
        except (IndexError, ValueError) as err:
            raise ValueError(f"{path}, line {line}: malformed ListOps row ({err})") from None
        problem = unbalanced(source)
        if problem:
            raise ValueError(f"{path}, line {line}: {problem} in the source {source[:60]!r}")
        if not 0 <= label <= 9:
            raise ValueError(f"{path}, line {line}: target {label} is outside 0..9")
        out.append((source, label))
    return out


def unbalanced(source: str) -> str | None:
    """What is unbalanced in a source string (its parentheses, or its operators and ``]``),
    or None."""
    depth = parens = 0
    for tok in source.split():
        parens += (tok == "(") - (tok == ")")
        depth += (tok in OPERATORS) - (tok == END)
        if parens < 0 or depth < 0:
            return "a closing ')' or ']' without its opening"
    if parens or depth:
        return f"{parens} unclosed '(' and {depth} unclosed operators"
    return None


def write_splits(out_dir: str | os.PathLike, *, task: str = "basic", num_train: int = 96000,
                 num_val: int = 2000, num_test: int = 2000, seed: int = 0, **window) -> dict:
    """Generate and write ``{task}_{train,val,test}.tsv`` into ``out_dir``; returns the paths.

    ``window``: ``min_length``, ``max_length``, ``max_depth``, ``max_args`` for ``generate``.
    """
    examples = generate(num_train + num_val + num_test, seed=seed, **window)
    parts = {"train": examples[:num_train], "val": examples[num_train:num_train + num_val],
             "test": examples[num_train + num_val:]}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for suffix, rows in parts.items():
        paths[suffix] = out / f"{task}_{suffix}.tsv"
        write_tsv(paths[suffix], rows)
    return paths


def tokenize_examples(examples: list, seq_len: int) -> Split:
    """A ``Split`` from ``[(source, label)]``: tokens ``(n, seq_len)`` (truncated at the end if
    longer), lengths ``(n,)``, labels ``(n,)`` int32."""
    tokens, lengths = pad_tokens([tokenize(s) for s, _ in examples], seq_len, PAD_ID)
    return Split(tokens, lengths, np.array([label for _, label in examples], dtype=np.int32))


# ---------------------------------------------------------------------------------- loader

LISTOPS_DEFAULTS = {
    "data_dir": None, "task": "basic", "seq_len": None, "num_train": 2000, "num_val": 200,
    "num_test": 200, "min_length": 50, "max_length": 200, "max_depth": 10, "max_args": 10,
    "seed": 0, "cache_dir": None, "use_cache": True,
}
LRA_LISTOPS_SEQ_LEN = 2000
EXPECTED_TREE = """\
  <data_dir>/  (or <data_dir>/lra_release/listops-1000/)
    {task}_train.tsv
    {task}_val.tsv
    {task}_test.tsv
(the released files are lra_release/listops-1000/basic_*.tsv in the LRA release archive
lra_release.gz linked from the google-research/long-range-arena README; or write your own
with `python -m ssm_jax.data.listops --out DIR`)"""


def listops_files(data_dir: str | os.PathLike, task: str) -> dict:
    """``{split: path}`` of the three TSV files; FileNotFoundError naming the expected tree."""
    root = Path(data_dir).expanduser()
    for candidate in (root / "lra_release" / "listops-1000", root / "listops-1000"):
        if (candidate / f"{task}_train.tsv").is_file():
            root = candidate
    paths = {split: root / f"{task}_{suffix}.tsv" for split, suffix in SPLIT_FILES}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"ListOps files missing: {', '.join(missing)}. Expected:\n"
                                + EXPECTED_TREE.format(task=task))
    return paths


def _listops_info(seq_len: int) -> DatasetInfo:
    return DatasetInfo(name="listops", seq_len=seq_len, input_kind="tokens",
                       vocab_size=VOCAB_SIZE, in_channels=1, num_classes=10, pad_id=PAD_ID)


@register("listops", defaults=LISTOPS_DEFAULTS)
def build_listops(cfg: dict) -> Dataset:
    """ListOps from ``data_dir`` TSV files (``{task}_{train,val,test}.tsv``) when given, else
    generated with ``seed`` / ``num_*`` / window keys and cached on disk.

    ``seq_len`` (default: ``max_length`` when generating, 2000 for files) is the padded
    length; longer sequences are truncated at the end, as LRA does.
    """
    if cfg["data_dir"] is not None:
        paths = listops_files(cfg["data_dir"], cfg["task"])
        seq_len = cfg["seq_len"] or LRA_LISTOPS_SEQ_LEN
        options = {"files": {s: [str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size]
                             for s, p in paths.items()}, "seq_len": seq_len}

        def build():
            rows = {split: read_tsv(path) for split, path in paths.items()}
            for split in ("train", "test"):  # a header-only validation file means no validation
                if not rows[split]:
                    raise ValueError(f"{paths[split]} holds no examples (only its header); the "
                                     f"{split} split cannot be empty")
            return {split: tokenize_examples(r, seq_len) for split, r in rows.items()}
    else:
        window = {k: cfg[k] for k in ("min_length", "max_length", "max_depth", "max_args")}
        check_window(**window)
        sizes = {k: cfg[k] for k in ("num_train", "num_val", "num_test")}
        if min(sizes.values()) <= 0:
            raise ValueError(f"num_train, num_val and num_test must be positive, got {sizes}")
        seq_len = cfg["seq_len"] or cfg["max_length"]
        options = {**window, **sizes, "seed": cfg["seed"], "seq_len": seq_len}

        def build():
            examples = generate(sum(sizes.values()), seed=cfg["seed"], **window)
            n_tr, n_va = sizes["num_train"], sizes["num_val"]
            parts = {"train": examples[:n_tr], "validation": examples[n_tr:n_tr + n_va],
                     "test": examples[n_tr + n_va:]}
            return {split: tokenize_examples(rows, seq_len) for split, rows in parts.items()}

    splits = cached_splits("listops", options, build, cache_dir=cfg["cache_dir"],
                           use_cache=cfg["use_cache"])
    return Dataset(_listops_info(seq_len), splits)


# ------------------------------------------------------------------------------------- CLI


def parse_windows(text: str) -> list:
    """``"500-1000,1000-2000"`` -> ``[(500, 1000), (1000, 2000)]``."""
    windows = []
    for part in filter(None, text.split(",")):
        lo, sep, hi = part.partition("-")
        if not sep:
            raise ValueError(f"length window {part!r} is not of the form MIN-MAX")
        windows.append((int(lo), int(hi)))
    return windows


def main(argv=None) -> None:
    """``python -m ssm_jax.data.listops --out DIR``: write LRA-format ListOps TSV files."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--task", default="basic", help="file prefix (default: basic)")
    parser.add_argument("--num-train", type=int, default=96000)
    parser.add_argument("--num-val", type=int, default=2000)
    parser.add_argument("--num-test", type=int, default=2000)
    parser.add_argument("--min-length", type=int, default=500)
    parser.add_argument("--max-length", type=int, default=2000)
    parser.add_argument("--max-depth", type=int, default=10)
    parser.add_argument("--max-args", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--windows", default="",
                        help="extra length windows, e.g. 500-1000,1000-2000, each written as "
                             "len{MIN}-{MAX}_{train,val,test}.tsv")
    args = parser.parse_args(argv)
    jobs = [(args.task, args.min_length, args.max_length)]
    jobs += [(f"len{lo}-{hi}", lo, hi) for lo, hi in parse_windows(args.windows)]
    for task, lo, hi in jobs:
        check_window(lo, hi, args.max_depth, args.max_args)
    for task, lo, hi in jobs:
        paths = write_splits(args.out, task=task, num_train=args.num_train, num_val=args.num_val,
                             num_test=args.num_test, seed=args.seed, min_length=lo,
                             max_length=hi, max_depth=args.max_depth, max_args=args.max_args)
        print(" ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
