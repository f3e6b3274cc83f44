"""hf_steer.utils: atomic writes, reusing freed memory."""

import os
import platform
import stat
import subprocess
import sys
from pathlib import Path

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


_FAULTS = """
import resource, sys
from hf_steer.utils import reusing_freed_memory

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        block = b"x" * 100_000_000  # a training step's logits: allocated, written, freed
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

plain = faults()
with reusing_freed_memory() as changed:
    reused = faults()
print(changed, plain, reused, faults())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_reusing_freed_memory_stops_large_blocks_faulting_in_fresh_pages_and_restores_the_default_after():
    out = subprocess.run([sys.executable, "-c", _FAULTS], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    changed, plain, reused, after = out.stdout.split()
    assert changed == "True"
    # ten 100 MB blocks are ~244k fresh pages through mmap; reused, only the first block's ~24k
    assert int(plain) > 150_000
    assert int(reused) < int(plain) / 4
    assert int(after) > 150_000  # glibc's defaults back: the rest of the process is as it was
