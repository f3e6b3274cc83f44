"""``examples/compose.py`` as a user runs it: an Elarablation adapter and a memory adapter, each made by
its own method, active together on one model, dosed with DRµGS, through stock ``generate``.

Tiny random model standing in for the bundled one (the bundled-model run is in README.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import make_tiny_model, make_tokenizer

ROOT = Path(__file__).resolve().parents[1]


def test_compose_example_stacks_two_methods_adapters_and_doses_them(tmp_path):
    from peft import PeftModel

    from hf_steer.elarablation import train
    from hf_steer.elarablation.arguments import LoraArguments
    from hf_steer.memory import LoraMemory
    from hf_steer.memory.train import get_preset

    base = tmp_path / "tiny"
    make_tiny_model("llama").save_pretrained(base)
    make_tokenizer("bytelevel").save_pretrained(base)

    contexts = tmp_path / "names.yaml"
    contexts.write_text("family: test_names\nrules: {good: ['^ [A-Z]'], bad: ['^ ?El']}\nhyperparameters: {top_k: 20}\n"
                        "train: ['The elf girl nods. \"My name is', 'The dwarf grunted. \"They call me']\n")
    elara = tmp_path / "elara-adapter"
    train(str(contexts), elara, str(base), num_train_epochs=2, learning_rate=5e-2, loss_type="elarablate",
          anchor_weight=0.0, lora=LoraArguments(lora_r=4, lora_alpha=8))

    memory = LoraMemory(make_tiny_model("llama"), make_tokenizer("bytelevel"), base_model=str(base),
                        folder=tmp_path / "mem", embedder=None,
                        preset=get_preset("fast-cpu", steps=3, r=4, alpha=8.0, top_layers=1, max_length=64, anchors=0))
    memory.remember(["My cat is called Miso."], name="cat")
    cat = memory.catalog.adapter_dir("cat")

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "compose.py"), "--model", str(base), "--adapter", str(elara),
         "--adapter", str(cat), "--prompt", "What is my cat called?", "--dose", "A=1.0", "--max-new-tokens", "12",
         "--json"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["adapters"] == ["elara-adapter", "cat"]
    assert out["dosed"] != out["stacked"]  # the dose changes the stacked model's greedy text
    assert out["after_remove"] == out["stacked"]  # and remove() gives the same model back

    # Both adapters act in the stack.
    from hf_steer import load_model

    model, tokenizer = load_model(str(base))
    ids = tokenizer("What is my cat called?", return_tensors="pt").input_ids
    with torch.no_grad():
        plain = model(ids).logits
        peft = PeftModel.from_pretrained(model, str(elara), adapter_name="elara")
        peft.load_adapter(str(cat), adapter_name="cat")
        deltas = {}
        for name in ("elara", "cat"):
            peft.base_model.set_adapter([name], inference_mode=True)
            deltas[name] = peft(ids).logits - plain
        peft.base_model.set_adapter(["elara", "cat"], inference_mode=True)
        both = peft(ids).logits - plain
    assert deltas["elara"].abs().max() > 1e-4 and deltas["cat"].abs().max() > 1e-4
    # Each adapter changes what the stack computes: the stack is neither adapter alone.
    assert (both - deltas["elara"]).abs().max() > 1e-4 and (both - deltas["cat"]).abs().max() > 1e-4
