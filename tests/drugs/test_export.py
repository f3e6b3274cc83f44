"""``hf-steer drugs export``: a ``custom_generate`` repo that runs where hf_steer cannot be imported.

The round trips run ``model.generate(custom_generate=..., trust_remote_code=True, drugs={...})`` in a
subprocess whose import system refuses ``hf_steer`` (a meta-path blocker installed before anything
else), from a local folder and from the loopback Hub, and compare the tokens with ``Dgenerate`` here.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hub_server import HubServer  # noqa: F401  (the loopback Hub the `hub` fixture starts)
from test_hub import USER, hub  # noqa: F401

import hf_steer
from hf_steer.cli import main
from hf_steer.drugs import DrugsConfig, export_custom_generate, generate, inject, remove
from hf_steer.drugs.export import SOURCES
from hf_steer.errors import HfSteerError

from .conftest import tiny

DRUGS = {"A": 0.8, "H": 0.5, "depth": 0.5, "spread": 0.5, "sinks": 1, "seed": 3}
IDS = [[5, 6, 7, 8, 9, 10, 11], [0, 0, 12, 13, 14, 15, 16]]  # the second row left-padded
MASK = [[1] * 7, [0, 0, 1, 1, 1, 1, 1]]

ISOLATED = r'''
import hashlib, importlib.abc, json, sys

class NoHfSteer(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "hf_steer" or name.startswith("hf_steer."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked on purpose)")

sys.meta_path.insert(0, NoHfSteer())
try:
    import hf_steer  # noqa: F401
    raise SystemExit("hf_steer is importable: the isolation failed")
except ModuleNotFoundError:
    pass

import torch
from transformers import AutoModelForCausalLM

def snapshot(model):
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode()); digest.update(tensor.numpy().tobytes())
    return {"weights": digest.hexdigest(), "class": type(model).__qualname__, "config": model.config.to_json_string(),
            "attn": model.config._attn_implementation,
            "hooks": sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules()),
            "attributes": [[name, sorted(vars(m))] for name, m in model.named_modules()]}

args = json.loads(sys.argv[1])
model = AutoModelForCausalLM.from_pretrained(args["model"])
model.eval()
before = snapshot(model)
out = model.generate(input_ids=torch.tensor(args["ids"]), attention_mask=torch.tensor(args["mask"]),
                     custom_generate=args["repo"], trust_remote_code=True, drugs=args["drugs"],
                     max_new_tokens=6, pad_token_id=0)
print(json.dumps({"tokens": out.tolist(), "unchanged": snapshot(model) == before,
                  "hf_steer_loaded": sorted(m for m in sys.modules if m.startswith("hf_steer"))}))
'''


@pytest.fixture(scope="module")
def tiny_model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    tiny("llama", num_hidden_layers=3).save_pretrained(folder)
    return folder


def _dgenerate_tokens(model_folder) -> list:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_folder)
    model.eval()
    inject(model, DrugsConfig.from_dict({k: v for k, v in DRUGS.items() if k != "seed"}))
    out = model.Dgenerate(input_ids=torch.tensor(IDS), attention_mask=torch.tensor(MASK), seed=DRUGS["seed"],
                          max_new_tokens=6, pad_token_id=0)
    return out.tolist()


def _run_isolated(model_folder, repo: str, tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_MODULES_CACHE"] = str(tmp_path / "modules")  # transformers copies the remote code here
    env.setdefault("HF_HOME", str(tmp_path / "hf_home"))
    args = json.dumps({"model": str(model_folder), "repo": repo, "drugs": DRUGS, "ids": IDS, "mask": MASK})
    done = subprocess.run([sys.executable, "-I", "-c", ISOLATED, args], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_export_writes_a_self_contained_custom_generate_folder(tmp_path):
    folder = export_custom_generate(tmp_path / "drugs")
    code = folder / "custom_generate"
    assert {p.name for p in code.iterdir()} == {*SOURCES, "requirements.txt"}
    package = Path(hf_steer.__file__).parent
    for name, source in SOURCES.items():
        copy, original = (code / name).read_text(), (package / source).read_text()
        # Generated from the package's own file: identical but for the header and the errors import.
        body = copy.split("\n", 2)[2]
        assert body == original.replace("from ..errors import HfSteerError", "from .errors import HfSteerError")
        for node in ast.walk(ast.parse(copy)):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1 and (code / f"{node.module}.py").is_file()
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                assert not any(n.startswith("hf_steer") for n in names), (name, names)
    assert "def generate(model" in (code / "generate.py").read_text()
    assert "transformers" in (code / "requirements.txt").read_text()
    readme = (folder / "README.md").read_text()
    assert readme.startswith("---\n") and "- custom_generate" in readme.split("---")[1]
    assert 'custom_generate="your-name/drugs", trust_remote_code=True' in readme and "drugs={" in readme
    meta = json.loads((folder / "hf_steer.json").read_text())
    assert meta["method"] == "drugs" and meta["artifact"] == "custom_generate"

    # A second export refuses the folder unless told to overwrite, and never touches foreign files.
    with pytest.raises(HfSteerError, match="is not empty: choose an empty folder, or pass --overwrite"):
        export_custom_generate(folder)
    export_custom_generate(folder, overwrite=True)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(HfSteerError, match=r"holds files an export does not write \(notes.txt\)"):
        export_custom_generate(folder, overwrite=True)
    assert (folder / "notes.txt").read_text() == "mine"


def test_cli_export(tmp_path, capsys):
    assert main(["drugs", "export", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip().startswith(f"wrote {tmp_path / 'out'}")
    assert (tmp_path / "out" / "custom_generate" / "generate.py").is_file()
    assert main(["drugs", "export", str(tmp_path / "out")]) == 2
    assert "is not empty" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["drugs", "export", str(tmp_path / "file")]) == 2
    assert main(["drugs", "export", str(tmp_path / "other"), "--repo-id", "not a repo"]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "is not a Hub repo id" in err and err.count("\n") == 2


def test_generate_leaves_the_model_as_it_was(prompt):
    model = tiny("qwen3")
    with torch.no_grad():
        base = model(**prompt).logits
    attributes = {name: sorted(vars(m)) for name, m in model.named_modules()}
    out = generate(model, **prompt, drugs={"Q": 0.8, "A": 0.8, "sinks": 1, "seed": 1}, max_new_tokens=5)
    again = generate(model, **prompt, drugs={"Q": 0.8, "A": 0.8, "sinks": 1, "seed": 1}, max_new_tokens=5)
    assert torch.equal(out, again) and out.shape[1] == prompt["input_ids"].shape[1] + 5
    assert {name: sorted(vars(m)) for name, m in model.named_modules()} == attributes
    assert model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        assert torch.equal(model(**prompt).logits, base)
    # An already dosed model keeps its own dose after the call.
    inject(model, DrugsConfig(doses={"H": 0.3}))
    generate(model, **prompt, drugs={"A": 0.5}, max_new_tokens=2)
    assert set(model._drugs_state.config.doses) == {"H"}
    remove(model)
    for bad, message in [(None, "no drugs= given"), ({"A": 0.1, "temperature": 1}, "unknown keys ['temperature']"),
                         ([0.3], "drugs is a list")]:
        with pytest.raises(HfSteerError, match=re.escape(message)):
            generate(model, **prompt, drugs=bad, max_new_tokens=2)
    assert not hasattr(model, "_drugs_state")


def test_custom_generate_from_a_local_folder_without_hf_steer(tiny_model_folder, tmp_path):
    repo = export_custom_generate(tmp_path / "drugs")
    result = _run_isolated(tiny_model_folder, str(repo), tmp_path)
    assert result["hf_steer_loaded"] == [] and result["unchanged"] is True
    assert result["tokens"] == _dgenerate_tokens(tiny_model_folder)


def test_custom_generate_from_the_loopback_hub_without_hf_steer(hub, tiny_model_folder, tmp_path, capsys):  # noqa: F811
    export_custom_generate(tmp_path / "drugs")
    assert main(["push", str(tmp_path / "drugs"), f"{USER}/drugs"]) == 0
    files = hub.files(f"{USER}/drugs")
    assert {"custom_generate/generate.py", "custom_generate/dose.py", "custom_generate/requirements.txt",
            "README.md", "hf_steer.json"} <= set(files)
    card = files["README.md"].decode()
    assert "- custom_generate" in card.split("---")[1] and f'custom_generate="{USER}/drugs"' in card
    result = _run_isolated(tiny_model_folder, f"{USER}/drugs", tmp_path)
    assert result["hf_steer_loaded"] == [] and result["unchanged"] is True
    assert result["tokens"] == _dgenerate_tokens(tiny_model_folder)
