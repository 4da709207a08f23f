"""write_json_atomic: the file holds the old value or the new one, never a partial write."""
import json

import pytest

from ssm_jax.files import write_json_atomic


def test_write_json_atomic_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "report.json"
    assert write_json_atomic(path, {"a": 1}) == str(path)
    write_json_atomic(path, {"a": 2}, indent=None)
    assert json.loads(path.read_text()) == {"a": 2} and "\n" not in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "config.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})  # not JSON: fails mid-write
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
