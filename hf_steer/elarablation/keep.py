"""Keep contexts generated from the training contexts: a stock name is introduced, then referred back to.

A slop context ends where a name is *invented* (``The elf girl nods. "My name is``); the adapter must
learn to push stock names down there. Trained on those alone it learns a token ban (" El" down
everywhere), and a character the story already named Elara loses her name. So for each slop context
whose rules ban stock names, :func:`keep_rows` writes a few *keep* contexts: the same context, the
banned name filled in, a bridging sentence, and a slot where that name must come back::

    The elf girl nods. "My name is Elara." From that night on, Hugo and     -> " Elara" is held

The first keep context of each slop context is its *echo*: the slot's own last words said again once the
name is known (``"My name is Elara." Hugo leaned closer. "Sorry, what was that?" She said it again: "My
name is`` -> " Elara"). Same words, opposite targets: only the name earlier in the text tells them apart.
Without it the adapter learned the slot's words as a ban (names after a title or in an address fell most).
Measured exactly (``docs/results/elarablation/exact_check.py``, bundled model, seeds 0-2, two cores): the
El- back-references keep 84.9% -> 98.7% on the bench's 20 slots and 76.2% -> 96.3% on a second set written
apart, with 3 keep contexts (the echo + 2 bridges) against the 2 bridges before; the echo in place of one of the
2 bridges, 96.9% / 86.0%.

The trainer holds the model's distribution at those slots (``loss.keep_loss``). The bridges are fixed
templates written for hf_steer; they are not the bench's back-reference contexts (``reference`` lists
of the library), which stay held out.
"""

from __future__ import annotations

import re
from typing import Any

from .contexts import TokenRules, TokenTexts, make_row

# Stock names of LLM fiction (El- ones first): introduced in keep contexts when a row's rules ban them.
STOCK_NAMES = ("Elara", "Elena", "Elowen", "Eldrin", "Elias", "Elyra", "Lyra", "Aria", "Seraphina", "Kael",
               "Thorne", "Aurora", "Zara", "Kira", "Aric", "Cael", "Zephyr", "Luna")

# Bridges after the introduced name: {name} is the name, {other} another character. Each ends at a slot where
# the name comes back; written to be varied (dialogue, contrast, narration), not to match any bench context.
BRIDGES = (
    ' The others nodded. "Then sit with us, {name}. You must be tired." She smiled, and {other} turned to',
    " The room fell quiet. Nobody spoke for a while. At last {other} stood up and walked over to",
    ' {other} frowned. "I have heard of you." For a long time the two of them said nothing. Then {other} '
    'looked straight at her and said, "Tell me the truth,',
    " {other} liked to talk; she preferred to listen. When the fire burned low, {other} yawned, but",
    " From that night on, {other} and",
    ' "Well met," said {other}, and held out a hand. "I am {other}." The two shook hands, and then',
    # a title right before the slot: the slot bench's training contexts invent a name there ("I am Princess"),
    # so without this shape the adapter learned "no El- name after a title" (a back-reference after "Lady"
    # kept 31% of its probability)
    ' {other} rose from the bench and bowed low. "You are welcome in this house, {title}',
    ' {other} poured two cups of tea and pushed one across the table. "Drink it while it is hot,',
)
# The echo bridge: the slop slot's own last words, said again once the name is known ({tail}). The same words
# end the slop context (a name is invented there: pushed down) and this keep context (the name comes back: held),
# so only the name earlier in the text tells them apart, and the adapter cannot learn the slot's words as a ban.
ECHO_DIALOGUE = ' {other} leaned closer. "Sorry, what was that?" She said it again: {tail}'
ECHO_NARRATION = " Years later, {other} still told it the same way: {tail}"
# The title before a name in the title bridge; names not listed here take "Lady".
MALE_NAMES = frozenset({"Eldrin", "Elias", "Kael", "Thorne", "Aric", "Cael", "Zephyr"})
OTHERS = ("Hugo", "Wren", "Osric", "Pell", "Dunstan", "Merrick")


def _bans(rules: TokenRules, texts: TokenTexts, tokenizer, name: str) -> bool:
    """Does ``rules`` push the name's first token down at the slot (directly or as a bad word's beginning)?"""
    ids = tokenizer(" " + name, add_special_tokens=False)["input_ids"]
    return bool(ids) and rules.classify(texts(ids[0]), ids[0]) in ("bad", "pending")


def _in_quote(text: str) -> bool:
    """Does ``text`` end inside an open (straight) quote?"""
    return text.count('"') % 2 == 1


def _close(text: str) -> str:
    """End the introduction: the name's sentence closes, and an open quote closes with it."""
    return '."' if _in_quote(text) else "."


def slot_words(text: str) -> str:
    """The slop slot's own last words: the open quote's speech so far, or the text after the last sentence end."""
    text = text.strip()
    if _in_quote(text):
        return text[text.rfind('"'):]
    return re.split(r"(?<=[.!?])[\"”’')]*\s+", text)[-1]


def keep_rows(rows: list[dict[str, Any]], tokenizer, per_row: int, names: tuple[str, ...] = STOCK_NAMES,
              seed: int = 0) -> list[dict[str, Any]]:
    """Up to ``per_row`` keep rows for each slop row whose rules ban at least one of ``names``.

    A row with ``bad_words`` (a pattern ``find``/``auto`` discovered) gets keep rows for its own pattern
    (its first bad word) when that is a name.

    The first is the row's echo (its own last words again, :func:`slot_words`); the others take the bridges in
    turn. Names and bridges are taken in turn (shifted by ``seed``) so the set covers El- names and others and
    every bridge shape. Keep rows copy the slop row's chat framing (system, user) and family.

    The keep rows of an original file's ``{a|b}`` alternatives (a *group* of which ``repeat`` rows are drawn per
    epoch) are a group too, drawn ``per_row`` times as often: each epoch trains ``per_row`` keep rows per slop row
    drawn, as for an ungrouped row. Trained whole beside the group, the 49 alternatives of
    ``names_elf_f_second_syllable.yaml`` gave 147 keep rows an epoch against 2 slop rows, 19 steps instead of 1
    (bundled model, 2 cores: the file did not finish in 600 s).
    """
    texts = TokenTexts(tokenizer)
    out = []
    turn = bridge_turn = seed
    for row in rows:
        if row.get("kind", "slop") != "slop" or per_row <= 0:
            continue
        rules = TokenRules.from_row(row, tokenizer)
        own = row.get("bad_words") or []
        if own:  # a discovered pattern: keep its own word when it is a name (the rest of the list is shared)
            banned = [own[0]] if own[0][:1].isupper() else []
        else:
            banned = [n for n in names if _bans(rules, texts, tokenizer, n)]
        if not banned:
            continue
        tail = slot_words(row["text"])
        echo = ECHO_DIALOGUE if tail.startswith('"') else ECHO_NARRATION
        for k in range(per_row):
            name = banned[turn % len(banned)]
            other = OTHERS[(turn // len(BRIDGES)) % len(OTHERS)]
            if k == 0:  # the echo first: it is what tells inventing a name from reusing one (see ECHO_DIALOGUE)
                bridge = echo
            else:
                bridge = BRIDGES[bridge_turn % len(BRIDGES)]
                bridge_turn += 1
            turn += 1
            text = row["text"].rstrip() + " " + name + _close(row["text"]) + bridge.format(
                name=name, other=other, title="Lord" if name in MALE_NAMES else "Lady", tail=tail)
            group = row.get("group") or ""
            out.append(make_row(text, kind="keep", expected=name, chat=row["chat"], system=row["system"],
                                user=row["user"], family=row["family"], source=f"{row['source']} (generated keep)",
                                split="train", temperature=row.get("temperature"),
                                group=f"{group} (generated keep)" if group else "",
                                draws=(row.get("draws") or 1) * per_row if group else None))
    return out
