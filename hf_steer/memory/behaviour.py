"""Behaviour adapters: "answer in one word", "call me Sam", "no emojis" -- how to answer, not what to know.

A behaviour is not a fact to retrieve: it must change every answer of its profile. So it gets an
adapter of its own (kind ``behaviour`` in the catalog) that is active for every question, routed or not.
It does not answer on its own: the memory's other adapters and notes write a draft answer, and the
behaviour adapter answers the question with that draft shown before it (:func:`reshape_prompt`) -- so
the behaviour changes the form and keeps what the memory knows. Trained to answer directly, the one-word
adapter picked a salient word of what it was shown (fact recall 12/27 on issue 14's dev chats against
26/27 without it); reshaping drafts, 25/27, and 26/27 once the pick also weighs the kind of answer the
question asks for (:func:`pick_answer`; docs/memory.md, "Behaviour reshapes the draft").

Its training prompts are everyday questions with the base's own draft answers, and remembered statements
asked several ways, each without the request. Where a rule covers the request, the targets are built by
the rule, never by asking the base to obey: a word limit answers with the question's known correct short
answer, and only from drafts that hold it ("What is the capital of France?" after "The capital of France
is Paris." -> "Paris."); "call me Sam" puts the name into the draft, "no emojis" drops them from it. Only
a request no rule covers (kind ``style``: "always answer like a pirate") is context distillation proper:
the base answers with the request (and the draft) in its prompt. Under a word limit the adapter picks
its answer among the draft's own short runs of words (:func:`copy_candidates`) rather than writing it. A
behaviour adapter trains on more layers than a chunk adapter (``TrainPreset.for_behaviour``).

The training questions are disjoint from the benchmark's held-out questions. Forgetting the adapter
gives the base's answers back exactly (the adapter is the only change).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import augment as aug

# Everyday questions the behaviour is shown on, each with its correct short answer (none of them is a
# benchmark question). The short answer is the target of a word limit: the first version cut the base's
# own long answer to the limit ("The capital of France is Paris." -> "The") or kept the few teacher
# answers that fitted (with the request and three demonstrations in the prompt the 135M base answered
# "Liquids.", "Freshwater.", "Mars." to the cats', ice and planet questions); its adapter answered 20/20
# held-out simple questions in <=2 words but 1/20 with the right word ("Japan.", "Liquefied gas.").
TRAIN_QA = (
    ("What is the capital of France?", "Paris"), ("What colour is the sky?", "Blue"),
    ("How many days are in a week?", "Seven"), ("What do cats like to drink?", "Milk"),
    ("Which animal says moo?", "Cow"), ("What is frozen water called?", "Ice"),
    ("What is the opposite of hot?", "Cold"), ("What planet do we live on?", "Earth"),
    ("What is 2 plus 3?", "Five"), ("What do bakers make?", "Bread"),
    ("Which ocean is the largest?", "Pacific"), ("What language is spoken in Spain?", "Spanish"),
    ("What do plants need to grow?", "Sunlight"), ("What is the capital of Spain?", "Madrid"),
    ("What do you wear on your feet?", "Shoes"), ("How many wheels does a bicycle have?", "Two"),
    ("What is the capital of England?", "London"), ("What colour are bananas?", "Yellow"),
    ("Which animal gives us wool?", "Sheep"), ("What falls from clouds when it rains?", "Water"),
    ("What is the opposite of big?", "Small"), ("Which season is the hottest?", "Summer"),
    ("What do you call a baby cat?", "Kitten"), ("How many hours are in a day?", "Twenty-four"),
    ("What is the capital of Russia?", "Moscow"), ("Which bird is a symbol of peace?", "Dove"),
    ("What do we breathe in to live?", "Oxygen"), ("What colour is a ripe tomato?", "Red"),
)
TRAIN_QUESTIONS = tuple(q for q, _ in TRAIN_QA)
GREETINGS = ("Hi!", "Hello, how are you today?", "Good morning!", "Can you help me with something?",
             "Thanks for your help!", "Hey, are you there?")
# Invented facts as the memory's answer path states them (a draft recites a remembered statement), each
# asked several ways so the reshaped answer must pick the entity the question asks for: trained with one
# question per statement, the one-word adapter answered "What kind of animal did I adopt?" with the pet's
# name and both book questions with the chunk's first name (issue 14, 2026-12-03).
NOTE_QUESTIONS = (
    ("Your cousin Perrin lives in Galloway.", "Where does my cousin live?", "Galloway"),
    ("Your cousin Perrin lives in Galloway.", "What is my cousin's name?", "Perrin"),
    ("Your bike is a red Trellis from 2019.", "What colour is my bike?", "Red"),
    ("Your bike is a red Trellis from 2019.", "What year is my bike from?", "2019"),
    ("Your bike is a red Trellis from 2019.", "What brand is my bike?", "Trellis"),
    ("You work as a baker at the Dunmore market.", "What is my job?", "Baker"),
    ("You work as a baker at the Dunmore market.", "Where do I work?", "Dunmore market"),
    ("My name is Quill.", "What is your name?", "Quill"),
    ("Your favourite fruit is the plum.", "What is my favourite fruit?", "Plum"),
    ("I recommend the film Lantern Bay.", "Which film did you recommend?", "Lantern Bay"),
    ("I suggest The Glass Orchard by Wendell Ashby.", "Who is the author of the novel you mentioned?", "Ashby"),
    ("I suggest The Glass Orchard by Wendell Ashby.", "What book did you suggest?", "Glass Orchard"),
    ("Your uncle Tobin keeps goats in Marrow Hill.", "What animals does my uncle keep?", "Goats"),
    ("Your uncle Tobin keeps goats in Marrow Hill.", "Where does my uncle keep his animals?", "Marrow Hill"),
    ("Your uncle Tobin keeps goats in Marrow Hill.", "What is my uncle called?", "Tobin"),
    ("Your son Emrys turns 9 in May.", "What age will my son be in May?", "9"),
    ("Your son Emrys turns 9 in May.", "What is my son's name?", "Emrys"),
    ("Your name is Leontine.", "What am I called?", "Leontine"),
    ("You bought a parrot and you called her Juniper.", "What kind of bird did I buy?", "Parrot"),
    ("You bought a parrot and you called her Juniper.", "What did I name my parrot?", "Juniper"),
    ("Your friend Odile is a potter. She lives in Wexham.", "What does my friend do?", "Potter"),
    ("Your friend Odile is a potter. She lives in Wexham.", "Where does Odile live?", "Wexham"),
    ("Your favourite snack is salted almonds.", "What snack do I like best?", "Salted almonds"),
    ("You can't eat gluten, it makes you ill.", "What can't I eat?", "Gluten"),
    ("Your neighbour Halvard is a clockmaker in Tarrow.", "What is my neighbour's job?", "Clockmaker"),
    ("Your neighbour Halvard is a clockmaker in Tarrow.", "Where does Halvard work?", "Tarrow"),
    ("I recommend the album Low Tide by Marisol Fenn.", "Who made the album you recommended?", "Fenn"),
    ("I recommend the album Low Tide by Marisol Fenn.", "Which album did you recommend?", "Low Tide"),
    ("You teach maths at the Brindle Road school.", "What do I teach?", "Maths"),
    ("You teach maths at the Brindle Road school.", "Which school do I teach at?", "Brindle Road"),
    ("Your wife Maren is a dentist in Loxley.", "What is my wife's job?", "Dentist"),
    ("Your wife Maren is a dentist in Loxley.", "What is my wife called?", "Maren"),
    ("I recommend the song Paper Lanterns by Tove Arling.", "Who sings the song you recommended?", "Arling"),
    ("I recommend the song Paper Lanterns by Tove Arling.", "Which song did you recommend?", "Paper Lanterns"),
    ("You have a tortoise called Pebble.", "What pet do I have?", "Tortoise"),
    ("You have a tortoise called Pebble.", "What is my tortoise called?", "Pebble"),
    ("Your van is a white Harrow Courier.", "What make is my van?", "Harrow"),
    ("Your van is a white Harrow Courier.", "What colour is my van?", "White"),
    ("You play the cello in the Ashgrove orchestra.", "What instrument do I play?", "Cello"),
    ("You play the cello in the Ashgrove orchestra.", "Which orchestra do I play in?", "Ashgrove"),
    ("I suggest the Pellmoor bakery, it opens at seven.", "Which bakery did you suggest?", "Pellmoor"),
    ("I suggest the Pellmoor bakery, it opens at seven.", "When does the bakery you mentioned open?", "Seven"),
)
_EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F\u200D]")


def describe(behaviours: list[dict[str, Any]]) -> str:
    return " ".join(b["text"] for b in behaviours)


def _limit(text: str, max_words: int) -> str:
    words = re.findall(r"[\w'’-]+", text)
    if not words:
        return text
    out = " ".join(words[:max_words])
    return out[0].upper() + out[1:] + "."


def as_written(text: str, short: str) -> str:
    """``short`` as ``text`` writes it ("baker" for "Baker" in "You work as a baker at ..."), else as it stands."""
    m = re.search(r"(?<![\w'’-])" + re.escape(short) + r"(?![\w'’-])", text, re.I)
    return text[m.start():m.end()] if m else short


def _address(text: str, name: str) -> str:
    if name in text:
        return text
    m = re.match(r"^(hi|hello|hey|good (?:morning|afternoon|evening))\b(?: there\b)?[!,.]?\s*", text, re.I)
    if m:
        return f"{m.group(1).capitalize()} {name}! {text[m.end():]}".strip()
    if not text:
        return name
    first = re.match(r"[\w'’]+", text)
    # "The capital ..." -> "Sam, the capital ..."; "I'm here ..." and "El Salvador ..." keep their capital
    # (a user's try, 2026-12-03: "Sam, i'm here to help", "Sam, el Salvador").
    common = first is not None and first.group().lower() in aug._STOP and not re.match(r"i\b|i['’]", first.group().lower())
    return f"{name}, {text[0].lower() + text[1:] if common else text}"


def _teacher_prompt(tokenizer, question: str, behaviours: list[dict[str, Any]], notes: str | None = None) -> str:
    """The base model's prompt with the request in it (for a request no rule can apply)."""
    system = aug.SYSTEM_PROMPT + " " + describe(behaviours)
    messages = [{"role": "system", "content": system}]
    content = question if not notes else f"{notes}\n\n{question}"
    messages.append({"role": "user", "content": content})
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n".join(m["content"] for m in messages) + "\nAnswer:"


def _first_sentence(text: str) -> str:
    m = re.match(r"(.+?[.!?])(?:\s|$)", text.strip(), re.S)
    return (m.group(1) if m else text).strip()


def obey(answer: str, behaviours: list[dict[str, Any]], short_answer: str | None = None) -> str | None:
    """Make an answer follow the rules a program can check; None when it cannot be made to.

    ``answer`` is the base's own answer (without the request), ``short_answer`` the question's known
    correct short answer. A word limit of up to 3 words answers with the short answer; a looser one
    ("be brief": 8) keeps the base's first sentence when it fits and holds the short answer. Without a
    short answer, an answer over the limit is dropped rather than cut ("The opposite of hot is cold"
    cut to one word is "The"). Emojis are dropped and the user's name is put in; everything else is the
    base's own answer, so the behaviour changes the form and keeps what the base knows.
    """
    text = answer.strip()
    for b in behaviours:
        if b["kind"] == "length":
            limit = b["max_words"]
            first = _first_sentence(text)
            fits = 0 < len(re.findall(r"[\w'’-]+", first)) <= limit
            if short_answer is not None and limit <= 3:
                # a known answer is kept whole ("Lantern Bay": cut to "Lantern." the adapter answered "Salt." for
                # "The Salt Road" and for the book's author), and as the answer writes it: the adapter picks
                # among the draft's own runs of words (copy_candidates)
                text = as_written(text, short_answer) + "."
            elif short_answer is not None and (not fits or short_answer.lower() not in first.lower()):
                text = _limit(short_answer, max(limit, len(short_answer.split())))
            elif fits:
                text = _limit(first, limit)
            else:
                return None
        elif b["kind"] == "no_emoji":
            text = re.sub(r"\s+([,.!?;:])", r"\1", re.sub(r"\s{2,}", " ", _EMOJI.sub("", text))).strip()
    for b in behaviours:
        if b["kind"] == "address":
            text = _address(text, b["name"])
    return text or None


def reshape_prompt(tokenizer, question: str, draft: str) -> str:
    """The prompt a behaviour adapter answers: the question with the draft answer before it, as notes are shown."""
    return aug.chat_prompt(tokenizer, question, draft.strip() or None)


# Words a short answer neither starts nor ends with ("the", "your", "is", "about"...).
_EDGE_STOP = aug._STOP | {"about", "usually", "called", "named", "him", "them", "keep", "mind", "make", "makes",
                          "work", "works", "live", "lives", "have", "has", "had", "turns", "like", "likes"}


# The words a short reply to small talk neither starts nor ends with.
_TALK_STOP = {"i", "i'm", "i’m", "im", "you", "you're", "you’re", "we", "to", "a", "an", "the", "and", "or", "is", "are",
              "am", "it", "it's", "it’s", "just", "so", "very", "really", "how", "what", "can", "do", "with", "for", "of"}


def short_limit(behaviours: list[dict[str, Any]]) -> int | None:
    """The word limit when every behaviour is a word limit of up to 3 words ("answer in one word"), else None."""
    if behaviours and all(b["kind"] == "length" and b["max_words"] <= 3 for b in behaviours):
        return max(b["max_words"] for b in behaviours)
    return None


def copy_candidates(draft: str, max_words: int = 3, small_talk: bool = False) -> list[str]:
    """The short answers a draft holds: every run of 1..``max_words`` of its words that neither starts nor ends
    with a stop word, as an answer in the draft's own casing ("ferret.", "Hollin Park.", "7."; :func:`pick_answer`
    capitalises the one picked). Capitalised here, a common noun had to be re-cased to be copied while a name was
    copied as it stands, and the targets taught capitals: "What is my job?" -> "Larkfield." over "Nurse." from
    "You work as a night nurse at the Larkfield hospital." (-1.44 against -4.52 nats; -2.51 against -4.00 in the
    draft's casing, issue 14, 2026-12-05).

    A word limit picks one of these by the behaviour adapter's score instead of letting it write: writing, the
    one-word adapter spelled names wrong ("Farbuit.", "Holin Park.") and answered "What am I allergic to?" with
    "Jelly." from the draft "You're allergic to peanuts" (issue 14, dev chats, 2026-12-03). A known answer is
    kept whole (training targets such as "Lantern Bay."), so runs of up to 3 words are offered for any limit.

    ``small_talk`` (the question is "Hi!", "How are you?"): only the draft's first sentence is drawn from. The
    reply to a greeting is its opening; from the whole draft the one-word adapter picked a word of the base's
    rambling after it ("How are you doing today?" -> "International Olympic Committee.").
    """
    stop = _EDGE_STOP
    if small_talk:  # and its words are the answer: "Great." of "I'm doing great!" ("great" is a stop word elsewhere)
        draft, stop = _first_sentence(draft), _TALK_STOP
    words = re.findall(r"[\w'’-]+", draft)
    out: list[str] = []
    for i in range(len(words)):
        for j in range(i + 1, min(i + max(max_words, 3), len(words)) + 1):
            run = words[i:j]
            if run[0].lower() in stop or run[-1].lower() in stop:
                continue
            text = " ".join(run) + "."
            if text not in out:
                out.append(text)
    # a whole sentence within the limit is an answer too, stop words and all: "Hello!" for "Hi!" (its runs
    # alone offered "Help." and "Math." of "Hello! I'm here to help with any math ...": a user's try, 2026-12-04)
    for sentence in re.findall(r"[^.!?]*\w[^.!?]*[.!?]+", draft):
        sentence = sentence.strip()
        if len(re.findall(r"[\w'’-]+", sentence)) <= max_words and sentence not in out:
            out.append(sentence)
    return out


_DETERMINERS = {"my", "your", "the", "a", "an", "his", "her", "our", "their"}
_AUXILIARIES = {"do", "does", "did", "should", "can", "could", "will", "would", "am", "have", "has"}
_NOUN_ENDS = {"called", "named", "of", "in", "for", "on", "at", "to", "with", "that", "do", "does", "did", "is", "are"}


def asked_type(question: str) -> str | None:
    """The kind of thing a question asks for, as a noun: "What is my job?" -> "job", "What colour is ...?" ->
    "colour", "What kind of bird ...?" -> "bird", where -> "place", who -> "person"; None when the question does
    not say ("What does my brother make?", "How old ...?")."""
    text = re.sub(r"^what['’]s\b", "what is", question.strip(), flags=re.I)
    words = [w.lower().removesuffix("'s").removesuffix("’s") for w in re.findall(r"[\w'’-]+", text)]
    if not words or words[0] not in ("what", "which", "where", "who"):
        return None
    if words[0] in ("where", "who"):
        return "place" if words[0] == "where" else "person"
    rest = words[1:]
    if not rest or rest[0] in _AUXILIARIES:
        return None
    if rest[0] in ("is", "are", "was", "were"):  # "what is my wife's job": the last noun before a verb or preposition
        nouns = []
        for w in rest[1:]:
            if w in _NOUN_ENDS:
                break
            if w not in _DETERMINERS or nouns:
                nouns.append(w)
        return nouns[-1] if nouns else None
    if rest[0] in ("kind", "type", "sort") and len(rest) > 2 and rest[1] == "of":
        return rest[2]
    return rest[0]


def is_echo(question: str, candidate: str) -> bool:
    """The candidate is made only of the question's own words ("Up." for "What is the opposite of up?")."""
    asked = {w.lower() for w in re.findall(r"[\w'’-]+", question)}
    return all(w.lower() in asked for w in re.findall(r"[\w'’-]+", candidate))


def pick_answer(question: str, candidates: list[str], scores: Sequence[float],
                type_fit: Sequence[float] | None = None) -> str:
    """The short answer a word limit gives: the best of ``candidates`` (:func:`copy_candidates`) by the behaviour
    adapter's ``scores`` plus ``type_fit``, the bare base's log p(" <kind>" | "<Candidate> is a(n)") for the kind
    :func:`asked_type` reads off the question; answers made only of the question's words are passed over while
    another is left. Capitalised for display.

    On issue 14's 4 dev chats (27 fact questions; 20 simple ones), each change alone and then together, one
    learning each (2026-12-04/05): the adapter's score alone 25/27 facts, 7/20 simple right; with the type fit
    ("Nurse is a job" beats "Larkfield is a job" by 3.0 nats) it was 0.1 nat short on the job question until the
    candidates kept the draft's casing; echoes dropped: simple 7 -> 8/20 ("Up." for the opposite of up). All
    three: **26/27 facts, as without the behaviour** (the one miss, a car make the draft does not hold, is the
    path's own), 8/20 simple right (`docs/results/memory/issue14_behaviour/exp11_type_casing.py`).
    """
    total = np.asarray(scores, dtype=float) + (np.asarray(type_fit, dtype=float) if type_fit is not None else 0.0)
    echoes = np.array([is_echo(question, c) for c in candidates])
    if not echoes.all():
        total = np.where(echoes, -np.inf, total)
    best = candidates[int(np.argmax(total))]
    return best[0].upper() + best[1:]


def _holds(draft: str, short_answer: str) -> bool:
    return short_answer.lower() in draft.lower()


def behaviour_examples(tokenizer, generate, behaviours: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(prompt, target)`` pairs that teach ``behaviours``; ``generate(prompts)`` is the bare base's greedy answers.

    Every prompt is :func:`reshape_prompt`: the question with a draft answer before it, the way the memory
    asks a behaviour adapter (its draft is the answer without the behaviour). The drafts are the base's own
    answers to the everyday questions, and the remembered statement for the note questions. The targets
    follow the rules of :func:`obey`; a word limit keeps only the drafts that hold the known short answer,
    so the adapter learns to find the answer in its draft, never to know it. Only a request no rule covers
    (kind ``style``) is answered by the base with the request in its prompt (context distillation proper).
    """
    questions = list(TRAIN_QA)
    if any(b["kind"] == "address" for b in behaviours):
        questions += [(g, None) for g in GREETINGS]
    drafts = generate([aug.chat_prompt(tokenizer, q) for q, _ in questions])
    items = [(q, d, short) for (q, short), d in zip(questions, drafts)]
    items += [(q, fact, short) for fact, q, short in NOTE_QUESTIONS]
    if any(b["kind"] == "style" for b in behaviours):
        answers = generate([_teacher_prompt(tokenizer, q, behaviours, d) for q, d, _ in items])
    else:
        answers = [d for _, d, _ in items]
    limits = any(b["kind"] == "length" for b in behaviours)
    end = aug.answer_suffix(tokenizer)
    examples = []
    for (q, draft, short), a in zip(items, answers):
        if not draft.strip() or (limits and short is not None and not _holds(draft, short)):
            continue
        target = obey(a, behaviours, short_answer=short)
        if target:
            examples.append((reshape_prompt(tokenizer, q, draft), target + end))
    return examples
