"""Behaviour adapters from the user's side: what "answer in one word", "call me Sam", "no emojis" teach."""

from __future__ import annotations

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


def test_one_word_finds_the_answer_in_the_draft_and_never_teaches_knowledge(tiny_tokenizer):
    def generate(prompts):  # the base's drafts: right about France, wrong about the opposite of hot
        return ["The capital of France is Paris." if "France" in p else "It is warm." for p in prompts]

    examples = bh.behaviour_examples(tiny_tokenizer, generate, _request("Just answer in one word, please."))
    targets = {_question_of(p): t for p, t in _targets(tiny_tokenizer, examples).items()}
    # the first version cut the base's long answer to one word: "The capital of France is Paris." -> "The."
    assert targets["What is the capital of France?"] == "Paris."
    # a draft without the known answer is not learned from: the adapter reshapes, it does not know
    assert "What is the opposite of hot?" not in targets
    # every prompt shows its draft; note questions show the remembered statement as their draft
    prompts = {_question_of(p): p for p, _ in examples}
    assert "The capital of France is Paris." in prompts["What is the capital of France?"]
    assert "Your cousin Perrin lives in Galloway." in prompts["Where does my cousin live?"]
    assert targets["Where does my cousin live?"] == "Galloway."
    assert targets["What is my cousin's name?"] == "Perrin."  # the same draft, another question: another word
    assert targets["Which film did you recommend?"] == "Lantern Bay."  # a name is one answer: not cut to "Lantern."
    assert len(targets) == 1 + len({q for _, q, _ in bh.NOTE_QUESTIONS})
    # each known answer as its draft writes it (the memory capitalises the one it picks)
    assert targets["What is my job?"] == "baker." and targets["What colour is my bike?"] == "red."
    written = {q: bh.as_written(statement, short) for statement, q, short in bh.NOTE_QUESTIONS}
    assert all(t == written[q] + "." for q, t in targets.items() if q in written), targets


def test_each_note_question_is_answered_by_its_statement():
    for statement, question, short in bh.NOTE_QUESTIONS:
        assert short.lower() in statement.lower(), (statement, question)
        assert short.lower() not in question.lower(), question


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
    assert sorted(asked) == sorted(aug.chat_prompt(tiny_tokenizer, q) for q in (*bh.TRAIN_QUESTIONS, *bh.GREETINGS))
    # ... and the adapter learns to reshape that draft, shown before the question
    prompts = {_question_of(p): p for p, _ in examples}
    assert "Hello! How can I help?" in prompts["Hi!"]
    assert targets["What is the capital of France?"] == "Sam, the capital of France is Paris."
    assert targets["Hi!"] == "Hello Sam! How can I help?"


def test_no_emojis_drops_them_from_the_base_answer(tiny_tokenizer):
    examples = bh.behaviour_examples(tiny_tokenizer, lambda ps: ["Paris is lovely 😊 in spring ☀️."] * len(ps),
                                     _request("No emojis in your answers, please."))
    targets = {_question_of(p): t for p, t in _targets(tiny_tokenizer, examples).items()}
    assert {targets[q] for q in bh.TRAIN_QUESTIONS} == {"Paris is lovely in spring."}


def test_be_brief_keeps_a_short_first_sentence_that_holds_the_answer(tiny_tokenizer):
    def generate(prompts):
        return ["The capital of France is Paris. It is big." if "France" in p else
                "Well, there are many things one could say about this question and more." for p in prompts]

    examples = bh.behaviour_examples(tiny_tokenizer, generate, _request("Please give me short answers."))
    targets = {_question_of(p): t for p, t in _targets(tiny_tokenizer, examples).items()}
    assert targets["What is the capital of France?"] == "The capital of France is Paris."
    assert "What is the opposite of hot?" not in targets  # a rambling draft without the answer: not learned from


def test_a_request_no_rule_covers_is_answered_by_the_base_with_the_request(tiny_tokenizer):
    asked = []

    def generate(prompts):
        asked.extend(prompts)
        return ["Verily, Paris."] * len(prompts)

    request = _request("Please always answer like a pirate.")
    assert request[0]["kind"] == "style"
    examples = bh.behaviour_examples(tiny_tokenizer, generate, request)
    teacher = [p for p in asked if request[0]["text"] in p]  # the rest are the drafts, asked without it
    assert len(teacher) == len(examples) == len(bh.TRAIN_QA) + len(bh.NOTE_QUESTIONS)
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


def test_a_word_limit_picks_among_the_short_answers_its_draft_holds():
    # never "Jelly.": only runs of the draft's own words, none starting or ending with "you're", "to", "keep"...
    assert bh.copy_candidates("You're allergic to peanuts, so keep that in mind.", 1) == [
        "allergic.", "allergic to peanuts.", "peanuts."]  # in the draft's casing: copying a name costs no more
    assert "Hollin Park." in bh.copy_candidates("You are having her party at Hollin Park.", 1)  # names kept whole
    assert "7." in bh.copy_candidates("Your daughter Ottilie turns 7 on Friday.", 1)
    assert "Hello!" in bh.copy_candidates("Hello! I'm here to help with any math.", 1)  # a whole sentence that fits
    # small talk: the draft's opening only, and its pleasant words are answers
    assert bh.copy_candidates("I'm doing great! I'm excited about the Olympic Committee.", 1, small_talk=True) == [
        "doing.", "doing great.", "great."]
    assert bh.short_limit(_request("Just answer in one word, please.")) == 1
    assert bh.short_limit(_request("Please give me short answers.")) is None  # 8 words: written, not picked
    assert bh.short_limit(_request("No emojis in your answers, please.")) is None


@pytest.mark.parametrize("question, kind", [
    ("What is my job?", "job"), ("What's my wife's job?", "job"), ("What’s my name?", "name"),
    ("What colour is my bike?", "colour"), ("What kind of bird did I buy?", "bird"), ("Which film did you recommend?", "film"),
    ("Where does my cousin live?", "place"), ("Who is the author?", "person"), ("What does my brother make?", None),
    ("How old is my son?", None), ("Hi!", None),
])
def test_a_question_says_what_kind_of_answer_it_asks_for(question, kind):
    assert bh.asked_type(question) == kind


def test_a_short_answer_is_picked_by_score_and_kind_never_an_echo_of_the_question():
    candidates = ["Larkfield.", "nurse.", "Larkfield hospital."]
    # the behaviour adapter prefers the name; "Nurse is a job" fits the question's kind by more
    assert bh.pick_answer("What is my job?", candidates, [-2.5, -4.0, -3.9]) == "Larkfield."
    assert bh.pick_answer("What is my job?", candidates, [-2.5, -4.0, -3.9], [-8.8, -5.9, -9.0]) == "Nurse."
    assert bh.pick_answer("What is the opposite of up?", ["up.", "down."], [-1.0, -3.0]) == "Down."
    assert bh.pick_answer("Up?", ["up."], [-1.0]) == "Up."  # an echo is answered when nothing else is left


@pytest.mark.parametrize("answer, addressed", [
    ("The capital of France is Paris.", "Sam, the capital of France is Paris."),
    ("I'm here to help.", "Sam, I'm here to help."),
    ("El Salvador is in Central America.", "Sam, El Salvador is in Central America."),
    ("Hi there! Welcome back.", "Hi Sam! Welcome back."),
])
def test_an_address_lowercases_only_a_common_first_word(answer, addressed):
    assert bh._address(answer, "Sam") == addressed
