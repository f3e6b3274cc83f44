"""The abc adapter on the bundled SmolLM2-135M-Instruct: the dial moves the real model, survives a round trip."""

import pytest
import torch

pytestmark = pytest.mark.slow


def test_dial_on_the_bundled_model(bundled, tmp_path):
    from peft import PeftModel, get_peft_model

    from hf_steer.abcgpt.adapter import AbcAdapterConfig

    model, tokenizer = bundled
    base_copy = {k: v.clone() for k, v in model.state_dict().items() if "layers.29" in k}
    config = AbcAdapterConfig(r=4, source_names=["tinystories", "shakespeare"], layers_to_transform=[28, 29],
                              target_modules=["q_proj", "v_proj", "down_proj"])
    peft_model = get_peft_model(model, config).eval()
    torch.manual_seed(0)
    for name, p in peft_model.named_parameters():
        if "abc_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Tell me a story."}], tokenize=False,
                                           add_generation_prompt=True)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        at0, at1 = (peft_model(input_ids=ids, alpha=a).logits for a in (0.0, 1.0))
    assert (at0 - at1).abs().max() > 1e-3
    out = peft_model.generate(ids.repeat(2, 1), alpha=[0.0, 1.0], do_sample=False, max_new_tokens=5,
                              pad_token_id=tokenizer.pad_token_id)
    assert out.shape == (2, ids.shape[1] + 5)
    peft_model.save_pretrained(tmp_path)
    base = peft_model.unload()  # the same base weights, without the adapter
    assert all(torch.equal(base.state_dict()[k], v) for k, v in base_copy.items())
    loaded = PeftModel.from_pretrained(base, tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids, alpha=1.0).logits, at1, atol=1e-4)
