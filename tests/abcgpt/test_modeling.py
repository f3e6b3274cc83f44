"""AbcGPTForCausalLM: α handling, KV cache, generate, saving, and one-line errors for bad α."""

import inspect

import pytest
import torch
from safetensors import safe_open

from hf_steer.errors import HfSteerError

from .conftest import tiny_model


def test_per_row_alpha_matches_one_alpha_at_a_time():
    model = tiny_model()
    x = torch.randint(0, 40, (3, 12))
    alphas = [0.0, 0.4, 1.0]
    batched = model(x, alpha=torch.tensor(alphas)).logits
    for i, a in enumerate(alphas):
        torch.testing.assert_close(batched[i], model(x[i : i + 1], alpha=a).logits[0], atol=1e-5, rtol=1e-5)
    # The dial changes the output, and a two-source mixture is the same as the scalar.
    assert not torch.allclose(batched[0], batched[2], atol=1e-3)
    torch.testing.assert_close(model(x, alpha=0.4).logits, model(x, alpha=[[0.6, 0.4]]).logits)


def test_kv_cache_matches_full_forward_and_generate_uses_alpha():
    model = tiny_model()
    x = torch.randint(0, 40, (2, 10))
    full = model(x, alpha=0.3, use_cache=False).logits
    prefix = model(x[:, :7], alpha=0.3, use_cache=True)
    assert prefix.cache is not None and prefix.cache.get_seq_length() == 7
    rest = model(x[:, 7:], alpha=0.3, cache=prefix.cache, use_cache=True).logits
    torch.testing.assert_close(rest, full[:, 7:], atol=1e-5, rtol=1e-5)

    greedy = dict(max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=None)
    cached = model.generate(x[:, :4], alpha=0.3, **greedy)
    uncached = model.generate(x[:, :4], alpha=0.3, use_cache=False, **greedy)
    assert cached.shape == (2, 16) and torch.equal(cached, uncached)
    other = model.generate(x[:, :4], alpha=torch.tensor([0.9, 0.9]), **greedy)
    assert not torch.equal(cached, other)


@pytest.mark.parametrize("use_cache", [True, False])
def test_generate_slides_the_window_like_nanogpt(use_cache):
    """Past n_positions every step sees the last n_positions tokens from position 0 (nanoGPT's idx[:, -block:])."""
    model = tiny_model(n_positions=12)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # larger than init, so a wrong window changes the argmax
    x = torch.randint(1, 40, (2, 5))
    mask = torch.ones_like(x)
    mask[0, :2] = 0  # row 0 is left-padded
    n, new = model.config.n_positions, 20
    out = model.generate(x, attention_mask=mask, alpha=0.3, max_new_tokens=new, do_sample=False, pad_token_id=0,
                         eos_token_id=None, use_cache=use_cache)
    assert out.shape == (2, 5 + new)
    for row, start in ((0, 2), (1, 0)):
        ids = x[row : row + 1, start:]
        with torch.no_grad():
            for _ in range(new):
                logits = model(ids[:, -n:], alpha=0.3, use_cache=False).logits[:, -1]
                ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
        assert torch.equal(out[row, start:], ids[0])
    with pytest.raises(HfSteerError, match=f"input of {n + 1} tokens is longer than n_positions={n}"):
        model(torch.zeros(1, n + 1, dtype=torch.long), alpha=0.3)  # a plain forward still says so


def test_left_padding_gives_the_same_next_token_logits():
    model = tiny_model()
    x = torch.randint(1, 40, (1, 8))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), x], dim=1)
    mask = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 8, dtype=torch.long)], dim=1)
    plain = model(x, alpha=0.5).logits[:, -1]
    with_pad = model(padded, alpha=0.5, attention_mask=mask).logits[:, -1]
    torch.testing.assert_close(plain, with_pad, atol=1e-5, rtol=1e-5)


def test_three_sources_take_a_mixture_per_row():
    model = tiny_model(source_names=["a", "b", "c"])
    x = torch.randint(0, 40, (2, 6))
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    out = model(x, alpha=mix).logits
    torch.testing.assert_close(out[1:], model(x[1:], alpha=[0.2, 0.3, 0.5]).logits)
    assert model.transformer.m_heads.shape == (2, 2, 3)


def test_ungated_model_has_no_positions_and_ignores_alpha():
    model = tiny_model(gate_residual=False, gate_mlp=False, gate_heads=False)
    assert [n for n, _ in model.named_buffers()] == []
    x = torch.randint(0, 40, (1, 6))
    torch.testing.assert_close(model(x, alpha=0.0).logits, model(x, alpha=1.0).logits)


def test_save_and_reload_keeps_each_position_tensor_once(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
        m_mlp = f.get_tensor("transformer.m_mlp")
    assert sorted(k for k in keys if ".m_" in k) == ["transformer.m_heads", "transformer.m_mlp", "transformer.m_residual"]
    torch.testing.assert_close(m_mlp, model.transformer.m_mlp)
    ptrs = [b.data_ptr() for b in model.buffers()]
    assert len(set(ptrs)) == len(ptrs)  # no buffer is a view of another

    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)  # registered in-package: no remote code needed
    assert type(reloaded).__name__ == "AbcGPTForCausalLM"
    x = torch.randint(0, 40, (1, 9))
    torch.testing.assert_close(reloaded(x, alpha=0.7).logits, model(x, alpha=0.7).logits)


def test_same_seed_same_positions_other_seed_other_positions():
    a, b, c = tiny_model(), tiny_model(), tiny_model(m_seed=4)
    assert torch.equal(a.transformer.m_residual, b.transformer.m_residual)
    assert not torch.equal(a.transformer.m_residual, c.transformer.m_residual)


@pytest.mark.parametrize(
    ("alpha", "needle"),
    [
        (1.5, "alpha is 1.5: it must lie in [0, 1] (0 = stories, 1 = plays)"),
        (-0.1, "must lie in [0, 1]"),
        (float("nan"), "alpha contains NaN"),
        (torch.full((2,), float("nan")), "alpha contains NaN or inf ([nan, nan])"),
        (torch.tensor([0.1, 0.2, 0.3]), "alpha has shape (3,) but the batch has 2 rows"),
        (torch.zeros(2, 3), "alpha has shape (2, 3)"),
        ([[0.5, 0.6]], "does not sum to 1"),
    ],
)
def test_bad_alpha_is_one_clear_line(alpha, needle):
    model = tiny_model()
    with pytest.raises(HfSteerError) as e:
        model(torch.randint(0, 40, (2, 5)), alpha=alpha)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_bad_mixture_for_three_sources():
    model = tiny_model(source_names=["a", "b", "c"])
    x = torch.randint(0, 40, (1, 5))
    with pytest.raises(HfSteerError, match="does not sum to 1"):
        model(x, alpha=[0.5, 0.5, 0.5])
    with pytest.raises(HfSteerError, match=r"pass a mixture of 3 weights \(a, b, c\)"):
        model(x, alpha=0.3)


# --- transformers' current model style -----------------------------------------------------------------


def test_forward_signature_is_the_usual_one_with_alpha_keyword_only():
    from hf_steer.abcgpt import AbcGPTForCausalLM

    params = inspect.signature(AbcGPTForCausalLM.forward).parameters
    usual = ["self", "input_ids", "attention_mask", "position_ids", "cache", "inputs_embeds", "labels", "use_cache",
             "logits_to_keep"]
    assert list(params)[: len(usual)] == usual
    assert params["alpha"].kind is inspect.Parameter.KEYWORD_ONLY
    model = tiny_model()
    x = torch.randint(0, 40, (1, 6))
    prefix = model(x[:, :4], alpha=0.3, use_cache=True)
    with pytest.warns(FutureWarning, match="past_key_values"):  # the older spelling still works, as in transformers
        old_name = model(x[:, 4:], alpha=0.3, past_key_values=prefix.cache).logits
    torch.testing.assert_close(old_name, model(x, alpha=0.3).logits[:, 4:], atol=1e-5, rtol=1e-5)
    assert isinstance(model(x, alpha=0.3, return_dict=False), tuple)


@pytest.mark.parametrize("padded", [False, True])
def test_eager_and_sdpa_give_the_same_logits_through_the_attention_interface(padded):
    model = tiny_model(gate_floor=0.1)
    assert model.config._attn_implementation == "sdpa"
    x = torch.randint(1, 40, (2, 10))
    mask = torch.ones_like(x)
    if padded:
        mask[0, :4] = 0
    sdpa = model(x, attention_mask=mask, alpha=torch.tensor([0.2, 0.9])).logits
    cached = model(x[:, :6], attention_mask=mask[:, :6], alpha=0.2, use_cache=True).cache
    sdpa_step = model(x[:, 6:], attention_mask=mask, alpha=0.2, cache=cached).logits
    model.set_attn_implementation("eager")
    assert model.config._attn_implementation == "eager"
    eager = model(x, attention_mask=mask, alpha=torch.tensor([0.2, 0.9])).logits
    cached = model(x[:, :6], attention_mask=mask[:, :6], alpha=0.2, use_cache=True).cache
    eager_step = model(x[:, 6:], attention_mask=mask, alpha=0.2, cache=cached).logits
    real = mask.bool()  # a padded position's output is never used
    torch.testing.assert_close(eager[real], sdpa[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(eager_step, sdpa_step, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(sdpa).all() and torch.isfinite(eager).all()


def test_hidden_states_and_attentions_are_returned_when_asked():
    model = tiny_model()
    model.set_attn_implementation("eager")  # attention weights need eager, as in every transformers model
    x = torch.randint(0, 40, (2, 7))
    out = model(x, alpha=0.25, output_hidden_states=True, output_attentions=True)
    n_layer, n_head = model.config.n_layer, model.config.n_head
    assert len(out.hidden_states) == n_layer + 1 and all(h.shape == (2, 7, 16) for h in out.hidden_states)
    # hidden_states[0] is what the first block reads: embeddings plus positions, through the residual gates ...
    core = model.transformer
    gates = core.compute_gates(model.alpha_to_mixture(0.25, 2))
    embedded = (core.wte(x) + core.wpe(torch.arange(7))[None]) * gates["residual"]
    torch.testing.assert_close(out.hidden_states[0], embedded)
    # ... and the last one is the model's final hidden state, the lm_head's input.
    torch.testing.assert_close(model.lm_head(out.hidden_states[-1]), out.logits)
    assert len(out.attentions) == n_layer
    for att in out.attentions:
        assert att.shape == (2, n_head, 7, 7)
        torch.testing.assert_close(att.sum(-1), torch.ones(2, n_head, 7))
        assert att.triu(diagonal=1).abs().max() == 0  # causal
    plain = model(x, alpha=0.25)
    assert plain.hidden_states is None and plain.attentions is None


def test_loss_is_the_librarys_causal_lm_loss():
    model = tiny_model()
    x = torch.randint(0, 40, (2, 9))
    labels = x.clone()
    labels[0, :3] = -100
    out = model(x, alpha=0.6, labels=labels)
    want = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 40), labels[:, 1:].reshape(-1),
                                             ignore_index=-100)
    torch.testing.assert_close(out.loss, want)


def test_gradient_checkpointing_gives_the_same_gradients():
    x = torch.randint(0, 40, (2, 8))
    grads = []
    for checkpointing in (False, True):
        model = tiny_model().train()
        if checkpointing:
            model.activation_checkpointing_enable()
        model(x, alpha=torch.tensor([0.1, 0.7]), labels=x, use_cache=False).loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
