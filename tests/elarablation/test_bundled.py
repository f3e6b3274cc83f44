"""Integration on the bundled SmolLM2-135M-Instruct (slow): a few steps already move ' El' down."""

import pytest
import torch

from hf_steer.elarablation import ElarablationConfig, ElarablationTrainer, load_contexts
from hf_steer.elarablation.contexts import reader_text
from hf_steer.elarablation.pipeline import default_lora_config

pytestmark = pytest.mark.slow
PROBE = 'The archer lowered her bow. "Don\'t shoot. My name is'  # a held-out context


def _el_mass(model, tok) -> float:
    with torch.no_grad():
        probs = model(**tok(PROBE, return_tensors="pt")).logits[0, -1].softmax(-1)
    top = probs.topk(100).indices.tolist()
    return float(sum(probs[i] for i in top if reader_text(tok, i).startswith(" El")))


def test_three_steps_lower_el_on_a_held_out_context(bundled, tmp_path):
    model, tok = bundled
    assert reader_text(tok, tok.convert_tokens_to_ids("ĠEl")) == " El"
    before = _el_mass(model, tok)
    args = ElarablationConfig(output_dir=str(tmp_path), num_train_epochs=3, learning_rate=2e-3, disable_tqdm=True,
                              anchor_tokens=32)
    contexts = load_contexts("female_names").select(range(4))
    trainer = ElarablationTrainer(model, args, contexts, tok, peft_config=default_lora_config(model))
    trainer.train()
    logs = [e for e in trainer.state.log_history if "bad_mass" in e]
    assert logs[-1]["bad_mass"] < logs[0]["bad_mass"]
    trainer.model.eval()
    assert _el_mass(trainer.model, tok) < before - 0.05


ISSUE_FILES = ["names/names_elf_f.yaml", "names/names_sorceress_f.yaml", "voice/phrases_her_voice_1.yaml"]


def test_original_files_from_the_issue_train_forwards(bundled, tmp_path):
    """The three published files that trained the model backwards (0 of 20 rewarded, top-1 0.67 -> 0.95)."""
    from pathlib import Path

    fixtures = Path(__file__).parent / "fixtures" / "elarablate" / "latest" / "slopcontext"
    model, tok = bundled
    contexts = load_contexts([str(fixtures / f) for f in ISSUE_FILES])
    args = ElarablationConfig(output_dir=str(tmp_path), num_train_epochs=4, disable_tqdm=True, anchor_tokens=32,
                              per_device_train_batch_size=3)
    trainer = ElarablationTrainer(model, args, contexts, tok, peft_config=default_lora_config(model))
    trainer.train()
    logs = [e for e in trainer.state.log_history if "bad_mass" in e]
    assert logs[0]["n_rewarded"] > 0  # good candidates exist again at the slot
    assert logs[-1]["bad_mass"] < logs[0]["bad_mass"]
