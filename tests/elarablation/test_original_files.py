"""The original envy-ai/elarablate context files (copies in fixtures/elarablate) load as the original reads them."""

from pathlib import Path

import pytest
import torch
from conftest import make_tiny_model, make_tokenizer
from peft import LoraConfig

from hf_steer.elarablation.config import ElarablationConfig
from hf_steer.elarablation.contexts import TokenRules, load_contexts, render_context
from hf_steer.elarablation.trainer import DrawSampler, ElarablationTrainer
from hf_steer.errors import HfSteerError

FIXTURES = Path(__file__).parent / "fixtures" / "elarablate"
ALL_FILES = sorted((FIXTURES / "latest").rglob("*.yaml")) + sorted((FIXTURES / "older").rglob("*.yaml"))


def _file(name: str) -> Path:
    return next(p for p in ALL_FILES if p.name == name and "latest" in p.parts)


def test_the_fixtures_are_the_published_files():
    assert len(ALL_FILES) == 43
    # every one writes its response as a YAML block scalar, the shape that broke the first loader
    assert all("response_text: |" in p.read_text() for p in ALL_FILES)


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_published_file_loads_as_the_original_reads_it(path):
    rows = load_contexts(str(path))
    assert len(rows) >= 1
    for row in rows:
        # the block scalar's newline and the prompts' outer whitespace are stripped, as the original does
        assert row["text"] == row["text"].strip() or row["group"]  # an empty {a||b} choice may end in a space
        assert not row["text"].endswith("\n")
        assert row["system"] == row["system"].strip() and row["user"] == row["user"].strip()
        assert row["chat"] and row["unmatched"] == "neutral" and row["relative_thresholds"]
        assert row["kind"] == "slop"


def test_block_scalar_rendering_ends_at_the_slot():
    tok = make_tokenizer("bytelevel")
    row = load_contexts(str(_file("names_elf_f.yaml")))[0]
    text = render_context(row, tok)
    assert text.endswith('"Welcome, traveler. My name is')
    assert "<|im_start|>system\nYou are an AI creative writing assistant specializing in fantasy and sci-fi.<|im_end|>" in text
    assert "<|im_start|>user\nWrite a fantasy story.<|im_end|>\n<|im_start|>assistant\nIn the bustling" in text
    # the first loader left the block's newline in, so every candidate "started a new line" and was bad
    rules = TokenRules.from_row(row)
    assert rules.classify(" Mira") == "good" and rules.classify(" the") == "bad" and rules.classify("\n") == "bad"


def test_original_rules_neutral_exclude_force_and_relative_thresholds():
    tok = make_tokenizer("bytelevel")
    w = load_contexts(str(_file("monster_variety_W.yaml")))[0]
    rules = TokenRules.from_row(w)
    assert rules.classify(" W") == "bad" and rules.classify(" Worm") == "neutral" and rules.classify("worm") == "neutral"
    voice = load_contexts(str(_file("phrases_her_voice_1.yaml")))[0]
    assert voice["excluded"] == [" tone", " voice"] and voice["top_k"] == 10
    rules = TokenRules.from_row(voice, tok)
    first = tok.encode(" voice", add_special_tokens=False)[0]  # the original names a token by its first id
    assert first in rules.excluded_ids and rules.classify("?", first) == "excluded"
    assert rules.classify(" voice") == "excluded" and rules.classify(" tones") == "bad"
    assert rules.classify(" soft") == "good" and rules.classify(",") == "bad"
    paragraph = load_contexts(str(_file("he_asked_2_paragraph.yaml")))[0]
    rules = TokenRules.from_row(paragraph, tok)
    dot = tok.convert_tokens_to_ids(".")
    assert rules.forced_ids == {dot}  # ".\n\n" names its first token, as in the original
    assert rules.classify(".", dot) == "good" and rules.classify("ly") == "bad" and rules.classify(" and") == "neutral"
    # thresholds the file leaves out are the original's: 1/top_k and 0.75 of that
    trainer = _trainer([str(_file("names_elf_f_Am.yaml")), str(_file("names_dark_stay_on_rails.yaml")),
                        str(_file("names_elf_f.yaml"))], top_k=300)
    (am, rails, elf) = trainer._rows[:3]
    assert (am.top_k, am.max_threshold, am.min_threshold) == (10, pytest.approx(0.1), pytest.approx(0.075))
    assert (rails.max_threshold, rails.min_threshold) == (pytest.approx(0.04), 0.0)
    assert (elf.max_threshold, elf.min_threshold) == (pytest.approx(0.02), pytest.approx(0.015))


def test_alternatives_are_a_group_drawn_repeat_times_per_epoch():
    rows = load_contexts(str(_file("names_elf_f_full.yaml")))
    names = [r["text"].rsplit("My name is ", 1)[1] for r in rows]
    assert len(rows) == 48 and names[0] == "Elara" and "" in names and names.count("Vespera") == 2
    assert set(rows["draws"]) == {2} and len(set(rows["group"])) == 1
    single = load_contexts(str(_file("names_elf_f.yaml")))
    assert single[0]["group"] == "" and single[0]["draws"] is None
    trainer = _trainer([str(_file("names_elf_f_full.yaml")), str(_file("names_elf_f.yaml"))], top_k=50)
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, DrawSampler) and len(sampler) == 3  # 2 draws of the 48 + the single context
    draws = []
    for epoch in range(6):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order)[-1] == 48 and len(order) == 3  # the single context every epoch, 2 of the group
        draws += [i for i in order if i < 48]
    assert len(set(draws)) > 2  # different alternatives in different epochs


def test_keep_rows_of_alternatives_are_drawn_with_them():
    # "My name is {Ale|Ary|...}" (49 alternatives, repeat 2) bans " "-tokens, so every alternative gets keep rows:
    # drawn as a group, an epoch is 2 slop rows and 2 x 3 keep rows, not 2 slop rows beside all 147 keep rows
    trainer = _trainer([str(_file("names_elf_f_second_syllable.yaml"))], auto_keep=3)
    slop = [r for r in trainer._rows if r.kind == "slop" and r.depth == 1]
    keep = [r for r in trainer._rows if r.kind == "keep"]
    assert len(slop) == 49 and len(keep) == 147 and len({r.group for r in keep}) == 1
    sampler = trainer._get_train_sampler()
    assert len(sampler) == 2 + 6
    order = list(sampler)
    assert sum(trainer._rows[i].kind == "keep" for i in order) == 6


def test_a_folder_loads_recursively_and_the_broken_file_is_one_error():
    rows = load_contexts(str(FIXTURES / "latest"))
    assert len({r["source"] for r in rows}) == 37
    with pytest.raises(HfSteerError, match=r"she_said\.yaml: not valid YAML") as e:
        load_contexts(str(FIXTURES / "invalid" / "she_said.yaml"))
    assert "\n" not in str(e.value)


def test_unknown_keys_in_an_original_file_are_errors(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("response_text: |\n  Her name was\ntoken_rule:\n  bad_token_regexes: ['^x']\n")
    with pytest.raises(HfSteerError, match=r"unknown key\(s\) \['token_rule'\]"):
        load_contexts(str(path))
    path.write_text("response_text: x\nrepeat: 0\ntoken_rules: {bad_token_regexes: ['^x']}\n")
    with pytest.raises(HfSteerError, match="repeat=0 must be a whole number"):
        load_contexts(str(path))


def test_forced_good_token_outside_the_top_k_is_rewarded(tmp_path):
    path = tmp_path / "forced.yaml"
    path.write_text("user_prompt: hi\nresponse_text: |\n  She said\nhyperparameters: {top_k: 3}\n"
                    "token_rules:\n  bad_token_regexes: ['^[a-z]']\n  force_good_tokens: ['Thorin']\n")
    trainer = _trainer([str(path)], top_k=3, num_train_epochs=1)
    row = trainer._rows[0]
    forced = next(iter(row.rules.forced_ids))
    top = torch.arange(5)[None]  # a top-k that cannot hold the forced token
    cand, good, bad, valid, _ = trainer._candidates(top, [row])
    assert cand.shape[1] == 4 and cand[0, 3] == forced and good[0, 3] and valid[0, 3]
    trainer.train()
    assert [e for e in trainer.state.log_history if "n_rewarded" in e][0]["n_rewarded"] >= 1


def _trainer(sources, top_k=50, **kw):
    args = ElarablationConfig(output_dir="/tmp/unused", top_k=top_k, disable_tqdm=True, anchor_tokens=16,
                              report_to="none", **kw)
    return ElarablationTrainer(make_tiny_model("llama"), args, load_contexts(sources), make_tokenizer("bytelevel"),
                               peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
