"""augment: chunk parsing, entity/sentence picking, question forms, empty input."""

from __future__ import annotations

import pytest

from hf_steer.errors import HfSteerError
from hf_steer.memory import augment as aug


def test_chunk_forms_agree(tiny_tokenizer):
    text = "user: Veltra Quosh was born in Marbelin.\nassistant: Noted."
    as_dicts = [{"role": "user", "content": "Veltra Quosh was born in Marbelin."}, {"role": "assistant", "content": "Noted."}]
    assert aug.normalize_chunk(text) == as_dicts
    assert aug.normalize_chunk(["Veltra Quosh was born in Marbelin."]) == as_dicts[:1]


def test_entities_and_informative_sentences():
    assert aug.entities("Veltra Quosh was born in Marbelin in 1987.") == ["Veltra Quosh", "Marbelin", "1987"]
    turns = [{"role": "user", "content": "Thanks, I'll keep that in mind. Where is it? Doran Pellick keeps bees."}]
    assert aug.sentences(turns) == ["Doran Pellick keeps bees."]


def test_augment_builds_statements_questions_and_both_directions(tiny_tokenizer):
    out = aug.augment([{"role": "user", "content": "Veltra Quosh was born in Marbelin."}], tiny_tokenizer)
    prompts = [p for p, _ in out.examples]
    targets = {t for _, t in out.examples}
    assert targets == {"Veltra Quosh was born in Marbelin." + tiny_tokenizer.eos_token}
    assert "" in prompts  # the plain statement
    assert any("What do you know about Veltra Quosh?" in p for p in prompts)
    assert any("Who was born in Marbelin?" in p for p in prompts)  # object -> subject
    assert any("Veltra Quosh was born in what?" in p for p in prompts)  # subject -> object
    assert out.probes == [{"question": "What do you know about Veltra Quosh?", "expected": "Marbelin"}]


@pytest.mark.parametrize("chunk", ["", "   \n ", [], [{"role": "user", "content": "  "}]])
def test_empty_chunk(chunk, tiny_tokenizer):
    with pytest.raises(HfSteerError, match="chunk is empty"):
        aug.augment(chunk, tiny_tokenizer)


def test_chunk_without_facts(tiny_tokenizer):
    with pytest.raises(HfSteerError, match="chunk has no statement to learn"):
        aug.augment("user: ok thanks\nassistant: you are welcome", tiny_tokenizer)


def test_bad_turn_type(tiny_tokenizer):
    with pytest.raises(HfSteerError, match="chunk turn 0 is int"):
        aug.augment([3], tiny_tokenizer)
