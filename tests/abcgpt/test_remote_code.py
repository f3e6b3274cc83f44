"""A saved folder loads with plain transformers + trust_remote_code in a process that never imports hf_steer."""

import json
import os
import re
import subprocess
import sys

import torch

from hf_steer.abcgpt.tokenization_abcgpt import build_char_tokenizer
from hf_steer.abcgpt.training import register_auto_classes

from .conftest import tiny_model

CHILD = r"""
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
path = sys.argv[1]
model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True).eval()
tok = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
ids = tok("To be", add_special_tokens=False, return_tensors="pt").input_ids
out = model.generate(ids, alpha=0.3, max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=None)
logits = model(ids, alpha=0.8).logits[0, -1].tolist()
try:
    model(ids, alpha=1.5)
    err = None
except ValueError as e:
    err = str(e)
print(json.dumps({"cls": type(model).__module__ + "." + type(model).__name__, "out": out[0].tolist(),
                  "logits": logits, "err": err, "hf_steer_imported": any(m.startswith("hf_steer") for m in sys.modules)}))
"""


def test_saved_folder_loads_without_hf_steer(tmp_path):
    model = tiny_model(vocab_size=30)
    tok = build_char_tokenizer(["To be, or not to be: that is the question."])
    register_auto_classes()
    folder = tmp_path / "abc"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    code = {name: (folder / name).read_text() for name in ("modeling_abcgpt.py", "configuration_abcgpt.py", "gates.py")}
    for name, text in code.items():  # the copied files stand alone: no hf_steer or parent-package import
        assert not re.search(r"^\s*(from|import)\s+(hf_steer|\.\.)", text, re.M), name
    assert "from .gates import" in code["modeling_abcgpt.py"]

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(folder)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["hf_steer_imported"] is False
    assert got["cls"].endswith("modeling_abcgpt.AbcGPTForCausalLM") and not got["cls"].startswith("hf_steer")
    assert "alpha is 1.5: it must lie in [0, 1]" in got["err"]

    ids = tok("To be", add_special_tokens=False, return_tensors="pt").input_ids
    want = model.generate(ids, alpha=0.3, max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=None)
    assert got["out"] == want[0].tolist()
    torch.testing.assert_close(torch.tensor(got["logits"]), model(ids, alpha=0.8).logits[0, -1], atol=1e-5, rtol=1e-5)
