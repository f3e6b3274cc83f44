"""hf_steer.utils: atomic writes."""

import os
import stat

import pytest

from hf_steer.utils import atomic_write_json, atomic_write_text


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_gives_the_mode_a_plain_write_gives_and_keeps_an_old_file_s_mode(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    new = atomic_write_json(tmp_path / "report.json", {"a": 1})
    assert new.read_text() == '{\n  "a": 1\n}\n'
    assert _mode(new) == _mode(plain)  # mkstemp's 0600 made every report, state and context file private
    os.chmod(new, 0o600)
    atomic_write_text(new, "again")
    assert new.read_text() == "again" and _mode(new) == 0o600  # a user's own chmod stays


def test_atomic_write_that_fails_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = atomic_write_text(tmp_path / "state.json", "old")
    with pytest.raises(TypeError):
        atomic_write_text(path, None)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
