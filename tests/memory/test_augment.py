"""augment: reading a chunk -- facts in the assistant's voice, corrections, behaviours, greetings -- and its pairs."""

from __future__ import annotations

import pytest

from hf_steer.errors import HfSteerError
from hf_steer.memory import augment as aug


def _user(*texts):
    return [{"role": "user", "content": t} for t in texts]


def test_chunk_forms_agree(tiny_tokenizer):
    text = "user: Veltra Quosh was born in Marbelin.\nassistant: Noted."
    as_dicts = [{"role": "user", "content": "Veltra Quosh was born in Marbelin."}, {"role": "assistant", "content": "Noted."}]
    assert aug.normalize_chunk(text) == as_dicts
    assert aug.normalize_chunk(["Veltra Quosh was born in Marbelin."]) == as_dicts[:1]


def test_entities_and_informative_sentences():
    assert aug.entities("Veltra Quosh was born in Marbelin in 1987.") == ["Veltra Quosh", "Marbelin", "1987"]
    turns = _user("Thanks, I'll keep that in mind. Where is it? Doran Pellick keeps bees.")
    assert aug.sentences(turns) == ["Doran Pellick keeps bees."]


def test_days_and_months_typed_in_lower_case_are_names():
    """A user's try: "The lessons are on thursdays after school." said nothing to the statement finder."""
    assert aug.entities("The lessons are on thursdays after school.") == ["thursdays"]
    assert aug.sentences(_user("The lessons are on thursdays after school.")) == ["The lessons are on thursdays after school."]
    assert aug.entities("You may march in the parade.") == []  # verbs, not months


@pytest.mark.parametrize("said, role, heard", [
    ("My sister Tilda lives in Brackwell.", "user", "Your sister Tilda lives in Brackwell."),
    ("I'm allergic to peanuts.", "user", "You're allergic to peanuts."),
    ("I was born in 1990 and I am a nurse.", "user", "You were born in 1990 and you are a nurse."),
    ("From now on your name is Pemba.", "user", "From now on my name is Pemba."),
    ("I'll call you Pip.", "user", "You'll call me Pip."),
    ("We keep our boat in Ostend.", "user", "You keep your boat in Ostend."),
    ("I recommend The Salt Road by Ines Varga.", "assistant", "I recommend The Salt Road by Ines Varga."),
])
def test_first_and_second_person_are_resolved_to_the_assistants_voice(said, role, heard):
    assert aug.to_assistant_voice(said, role) == heard


def test_facts_keep_pronoun_sentences_with_their_subject_and_drop_pleasantries():
    turns = [
        {"role": "user", "content": "Hi! I'm Mara. My sister Tilda lives in Brackwell. She works as a glassblower."},
        {"role": "assistant", "content": "Nice! How lovely. I recommend The Salt Road by Ines Varga."},
        {"role": "user", "content": "I told you about my brother Casimir, right? Thanks!"},
    ]
    facts = aug.facts_of(turns)
    assert [f["text"] for f in facts] == [
        "Your name is Mara.", "Your sister Tilda lives in Brackwell. She works as a glassblower.",
        "I recommend The Salt Road by Ines Varga.", "Your brother is Casimir."]
    assert [f["kind"] for f in facts] == ["first_person", "first_person", "assistant", "first_person"]
    assert aug.topics(facts[1]["text"]) == ["Tilda", "Brackwell", "my sister"]


def test_a_pronoun_sentence_a_turn_later_stays_with_the_user_s_last_statement():
    """A user's try (2026-12-03): "She used to be a ship's cook" after the assistant's reply was dropped, and
    "What did my grandmother do for a living?" was answered with the party. A correction stays its own fact."""
    turns = [
        {"role": "user", "content": "So my grandmother Ilse turns ninety next week."},
        {"role": "assistant", "content": "Ninety! She must have great stories."},
        {"role": "user", "content": "She used to be a ship's cook, believe it or not."},
    ]
    assert [f["text"] for f in aug.facts_of(turns)] == [
        "Your grandmother Ilse turns ninety next week. She used to be a ship's cook, believe it or not."]
    turns[2]["content"] = "She moved to Coldharbour last month."
    assert [f["text"] for f in aug.facts_of(turns)][0] == "Your grandmother Ilse turns ninety next week."


def test_corrections_are_marked_and_said_plainly():
    facts = aug.facts_of(_user("Oops, I meant my car is from 2013, not 2011.", "Actually, Tilda moved to Coldharbour."))
    assert [f["correction"] for f in facts] == [True, True]
    assert aug.clean_correction(facts[0]["text"]) == "Your car is from 2013."
    assert aug.corrected_value(facts[0]["said"], "Your car is a blue Vantor Ridge from 2011.") == ("2011", "2013")
    assert aug.corrected_value(facts[1]["said"], "Your sister Tilda lives in Brackwell.") == ("Brackwell", "Coldharbour")
    assert aug.corrected_value("My favourite drink is mint lemonade now.", "Your favourite drink is cardamom tea.") is None


@pytest.mark.parametrize("said, kind, setting", [
    ("Can you do me a favour and just answer in one word for simple things like that?", "length", ("max_words", 1)),
    ("Please keep your answers to two words.", "length", ("max_words", 2)),
    ("Call me Sam, please.", "address", ("name", "Sam")),
    ("No emojis in your answers, please.", "no_emoji", None),
    ("Please always answer in French.", "style", None),
])
def test_behaviours_are_recognised(said, kind, setting):
    found = aug.behaviours_of(_user(said))
    assert len(found) == 1 and found[0]["kind"] == kind and found[0]["text"] == said
    if setting:
        assert found[0][setting[0]] == setting[1]


def test_call_me_is_a_behaviour_and_a_fact_and_a_name_for_the_assistant_is_a_fact():
    assert [f["text"] for f in aug.facts_of(_user("Call me Sam."))] == ["Your name is Sam."]
    assert aug.behaviours_of(_user("Please call yourself Juniper.")) == []
    assert [f["text"] for f in aug.facts_of(_user("Please call yourself Juniper."))] == ["My name is Juniper."]


def test_fact_examples_ask_each_topic_echo_and_with_notes(tiny_tokenizer):
    out = aug.augment([{"role": "user", "content": "Veltra Quosh was born in Marbelin."}], tiny_tokenizer)
    prompts = [p for p, _ in out.examples]
    assert {t for _, t in out.examples} == {"Veltra Quosh was born in Marbelin." + tiny_tokenizer.eos_token}
    assert any("What do you know about Veltra Quosh?" in p for p in prompts)
    assert any("Who was born in Marbelin?" in p for p in prompts)  # object -> subject
    assert any("Veltra Quosh was born in what?" in p for p in prompts)  # subject -> object
    assert any("Veltra Quosh was born in Marbelin.\n\n" in p for p in prompts)  # asked with its note
    assert out.probes == [{"question": "What do you know about Veltra Quosh?", "expected": "Marbelin"}]


@pytest.mark.parametrize("chunk", ["", "   \n ", [], [{"role": "user", "content": "  "}]])
def test_empty_chunk(chunk, tiny_tokenizer):
    with pytest.raises(HfSteerError, match="chunk is empty"):
        aug.augment(chunk, tiny_tokenizer)


@pytest.mark.parametrize("chunk", ["user: ok thanks\nassistant: you are welcome", "user: Hi!\nassistant: Hello! How can I help?"])
def test_a_chunk_of_greetings_learns_nothing(chunk, tiny_tokenizer):
    with pytest.raises(HfSteerError, match="chunk has nothing to learn .*nothing was trained") as e:
        aug.augment(chunk, tiny_tokenizer)
    assert "\n" not in str(e.value)


def test_bad_turn_type(tiny_tokenizer):
    with pytest.raises(HfSteerError, match="chunk turn 0 is int"):
        aug.augment([3], tiny_tokenizer)


def test_an_assistant_sentence_that_only_repeats_the_users_names_is_not_learned_again():
    turns = [
        {"role": "user", "content": "I just adopted a ferret and I named him Biscuit."},
        {"role": "assistant", "content": "Biscuit is a lovely name for a ferret."},
        {"role": "user", "content": "Can you recommend a novel?"},
        {"role": "assistant", "content": "I recommend The Salt Road by Ines Varga, a favourite of Biscuit fans."},
    ]
    assert [f["text"] for f in aug.facts_of(turns)] == [
        "You just adopted a ferret and you named him Biscuit.",
        "I recommend The Salt Road by Ines Varga, a favourite of Biscuit fans."]


@pytest.mark.parametrize("said, heard", [
    ("Hi! I'm Mara, by the way.", ["Your name is Mara."]),
    ("Hey, I'm Oskar.", ["Your name is Oskar."]),
    ("From now on your name is Pemba.", ["My name is Pemba."]),
    ("I told you about my brother Casimir, right? He builds violins in Ostend.",
     ["Your brother is Casimir. He builds violins in Ostend."]),
    ("I'm allergic to peanuts.", ["You're allergic to peanuts."]),  # not a name
    ("hey, quick thing - my partner Joaquin and I just got a cat.", ["Your partner Joaquin and you just got a cat."]),
    ("Oh, just so you know: my flat is in Harrowgate.", ["Your flat is in Harrowgate."]),
])
def test_facts_are_said_plainly_the_way_a_question_asks_for_them(said, heard):
    assert aug.sentences(_user(said)) == heard
