"""Keep contexts: a name introduced earlier must come back; generated from training contexts, or written by users."""

import pytest
from conftest import make_tiny_model, make_tokenizer
from peft import LoraConfig

from hf_steer.elarablation.config import ElarablationConfig
from hf_steer.elarablation.contexts import load_contexts
from hf_steer.elarablation.keep import BRIDGES, keep_rows, slot_words
from hf_steer.elarablation.trainer import ElarablationTrainer
from hf_steer.errors import HfSteerError


def test_keep_rows_introduce_a_banned_name_then_refer_back():
    tok = make_tokenizer("bytelevel")
    # (the tiny test tokenizer spells " Elara" as " " + "E" + ...: a rule on " " bans every name's first token)
    rows = list(load_contexts({"text": 'The elf girl nods. "My name is', "bad": ["^ $"], "unmatched": "neutral"}))
    keep = keep_rows(rows, tok, per_row=len(BRIDGES) + 1, names=("Elara", "Mira"))
    assert len(keep) == len(BRIDGES) + 1
    assert [r["expected"] for r in keep] == ["Elara", "Mira"] * (len(BRIDGES) // 2) + ["Elara"]  # names in turn
    for row in keep:
        assert row["kind"] == "keep" and row["text"].startswith(f'The elf girl nods. "My name is {row["expected"]}."')
    # the first is the echo: the slot's own words again, now that the name is known
    assert keep[0]["text"].endswith('She said it again: "My name is') and keep[0]["expected"] == "Elara"
    assert len({r["text"].split(".", 2)[-1] for r in keep[1:]}) == len(BRIDGES)  # then every bridge shape once
    unbanned = list(load_contexts({"text": 'The elf girl nods. "My name is', "bad": ["^x"], "unmatched": "neutral"}))
    assert keep_rows(unbanned, tok, per_row=2, names=("Elara",)) == []
    # a row that bans no stock name gets no keep row; a discovered word that is no name neither
    plain = list(load_contexts({"text": "Her voice was", "bad_words": ["barely"], "unmatched": "good"}))
    assert keep_rows(plain, tok, per_row=2) == []
    named = list(load_contexts({"text": "There once was a girl called", "bad_words": ["Lyra"], "unmatched": "good"}))
    assert [r["expected"] for r in keep_rows(named, tok, per_row=2)] == ["Lyra", "Lyra"]


def test_slot_words_are_the_open_speech_or_the_last_sentence():
    assert slot_words('The young witch grinned. "Hi! My name\'s') == '"Hi! My name\'s'  # the quote's speech so far
    assert slot_words("It rained. Once upon a time there lived a girl named ") == "Once upon a time there lived a girl named"
    assert slot_words('He said "hi." She was called') == 'She was called'
    tok = make_tokenizer("bytelevel")
    story = list(load_contexts({"text": "It rained all day. In the village lived a girl named", "bad_words": ["Lyra"],
                                "unmatched": "good"}))
    echo = keep_rows(story, tok, per_row=1)[0]  # narration: told again the same way
    assert echo["text"].endswith("still told it the same way: In the village lived a girl named")


def test_user_keep_contexts_in_a_file_and_their_one_line_error(tmp_path):
    path = tmp_path / "names.yaml"
    path.write_text("family: x\nrules: {good: ['^ [A-Z]'], bad: ['^ ?El']}\ntrain: ['Her name was']\n"
                    "keep:\n  - {text: 'Elara and Tom were friends. Tom was loud, while', expected: Elara}\n")
    rows = load_contexts(str(path))
    assert [r["kind"] for r in rows] == ["slop", "keep"] and rows[1]["expected"] == "Elara"
    path.write_text("family: x\ntrain: ['Her name was']\nkeep:\n  - {text: 'Tom was loud, while', expected: Elara}\n")
    with pytest.raises(HfSteerError, match="never introduces 'Elara' earlier in its text") as e:
        load_contexts(str(path))
    assert "\n" not in str(e.value)
    path.write_text("family: x\ntrain: ['Her name was']\nkeep:\n  - {text: 'Tom and Elara. Tom was loud, while'}\n")
    with pytest.raises(HfSteerError, match="has no 'expected' name"):
        load_contexts(str(path))


def test_keep_rows_are_held_while_the_slop_slot_is_trained(tmp_path):
    tok = make_tokenizer("bytelevel")
    contexts = load_contexts([
        {"text": 'The elf girl nods. "My name is', "bad": ["^ $"], "unmatched": "neutral"},
        {"text": "Elara and Tom were friends. Tom was loud, while", "kind": "keep", "expected": "Elara"},
    ])
    args = ElarablationConfig(output_dir=str(tmp_path), num_train_epochs=6, learning_rate=2e-2, top_k=300,
                              min_threshold=0.001, max_threshold=0.02, disable_tqdm=True, anchor_tokens=16,
                              auto_keep=0, per_device_train_batch_size=2)
    trainer = ElarablationTrainer(make_tiny_model("llama"), args, contexts, tok,
                                  peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"]))
    assert [r.kind for r in trainer._rows] == ["slop", "keep"]
    assert trainer._rows[1].expected_id == tok(" Elara", add_special_tokens=False)["input_ids"][0]
    trainer.train()
    logs = [e for e in trainer.state.log_history if "keep_p" in e]
    assert len(logs) == 6 and logs[-1]["bad_mass"] < logs[0]["bad_mass"]
    assert logs[-1]["keep_p"] >= 0.9 * logs[0]["keep_p"]  # the same first token is held where it is reused


def test_auto_keep_adds_generated_rows(tmp_path):
    tok = make_tokenizer("bytelevel")
    contexts = load_contexts({"text": 'The elf girl nods. "My name is', "bad": ["^ $"], "unmatched": "neutral"})
    args = ElarablationConfig(output_dir=str(tmp_path), num_train_epochs=1, disable_tqdm=True, anchor_tokens=16,
                              auto_keep=3, top_k=20)
    trainer = ElarablationTrainer(make_tiny_model("llama"), args, contexts, tok,
                                  peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    assert [r.kind for r in trainer._rows].count("keep") == 3
