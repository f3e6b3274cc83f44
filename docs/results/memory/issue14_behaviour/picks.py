"""Shared by the pick experiments (exp5_calibrate.py, exp7_prior.py, exp8_type.py): the questions they score and
the small checks they share. Run from this folder (the scripts import it beside them)."""
import re

from hf_steer.memory import bench_chats as chats

WORD = re.compile(r"[\w'’-]+")


def has(answer: str, expected: str) -> bool:
    return expected.lower() in answer.lower()


def echo(question: str, candidate: str) -> bool:
    """The candidate is made only of the question's own words ("Up." for "What is the opposite of up?")."""
    asked = {w.lower() for w in WORD.findall(question)}
    return all(w.lower() in asked for w in WORD.findall(candidate))


def learn(mem) -> None:
    """Teach the 4 dev chats, each with the "answer in one word" chunk, into ``mem`` (one profile per chat)."""
    for chat in chats.DEV_CHATS:
        mem.use_profile(chat["name"])
        for c in chat["chunks"]:
            mem.remember(c)
        mem.remember(chats.BEHAVIOUR["chunk"])


def for_each_draft(mem, score) -> None:
    """``score(question, draft, behaviour_names, expected, label)`` for the 27 fact questions of the 4 dev chats
    (label "fact", each in its chat's profile) and the 20 simple questions (label "simple", the first chat's),
    with the default path's drafts."""
    for chat in chats.DEV_CHATS:
        mem.use_profile(chat["name"], create=False)
        names = tuple(mem.names("behaviour"))
        assert names, f"no behaviour adapter in {chat['name']}"
        qs = chat["questions"]
        for (q, e, *_), r in zip(qs, mem.answer_many([q for q, *_ in qs], max_new_tokens=32)):
            score(q, r.get("draft", ""), names, e, "fact")
    mem.use_profile(chats.DEV_CHATS[0]["name"], create=False)
    names = tuple(mem.names("behaviour"))
    simple = chats.BEHAVIOUR["questions"]
    for (q, e), r in zip(simple, mem.answer_many([q for q, _ in simple], max_new_tokens=32)):
        score(q, r.get("draft", ""), names, e, "simple")
