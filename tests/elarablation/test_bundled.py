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
