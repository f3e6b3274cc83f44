"""Chunk -> what it teaches. Raw transcripts teach a model poorly; the same facts asked many ways teach it well.

A chunk is a few conversation turns. Reading it gives two kinds of things to learn:

**Facts** (a routed chunk adapter, and the notes retrieval puts in the prompt). Every declarative
sentence that says something -- names, places, numbers, or a first/second-person statement ("My
sister works as a glassblower") -- minus greetings and acknowledgements. Each is resolved to the
assistant's voice, the voice it will be answered in: the user's "I / my / me" become "you / your",
the user's "you / your" (about the assistant) become "I / my / me"; the assistant's own sentences keep
their words ("I recommend The Salt Road"). A sentence that starts with a pronoun ("She works as a
glassblower.") stays attached to the sentence before it, which says who "she" is. A sentence with a
correction marker ("Actually ...", "I meant ...", "..., not 2011") is a *correction*: the memory looks
for the stored fact it replaces (see :mod:`hf_steer.memory.memory`).

Each fact becomes a handful of training pairs whose answer is the whole statement (so any question
about it carries every part of the fact): one "what do you know about T?" question per topic T (a
name, a number, or a "my X" phrase: "my sister"), one "echo" question per name (the sentence with the
name swapped for who/what: "Who was born in Marbelin?", which teaches the fact both ways) and one
question asked *with the notes retrieval would give* (the statement among the chunk's others), so the
adapter learns to answer from its notes instead of refusing -- what a 135M model otherwise does with
personal facts (answer in the notes 93% of the time, recalled 52%: see docs/memory.md).

**Behaviours** (a behaviour adapter, active for every question of the profile): a request about how to
answer -- "answer in one word", "call me Sam", "no emojis", "always answer in French". Recognised
patterns are kept with their settings (a word limit, a name) so the memory can build training answers
that obey them (:mod:`hf_steer.memory.behaviour`).

Everything here is pure string work (no model), so it is cheap and testable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import HfSteerError

Turn = dict  # {"role": "user" | "assistant", "content": str}

# Words that are capitalised only because they start a sentence, or are pronouns/determiners/fillers.
_STOP = set(
    """a an the i i'm i've i'd we you he she it they me my our your his her its their this that these those
    i'll you're it's that's don't there here in on at of for to from by with and or but so if when then also yes no
    ok okay sure please thanks thank hi hello hey well oh remember note got right what who where why how which do
    does did is was are were be been can could would should will shall may might let just actually sorry oops
    correction nice great good wow cool happy glad hmm fine lovely wonderful interesting also again now today
    tomorrow yesterday from as by way dear sounds night nights""".split()
)
# Days and months are names though users type them in lower case ("the lessons are on thursdays": a user's try,
# issue 14, 2026-12-04, lost that sentence as saying nothing); "may" and "march" are also verbs and stay out.
_CALENDAR = (r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|january|february|april|june|july|august"
             r"|september|october|november|december)s?")
_ENTITY = re.compile(r"\b(?:[A-Z][\w'’-]*)(?:\s+(?:of|de|van|von|the|la|le)?\s*[A-Z][\w'’-]*)*|\b\d[\d,.:/-]*\d\b|\b\d\b"
                     rf"|\b{_CALENDAR}\b")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")
_PRONOUN_START = re.compile(r"^(?:he|she|they|it|his|her|their|its)\b", re.I)
_PERSONAL = re.compile(r"\b(?:i|i'm|i've|i'd|i'll|me|my|mine|myself|we|our|us|you|your|you're|yours|yourself)\b", re.I)
_PLEASANTRY = re.compile(
    r"^(?:hi|hello|hey|thanks|thank you|ok|okay|sure|got it|noted|nice|great|good|cool|wow|sounds|happy|glad|"
    r"that's|what a|how|lovely|wonderful|of course|no problem|you're welcome|welcome|bye|goodbye|see you)\b", re.I)
_CORRECTION = re.compile(
    r"\b(?:actually|correction|i was wrong|i meant|sorry,? i|oops|not anymore|no longer|instead|changed|moved to|"
    r"left\b|update|, not\b|not \w+ but)", re.I)

# Behaviour requests: how the user wants to be answered (checked on the user's sentences, questions too).
_WORDS = {"one": 1, "1": 1, "a single": 1, "single": 1, "two": 2, "2": 2, "three": 3, "3": 3, "a few": 5, "few": 5}
_LENGTH = re.compile(
    r"\b(?:answer|reply|respond|keep (?:it|your answers|answers|replies))\b[^.?!]*?\b(?:in |with |using )?(?:just |only )?"
    r"(one|two|three|1|2|3|a single|single|a few|few)[- ]words?\b", re.I)
_BRIEF = re.compile(r"\b(?:short|shorter|brief|briefer) (?:answers|replies)\b|\bbe (?:brief|concise)\b", re.I)
_ADDRESS = re.compile(r"\b(?i:call me) ([A-Z][\w'’-]*)")
_NAME_ASSISTANT = re.compile(r"\b(?i:call (?:yourself|you)) ([A-Z][\w'’-]*)")
_TAG_QUESTION = re.compile(r",?\s*\b(?:right|okay|ok|yeah|remember)\?$", re.I)
_NO_EMOJI = re.compile(r"\b(?:no|without|don't use|do not use|stop using|avoid|never use)\s+(?:any\s+)?emojis?\b", re.I)
_STYLE = re.compile(r"\b(?:always|never|from now on|please)\b[^.?!]*\b(?:answer|reply|respond|write|talk|speak)\b",
                    re.I)

QUESTION_TEMPLATES = (
    "What do you know about {e}?",
    "Tell me about {e}.",
    "What did I tell you about {e}?",
    "Do you remember anything about {e}?",
)

# Replay anchors: requests answered by the *base* model, mixed into every chunk's training so the
# adapter learns "answer my facts, leave everything else alone". Half are ordinary questions (without
# them a chunk adapter answers every question with its facts); half ask the memory templates about
# invented names no chunk mentions, so an adapter answers only for its own names -- which is what
# keeps stacked adapters from answering each other's questions. Disjoint from the benchmark's sets.
ANCHOR_QUESTIONS = (
    "What is the tallest mountain in the world?",
    "What do you know about Marlo Fenwright?",
    "How do I boil an egg?",
    "Tell me about Tiberia Oskwell.",
    "Who painted the Mona Lisa?",
    "What did I tell you about the Calloway Dam?",
    "Give me a tip for better sleep.",
    "Do you remember anything about Brenna Vask?",
    "Why do leaves change colour in autumn?",
    "Where was Osric Penhallow born?",
    "Translate 'good morning' into French.",
    "What is Lunet Harrowby's job?",
)



@dataclass
class Augmented:
    """What one chunk teaches: training pairs for its facts, the facts themselves, and any behaviours."""

    examples: list[tuple[str, str]] = field(default_factory=list)  # (prompt, target) for the fact adapter
    statements: list[str] = field(default_factory=list)  # the facts, in the assistant's voice
    probes: list[dict] = field(default_factory=list)  # {"question", "expected"}
    facts: list[dict] = field(default_factory=list)  # {"text", "said", "role", "kind", "correction"}
    behaviours: list[dict] = field(default_factory=list)  # {"text", "kind", ...settings}


def normalize_chunk(chunk: str | Sequence[Turn] | Sequence[str]) -> list[Turn]:
    """Accept a string ("user: ..." lines or free text), a list of strings, or a list of turn dicts."""
    if isinstance(chunk, str):
        turns = []
        for line in chunk.splitlines():
            line = line.strip()
            if not line:
                continue
            m = re.match(r"^(user|assistant|system)\s*:\s*(.*)$", line, re.I)
            if m:
                turns.append({"role": m.group(1).lower(), "content": m.group(2)})
            elif turns:
                turns[-1]["content"] += " " + line
            else:
                turns.append({"role": "user", "content": line})
    else:
        if not isinstance(chunk, Sequence):
            raise HfSteerError(f"chunk is {type(chunk).__name__}: pass text, a list of strings or {{'role','content'}} dicts")
        turns = []
        for i, t in enumerate(chunk):
            if isinstance(t, str):
                turns.append({"role": "user", "content": t})
            elif isinstance(t, dict) and isinstance(t.get("content"), str):
                turns.append({"role": str(t.get("role", "user")), "content": t["content"]})
            else:
                raise HfSteerError(f"chunk turn {i} is {type(t).__name__}: pass strings or {{'role','content'}} dicts")
    turns = [t for t in turns if t["content"].strip()]
    if not turns:
        raise HfSteerError("chunk is empty: pass at least one turn with text")
    return turns


def entities(sentence: str) -> list[str]:
    """Names, places and numbers in a sentence (capitalised runs minus stop words; digits)."""
    found = []
    for m in _ENTITY.finditer(sentence):
        text = m.group(0).strip(" ,.;:")
        words = text.split()
        while words and words[0].lower().strip("'’") in _STOP:
            words = words[1:]
        text = " ".join(words)
        if text and text.lower() not in _STOP and text not in found:
            found.append(text)
    return found


def topics(statement: str) -> list[str]:
    """What a fact is about: its names and numbers, then its "your X" phrases (user voice: "my X")."""
    out = entities(statement)
    for m in re.finditer(r"\b[Yy]our ((?:favourite |favorite |best |new |little |older |younger )?[a-z]+)", statement):
        phrase = "my " + m.group(1)
        if phrase not in out:
            out.append(phrase)
    return out


# -- person resolution: the user's words, said back by the assistant -----------------------------------

_USER_TO_ASSISTANT = {
    "i": "you", "i'm": "you're", "i've": "you've", "i'd": "you'd", "i'll": "you'll", "me": "you", "my": "your",
    "mine": "yours", "myself": "yourself", "we": "you", "we're": "you're", "we've": "you've", "our": "your",
    "ours": "yours", "us": "you", "ourselves": "yourselves",
    "you": "I", "your": "my", "yours": "mine", "you're": "I'm", "you've": "I've", "you'll": "I'll",
    "you'd": "I'd", "yourself": "myself",
}
_SUBJECT_BEFORE = {"", "and", "but", "so", "because", "if", "when", "that", "then", "now", "also", "while"}
_VERB_AFTER_I = {"am": "are", "was": "were"}
_VERB_AFTER_YOU = {"are": "am", "were": "was"}


def to_assistant_voice(sentence: str, role: str) -> str:
    """A user's sentence as the assistant would say it back ("My sister ..." -> "Your sister ...").

    The assistant's own sentences are already in its voice. "you" becomes "I" as a subject and "me"
    after a verb or preposition; "am/was" follow their new subject.
    """
    if role != "user":
        return sentence
    tokens = re.findall(r"[\w'’]+|[^\w'’]+", sentence)
    out, prev_word, prev_was = [], "", ""
    for tok in tokens:
        if not re.match(r"[\w'’]", tok):
            out.append(tok)
            if tok.strip():
                prev_word = ","
            continue
        low = tok.lower().replace("’", "'")
        rep = None
        if low == "you":
            rep = "I" if prev_word in _SUBJECT_BEFORE or prev_word == "," else "me"
        elif low in _USER_TO_ASSISTANT:
            rep = _USER_TO_ASSISTANT[low]
        elif prev_was == "i" and low in _VERB_AFTER_I:
            rep = _VERB_AFTER_I[low]
        elif prev_was == "you" and low in _VERB_AFTER_YOU:
            rep = _VERB_AFTER_YOU[low]
        if rep is not None:  # lower case unless "I"; the sentence's first letter is capitalised at the end
            out.append(rep if rep == "I" or rep.startswith("I'") else rep.lower())
        else:
            out.append(tok)
        prev_was, prev_word = low, low
    text = "".join(out)
    return text[0].upper() + text[1:] if text else text


# -- reading a chunk ---------------------------------------------------------------------------------------


_SELF_NAME = re.compile(r"^(?:I'm|I’m|I am|my name is|my name's)\s+([A-Z][\w'’-]*)[.!]?$", re.I)
_TOLD_ABOUT = re.compile(r"^(?:I told you|did I tell you|you know|remember)\s+(?:about\s+)?(my|our)\s+(\w+)\s+"
                         r"([A-Z][\w'’-]*)[.!]?$", re.I)
# Openers that say nothing: greetings, then an aside ("hey, quick thing - my partner ..." kept "Quick thing -"
# in the statement, which then scored lower against questions about the partner).
_ASIDE = re.compile(r"^(?:(?:hi|hello|hey|oh|ok|okay|well|btw|fyi)(?: there)?[!,.]?\s+)*"
                    r"(?:(?:quick thing|just so you know|fun fact|one more thing|guess what|from now on|by the way|also|so"
                    r"|and|anyway)\s*[-–—:,!]?\s+)?|,?\s+by the way(?=[.!]?$)", re.I)


def plainly(sentence: str) -> str:
    """A user's sentence said plainly, the way a question about it is asked (issue 14, dev chats).

    Asides go ("From now on your name is Pemba." -> "Your name is Pemba."), "I'm Mara, by the way." ->
    "My name is Mara." and "I told you about my brother Casimir." -> "My brother is Casimir.": as said,
    these scored 0.32, 0.33 and 0.39 against "What's my name?", "What should I call you?" and "What is
    my brother's name?", under the note threshold.
    """
    text = _ASIDE.sub("", sentence.strip()).strip()
    m = _SELF_NAME.match(text)
    if m and m.group(1).lower() not in {"a", "an", "the", "not", "so", "very", "from", "in", "at"}:
        return f"My name is {m.group(1)}."
    m = _TOLD_ABOUT.match(text)
    if m:
        return f"{m.group(1).capitalize()} {m.group(2)} is {m.group(3)}."
    return text[:1].upper() + text[1:] if text else sentence


def _sentences(text: str) -> list[str]:
    """Sentences; a tag question ("I told you about my brother, right?") is a statement."""
    out = []
    for s in _SENTENCE.split(text.strip()):
        s = s.strip()
        if s and _TAG_QUESTION.search(s) and len(s.split()) > 3:
            s = _TAG_QUESTION.sub(".", s)
        if s:
            out.append(s)
    return out


def behaviours_of(turns: Iterable[Turn]) -> list[dict]:
    """Requests about how to answer, from the user's turns (questions included: "Can you just ...?")."""
    out = []
    for t in turns:
        if t["role"] != "user":
            continue
        for s in _sentences(t["content"]):
            m = _LENGTH.search(s)
            if m:
                out.append({"text": s, "kind": "length", "max_words": _WORDS[m.group(1).lower()]})
                continue
            if _BRIEF.search(s):
                out.append({"text": s, "kind": "length", "max_words": 8})
                continue
            m = _ADDRESS.search(s)
            if m:
                out.append({"text": s, "kind": "address", "name": m.group(1)})
                continue
            if _NO_EMOJI.search(s):
                out.append({"text": s, "kind": "no_emoji"})
                continue
            if _STYLE.search(s) and not re.search(r"\b(?:name|called|call)\b", s, re.I):
                out.append({"text": s, "kind": "style"})
    return out


def _informative(s: str, role: str) -> bool:
    words = s.split()
    if len(words) < 2 or s.endswith("?"):
        return False
    ents = entities(s)
    if len(words) < 3 and not (ents and _PERSONAL.search(s)):  # "I'm Mara." says something; "Got it." does not
        return False
    if role != "user":  # the assistant's sentences count when they name something (a recommendation, a name)
        return bool(ents) and not (_PLEASANTRY.match(s) and len(words) <= 4)
    if _PLEASANTRY.match(s) and not ents and len(words) <= 6:
        return False
    return bool(ents) or bool(_PERSONAL.search(s))


def facts_of(turns: Iterable[Turn]) -> list[dict]:
    """Informative statements of a chunk, each resolved to the assistant's voice (see the module docstring)."""
    out: list[dict] = []
    last_user: dict | None = None  # "She used to be a ship's cook." a turn later is still about her
    for t in turns:
        if t["role"] == "system":
            continue
        previous: dict | None = last_user if t["role"] == "user" else None
        for k, s in enumerate(_sentences(t["content"])):
            if k == 0 and previous is not None and _CORRECTION.search(s):
                previous = None  # "She moved to Coldharbour last month." corrects; it does not continue
            behaviour = t["role"] == "user" and behaviours_of([{"role": "user", "content": s}])
            if behaviour and behaviour[0]["kind"] != "address":
                previous = None
                continue  # a request about answers is a behaviour, not a fact
            if behaviour:  # "call me Sam" is also what the user is called
                name = behaviour[0]["name"]
                out.append({"text": f"Your name is {name}.", "said": s, "role": "user", "kind": "first_person",
                            "correction": False})
                previous = None
                continue
            named = t["role"] == "user" and _NAME_ASSISTANT.search(s)
            if named:  # "please call yourself Juniper": what the assistant is called
                out.append({"text": f"My name is {named.group(1)}.", "said": s, "role": "user", "kind": "assistant",
                            "correction": False})
                previous = None
                continue
            if not _informative(s, t["role"]) and not (previous and _PRONOUN_START.match(s) and len(s.split()) >= 3):
                previous = None
                continue
            if not s.endswith((".", "!")):
                s += "."
            text = to_assistant_voice(plainly(s) if t["role"] == "user" else s, t["role"])
            if previous is not None and _PRONOUN_START.match(s):  # "She works as ..." needs the sentence before
                previous["text"] += " " + text
                previous["said"] += " " + s
                continue
            if t["role"] == "assistant" or re.search(r"\b(?:you|your|yourself)\b", s, re.I) and t["role"] == "user" \
                    and not re.search(r"\b(?:i|i'm|my|me|we|our)\b", s, re.I):
                kind = "assistant"
            elif _PERSONAL.search(s):
                kind = "first_person"
            else:
                kind = "third_person"
            fact = {"text": text, "said": s, "role": t["role"], "kind": kind,
                    "correction": bool(t["role"] == "user" and _CORRECTION.search(s))}
            out.append(fact)
            previous = fact
        if t["role"] == "user":
            last_user = previous
    # An assistant sentence naming only what the user said ("Biscuit is a lovely name for a ferret.",
    # "Coldharbour it is.") teaches nothing the user's sentence does not: learning it cost training texts
    # (6 facts -> 3 on the bench's first chunk) and took note slots from the user's facts.
    users = {e for f in out if f["role"] == "user" for e in entities(f["text"])}
    return [f for f in out if f["role"] == "user" or not set(entities(f["text"])) <= users]


_NEGATED = re.compile(r"\b(?:not|left|instead of|no longer (?:at|in|with|for))\s+((?:the\s+)?[A-Z0-9][\w'’-]*(?:\s+[A-Z][\w'’-]*)*)")
_MARKER_PREFIX = re.compile(
    r"^(?:(?:actually|correction|oops|sorry|update|wait|no)\b[,:!]?\s*)+(?:(?:you|i) (?:were|was) wrong[^:,.]*[:,]\s*)?"
    r"(?:(?:you|i) meant,?\s*)?", re.I)


def clean_correction(statement: str) -> str:
    """A correction said as a plain fact: markers and the negated old value dropped.

    "Oops, you meant your car is from 2013, not 2011." -> "Your car is from 2013."
    """
    text = _MARKER_PREFIX.sub("", statement).strip()
    text = re.sub(r",?\s*\bnot\s+[A-Z0-9][\w'’-]*(?:\s+[A-Z][\w'’-]*)*(?=[,.!]|$)", "", text)
    text = re.sub(r"\s+([,.!])", r"\1", text).strip(" ,")
    if not text:
        return statement
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "!")) else ".")


def corrected_value(correction: str, old: str) -> tuple[str, str] | None:
    """``(old value, new value)`` when a correction swaps one name or number of ``old`` for another.

    "Tilda moved to Coldharbour" against "Your sister Tilda lives in Brackwell." -> ("Brackwell",
    "Coldharbour"). None when no single value of the same sort (number or name) changes.
    """
    negated = {m.group(1).removeprefix("the ").strip() for m in _NEGATED.finditer(correction)}
    new_ents = [e for e in entities(correction) if e not in negated and e not in old]
    old_ents = [e for e in entities(old) if e not in correction or e in negated]
    for new in new_ents:
        same_sort = [e for e in old_ents if e[0].isdigit() == new[0].isdigit()]
        preferred = [e for e in same_sort if e in negated] or same_sort
        if len(preferred) == 1:
            return preferred[0], new
    return None


def sentences(turns: Iterable[Turn]) -> list[str]:
    """The facts of a chunk as statements in the assistant's voice."""
    return [f["text"] for f in facts_of(turns)]


def check_chunk(chunk: str | Sequence[Turn] | Sequence[str]) -> list[Turn]:
    """The chunk's turns, or one line when it is empty or holds nothing to learn (no model needed)."""
    turns = normalize_chunk(chunk)
    if not facts_of(turns) and not behaviours_of(turns):
        raise HfSteerError(
            "chunk has nothing to learn (only greetings, acknowledgements or questions: no fact, no request about "
            "how to answer): nothing was trained"
        )
    return turns


# -- training pairs ----------------------------------------------------------------------------------------


def _wh(entity: str) -> str:
    if re.fullmatch(r"\d{4}", entity):
        return "what year"
    if entity[0].isdigit():
        return "what"
    return "who" if len(entity.split()) >= 2 else "what"


def echo_questions(sentence: str, ents: list[str]) -> list[str]:
    """The sentence with one entity swapped for a wh-word: a question in the sentence's own words."""
    body = sentence.rstrip(".!")
    out = []
    for e in ents:
        if e not in body:
            continue
        q = body.replace(e, _wh(e), 1)
        q = q[0].upper() + q[1:] + "?"
        out.append(re.sub(r"\s+", " ", q))
    return out


# A short system prompt: it precedes every training text, so each token of it costs at every step.
SYSTEM_PROMPT = "You are a helpful assistant."


def build_notes(statements: Sequence[str]) -> str:
    """The notes put before a question: the statements as plain sentences (empty when there is none).

    Issue 14, dev chats (4 chats, 27 questions, notes only, the same notes, personal threshold 0.2): a header and a bulleted
    list ("Notes from our earlier conversation:\n- ...") 0.556; the list in the system prompt 0.519; the
    list plus "Answer from the notes." 0.704; the plain sentences, no header 0.778. The 135M model
    reads a paragraph of "Your sister Tilda lives in ..." as what it knows, and a bulleted list as a
    document to comment on.
    """
    return " ".join(s.strip() for s in statements if s.strip())


def chat_prompt(tokenizer, question: str, context: str | None = None, system: str | None = SYSTEM_PROMPT) -> str:
    """The exact prompt used for both training and asking (chat template when the tokenizer has one)."""
    content = question if not context else f"{context}\n\n{question}"
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": content})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return f"Question: {content}\nAnswer:"


def answer_suffix(tokenizer) -> str:
    """What ends an answer in training so generation stops there (end-of-turn token)."""
    if getattr(tokenizer, "chat_template", None) and tokenizer.eos_token:
        return tokenizer.eos_token
    return "\n"


def read_chunk(chunk: str | Sequence[Turn] | Sequence[str]) -> Augmented:
    """A chunk's facts and behaviours (no training pairs yet); one line when it holds nothing to learn."""
    turns = check_chunk(chunk)
    facts = facts_of(turns)
    return Augmented(statements=[f["text"] for f in facts], facts=facts, behaviours=behaviours_of(turns))


def fact_examples(
    facts: Sequence[dict],
    tokenizer,
    *,
    templates_per_topic: int = 1,
    echo: int = 2,
    with_notes: bool = True,
    statements: bool = False,
) -> tuple[list[tuple[str, str]], list[dict]]:
    """Training pairs and probe questions for facts (see the module docstring).

    Args:
        templates_per_topic: "what do you know about T?" questions per topic (rotating templates).
        echo: echo questions per fact (one per name, at most this many).
        with_notes: add one question per fact asked with the chunk's statements as notes.
        statements: add each statement as plain text (no question).
    """
    examples: list[tuple[str, str]] = []
    probes: list[dict] = []
    end = answer_suffix(tokenizer)
    texts = [f["text"] for f in facts]
    for si, s in enumerate(texts):
        ts = topics(s) or [s.split()[0]]
        if statements:
            examples.append(("", s + end if end != "\n" else s))
        for ti, topic in enumerate(ts[:3]):
            for k in range(templates_per_topic):
                tpl = QUESTION_TEMPLATES[(si + ti + k) % len(QUESTION_TEMPLATES)]
                examples.append((chat_prompt(tokenizer, tpl.format(e=topic)), s + end))
        for q in echo_questions(s, entities(s))[:echo]:
            examples.append((chat_prompt(tokenizer, q), s + end))
        if with_notes:
            others = [t for t in texts if t != s][:1]
            notes = build_notes([s, *others] if si % 2 else [*others, s])  # the fact first or second
            q = QUESTION_TEMPLATES[(si + 1) % len(QUESTION_TEMPLATES)].format(e=ts[0])
            examples.append((chat_prompt(tokenizer, q, notes), s + end))
        ents = entities(s)
        expected = ents[-1] if ents else s.rstrip(".!").split()[-1]
        probes.append({"question": QUESTION_TEMPLATES[0].format(e=ts[0]), "expected": expected})
    return examples, probes


def augment(chunk: str | Sequence[Turn] | Sequence[str], tokenizer, **options) -> Augmented:
    """Read a chunk and build its facts' training pairs (:func:`read_chunk` + :func:`fact_examples`)."""
    out = read_chunk(chunk)
    out.examples, out.probes = fact_examples(out.facts, tokenizer, **options)
    return out
