"""Behaviour adapters from the user's side: what "answer in one word", "call me Sam", "no emojis" teach."""

from __future__ import annotations

import re

import pytest

from hf_steer.memory import augment as aug
from hf_steer.memory import behaviour as bh

from .conftest import TINY


def _request(said: str) -> list[dict]:
    found = aug.behaviours_of([{"role": "user", "content": said}])
    assert found, said
    return found


def _targets(tok, examples):
    end = aug.answer_suffix(tok)
    return {p: t.removesuffix(end) for p, t in examples}


def _question_of(prompt: str) -> str:
    return next(q for q in (*bh.TRAIN_QUESTIONS, *bh.GREETINGS, *(q for _, q, _ in bh.NOTE_QUESTIONS)) if q in prompt)


def test_one_word_teaches_the_right_word_and_asks_the_model_nothing(tiny_tokenizer):
    def generate(prompts):
        raise AssertionError("a word limit needs no generated answers")

    examples = bh.behaviour_examples(tiny_tokenizer, generate, _request("Just answer in one word, please."))
    targets = {_question_of(p): t for p, t in _targets(tiny_tokenizer, examples).items()}
    # the first version cut the base's long answer to one word: "The capital of France is Paris." -> "The."
    assert targets["What is the capital of France?"] == "Paris."
    assert targets["What is the opposite of hot?"] == "Cold."
    assert targets["Where does my cousin live?"] == "Galloway."  # asked with its note, as retrieval shows it
    assert len(targets) == len(bh.TRAIN_QA) + len(bh.NOTE_QUESTIONS)
    assert targets["Which film did you recommend?"] == "Lantern Bay."  # a name is one answer: not cut to "Lantern."
    assert all(len(re.findall(r"[\w'’-]+", t)) == 1 for q, t in targets.items() if "film" not in q), targets


def test_call_me_sam_keeps_the_base_answer_and_puts_the_name_in(tiny_tokenizer):
    asked = []

    def generate(prompts):
        asked.extend(prompts)
        return ["Hello! How can I help?" if "Hi!" in p else "The capital of France is Paris." for p in prompts]

    request = _request("Please call me Sam from now on.")
    examples = bh.behaviour_examples(tiny_tokenizer, generate, request)
    targets = {_question_of(p): t for p, t in _targets(tiny_tokenizer, examples).items()}
    # the base answers the very prompts the adapter learns on, without the request in them
    assert not any(request[0]["text"] in p for p in asked)
    assert sorted(asked) == sorted(p for p, _ in examples)
    assert targets["What is the capital of France?"] == "Sam, the capital of France is Paris."
    assert targets["Hi!"] == "Hello Sam! How can I help?"


def test_no_emojis_drops_them_from_the_base_answer(tiny_tokenizer):
    examples = bh.behaviour_examples(tiny_tokenizer, lambda ps: ["Paris is lovely 😊 in spring ☀️."] * len(ps),
                                     _request("No emojis in your answers, please."))
    assert set(_targets(tiny_tokenizer, examples).values()) == {"Paris is lovely in spring."}


def test_be_brief_keeps_a_short_first_sentence_that_holds_the_answer(tiny_tokenizer):
    def generate(prompts):
        return ["The capital of France is Paris. It is big." if "France" in p else
                "Well, there are many things one could say about this question and more." for p in prompts]

    examples = bh.behaviour_examples(tiny_tokenizer, generate, _request("Please give me short answers."))
    targets = {_question_of(p): t for p, t in _targets(tiny_tokenizer, examples).items()}
    assert targets["What is the capital of France?"] == "The capital of France is Paris."
    assert targets["What is the opposite of hot?"] == "Cold."  # a rambling answer: the known short answer


def test_a_request_no_rule_covers_is_answered_by_the_base_with_the_request(tiny_tokenizer):
    asked = []

    def generate(prompts):
        asked.extend(prompts)
        return ["Verily, Paris."] * len(prompts)

    request = _request("Please always answer like a pirate.")
    assert request[0]["kind"] == "style"
    examples = bh.behaviour_examples(tiny_tokenizer, generate, request)
    assert all(request[0]["text"] in p for p in asked)
    assert not any(request[0]["text"] in p for p, _ in examples)  # learned without the request


def test_a_behaviour_adapter_trains_on_its_own_layers_and_learning_rate(memory):
    from hf_steer.memory.train import get_preset

    memory.preset = get_preset("fast-cpu", **TINY, behaviour_top_layers=0, behaviour_learning_rate=3e-3)
    row = memory.remember([{"role": "user", "content": "Just answer in one word from now on, please."},
                           {"role": "assistant", "content": "Ok"}])
    assert row["kind"] == "behaviour"
    assert row["preset"]["top_layers"] == 0 and row["preset"]["learning_rate"] == pytest.approx(3e-3)
    assert row["layers"] is None  # every layer of the tiny model
    assert memory.route("What is the capital of France?") == [row["name"]]  # on for every question
