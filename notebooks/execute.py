#!/usr/bin/env python
"""Execute the notebooks in place, so their figures and tables are saved with them (what a
repository page shows): ``python notebooks/execute.py [--full] [NAME ...]`` (``make notebooks``;
needs the ``notebooks`` extra: ``pip install -e ".[notebooks]"``).

Each notebook runs top to bottom in a fresh kernel, in ``notebooks/``. By default at the
settings saved in it (``SMALL = True``: seconds each); ``--full`` runs the full settings
(``SMALL = False`` in the executed copy only; the saved sources keep ``SMALL = True``, which the
tests require) and writes those outputs.
"""

from __future__ import annotations

import argparse
import copy
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent


def execute(path: pathlib.Path, full: bool = False, timeout: int = 1800) -> float:
    """Run ``path`` and save it with its outputs; returns the seconds it took."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.nbformat_minor = max(nb.nbformat_minor, 5)  # cells carry ids (stable ones, by position)
    for i, cell in enumerate(nb.cells):
        cell.setdefault("id", f"cell-{i}")
    run = copy.deepcopy(nb)
    if full:
        for cell in run.cells:
            if cell.cell_type == "code":
                cell.source = cell.source.replace("SMALL = True", "SMALL = False")
    start = time.perf_counter()
    NotebookClient(run, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for saved, ran in zip(nb.cells, run.cells):  # outputs onto the saved sources
        if saved.cell_type == "code":
            saved.outputs, saved.execution_count = ran.outputs, ran.execution_count
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: all)")
    parser.add_argument("--full", action="store_true", help="full settings (SMALL = False)")
    args = parser.parse_args(argv)
    paths = sorted(HERE.glob("*.ipynb"))
    if args.names:
        paths = [p for p in paths if p.stem in args.names or p.name in args.names]
        if not paths:
            print(f"error: no notebook named {', '.join(args.names)} in {HERE}", file=sys.stderr)
            return 2
    for path in paths:
        seconds = execute(path, args.full)
        print(f"executed {path.name} in {seconds:.0f} s ({'full' if args.full else 'small'} settings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
