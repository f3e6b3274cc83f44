"""Shared by the pick experiments (exp5_calibrate.py, exp7_prior.py, exp8_type.py, exp10_casing.py, exp11_type_casing.py):
the questions they score and the small checks they share (the answer-type check and the echo test are the memory's own
since 2026-12-05: behaviour.asked_type, behaviour.is_echo, LoraMemory._type_fit). Run from this folder (the scripts
import it beside them)."""
import re

import numpy as np

from hf_steer.memory import behaviour as beh
from hf_steer.memory import bench_chats as chats


def patch_casing():
    """Short answers in the draft's own casing (exp10_casing.py): the behaviour's targets and the memory's candidates
    are the draft's run of words ("baker.", "nurse.", "Larkfield."). Returns the patched copy_candidates."""
    from hf_steer.memory import memory as memory_module

    original_obey, original_candidates = beh.obey, beh.copy_candidates

    def as_in(draft: str, short: str | None) -> str | None:
        """The known short answer as the draft writes it ("baker" for "Baker" in "... as a baker at ...")."""
        if short is None:
            return None
        m = re.search(re.escape(short), draft, re.I)
        return draft[m.start():m.end()] if m else short

    def obey(answer, behaviours, short_answer=None):
        return original_obey(answer, behaviours, as_in(answer, short_answer))

    def limit(text, max_words):  # _limit without the capital
        words = re.findall(r"[\w'’-]+", text)
        return " ".join(words[:max_words]) + "." if words else text

    def candidates(draft, max_words=3, small_talk=False):
        """copy_candidates in the draft's own casing."""
        out = []
        for c in original_candidates(draft, max_words, small_talk):
            body = c.rstrip(".!?")
            m = re.search(r"(?<![\w'’-])" + re.escape(body) + r"(?![\w'’-])", draft, re.I)
            out.append(draft[m.start():m.end()] + c[len(body):] if m else c)
        return list(dict.fromkeys(out))

    beh.obey, beh._limit = obey, limit  # behaviour_examples looks both up in its module
    memory_module.copy_candidates = candidates
    return candidates


def has(answer: str, expected: str) -> bool:
    return expected.lower() in answer.lower()


echo = beh.is_echo


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


def score_four_ways(mem, tally: dict, candidates=beh.copy_candidates, show=("plain", "type", "noecho", "noecho+type")):
    """A ``score`` for :func:`for_each_draft`: the word-limit pick by the adapter's score alone (``plain``), plus the
    answer-type fit (``type``), with echoes of the question dropped (``noecho``), and both; right/wrong per way in
    ``tally`` (exp8_type.py, exp11_type_casing.py). Misses of the ways in ``show`` are printed."""
    def score(q, draft, names, expected, label):
        cands = candidates(draft, 1)
        if not cands:
            return
        plain = np.array(mem._answer_scores(beh.reshape_prompt(mem.tokenizer, q, draft), cands, names))
        noun = beh.asked_type(q)
        typ = np.array(mem._type_fit(noun, cands)) if noun else np.zeros(len(cands))
        keep = np.array([not echo(q, c) for c in cands])
        if not keep.any():
            keep[:] = True
        rows = {"plain": plain, "type": plain + typ, "noecho": np.where(keep, plain, -1e9),
                "noecho+type": np.where(keep, plain + typ, -1e9)}
        for how, s in rows.items():
            pick = cands[int(np.argmax(s))]
            ok = has(pick, expected)
            tally.setdefault(f"{label}/{how}", []).append(ok)
            if how in show and not ok:
                top = sorted(zip(s, cands), reverse=True)[:3]
                print(f"  {label} {how} [{noun}] {q!r} {expected!r}: {pick!r}  top "
                      f"{[(c, round(float(v), 2)) for v, c in top]} <- {draft!r}", flush=True)
    return score
