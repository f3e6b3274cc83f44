"""Catalog: atomic saves (including a real kill mid-write), corrupt files, foreign bases, names."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hf_steer.errors import HfSteerError
from hf_steer.memory.catalog import Catalog, check_name


def _row(name, n_floats=8):
    return {"name": name, "kind": "chunk", "turns": [{"role": "user", "content": "x"}], "embedding": [0.5] * n_floats}


def test_roundtrip_and_backup(tmp_path):
    cat = Catalog(tmp_path / "p", "base", "fp1")
    cat.add(_row("m001"))
    cat.add(_row("m002"))
    cat.active = ["m002"]
    cat.save()
    again = Catalog(tmp_path / "p", "base", "fp1")
    assert list(again.rows) == ["m001", "m002"] and again.active == ["m002"]
    # The backup is the previous complete save: it parses and lacks nothing older.
    backup = json.loads((tmp_path / "p" / "catalog.json.bak").read_text())
    assert set(backup["rows"]) == {"m001", "m002"}


def test_corrupt_catalog_keeps_a_copy_and_says_so(tmp_path):
    cat = Catalog(tmp_path / "p", "base", "fp1")
    cat.add(_row("m001"))
    (tmp_path / "p" / "catalog.json").write_text('{"rows": {"m001": ')  # torn by something else
    with pytest.raises(HfSteerError, match=r"catalog .* is corrupt .*a copy was kept at .*corrupt-.*restore") as e:
        Catalog(tmp_path / "p", "base", "fp1")
    assert "\n" not in str(e.value)
    copies = list((tmp_path / "p").glob("catalog.json.corrupt-*"))
    assert len(copies) == 1 and copies[0].read_text() == '{"rows": {"m001": '
    # the damaged file was not overwritten either
    assert (tmp_path / "p" / "catalog.json").read_text() == '{"rows": {"m001": '


def test_catalog_of_another_base_is_refused(tmp_path):
    Catalog(tmp_path / "p", "base-a", "fpA").add(_row("m001"))
    with pytest.raises(HfSteerError, match=r"belongs to base model 'base-a'.*not to the loaded 'base-b'"):
        Catalog(tmp_path / "p", "base-b", "fpB")


@pytest.mark.parametrize("bad", ["", "a.b", "x/y", "-lead", "a b", "é", "n" * 65])
def test_bad_names(bad):
    with pytest.raises(HfSteerError, match="is not allowed"):
        check_name(bad)


def test_duplicate_row_and_unknown_name(tmp_path):
    cat = Catalog(tmp_path / "p", "base", "fp1")
    cat.add(_row("m001"))
    with pytest.raises(HfSteerError, match="'m001' already exists"):
        cat.add(_row("m001"))
    with pytest.raises(HfSteerError, match=r"adapter 'nope' is not in catalog .*known: m001"):
        cat.get("nope")


def test_failed_adapter_write_leaves_no_folder(tmp_path):
    cat = Catalog(tmp_path / "p", "base", "fp1")

    def half_write(folder: Path):
        (folder / "adapter_model.safetensors").write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        cat.write_adapter("m001", half_write)
    assert not cat.adapter_dir("m001").exists()
    assert [p.name for p in (tmp_path / "p" / "adapters").iterdir()] == []


WRITER = textwrap.dedent(
    """
    import sys
    from hf_steer.memory.catalog import Catalog
    cat = Catalog(sys.argv[1], "base", "fp1")
    i = len(cat.rows)
    while True:
        i += 1
        # big rows so each save takes long enough for the kill to land inside a write
        cat.add({"name": f"m{i:04d}", "kind": "chunk", "embedding": [0.123456] * 20000})
        print(f"saved m{i:04d}", flush=True)
    """
)


def test_real_kill_mid_write_loses_nothing_saved(tmp_path):
    folder = tmp_path / "p"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    saved = []
    try:
        deadline = time.time() + 60
        while len(saved) < 6 and time.time() < deadline:
            line = proc.stdout.readline()
            if line.startswith("saved"):
                saved.append(line.split()[1])
        assert len(saved) >= 6, "the writer did not get going"
        time.sleep(0.01)  # land somewhere in the next (long) write
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    cat = Catalog(folder, "base", "fp1")  # parses: no torn file
    assert set(saved) <= set(cat.rows)
    assert all(len(r["embedding"]) == 20000 for r in cat.rows.values())
