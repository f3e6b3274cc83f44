"""Forgotten means gone: after ``forget`` / ``regenerate --without`` no file under the memory holds the text.

Checked by a byte search of every file under the memory folder (JSON, backups, queue, adapters' files),
and with real ``SIGKILL``s during the rewrite: at every rename/delete/fsync of a catalog commit (cheap,
no model), and at several points of a whole ``LoraMemory.forget`` on a tiny model.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from hf_steer.errors import HfSteerError
from hf_steer.memory import LoraMemory, learn

from .conftest import CHUNK_B, fake_embedder

ROOT = Path(__file__).resolve().parents[2]
SECRET = "my bank password is Zorbex-Quill-4417"
SECRET_CHUNK = [
    {"role": "user", "content": "Veltra Quosh was born in the town of Marbelin."},
    {"role": "user", "content": f"Also, {SECRET} and Veltra keeps it in Tessomund."},
]


def _needles(*texts: str) -> list[bytes]:
    out = []
    for t in texts:
        out += [t.encode(), json.dumps(t)[1:-1].encode(), json.dumps(t, ensure_ascii=False)[1:-1].encode()]
    return out


def traces(root: Path, *texts: str) -> list[str]:
    """Every file under ``root`` whose bytes contain one of ``texts`` (raw or JSON-escaped)."""
    needles = _needles(*texts)
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and any(n in path.read_bytes() for n in needles):
            hits.append(str(path.relative_to(root)))
    return hits


def _bigger(mem, names):
    for n in names:
        for module in mem.peft.modules():
            if hasattr(module, "lora_B") and n in module.lora_B:
                torch.nn.init.normal_(module.lora_B[n].weight, std=0.5)


def _logits(mem, text="Veltra Quosh was born in Marbelin."):
    ids = mem.tokenizer(text, return_tensors="pt")["input_ids"]
    model = mem.peft if mem.peft is not None else mem.model
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_forget_leaves_no_trace_anywhere(tiny_pair, tmp_path, monkeypatch):
    from hf_steer.memory.train import get_preset

    from .conftest import TINY

    monkeypatch.setenv("HF_STEER_CACHE", str(tmp_path / "cache"))
    model, tok = tiny_pair
    model.save_pretrained(tmp_path / "tiny")  # `merge` reloads the base from its folder
    tok.save_pretrained(tmp_path / "tiny")
    memory = LoraMemory(model, tok, base_model=str(tmp_path / "tiny"), folder=tmp_path / "mem",
                        preset=get_preset("fast-cpu", **TINY), embedder=fake_embedder)
    memory.remember(SECRET_CHUNK, name="ma")
    memory.remember(CHUNK_B, name="mb")
    memory.rollup(["ma", "mb"], method="cat", name="rcat", activate=False)
    memory.rollup(["ma", "mb"], method="retrain", name="rtrain", activate=False)
    memory.stack(["ma", "mb"])
    outside = memory.save_merged(tmp_path / "merged-outside", dtype="float32", check=False)["folder"]
    inside = memory.save_merged(memory.catalog.folder / "merged-inside", dtype="float32", check=False)["folder"]
    from hf_steer.hub import _record_push

    _record_push(outside, "someone/merged-memory")
    # a damaged catalog copy (kept for the user to recover from) holds the text too
    shutil.copy(memory.catalog.path, memory.catalog.folder / "catalog.json.corrupt-20260101-000000")
    profile = memory.catalog.folder
    assert traces(profile, SECRET)  # the text is on disk before forgetting

    result = memory.forget("ma")

    assert traces(profile, SECRET) == [] and traces(memory.folder, SECRET) == []
    assert not memory.catalog.adapter_dir("ma").exists() and not inside.exists()
    assert not [p for p in (profile / "adapters").iterdir() if p.name.startswith(".")]  # no temp folder left
    assert sorted(result["rebuilt"]) == ["rcat", "rtrain"] and result["dropped"] == []
    assert memory.catalog.rows["rcat"]["members"] == ["mb"] and memory.catalog.rows["rtrain"]["members"] == ["mb"]
    notes = result["copies_left"]
    assert any(str(outside) in n and "delete it yourself" in n for n in notes), notes
    assert any("someone/merged-memory" in n and "cannot be removed" in n for n in notes), notes
    assert all("\n" not in n for n in notes)
    # the retrieval index lost the chunk, and the backup mirrors the catalog
    assert all(r["name"] != "ma" for r in memory.retrieve("Veltra Quosh bank password", k=5))
    assert json.loads(memory.catalog.bak_path.read_text())["rows"].keys() == memory.catalog.rows.keys()


def test_forget_a_queued_chunk_removes_it_from_the_queue(memory):
    name = memory.queue_chunk(SECRET_CHUNK)[0]["name"]
    assert memory.queued()[name]["turns"][1]["content"].endswith("Tessomund.")
    assert memory.forget(name)["queued"]
    assert memory.queued() == {} and traces(memory.catalog.folder, SECRET) == []


def test_regenerate_without_leaves_no_trace_and_rebuilds_rollups_the_same_way(memory, monkeypatch):
    memory.remember(SECRET_CHUNK, name="ma")
    memory.remember(CHUNK_B, name="mb")
    memory.rollup(["ma", "mb"], method="cat", name="rcat", activate=False)
    memory.rollup(["ma", "mb"], method="retrain", name="rtrain", activate=False)
    seen = []
    real = learn.train_adapter

    def spy(model, tok, name, examples, preset, seed=0):
        seen.append((name, [t for _, t in examples]))
        return real(model, tok, name, examples, preset, seed=seed)

    monkeypatch.setattr(learn, "train_adapter", spy)
    row = memory.regenerate("ma", without=["bank password"])

    assert traces(memory.folder, SECRET) == [] and traces(memory.folder, "bank password") == []
    assert row["turns"] == SECRET_CHUNK[:1] and row["regenerated"]["turns_removed"] == 1
    assert sorted(row["rebuilt"]) == ["rcat", "rtrain"]
    # the retrain roll-up was retrained on the members' current turns: the removed one is not among them
    retrained = [targets for name, targets in seen if name == "rtrain"]
    assert retrained and not any("Zorbex" in t for t in retrained[-1])
    assert any("lighthouse" in t for t in retrained[-1])
    # the cat roll-up is the exact sum of the members as they are now (the regenerated weights)
    _bigger(memory, ["ma", "mb"])
    memory.stack(["ma", "mb"])
    stacked = _logits(memory)
    memory.forget("rcat")
    memory.rollup(["ma", "mb"], method="cat", name="rcat2")
    torch.testing.assert_close(_logits(memory), stacked, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("without, message", [
    ([5], r"adapter 'ma' has no turn 5: it has 2 turns \(0..1\)"),
    (["no such words"], "no turn of adapter 'ma' contains 'no such words'"),
    ([], "needs turns to drop"),
    ([0, 1], "leaves no turn: forget the adapter instead"),
])
def test_regenerate_that_would_do_nothing_is_an_error_not_a_retraining(memory, monkeypatch, without, message):
    memory.remember(SECRET_CHUNK, name="ma")
    monkeypatch.setattr(learn, "train_adapter", lambda *a, **k: pytest.fail("retrained for nothing"))
    with pytest.raises(HfSteerError, match=message) as e:
        memory.regenerate("ma", without=without)
    assert "\n" not in str(e.value)
    assert memory.catalog.rows["ma"]["turns"] == SECRET_CHUNK


def test_adapter_folders_have_our_metadata_and_no_placeholder_card(memory):
    memory.remember(CHUNK_B, name="mb")
    folder = memory.catalog.adapter_dir("mb")
    meta = json.loads((folder / "hf_steer.json").read_text())
    assert meta["method"] == "lora_memory" and meta["artifact"] == "adapter" and meta["base_model"] == "tiny-llama"
    assert meta["base_fingerprint"] == memory.fingerprint and meta["kind"] == "chunk"
    assert not (folder / "README.md").exists()  # a card is rendered by `hf-steer push`, never a placeholder


# -- real kills during a commit -------------------------------------------------------------------

CATALOG_KILLER = textwrap.dedent(
    """
    import os, shutil, signal, sys
    from pathlib import Path
    from hf_steer.memory.catalog import Catalog

    folder, kill_at = sys.argv[1], int(sys.argv[2])
    calls = 0
    def killing(real):
        def wrapper(*a, **k):
            global calls
            calls += 1
            if calls == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*a, **k)
        return wrapper
    os.replace, shutil.rmtree, os.fsync = killing(os.replace), killing(shutil.rmtree), killing(os.fsync)
    cat = Catalog(folder, "base", "fp1")
    del cat.rows["ma"]
    cat.rows["rup"]["members"] = ["mb"]
    def write(tmp):
        (tmp / "adapter_model.safetensors").write_bytes(b"NEW ROLLUP")
    staged = cat.stage_adapter("rup", write)
    cat.commit(remove=["ma"], install={"rup": staged}, delete_paths=[cat.queue_path("mq")])
    print("calls", calls)
    """
)


def _catalog_fixture(folder: Path) -> None:
    from hf_steer.memory.catalog import Catalog

    cat = Catalog(folder, "base", "fp1")
    for name, content in (("ma", SECRET), ("mb", "Doran Pellick keeps bees.")):
        cat.write_adapter(name, lambda t, c=name: (t / "adapter_model.safetensors").write_bytes(f"W-{c}".encode()))
        cat.add({"name": name, "kind": "chunk", "turns": [{"role": "user", "content": content}]}, save=False)
    cat.write_adapter("rup", lambda t: (t / "adapter_model.safetensors").write_bytes(b"OLD ROLLUP"))
    cat.add({"name": "rup", "kind": "rollup", "members": ["ma", "mb"]}, save=False)
    cat.active = ["ma", "mb"]
    cat.save()
    cat.enqueue("mq", [{"role": "user", "content": "Saffi Dunmore won the Harrowgate cup."}])


def _run_killer(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_kill_at_any_point_of_a_commit_leaves_the_old_or_the_new_state(tmp_path):
    from hf_steer.memory.catalog import Catalog

    _catalog_fixture(tmp_path / "fixture")
    first = _run_killer(CATALOG_KILLER, str(shutil.copytree(tmp_path / "fixture", tmp_path / "dry")), "0")
    total = int(first.stdout.split()[-1])
    assert first.returncode == 0 and total >= 8, first.stderr
    outcomes = set()
    for kill_at in range(1, total + 1):
        folder = shutil.copytree(tmp_path / "fixture", tmp_path / f"k{kill_at}")
        proc = _run_killer(CATALOG_KILLER, str(folder), str(kill_at))
        assert proc.returncode == -signal.SIGKILL, (kill_at, proc.stderr[-500:])
        raw = json.loads((folder / "catalog.json").read_text())  # never torn
        if "ma" not in raw["rows"]:
            # past the commit point: already now (before any reopening) no JSON file holds the text
            assert [t for t in traces(folder, SECRET) if not t.startswith("adapters/")] == [], kill_at
        cat = Catalog(folder, "base", "fp1")  # reopening finishes a committed change
        weights = {n: (cat.adapter_dir(n) / "adapter_model.safetensors").read_bytes() for n in cat.rows}
        if "ma" in cat.rows:  # the old state, whole
            outcomes.add("old")
            assert weights == {"ma": b"W-ma", "mb": b"W-mb", "rup": b"OLD ROLLUP"}
            assert cat.rows["rup"]["members"] == ["ma", "mb"] and "mq" in cat.queued()
        else:  # the new state, whole
            outcomes.add("new")
            assert weights == {"mb": b"W-mb", "rup": b"NEW ROLLUP"} and cat.rows["rup"]["members"] == ["mb"]
            assert traces(folder, SECRET) == [] and cat.queued() == {} and not cat.adapter_dir("ma").exists()
            assert "pending" not in json.loads((folder / "catalog.json").read_text())
        assert not [p for p in (folder / "adapters").iterdir() if p.name.startswith(".")], kill_at
    assert outcomes == {"old", "new"}


MEMORY_KILLER = textwrap.dedent(
    """
    import os, shutil, signal, sys
    sys.path.insert(0, sys.argv[4])
    import torch
    torch.set_num_threads(1)
    from hf_steer.memory import LoraMemory
    from hf_steer.memory.train import get_preset
    from hf_steer.models import load_model
    from memory.conftest import TINY, fake_embedder

    kill_at = int(sys.argv[3])
    calls = 0
    def killing(real):
        def wrapper(*a, **k):
            global calls
            calls += 1
            if calls == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*a, **k)
        return wrapper
    model, tok = load_model(sys.argv[1], device="cpu")
    mem = LoraMemory(model, tok, base_model="tiny-llama", folder=sys.argv[2], preset=get_preset("fast-cpu", **TINY),
                     embedder=fake_embedder)
    os.replace, shutil.rmtree, os.fsync = killing(os.replace), killing(shutil.rmtree), killing(os.fsync)
    mem.forget("ma")
    print("calls", calls)
    """
)


def test_a_kill_during_forget_leaves_the_old_or_the_new_memory(tmp_path, tiny_pair, monkeypatch):
    model, tok = tiny_pair
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    from hf_steer.memory.train import get_preset

    from .conftest import TINY

    mem = LoraMemory(model, tok, base_model="tiny-llama", folder=tmp_path / "fixture",
                     preset=get_preset("fast-cpu", **TINY), embedder=fake_embedder)
    mem.remember(SECRET_CHUNK, name="ma")
    mem.remember(CHUNK_B, name="mb")
    mem.rollup(["ma", "mb"], method="svd", svd_rank=2, name="rup")
    mem._unload_all()  # the base model goes back to its bare self for the memories below
    model = mem.model
    # count the renames/deletes/fsyncs of one forget, in this process, on a copy
    calls = []
    dry = shutil.copytree(tmp_path / "fixture", tmp_path / "dry")
    for mod, attr in ((os, "replace"), (shutil, "rmtree"), (os, "fsync")):
        real = getattr(mod, attr)
        monkeypatch.setattr(mod, attr, lambda *a, _real=real, **k: (calls.append(1), _real(*a, **k))[1])
    dry_mem = LoraMemory(model, tok, base_model="tiny-llama", folder=dry, preset=get_preset("fast-cpu", **TINY),
                         embedder=fake_embedder)
    dry_mem.forget("ma")
    monkeypatch.undo()
    dry_mem._unload_all()
    total = len(calls)
    assert total >= 6 and traces(dry, SECRET) == []

    def run(kill_at):
        folder = shutil.copytree(tmp_path / "fixture", tmp_path / f"k{kill_at}")
        return folder, _run_killer(MEMORY_KILLER, str(tmp_path / "tiny"), str(folder), str(kill_at), str(ROOT / "tests"))

    outcomes = set()
    for kill_at in (2, total - 1):  # inside the roll-up's staging; after the commit point
        folder, proc = run(kill_at)
        assert proc.returncode == -signal.SIGKILL, (kill_at, proc.stderr[-500:])
        again = LoraMemory(model, tok, base_model="tiny-llama", folder=folder, preset=get_preset("fast-cpu", **TINY),
                           embedder=fake_embedder)
        if "ma" in again.catalog:
            outcomes.add("old")
            assert again.catalog.rows["rup"]["members"] == ["ma", "mb"] and traces(folder, SECRET)
        else:
            outcomes.add("new")
            assert again.catalog.rows["rup"]["members"] == ["mb"] and traces(folder, SECRET) == []
            assert not again.catalog.adapter_dir("ma").exists()
        assert sorted(again.names()) == sorted(n for n in ("ma", "mb", "rup") if n in again.catalog)
        again._unload_all()
    assert outcomes == {"old", "new"}
