"""ElarablationConfig + ElarablationTrainer on tiny random models (fast, no bundled model)."""

import contextlib
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_model, make_tokenizer
from peft import LoraConfig

from hf_steer.elarablation.config import ElarablationConfig
from hf_steer.elarablation.contexts import load_contexts, word_match
from hf_steer.elarablation.trainer import ElarablationTrainer, last_position_logits, left_pad
from hf_steer.errors import HfSteerError

ROWS = [
    {"text": 'The elf girl nods. "My name is', "good": ["^ [A-Z]"], "bad": ["^ ?El"]},
    {"text": 'The dwarf grunted. "They call me', "good": ["^ [A-Z]"]},
    {"text": "Her voice was barely", "bad": ["^ above"]},
]


def _config(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path / "out"), num_train_epochs=2, top_k=20, disable_tqdm=True,
                learning_rate=5e-3, anchor_tokens=16)
    return ElarablationConfig(**{**base, **kw})


def _lora():
    return LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"])


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2"])
def test_left_padded_batch_matches_each_context_alone(arch):
    model, tok = make_tiny_model(arch), make_tokenizer("bytelevel")
    seqs = [tok(r["text"])["input_ids"] for r in ROWS]
    ids, mask, pos = left_pad(seqs, tok.pad_token_id)
    with torch.no_grad():
        batched = last_position_logits(model, ids, mask, pos)
        for i, seq in enumerate(seqs):
            alone = last_position_logits(model, torch.tensor([seq]), torch.ones(1, len(seq), dtype=torch.long))
            torch.testing.assert_close(batched[i], alone[0], atol=1e-4, rtol=1e-4)


def test_config_cpu_defaults_and_validation(tmp_path):
    cfg = _config(tmp_path)
    if not torch.cuda.is_available():
        assert cfg.use_cpu and not cfg.bf16
    assert cfg.loss_type == "margin" and cfg.remove_unused_columns is False
    assert ElarablationConfig(output_dir=str(tmp_path)).disable_tqdm is False  # a bar, though hf_steer quiets transformers
    with pytest.raises(HfSteerError, match="min_threshold=0.5 is not below max_threshold=0.02"):
        _config(tmp_path, min_threshold=0.5)
    with pytest.raises(HfSteerError, match="top_k=0 is out of range"):
        _config(tmp_path, top_k=0)
    with pytest.raises(HfSteerError, match="loss_type 'nope' is unknown"):
        _config(tmp_path, loss_type="nope")
    with pytest.raises(HfSteerError, match="tree_depth=3"):
        _config(tmp_path, tree_depth=3)


@pytest.mark.parametrize("loss_type", ["elarablate", "unlikelihood", "margin"])
def test_training_lowers_bad_mass_and_logs_per_step(tmp_path, loss_type):
    tok = make_tokenizer("bytelevel")
    # A random tiny model is near-uniform (p ~ 1/300): margin's bad target (min_threshold) must sit below that.
    args = _config(tmp_path, loss_type=loss_type, num_train_epochs=6, learning_rate=2e-2, min_threshold=0.001)
    trainer = ElarablationTrainer(make_tiny_model("llama"), args, load_contexts(ROWS[:2]), tok, peft_config=_lora())
    trainer.train()
    logs = [e for e in trainer.state.log_history if "bad_mass" in e]
    assert len(logs) == trainer.state.global_step == 6
    for key in ("top1_prob", "topk_entropy", "bad_mass", "n_punished", "n_rewarded", "anchor_kl"):
        assert key in logs[0]
    assert logs[-1]["bad_mass"] < logs[0]["bad_mass"]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_a_context_the_model_already_obeys_trains_nothing(tmp_path, arch):
    """Nothing punished or rewarded (no token is bad, none too likely, no reward floor): the loss is zero, as the
    original's, and the adapter stays at zero; Adam once turned the anchor's rounding into full steps (Gemma-3-270M,
    he_asked_2.yaml)."""
    tok = make_tokenizer("bytelevel")
    rows = [{"text": 'The elf girl nods. "My name is', "bad": ["^QQQQ$"], "good": ["^ [A-Z]"], "unmatched": "neutral"}]
    args = _config(tmp_path, num_train_epochs=4, learning_rate=2e-2, max_threshold=1.0, min_threshold=0.0,
                   auto_keep=0, anchor_weight=100.0)
    trainer = ElarablationTrainer(make_tiny_model(arch), args, load_contexts(rows), tok, peft_config=_lora())
    trainer.train()
    logs = [e for e in trainer.state.log_history if "n_punished" in e]
    assert len(logs) == 4 and not any(e["n_punished"] or e["n_rewarded"] for e in logs)
    lora_b = [p for n, p in trainer.model.named_parameters() if "lora_B" in n]
    assert lora_b and all(not p.detach().any() for p in lora_b)


def test_metaspace_tokenizer_and_full_finetune(tmp_path):
    tok = make_tokenizer("metaspace")
    model = make_tiny_model("llama")
    before = model.lm_head.weight.detach().clone()
    trainer = ElarablationTrainer(model, _config(tmp_path, auto_keep=0), load_contexts(ROWS), tok)
    trainer.train()
    assert not torch.equal(before, model.lm_head.weight.detach())
    assert len(trainer._ref_cache) == 3  # full fine-tune: reference read before training


def test_tree_depth_two_adds_rows_that_see_the_whole_word(tmp_path):
    tok = make_tokenizer("bytelevel")
    # the tiny BPE has few " Capital" merges: call lower-case word starts good here
    row = {"text": "Her voice was barely", "good": ["^ [a-z]"], "bad": ["^ ?El"]}
    trainer = ElarablationTrainer(make_tiny_model("llama"), _config(tmp_path, tree_depth=2, tree_width=3, top_k=300),
                                  load_contexts(row), tok, peft_config=_lora())
    children = [r for r in trainer._rows if r.depth == 2]
    assert 1 <= len(children) <= 3
    for child in children:
        assert child.input_ids[:-1] == trainer._rows[0].input_ids
        assert child.rules.prefix.startswith(" ") and child.rules.prefix[1].islower()
        assert child.max_threshold == 0.5
    trainer.train()
    assert trainer.state.global_step == 2


def test_bad_word_beginnings_are_followed_only_on_likely_paths(tmp_path):
    tok = make_tokenizer("bytelevel")
    row = {"text": "Her voice was", "bad_words": ["barely", "softly", "trembling"], "unmatched": "good"}

    def deeper(**kw):
        trainer = ElarablationTrainer(make_tiny_model("llama"), _config(tmp_path, top_k=300, train_deeper_rows=True, **kw),
                                      load_contexts(row), tok, peft_config=_lora())
        return [r for r in trainer._rows if r.depth > 1]

    every = deeper()
    assert len(every) > 4 and all(0 < r.path_prob < 1 for r in every)
    # a child's path probability is its parent's times its own token's probability there: it only falls
    by_ids = {tuple(r.input_ids): r for r in every}
    for r in every:
        parent = by_ids.get(tuple(r.input_ids[:-1]))
        assert parent is None or r.path_prob < parent.path_prob
    cut = sorted(r.path_prob for r in every)[len(every) // 2]
    likely = deeper(min_path_prob=cut)
    assert 0 < len(likely) < len(every) and all(r.path_prob >= cut for r in likely)
    # the same from the context file's own hyperparameter (what auto writes), and a bad value is one line
    from_file = ElarablationTrainer(make_tiny_model("llama"), _config(tmp_path, top_k=300, train_deeper_rows=True),
                                    load_contexts({**row, "min_path_prob": cut}), tok, peft_config=_lora())
    assert len([r for r in from_file._rows if r.depth > 1]) == len(likely)
    with pytest.raises(HfSteerError, match="min_path_prob=2"):
        load_contexts({**row, "min_path_prob": 2})
    with pytest.raises(HfSteerError, match="min_path_prob=-1"):
        _config(tmp_path, min_path_prob=-1)


def test_a_beginning_of_bad_words_is_pushed_at_the_slot_by_its_deeper_rows_bad_share(tmp_path):
    """first_token_push: a deeper row records how often the base turns its beginning into a bad word there, and
    the slot then counts that beginning as bad with that share (off: pending, left to the tether)."""
    tok = make_tokenizer("bytelevel")
    # two-letter words: the tiny byte-level vocabulary (300 tokens) spells " so" as " s" + "o", one level deep
    row = {"text": "Her voice was", "bad_words": ["so", "at", "in"], "unmatched": "good"}
    for push in (True, False):
        trainer = ElarablationTrainer(make_tiny_model("llama"), _config(tmp_path, top_k=300, first_token_push=push,
                                                                        train_deeper_rows=True),
                                      load_contexts(row), tok, peft_config=_lora())
        slot = trainer._rows[0]
        children = [r for r in trainer._rows if r.depth == 2]
        assert children and all(r.parent is slot for r in children)
        assert set(slot.bad_share) == {r.input_ids[-1] for r in children}
        assert all(0 <= q <= 1 for q in slot.bad_share.values()) and any(q > 0 for q in slot.bad_share.values())
        top = torch.tensor([[t for t in slot.bad_share] + [0] * (slot.top_k - len(slot.bad_share))])
        _, _, bad, valid, share = trainer._candidates(top, [slot])
        pushed = {t for k, t in enumerate(top[0].tolist()) if bad[0, k]}
        if push:
            assert pushed == {t for t, q in slot.bad_share.items() if q > 0}
            assert all(share[0, k] == slot.bad_share[t] for k, t in enumerate(top[0].tolist()) if t in pushed)
        else:
            assert not pushed and not valid[0, : len(slot.bad_share)].any() and not share.any()


def test_deeper_rows_train_by_default_and_off_are_only_read(tmp_path):
    """train_deeper_rows (the default): the rest of a bad word after its beginning trains too; off, the slot still
    gets its beginnings' bad shares from the deeper rows, but only the slot is a training row; without
    first_token_push nothing else decides a beginning, so they train."""
    tok = make_tokenizer("bytelevel")
    row = {"text": "Her voice was", "bad_words": ["so", "at", "in"], "unmatched": "good"}

    def rows(**kw):
        return ElarablationTrainer(make_tiny_model("llama"), _config(tmp_path, top_k=300, **kw),
                                   load_contexts(row), tok, peft_config=_lora())._rows

    read = rows(train_deeper_rows=False)
    assert [r.depth for r in read] == [1] and any(q > 0 for q in read[0].bad_share.values())
    trained = rows()
    assert trained[0].bad_share == read[0].bad_share and max(r.depth for r in trained) > 1
    assert max(r.depth for r in rows(first_token_push=False, train_deeper_rows=False)) > 1


def test_checkpoint_and_resume(tmp_path):
    tok = make_tokenizer("bytelevel")
    args = _config(tmp_path, num_train_epochs=4, save_strategy="steps", save_steps=2, per_device_train_batch_size=2,
                   auto_keep=0)  # no generated keep rows: 2 steps an epoch
    ElarablationTrainer(make_tiny_model("llama"), args, load_contexts(ROWS[:2]), tok, peft_config=_lora()).train()
    checkpoint = Path(args.output_dir) / "checkpoint-2"
    assert (checkpoint / "adapter_model.safetensors").is_file() and (checkpoint / "trainer_state.json").is_file()
    resumed = ElarablationTrainer(make_tiny_model("llama"), args, load_contexts(ROWS[:2]), tok, peft_config=_lora())
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.state.global_step == 4
    # our own short card, not TRL's "fine-tuned version of [None]" nor PEFT's "[More Information Needed]"
    for folder in (checkpoint, Path(args.output_dir) / "checkpoint-4"):
        card = (folder / "README.md").read_text()
        assert "# Elarablation adapter" in card and "None" not in card and "More Information Needed" not in card


def test_qlora_4bit_on_cpu(tmp_path, monkeypatch):
    """A 4-bit model the user quantized himself: the trainer keeps its layers off bitsandbytes' packed
    AVX512-BF16 path (no autograd there), simulated here on any CPU."""
    bnb = pytest.importorskip("bitsandbytes")
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    monkeypatch.setattr(bnb.nn.modules, "has_avx512bf16", lambda: True)
    folder = tmp_path / "tiny"
    make_tiny_model("llama", hidden_size=64, intermediate_size=128).save_pretrained(folder)
    tok = make_tokenizer("bytelevel")
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, device_map={"": "cpu"}, quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32))
    except Exception as e:  # bitsandbytes builds without a CPU backend
        pytest.skip(f"4-bit loading unavailable here: {e}")
    packed = [m for m in model.modules() if hasattr(m, "support_avx512bf16_for_cpu")]
    assert packed and all(m.support_avx512bf16_for_cpu for m in packed)  # what bitsandbytes would do
    with pytest.raises(HfSteerError, match="pass peft_config"):
        ElarablationTrainer(model, _config(tmp_path), load_contexts(ROWS[:1]), tok)
    trainer = ElarablationTrainer(model, _config(tmp_path, num_train_epochs=1, gradient_checkpointing=False),
                                  load_contexts(ROWS[:2]), tok, peft_config=_lora())
    assert not any(m.support_avx512bf16_for_cpu for m in packed)
    trainer.train()
    assert trainer.state.global_step == 1
    assert any("lora" in n for n, p in trainer.model.named_parameters() if p.requires_grad)


def test_bad_inputs(tmp_path):
    tok = make_tokenizer("bytelevel")
    with pytest.raises(HfSteerError, match="top_k=1000 is out of range: use a value in 1..300"):
        ElarablationTrainer(make_tiny_model("llama"), _config(tmp_path, top_k=1000), load_contexts(ROWS[:1]), tok)
    with pytest.raises(HfSteerError, match="is empty"):
        ElarablationTrainer(make_tiny_model("llama"), _config(tmp_path), [], tok)
    with pytest.raises(HfSteerError, match="renders to zero tokens"):
        ElarablationTrainer(make_tiny_model("llama"), _config(tmp_path), load_contexts({"text": ""}), tok)
    chat = load_contexts({"text": "My name is", "chat": True, "user": "hi"})
    with pytest.raises(HfSteerError, match="chat template"):
        ElarablationTrainer(make_tiny_model("llama"), _config(tmp_path), chat, make_tokenizer(chat_template=False))


def test_train_with_a_seed_gives_the_same_adapter_twice(tmp_path):
    from hf_steer.elarablation.pipeline import train

    def adapter(folder):
        model, tok = make_tiny_model("llama"), make_tokenizer("bytelevel")
        torch.manual_seed(len(folder))  # whatever the caller's random state was
        result = train(load_contexts(ROWS[:2]), tmp_path / folder, model, tokenizer=tok,
                       num_train_epochs=1, top_k=20, disable_tqdm=True, anchor_tokens=16, seed=3)
        return {k: v.detach().clone() for k, v in result["trainer"].model.named_parameters() if "lora_" in k}

    first, second = adapter("a"), adapter("bb")
    assert first.keys() == second.keys() and first
    for name in first:
        torch.testing.assert_close(first[name], second[name])


def _context_drift(model, tok, text: str) -> float:
    """KL(base || tuned) averaged over the positions of ``text`` before its last (the slop slot)."""
    from hf_steer.benchmarking import kl_per_position

    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        tuned = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        with model.disable_adapter():
            base = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    return kl_per_position(base, tuned).mean().item()


def test_context_hold_keeps_the_text_before_the_slot_and_still_trains_the_slot(tmp_path):
    """`context_weight` (auto's hold on the model's own story): the same training moves the distributions
    at the context's earlier positions far less, and the slot's bad mass still falls."""
    tok = make_tokenizer("bytelevel")
    rows = [{"text": "Once upon a time the old sailor looked at the sea and his voice was barely", "bad": ["^ ?[a-m]"]}]
    drift, bad = {}, {}
    for weight in (0.0, 100.0):
        torch.manual_seed(0)
        args = _config(tmp_path / str(weight), num_train_epochs=8, learning_rate=2e-2, min_threshold=0.001,
                       anchor_weight=0.0, auto_keep=0, context_weight=weight)
        trainer = ElarablationTrainer(make_tiny_model("llama"), args, load_contexts(rows), tok, peft_config=_lora())
        trainer.train()
        logs = [e for e in trainer.state.log_history if "bad_mass" in e]
        assert ("context_kl" in logs[0]) == (weight > 0)
        drift[weight] = _context_drift(trainer.model, tok, rows[0]["text"])
        bad[weight] = (logs[0]["bad_mass"], logs[-1]["bad_mass"])
    assert drift[100.0] < 0.25 * drift[0.0]
    assert bad[100.0][1] < bad[100.0][0]
    with pytest.raises(HfSteerError, match="context_weight=-1"):
        _config(tmp_path, context_weight=-1.0)
    with pytest.raises(HfSteerError, match="context_weight needs a LoRA adapter"):
        ElarablationTrainer(make_tiny_model("llama"), _config(tmp_path / "full", context_weight=1.0),
                            load_contexts(rows), tok)


def test_context_hold_reads_the_written_text_not_the_chat_prompt(tmp_path):
    """A chat context's template, system and user turns are given, never written: the hold's KL is the mean over
    the positions from the prompt's last token (it predicts the first written token) to the one before the slot,
    and raw text is held from its first token."""
    from hf_steer.benchmarking import kl_per_position
    from hf_steer.elarablation.contexts import prompt_length, tokenize_context

    tok = make_tokenizer("bytelevel")
    rows = load_contexts([{"chat": True, "user": "Tell me a story about the sea.", "system": "Be brief.",
                           "text": "Once upon a time the old sailor looked at the", "bad_words": ["zyzzyva"]},
                          {"text": "Her voice was barely", "bad_words": ["zyzzyva"]}])
    torch.manual_seed(0)
    args = _config(tmp_path, anchor_weight=0.0, auto_keep=0, context_weight=10.0, let_go_beginnings=False)
    trainer = ElarablationTrainer(make_tiny_model("llama"), args, rows, tok, peft_config=_lora())
    chat, raw = trainer._rows
    assert chat.held_from == prompt_length(rows[0], tok, tokenize_context(rows[0], tok)) - 1 > 5
    assert raw.held_from == 0
    with torch.no_grad():  # move the adapter off zero, so the model and its reference differ
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    trainer.model.eval()
    batch = trainer._collate([{"input_ids": r.input_ids, "row_index": i} for i, r in enumerate(trainer._rows)])
    with torch.no_grad():
        _, kl = trainer._context_hold(trainer.model, batch, [0, 1])
        by_hand = []
        for row in (chat, raw):
            ids = torch.tensor([row.input_ids])
            tuned = torch.log_softmax(trainer.model(input_ids=ids).logits[0].float(), -1)
            with trainer.model.disable_adapter():
                base = torch.log_softmax(trainer.model(input_ids=ids).logits[0].float(), -1)
            held = slice(row.held_from, len(row.input_ids) - 1)
            by_hand.append(kl_per_position(base[held], tuned[held]))
    assert float(kl) > 1e-6
    assert float(kl) == pytest.approx(float(torch.cat(by_hand).mean()), rel=1e-4)


def test_context_hold_lets_bad_words_go_where_the_text_before_the_slot_uses_them(tmp_path):
    """auto's contexts are stories that use other patterns before the slot: the hold holds every position to
    the reference except the bad words' own tokens, which it lets fall to bad_ratio of it (a plain hold held
    them up). The same training with a bad word the text never uses holds its " and"."""
    tok = make_tokenizer("bytelevel")
    text = "the sea and the sky and the sun and his old voice was"
    and_id = tok(" and", add_special_tokens=False)["input_ids"]
    assert len(and_id) == 1  # a whole word in one token: the hold lets it go
    ids = tok(text, return_tensors="pt")["input_ids"]
    before_and = [i - 1 for i, t in enumerate(ids[0].tolist()) if t == and_id[0]]
    kept = {}
    for word in ("and", "zzz"):
        torch.manual_seed(0)
        model = make_tiny_model("llama")
        # a random model gives " and" ~1/vocab everywhere, too little for a hold to move: learn the text until
        # " and" is ~0.35 where it comes (near 1, a tenth of its odds would still leave it near 1)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(14):
            model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        # one row, held once a step (its deeper rows ride in its step, not held again): 60 steps
        args = _config(tmp_path / word, num_train_epochs=60, learning_rate=2e-2, anchor_weight=0.0, auto_keep=0,
                       context_weight=100.0)
        rows = [{"text": text, "bad_words": [word], "unmatched": "good"}]
        trainer = ElarablationTrainer(model, args, load_contexts(rows), tok, peft_config=_lora())
        mask = trainer._hold_masks[trainer._rows[0].hold_class]
        assert bool(mask[and_id[0]]) == (word == "and")
        assert not mask[tok(" the", add_special_tokens=False)["input_ids"][0]]
        trainer.train()
        model = trainer.model
        with torch.no_grad():
            tuned = torch.softmax(model(input_ids=ids).logits[0].float(), -1)[before_and, and_id[0]]
            with model.disable_adapter():
                base = torch.softmax(model(input_ids=ids).logits[0].float(), -1)[before_and, and_id[0]]
        assert base.min() > 0.2  # the base predicts " and" where the text has it
        kept[word] = (tuned / base).mean().item()
    assert kept["and"] < 0.6 and kept["zzz"] > 0.9, kept


@pytest.mark.parametrize("kind", ["bytelevel", "metaspace"])
def test_the_holds_whole_word_masks_are_word_match_over_the_whole_vocabulary(tmp_path, kind):
    """The hold's mask of a bad word is found through an index of the tokens' first letters: it must be exactly the
    tokens ``word_match`` calls the whole word, one-letter, capitalised and apostrophe words included."""
    tok = make_tokenizer(kind)
    words = ["and", "sea", "a", "Sky", "don't", "the", "zzz"]
    rows = [{"text": "the sea and the sky", "bad_words": words, "unmatched": "good"}]
    args = _config(tmp_path, anchor_weight=0.0, auto_keep=0, context_weight=100.0)
    trainer = ElarablationTrainer(make_tiny_model("llama"), args, load_contexts(rows), tok, peft_config=_lora())
    texts = trainer._vocabulary_texts(trainer.model.get_output_embeddings().weight.shape[0])  # as the hold read it
    found = 0
    for word in words:
        expected = torch.tensor([word_match(t, word) == "bad" for t in texts])
        assert torch.equal(trainer._whole_word_mask(word, texts), expected), word
        found += int(expected.sum())
    assert found >= 3  # " and", " the", " sea" at least: the comparison is not between empty masks


def test_hold_lets_listed_words_go_except_where_the_context_wrote_them(tmp_path):
    """``hold_let_go_words``: the one-token words of a list are let go at every held position of a context with bad
    words, but a listed word its context has already written is held there (a name introduced earlier is
    referred to again); without the list only the row's own bad words are let go."""
    tok = make_tokenizer("bytelevel")
    word_list = tmp_path / "words.txt"
    word_list.write_text("# my list\nTo\nand\n\n", encoding="utf-8")
    rows = [{"text": "the sea and the sky and the sun", "bad_words": ["zzz"], "unmatched": "good"},
            {"text": "the road to the sea and back", "bad_words": ["zzz"], "unmatched": "good"},
            {"text": "the sea's sky and's end", "bad_words": ["zzz"], "unmatched": "good"}]
    to_id, and_id, the_id = (tok(w, add_special_tokens=False)["input_ids"][0] for w in (" to", " and", " the"))
    masks = {}
    for spec in (None, str(word_list)):
        args = _config(tmp_path / str(bool(spec)), anchor_weight=0.0, auto_keep=0, context_weight=100.0,
                       hold_let_go_words=spec)
        trainer = ElarablationTrainer(make_tiny_model("llama"), args, load_contexts(rows), tok, peft_config=_lora())
        masks[spec] = [trainer._hold_masks[r.hold_class] for r in trainer._rows if r.depth == 1]
    first, second, third = masks[str(word_list)]
    assert first[to_id] and not first[and_id] and not first[the_id]  # " and" is written before the slot: held
    assert not second[to_id] and not second[and_id]  # both written in the second context
    assert third[to_id] and not third[and_id]  # a possessive ("and's") writes its word
    assert not any(m[to_id] or m[and_id] for m in masks[None])
    with pytest.raises(HfSteerError, match="is not a file"):
        _config(tmp_path, hold_let_go_words=str(tmp_path / "missing.txt"))
    (tmp_path / "empty.txt").write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(HfSteerError, match="has no words"):
        _config(tmp_path, hold_let_go_words=str(tmp_path / "empty.txt"))
    (tmp_path / "rare.txt").write_text("zzyzx\ntook a zzyzx\n", encoding="utf-8")  # nothing the model has in one token
    args = _config(tmp_path / "rare", anchor_weight=0.0, auto_keep=0, context_weight=100.0,
                   hold_let_go_words=str(tmp_path / "rare.txt"))
    with pytest.raises(HfSteerError, match="none of its 2 words and phrases ends in a word that is one token of this model"):
        ElarablationTrainer(make_tiny_model("llama"), args, load_contexts(rows), tok, peft_config=_lora())


def test_hold_lets_a_listed_phrase_go_after_its_other_words(tmp_path):
    """A phrase of ``hold_let_go_words`` (a line of several words; ``antislop``: the slop index's bigrams and trigrams)
    lets its last word go in the hold where the context's text ends with its other words, and nowhere else; not
    where the context has already written the whole phrase or, capitalised, the word (a name or place it refers back
    to), nor words apart ("sea. And"); a listed word is let go by the word list, not twice."""
    tok = make_tokenizer("bytelevel")
    word_list = tmp_path / "phrases.txt"
    word_list.write_text("the sea and\nsky to\nthe\nsea the\n", encoding="utf-8")
    rows = [{"text": "the sea and the sky and the sea to the sea", "bad_words": ["zzz"], "unmatched": "good"},
            {"text": "the sea. And the sky to the sky is Sea, the sea", "bad_words": ["zzz"], "unmatched": "good"},
            {"text": "the sea and then the sea", "kind": "keep", "expected": "and"}]
    args = _config(tmp_path / "run", anchor_weight=0.0, auto_keep=0, context_weight=100.0,
                   hold_let_go_words=str(word_list))
    trainer = ElarablationTrainer(make_tiny_model("llama"), args, load_contexts(rows), tok, peft_config=_lora())
    and_id, to_id = (tok(w, add_special_tokens=False)["input_ids"] for w in (" and", " to"))
    assert len(and_id) == len(to_id) == 1
    assert trainer._listed_phrases[("the", "sea")] == {"and": and_id} and trainer._listed_phrases[("sky",)] == {"to": to_id}
    assert "the" in trainer._listed and ("sea",) not in trainer._listed_phrases  # "sea the": a listed word, let go by the list

    def let_go(row):
        ends = [tok.decode(row.input_ids[:p + 1]) for p in range(len(row.input_ids) - 1)]
        found = set() if row.hold_let_go is None else set(zip(*(t.tolist() for t in row.hold_let_go[:2])))
        return {(ends[p], t) for p, t in found}

    first, second = (r for r in trainer._rows if r.kind == "slop" and r.depth == 1)
    # the first "the sea" (then " and": the phrase is written from there on, so the later ones are held) and "sky"
    assert let_go(first) == {("the sea", and_id[0]), ("the sea and the sky", to_id[0])}, let_go(first)
    # "sea. And" is not "sea and"; "sky to" is written, so the second "sky" holds " to"; "Sea" is written capitalised
    assert let_go(second) == {("the sea", and_id[0]), ("the sea. And the sky", to_id[0])}, let_go(second)
    keep = next(r for r in trainer._rows if r.kind == "keep")
    assert keep.hold_let_go is None


def test_context_hold_lets_a_phrase_word_go_only_after_its_phrase(tmp_path):
    """A bad phrase ("the to") is not a bad word: the hold lets its last word go where the held text ends with
    the words before it (after "the"), and nowhere else; a row whose own bad word it is lets it go once."""
    tok = make_tokenizer("bytelevel")
    text = "the sea and the to and a to and the in and his old voice was"  # " to" is one token of this tokenizer
    to_id = tok(" to", add_special_tokens=False)["input_ids"]
    assert len(to_id) == 1
    ids = tok(text, return_tensors="pt")["input_ids"]
    ends = [tok.decode(ids[0, :p + 1]) for p in range(ids.shape[1] - 1)]
    after_the = [p for p, so_far in enumerate(ends) if so_far.endswith("the")]  # the first "the" is two tokens
    after_a = [p for p, so_far in enumerate(ends) if so_far.endswith(" a")]
    kept = {}
    for phrase in ("the to", "the zzz"):
        torch.manual_seed(0)
        model = make_tiny_model("llama")
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)  # learn the text (see the test above)
        for _ in range(14):
            model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        args = _config(tmp_path / phrase.replace(" ", "_"), num_train_epochs=20, learning_rate=2e-2, anchor_weight=0.0,
                       auto_keep=0, context_weight=100.0, train_deeper_rows=True)
        rows = [{"text": text, "bad_phrases": [phrase], "unmatched": "good"}]
        trainer = ElarablationTrainer(model, args, load_contexts(rows), tok, peft_config=_lora())
        row = trainer._rows[0]
        if phrase == "the to":
            positions, tokens, shares = row.hold_let_go
            assert sorted(set(positions.tolist())) == after_the and to_id[0] in tokens.tolist()
            assert bool((shares == 1).all()) and not set(positions.tolist()) & set(after_a)
            again = ElarablationTrainer(make_tiny_model("llama"), args, load_contexts(
                [{"text": text, "bad_words": ["to"], "bad_phrases": [phrase], "unmatched": "good"}]), tok,
                peft_config=_lora())
            assert again._rows[0].hold_let_go is None or to_id[0] not in again._rows[0].hold_let_go[1].tolist()
        else:
            assert row.hold_let_go is None
        trainer.train()
        model = trainer.model
        with torch.no_grad():
            tuned = torch.softmax(model(input_ids=ids).logits[0].float(), -1)[:, to_id[0]]
            with model.disable_adapter():
                base = torch.softmax(model(input_ids=ids).logits[0].float(), -1)[:, to_id[0]]
        the_to = [p for p in after_the if ids[0, p + 1] == to_id[0]]
        assert base[the_to].min() > 0.2  # the base predicts " to" where the text has it after "the"
        kept[phrase] = (tuned[the_to] / base[the_to]).mean().item()
    assert kept["the to"] < 0.6 and kept["the zzz"] > 0.9, kept


def test_may_reach_misses_no_row_and_projects_few_where_the_written_token_is_likely():
    """``may_reach``: the rows where a token of a list may reach a floor, from the logits of those tokens and the
    written ones alone (their logsumexp bounds the whole vocabulary's from below): every row that reaches it is in,
    and with the written token likely (a model's own text), most rows that do not are out."""
    from hf_steer.elarablation.trainer import may_reach

    torch.manual_seed(0)
    head = torch.nn.Linear(16, 500, bias=True)
    states = torch.randn(400, 16) * 10  # peaked: the likeliest token has 0.55 on average
    logits = head(states)
    written = logits.argmax(-1).tolist()  # the text writes its likely token
    written = [t if i % 4 else (t + 7) % 500 for i, t in enumerate(written)]  # and now and then another one
    tokens = [3, 17, 42, 99]
    with torch.no_grad():
        probs = torch.softmax(logits, -1)[:, tokens]
        for floor in (0.05, 0.01, 0.001):
            near = may_reach(head, states, tokens, written, floor)
            reached = (probs >= floor).any(-1)
            assert reached.any() and bool(near[reached].all())  # none missed
            assert int(near.sum()) < len(states) / 4
    # a head that is not a plain float Linear (a quantized one): every row
    packed = torch.nn.Linear(16, 500)
    packed.weight = torch.nn.Parameter(torch.zeros(4000, 1, dtype=torch.uint8), requires_grad=False)
    assert bool(may_reach(packed, states, tokens, written, 0.05).all())


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_deeper_rows_read_through_the_parents_cache_match_reading_them_whole(tmp_path, arch):
    """A word's beginning is read one and two tokens deeper with its parent's KV cache: each deeper row's figures
    (own bad mass, the beginnings' probabilities) are those of the row read whole, left-padded beside others."""
    tok = make_tokenizer("bytelevel")
    rows = [{"text": "Once upon a time the sailor", "bad_words": ["and", "a", "the", "an"], "unmatched": "good"},
            {"text": "The old man looked at the sea and", "bad_words": ["and", "a", "the", "an"], "unmatched": "good"}]
    torch.manual_seed(0)
    args = _config(tmp_path, top_k=200, anchor_weight=0.0, auto_keep=0, min_path_prob=0.0, train_deeper_rows=True,
                   per_device_train_batch_size=2)
    trainer = ElarablationTrainer(make_tiny_model(arch), args, load_contexts(rows), tok, peft_config=_lora())
    deeper = [r for r in trainer._rows if r.depth > 1 and r.own_bad is not None]
    assert len({r.depth for r in deeper}) >= 2, "the test needs rows two and three tokens deep"
    model = trainer.model
    with torch.no_grad(), model.disable_adapter():
        ids, mask, pos = left_pad([r.input_ids for r in deeper], tok.pad_token_id)
        probs = torch.softmax(last_position_logits(model, ids, mask, pos).float(), -1)
    for row, p in zip(deeper, probs):
        assert row.own_bad == pytest.approx(sum(float(p[t]) for t in range(len(p))
                                                if row.rules.classify(trainer._texts(t), t) == "bad"
                                                and t in p.topk(row.top_k).indices), abs=1e-5)
        for token, prob in row.pending_probs.items():
            assert prob == pytest.approx(float(p[token]), abs=1e-5)


@pytest.mark.parametrize("arch", ["llama", "gemma3_text"])
def test_trained_deeper_rows_are_not_held_again_and_come_read(tmp_path, monkeypatch, arch):
    """train_deeper_rows with the hold: a deeper row is its parent's text and one token, so it trains in its
    context's step (the steps are the contexts') and the hold reads it at the context only; its slot reference and
    the frozen bottom's output are the preparation's one-token read, the same as reading the row whole, so the
    trainer never reads it again."""
    tok = make_tokenizer("bytelevel")
    row = {"text": "Once upon a time her voice was", "bad_words": ["so", "at", "in", "sea"], "unmatched": "good"}
    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"], layers_to_transform=[2, 3])
    # Gemma-3: sliding-window layers, a window longer than the texts (a packed column sees the whole context)
    extra = {"layer_types": ["sliding_attention", "full_attention"] * 2, "sliding_window": 64} \
        if arch == "gemma3_text" else {}
    trainer = ElarablationTrainer(make_tiny_model(arch, num_hidden_layers=4, **extra), _config(
        tmp_path, top_k=300, train_deeper_rows=True, context_weight=10.0, auto_keep=0, anchor_weight=0.0,
        per_device_train_batch_size=4), load_contexts(row), tok, peft_config=lora)
    deeper = [i for i, r in enumerate(trainer._rows) if r.parent is not None and r.ref_logits is not None]
    assert trainer._first == 2 and {trainer._rows[i].depth for i in deeper} == {2, 3}  # " s" + "e" + "a"
    model = trainer.model
    with torch.no_grad(), model.disable_adapter():
        for i in deeper:
            out = model(input_ids=torch.tensor([trainer._rows[i].input_ids]), output_hidden_states=True)
            torch.testing.assert_close(trainer._ref_cache[i], out.logits[0, -1].float(), atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(trainer._rows[i].ref_bottom, out.hidden_states[2][0], atol=1e-4, rtol=1e-4)
    held = []
    real_hold = trainer._context_hold
    monkeypatch.setattr(trainer, "_context_hold", lambda m, inputs, slop: held.append(
        [trainer._rows[int(inputs["row_index"][b])].parent is None for b in slop]) or real_hold(m, inputs, slop))
    monkeypatch.setattr(trainer, "_fill_reference", lambda m, indices, *a, **k: [
        pytest.fail(f"row {i} was read again") for i in indices if i not in trainer._ref_cache])
    assert [trainer._rows[i].input_ids for i in trainer.train_dataset["row_index"]] == [trainer._rows[0].input_ids]
    assert trainer._packs_riders  # the model takes a 4D mask: the deeper rows are packed after the slot
    batch = trainer._collate([{"input_ids": trainer._rows[0].input_ids, "row_index": 0}])
    riders = [i for i, r in enumerate(trainer._rows) if r.parent is not None]
    assert batch["row_index"].tolist() == [0] and batch["riders"].tolist() == riders
    trainer.compute_loss(model, batch)
    assert held == [[True]]

    # packed after the slot (one column each) or read as rows of their own: the same logits and hold
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    model.eval()
    figures = []
    for packs in (True, False):
        trainer._packs_riders = packs
        batch = trainer._collate([{"input_ids": trainer._rows[0].input_ids, "row_index": 0}])
        assert ("riders" in batch) == packs and len(batch["input_ids"]) == (1 if packs else 1 + len(riders))
        with torch.no_grad():
            figures.append(real_hold(model, batch, [0]))
    torch.testing.assert_close(figures[0][0], figures[1][0], atol=1e-4, rtol=1e-4)
    assert float(figures[0][1]) == pytest.approx(float(figures[1][1]), rel=1e-4) and float(figures[0][1]) > 1e-6
    # without the hold (train's default) the packed forward runs every layer from the token ids: the same logits
    trainer._packs_riders = True
    batch = trainer._collate([{"input_ids": trainer._rows[0].input_ids, "row_index": 0}])
    with torch.no_grad():
        packed = trainer._slot_forward(model, batch, None, trainer._head_alone)[1]
        ids, mask, pos = left_pad([trainer._rows[i].input_ids for i in [0] + riders], tok.pad_token_id)
        torch.testing.assert_close(packed, last_position_logits(model, ids, mask, pos), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", ["llama", "gemma3_text", "gpt2"])
def test_context_hold_and_anchor_from_kept_states_match_whole_forwards(tmp_path, arch):
    """The hold's reference is the head applied to the kept last hidden states, and the trained forward (and the
    anchor's) runs from the first adapted layer on the kept output of the frozen layers below it: the same
    logits, KL and slot reference as whole forwards, on a batch padded differently than when the rows were
    kept. Gemma-3 has sliding-window layers (a window shorter than the texts here); GPT-2 has no ``layers``
    stack, so it runs whole."""
    tok = make_tokenizer("bytelevel")
    rows = [{"text": "Once upon a time the old sailor looked at the sea", "bad_words": ["sea"], "unmatched": "good"},
            {"text": "Her voice was", "bad_words": ["barely"], "unmatched": "good"},
            {"text": "The dwarf grunted and the sea was", "bad_words": ["calm"], "unmatched": "good"}]
    torch.manual_seed(0)
    args = _config(tmp_path, anchor_weight=1.0, anchor_tokens=40, auto_keep=0, context_weight=10.0,
                   per_device_train_batch_size=2)
    modules = ["c_attn"] if arch == "gpt2" else ["q_proj", "v_proj", "o_proj"]
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=modules, layers_to_transform=[2, 3])
    extra = {"layer_types": ["sliding_attention", "full_attention"] * 2} if arch == "gemma3_text" else {}
    trainer = ElarablationTrainer(make_tiny_model(arch, num_hidden_layers=4, n_layer=4, **extra), args,
                                  load_contexts(rows), tok, peft_config=lora)
    assert trainer._first == (0 if arch == "gpt2" else 2) and trainer._skips_bottom == (arch != "gpt2")
    if arch != "gpt2":  # kept while the tree was read
        assert all(r.ref_hidden is not None and r.ref_bottom is not None for r in trainer._rows if r.depth == 1)
    with torch.no_grad():  # move the adapter off zero, so the model and its reference differ
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    batch = trainer._collate([{"input_ids": trainer._rows[i].input_ids, "row_index": i} for i in (2, 0, 1)])
    trainer.model.eval()  # GPT-2's dropout would draw other masks in the two runs
    figures = {}
    for kept in (True, False):
        trainer._keeps_hidden = trainer._keeps_bottom = trainer._skips_bottom = kept and arch != "gpt2"
        trainer._ref_cache, trainer._anchor_ref, trainer._anchor_bottom = {}, None, None
        with torch.no_grad():
            logits, kl = trainer._context_hold(trainer.model, batch, [0, 1, 2])
            anchor = trainer._anchor_kl(trainer.model)
        figures[kept] = (float(kl), torch.stack([trainer._ref_cache[i] for i in (0, 1, 2)]), logits, float(anchor))
    assert figures[True][0] > 1e-6 and figures[True][3] > 1e-6  # the adapter moved the model
    assert figures[True][0] == pytest.approx(figures[False][0], rel=1e-4)
    assert figures[True][3] == pytest.approx(figures[False][3], rel=1e-4)
    torch.testing.assert_close(figures[True][1], figures[False][1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(figures[True][2], figures[False][2], atol=1e-4, rtol=1e-4)


def test_a_model_whose_layers_cannot_be_skipped_runs_whole(monkeypatch):
    """The skip is checked once on the model: a decoder loop that reads a layer's output otherwise (a tuple, or
    more work between layers) gives other logits or fails, and the trainer then runs every layer."""
    from hf_steer.elarablation import trainer as trainer_module

    model = make_tiny_model("llama", num_hidden_layers=3)
    layers = model.model.layers
    ids = list(range(5, 20))
    assert trainer_module.bottom_skip_works(model, layers, 2, ids)
    monkeypatch.setattr(trainer_module._PassThrough, "forward", lambda self, hidden_states, *a, **k: (hidden_states,))
    assert not trainer_module.bottom_skip_works(model, layers, 2, ids)
    monkeypatch.setattr(trainer_module._PassThrough, "forward", lambda self, hidden_states, *a, **k: 2 * hidden_states)
    assert not trainer_module.bottom_skip_works(model, layers, 2, ids)
    assert all(not isinstance(layer, trainer_module._PassThrough) for layer in layers)  # put back each time


def _learned_model(arch: str, tok, texts: list[str], steps: int = 30, **overrides):
    """A tiny model that has learned ``texts``: its next-token probabilities are peaked where the texts go on."""
    torch.manual_seed(0)
    model = make_tiny_model(arch, **overrides)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        for text in texts:
            ids = tok(text, return_tensors="pt")["input_ids"]
            model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    return model


@pytest.mark.parametrize("arch,window", [("llama", None), ("gemma3_text", 16), ("gemma3_text", 64)])
def test_hold_lets_go_beginnings_by_their_share_read_whole(tmp_path, arch, window, monkeypatch):
    """let_go_beginnings: at every held position where the first token of a bad word (" s" of "sea": " s", "e", "a"
    here) is likely enough (5% by default; lowered here), the hold lets it go by the reference's share of going on to
    a bad word. The shares are read with the context's KV cache and the later positions masked out (read whole where
    Gemma's window is shorter than the text): the same as reading each path whole. A position after the word was
    written is a back-reference and stays held. The hold's KL, on a left-padded batch, uses exactly that target."""
    from hf_steer.elarablation import trainer as trainer_module
    from hf_steer.elarablation.trainer import MAX_WORD_DEPTH

    # the learned tiny model is sure of most next tokens: a lower floor lets several paths through
    monkeypatch.setattr(trainer_module, "HOLD_BEGINNING_MIN_PROB", 1e-3)
    floor = trainer_module.HOLD_BEGINNING_MIN_PROB
    tok = make_tokenizer("bytelevel")
    texts = ["the sun and the sand and the sea and the sun and the sand and the sky and the",
             "the sea and the sun and the sea and the sand and the"]
    assert tok(" sea", add_special_tokens=False)["input_ids"].__len__() == 3
    # learned, not yet sure of every next letter; Gemma's window shorter (16: read whole) or longer than the texts
    model = _learned_model(arch, tok, texts, steps=6, **({"sliding_window": window} if window else {}))
    words = ["sea", "sky"]
    rows = [{"text": t, "bad_words": words, "unmatched": "good"} for t in texts]
    args = _config(tmp_path, context_weight=100.0, anchor_weight=0.0, auto_keep=0, top_k=20,
                   per_device_train_batch_size=2, train_deeper_rows=False)  # the contexts alone
    trainer = ElarablationTrainer(model, args, load_contexts(rows), tok, peft_config=_lora())
    model = trainer.model

    def probs(seq):
        with torch.no_grad(), model.disable_adapter():
            return torch.softmax(model(input_ids=torch.tensor([seq])).logits[0, -1].float(), -1)

    def share(seq, prefix, path, levels):  # the reference's probability of going on from seq to a bad word
        values, tokens = probs(seq).topk(args.top_k)
        total = 0.0
        for v, t in zip(values.tolist(), tokens.tolist()):
            kind = trainer._word_kind(tuple(words), prefix, t)
            if kind == "bad":
                total += v
            elif kind == "pending" and levels > 0 and path * v >= floor:
                total += v * share(seq + [t], prefix + trainer._texts(t), path * v, levels - 1)
        return total

    # the first tokens of the words as the tokenizer writes them (" s" of " sea"), when they only begin one
    firsts = {tok(f, add_special_tokens=False)["input_ids"][0] for w in words
              for f in (" " + w, w, " " + w.capitalize(), w.capitalize())}
    firsts = {t for t in firsts if trainer._word_kind(tuple(words), "", t) == "pending"}
    assert firsts
    for row in trainer._rows:
        ids = row.input_ids
        sea_end = next((p for p in range(len(ids)) if " sea " in tok.decode(ids[:p + 1]) + " "), len(ids))
        expected = {}
        for p in range(len(ids) - 1):
            values, tokens = probs(ids[:p + 1]).topk(args.top_k)
            for v, t in zip(values.tolist(), tokens.tolist()):
                if v < floor or t not in firsts:
                    continue
                if sea_end <= p and trainer._texts(t).strip() in ("s", "se"):
                    continue  # "sea" written: a back-reference
                s = min(share(ids[:p + 1] + [t], trainer._texts(t), v, MAX_WORD_DEPTH - 2), 1.0)
                if s > 0:
                    expected[(p, t)] = s
        positions, tokens, shares = row.hold_let_go
        got = {(int(p), int(t)): float(s) for p, t, s in zip(positions, tokens, shares)}
        assert got.keys() == expected.keys() and len(got) >= 3
        assert all(got[k] == pytest.approx(expected[k], abs=1e-4) for k in got), (got, expected)
        assert all(p < sea_end for p, _ in got if trainer._texts(_).strip() == "s")  # held after "sea"

    # the hold's KL on a left-padded batch: the reference with the beginnings let go by their shares
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    model.eval()
    batch = trainer._collate([{"input_ids": r.input_ids, "row_index": i} for i, r in enumerate(trainer._rows)])
    with torch.no_grad():
        _, kl = trainer._context_hold(model, batch, [0, 1])
        terms, held_terms = [], []
        for row in trainer._rows:
            ids = torch.tensor([row.input_ids])
            tuned = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
            with model.disable_adapter():
                reference = model(input_ids=ids).logits[0, :-1].float()
            positions, tokens, shares = row.hold_let_go
            target = reference.clone()
            target[positions, tokens] += torch.log1p(-shares * (1 - args.bad_ratio))
            for into, t in ((terms, target), (held_terms, reference)):
                t = torch.log_softmax(t, -1)
                into.append((t.exp() * (t - tuned)).sum(-1))
    expected, held = float(torch.cat(terms).mean()), float(torch.cat(held_terms).mean())
    # the same to float rounding; the KL with the beginnings held is further off than that by a wide margin
    assert abs(float(kl) - expected) < 1e-3 * expected and abs(float(kl) - expected) < 0.2 * abs(held - expected)


def test_bf16_on_cpu_runs_the_whole_loss_and_the_reads_before_it_under_autocast(tmp_path):
    """`--bf16` on a CPU: the forwards, the hold's own vocabulary projections (outside the model's forward) and the
    trainer's reads of the base model before training all compute in bf16; the adapter stays fp32 and still trains."""
    tok = make_tokenizer("bytelevel")
    rows = [{"text": "Once upon a time the old sailor looked at the sea and his voice was barely", "bad": ["^ ?[a-m]"]}]
    seen = {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        model = make_tiny_model("llama")
        dtypes = seen[bf16] = set()
        model.get_output_embeddings().register_forward_hook(lambda m, i, o, d=dtypes: d.add(o.dtype))
        args = _config(tmp_path / str(bf16), num_train_epochs=6, learning_rate=2e-2, min_threshold=0.001,
                       context_weight=100.0, tree_depth=2, bf16=bf16)
        trainer = ElarablationTrainer(model, args, load_contexts(rows), tok, peft_config=_lora())
        read_before = set(dtypes)
        trainer.train()
        logs = [e for e in trainer.state.log_history if "bad_mass" in e]
        assert logs[-1]["bad_mass"] < logs[0]["bad_mass"]
        assert read_before == {torch.bfloat16 if bf16 else torch.float32}  # the deeper rows' reads
        trained = [p for n, p in trainer.model.named_parameters() if p.requires_grad]
        assert trained and all(p.dtype == torch.float32 for p in trained)
        # and the trained model runs in fp32 again (accelerate had left its forward wrapped in autocast)
        during = set(dtypes)
        dtypes.clear()
        with torch.no_grad():
            trainer.model(input_ids=torch.tensor([tok(rows[0]["text"])["input_ids"]]))
        assert dtypes == {torch.float32}
        dtypes.clear()
        dtypes.update(during)  # what the training saw, for the last check
    assert seen == {False: {torch.float32}, True: {torch.bfloat16}}


def test_bf16_training_with_frozen_weights_stored_in_bf16_is_the_same_training(tmp_path, monkeypatch):
    """With bf16 on a CPU the frozen weights are stored in bf16 while the trainer reads the base model (autocast cast
    them again in every forward): every step's figures and the adapter are those of training without that, and the
    adapter moves each step (under one autocast around the whole training, each step ran the adapter as it was at
    the first: anchor KL 0 throughout)."""
    from hf_steer.elarablation import trainer as trainer_module

    tok = make_tokenizer("bytelevel")
    rows = [{"text": "Once upon a time the old sailor looked at the sea and his voice was barely", "bad": ["^ ?[a-m]"]},
            {"text": "The sea and the sky and the old sailor", "bad_words": ["sea", "sky"], "unmatched": "good"}]
    runs = []
    for stored in (True, False):
        if not stored:
            monkeypatch.setattr(trainer_module, "frozen_linears_in", lambda *a: contextlib.nullcontext())
        torch.manual_seed(0)
        args = _config(tmp_path / str(stored), num_train_epochs=3, learning_rate=2e-2, min_threshold=0.001,
                       context_weight=100.0, anchor_weight=10.0, logging_steps=1, bf16=True,
                       per_device_train_batch_size=1)
        trainer = ElarablationTrainer(make_tiny_model("llama"), args, load_contexts(rows), tok, peft_config=_lora())
        trainer.train()
        logs = [e for e in trainer.state.log_history if "bad_mass" in e]
        adapter = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
        runs.append((logs, adapter))
    (logs, adapter), (plain_logs, plain_adapter) = runs
    assert len(logs) >= 4 and any(e["anchor_kl"] > 0 for e in logs[1:])
    for e, plain in zip(logs, plain_logs):
        assert e.keys() == plain.keys() and all(e[k] == pytest.approx(plain[k], rel=1e-5, abs=1e-7) for k in e)
    assert all(torch.allclose(adapter[n], plain_adapter[n], atol=1e-6) for n in adapter)
