"""Context rows, rules, loaders (ours + the original elarablate YAML), {a|b} expansion, rendering."""

import json

import pytest
from conftest import make_tokenizer

from hf_steer.elarablation.contexts import (
    TokenRules,
    expand_alternations,
    list_library,
    load_contexts,
    prompt_length,
    reader_text,
    render_context,
    tokenize_context,
)
from hf_steer.errors import HfSteerError

ORIGINAL = """\
system_prompt: "You are a storyteller."
user_prompt: "Write a story about an elf."
response_text: 'The elf girl nods. "My name is'
hyperparameters:
  temperature: 1.0
  top_k: 40
  max_threshold: 0.02
  min_threshold: 0.015
token_rules:
  bad_token_regexes: ["^ĠEl"]
  good_token_regexes: ["^Ġ[A-Z]"]
"""


def test_expand_alternations():
    assert expand_alternations("a {big|small} {elf|dwarf}.") == ["a big elf.", "a big dwarf.", "a small elf.", "a small dwarf."]
    assert expand_alternations("no braces {here}") == ["no braces {here}"]


def test_rules_bad_overrides_good_forced_and_excluded():
    rules = TokenRules.from_row({"good": ["^ [A-Z]"], "bad": ["^ El"], "forced_good": [" Elo"], "excluded": ["..."]})
    assert rules.classify(" Ar") == "good"
    assert rules.classify(" El") == "bad"
    assert rules.classify(" the") == "bad"  # good regexes given: anything else is bad
    assert rules.classify(" Elo") == "good"
    assert rules.classify("...") == "excluded"
    assert TokenRules.from_row({"bad": ["^ spine"]}).classify(" back") == "good"  # no good regex: not bad = good


def test_rules_one_level_deeper_see_the_whole_word():
    rules = TokenRules.from_row({"good": ['^ [A-Z][a-z]*[,."]*$'], "bad": ["^ El"]})
    deeper = rules.extended(" E")
    assert deeper.classify("lara") == "bad"  # " Elara"
    assert deeper.classify("mma") == "good"  # " Emma"
    assert deeper.classify(" E") == "bad"  # " E E": not a name


@pytest.mark.parametrize("kind", ["bytelevel", "metaspace"])
def test_reader_text_has_the_leading_space_whatever_the_marker(kind):
    tok = make_tokenizer(kind)
    ids = tok(" Elara", add_special_tokens=False)["input_ids"]
    first = reader_text(tok, ids[0]) if kind == "bytelevel" else reader_text(tok, ids[0])
    assert first.startswith(" ")
    assert "Ġ" not in first and "▁" not in first
    assert "".join(reader_text(tok, i) for i in ids).strip() == "Elara"


def test_original_yaml_loads_unchanged_and_marker_regexes_mean_space(tmp_path):
    path = tmp_path / "elara.yaml"
    path.write_text(ORIGINAL)
    ds = load_contexts(str(path))
    row = ds[0]
    assert row["chat"] and row["user"] == "Write a story about an elf." and row["top_k"] == 40
    rules = TokenRules.from_row(row)
    assert rules.classify(" El") == "bad" and rules.classify(" Mira") == "good"


def test_our_yaml_jsonl_and_splits(tmp_path):
    (tmp_path / "a.yaml").write_text(
        "family: test\nrules: {good: ['^ [A-Z]'], bad: ['^ El']}\nhyperparameters: {top_k: 10}\n"
        "train: ['Her name was', {text: 'He {said|shouted}, \"I am', max_threshold: 0.1}]\n"
        "heldout: ['They called her']\n"
    )
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "Name: {A|B}", "bad": ["^x"], "split": "train"}) + "\n")
    train = load_contexts([str(tmp_path / "a.yaml"), str(tmp_path / "b.jsonl")])
    assert [r["text"] for r in train] == ["Her name was", 'He said, "I am', 'He shouted, "I am', "Name: A", "Name: B"]
    assert train[1]["max_threshold"] == 0.1 and train[0]["max_threshold"] is None and train[0]["top_k"] == 10
    assert load_contexts(str(tmp_path / "a.yaml"), split="heldout")["text"] == ["They called her"]
    assert len(load_contexts(str(tmp_path))) == 5  # a folder


def test_library_has_six_families_with_train_and_heldout():
    families = list_library()
    assert len(families) >= 6
    for family in families:
        train = load_contexts(family)
        heldout = load_contexts(family, split="heldout")
        assert len(train) >= 2 and len(heldout) >= 2
        assert not set(train["text"]) & set(heldout["text"]), family
    assert len(load_contexts(["female_names", "elf_names"], split="heldout")) >= 10
    assert len(load_contexts(["female_names", "elf_names", "male_names"], split="reference")) >= 10


def test_chat_rendering_leaves_the_assistant_turn_open():
    tok = make_tokenizer("bytelevel")
    row = load_contexts({"text": 'The elf girl nods. "My name is', "chat": True, "user": "Tell a story."})[0]
    text = render_context(row, tok)
    assert text.startswith("<|im_start|>user\nTell a story.<|im_end|>\n<|im_start|>assistant\n")
    assert text.endswith('"My name is')
    assert tokenize_context(row, tok)[-1] != tok.convert_tokens_to_ids("<|im_end|>")


def test_prompt_length_is_the_chat_template_up_to_the_open_assistant_turn():
    """The tokens a chat context is given (template, system and user turns, the opened assistant turn): the
    context hold reads from the last of them on. Raw text is all written; so is a chat context with no text."""
    tok = make_tokenizer("bytelevel")
    row = load_contexts({"text": "Once upon a time the sea", "chat": True, "user": "Tell a story."})[0]
    ids = tokenize_context(row, tok)
    n = prompt_length(row, tok, ids)
    assert tok.decode(ids[:n]).endswith("<|im_start|>assistant\n") and tok.decode(ids[n:]) == "Once upon a time the sea"
    raw = load_contexts({"text": "Once upon a time the sea"})[0]
    assert prompt_length(raw, tok, tokenize_context(raw, tok)) == 0
    open_turn = load_contexts({"text": "", "chat": True, "user": "Tell a story."})[0]
    assert prompt_length(open_turn, tok, tokenize_context(open_turn, tok)) == 0


# ---------------------------------------------------------------------------------------------- bad input
def test_invalid_regex_names_file_and_pattern(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(ORIGINAL.replace('["^ĠEl"]', '["^(El"]'))
    with pytest.raises(HfSteerError, match=r"broken\.yaml: regex '\^\(El' is invalid"):
        load_contexts(str(path))


def test_thresholds_in_wrong_order(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(ORIGINAL.replace("min_threshold: 0.015", "min_threshold: 0.5"))
    with pytest.raises(HfSteerError, match="min_threshold=0.5 is not below max_threshold=0.02"):
        load_contexts(str(path))


def test_top_k_out_of_range(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(ORIGINAL.replace("top_k: 40", "top_k: 0"))
    with pytest.raises(HfSteerError, match="top_k=0 is out of range"):
        load_contexts(str(path))


def test_empty_context_set(tmp_path):
    (tmp_path / "empty.yaml").write_text("family: x\ntrain: []\n")
    with pytest.raises(HfSteerError, match="is empty"):
        load_contexts(str(tmp_path / "empty.yaml"))
    with pytest.raises(HfSteerError, match="is empty"):
        load_contexts([])


def test_yaml_missing_keys(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("response_text: 'hello'\n")
    with pytest.raises(HfSteerError, match="missing key.*token_rules"):
        load_contexts(str(path))
    path.write_text("something: else\n")
    with pytest.raises(HfSteerError, match="YAML is missing keys"):
        load_contexts(str(path))


def test_zero_token_context():
    tok = make_tokenizer("bytelevel")
    row = load_contexts({"text": ""})[0]
    with pytest.raises(HfSteerError, match="renders to zero tokens"):
        tokenize_context(row, tok)


def test_chat_context_without_chat_template():
    tok = make_tokenizer("bytelevel", chat_template=False)
    row = load_contexts({"text": "My name is", "chat": True, "user": "hi"})[0]
    with pytest.raises(HfSteerError, match="needs a tokenizer with a chat template"):
        render_context(row, tok)


def test_unknown_source():
    with pytest.raises(HfSteerError, match="neither a file nor a library family"):
        load_contexts("no_such_family")


def test_a_bad_phrase_must_be_words_with_the_bad_one_last():
    rules = TokenRules.from_row({"bad_phrases": ["the sun", "casting a warm"], "source": "mine.yaml"})
    assert rules.bad_phrases == ("the sun", "casting a warm") and rules.classify(" sun") == "good"
    for phrase in ("sun", "the sun!"):
        with pytest.raises(HfSteerError, match=f"mine.yaml: bad phrase '{phrase}' is not two or more words"):
            TokenRules.from_row({"bad_phrases": [phrase], "source": "mine.yaml"})
