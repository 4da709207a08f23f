"""Files that are never seen half-written: :func:`write_json_atomic`. Nothing here imports JAX."""

from __future__ import annotations

import json
import os


def write_json_atomic(path, value, **dump_kwargs) -> str:
    """Write ``value`` as JSON to ``path`` atomically: to ``path + ".tmp"``, then
    ``os.replace`` (a reader, or a run killed mid-write, sees the old file or the new one).

    Args:
      path: the file (its directory must exist).
      value: anything ``json.dump`` writes.
      **dump_kwargs: for ``json.dump``; ``indent`` defaults to 2 (``indent=None``: one line).

    Returns:
      ``path`` (as a string).
    """
    path = os.fspath(path)
    tmp = path + ".tmp"
    dump_kwargs.setdefault("indent", 2)
    try:
        with open(tmp, "w") as f:
            json.dump(value, f, **dump_kwargs)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


__all__ = ["write_json_atomic"]
