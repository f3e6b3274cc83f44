"""Discovery: over-used words/names/phrases against human frequencies, cut contexts, word-targeted rules."""

import yaml
from conftest import make_tokenizer

from hf_steer.cli import main
from hf_steer.elarablation.contexts import TokenRules, load_contexts, word_match
from hf_steer.elarablation.discover import (
    _rank_phrases,
    context_documents,
    contexts_for,
    cut_story,
    loop_contexts,
    loop_cuts,
    rank_patterns,
    split_contexts,
    word_statistics,
    write_context_file,
)

SENTENCES = [
    "The dog ran to the house.", "A man sat by the door and read the paper.", "It was a good day for a walk.",
    "The train was late again.", "They ate soup and bread for supper.", "Rain fell on the roof all night.",
    "Her brother fixed the old bicycle.", "The shop closed early on Sunday.", "He carried the box upstairs.",
    "The children played in the yard.", "A letter came from the city.", "The kettle began to boil.",
]
FILLER = " ".join(SENTENCES[:4])


def _stories(tok=None):
    out = []
    for prompt in range(6):
        for sample in range(2):
            k = 2 * prompt + sample
            filler = [SENTENCES[(k + j) % len(SENTENCES)] for j in range(4)]
            text = (f"{filler[0]} {filler[1]} Then he told Elara a secret. She whispered that the bread was warm, "
                    f"and he whispered back. {filler[2]} {filler[3]}")
            if prompt == 0:  # one prompt's topic, not a habit of the model
                text += " The mermaid sang. The mermaid swam. The mermaid dove deep into the mermaid cave."
            out.append({"prompt_id": prompt, "sample": sample, "text": text,
                        "ids": tok(text)["input_ids"] if tok else []})
    return out


def test_over_used_words_and_names_are_found_and_a_single_topic_is_not():
    patterns, notes = rank_patterns(_stories(), top=10, min_stories=3)
    by_text = {p["text"]: p for p in patterns}
    assert by_text["whispered"]["kind"] == "word" and by_text["whispered"]["slop_list"]
    assert by_text["Elara"]["kind"] == "name" and by_text["Elara"]["ratio"] > 1000
    assert "mermaid" not in by_text and "the" not in by_text and "The" not in by_text
    assert any("mermaid" in n and "a topic, not a habit" in n for n in notes)
    stats = word_statistics(_stories())
    assert len(stats["mermaid"]["prompts"]) == 1 and len(stats["whispered"]["prompts"]) == 6


def test_a_phrase_is_trained_where_it_turns_into_slop():
    stories = [{"prompt_id": i, "sample": 0, "text": f"{FILLER} Her voice barely above the noise, she spoke. {FILLER}"}
               for i in range(5)]
    stats = word_statistics(stories)
    total = sum(e["count"] for e in stats.values())
    phrases = _rank_phrases(stories, total, stats, 3, chosen_words=set())
    voice = next(p for p in phrases if "barely" in p["text"])
    assert voice["cut"] != voice["text"].split()[0] and voice["cut"] in ("barely", "above")


def test_rules_target_the_whole_word_not_its_first_letters():
    assert word_match(" tow", "towering") == "pending"  # could still become " town"
    assert word_match(" towering", "towering") == "bad" and word_match(' "Towering,', "towering") == "bad"
    assert word_match(" town", "towering") is None and word_match(" towers", "towering") is None
    assert word_match(" toweringly", "towering") is None
    # a letter that folds into two ("ß" -> "ss") made the text shorter than the word it matched: an IndexError
    assert word_match(" Straße", "strasse") == "bad" and word_match(" Straßen", "strasse") is None
    rules = TokenRules.from_row({"bad_words": ["towering"], "unmatched": "good"})
    assert rules.classify(" tow") == "pending" and rules.classify(" town") == "good" and rules.classify(" sea") == "good"
    deeper = rules.extended(" tow")
    assert deeper.classify("ering") == "bad" and deeper.classify("n") == "good" and deeper.classify("er") == "pending"


def test_contexts_are_the_model_s_own_text_cut_before_the_word(tmp_path):
    tok = make_tokenizer("bytelevel")
    stories = _stories(tok)
    story = stories[3]
    start = story["text"].index("whispered")
    assert cut_story(tok, story, start) == story["text"][:start].rstrip(" ")
    patterns, _ = rank_patterns(stories, top=10, min_stories=3)
    prompts = [f"Write story {i}." for i in range(6)]
    docs, trained, notes = context_documents(tok, stories, patterns, prompts, chat=True, per_pattern=3, top=2)
    assert len(docs) == len(trained) == 2
    assert any("beyond --top 2" in n for n in notes)
    path = write_context_file(tmp_path / "found.yaml", docs)
    rows = load_contexts(str(path))
    assert len(rows) == sum(len(d["train"]) for d in docs)
    first = docs[0]["rules"]["bad_words"][0]
    assert rows[0]["bad_words"][0] == first and rows[0]["unmatched"] == "good" and rows[0]["chat"]
    assert rows[0]["user"] in prompts and not rows[0]["text"].endswith(" ")


def test_find_prints_exactly_what_it_writes(tmp_path, tiny_folder, capsys):
    out = tmp_path / "found.yaml"
    rc = main(["elarablate", "find", "--model", str(tiny_folder), "--output", str(out), "--stories-per-prompt", "1",
               "--max-new-tokens", "24", "--min-stories", "2", "--top", "4", "--threads", "1"])
    printed = capsys.readouterr().out
    if rc != 0:  # a random tiny model may over-use nothing; then the error says so
        return
    kept = [line for line in printed.splitlines() if line.startswith("    ") is False and line.startswith("  ")
            and line.split()[0] in ("word", "name", "phrase")]
    docs = [d for d in yaml.safe_load_all(out.read_text()) if d and not d["family"].startswith("loop_")]
    loops = len(list(yaml.safe_load_all(out.read_text()))) - len(docs)
    assert len(kept) == len(docs) >= 1
    assert f"contexts for {len(docs)} patterns" + (f" and {loops} loop contexts" if loops else "") in printed


def test_common_words_and_narrative_vocabulary_are_not_trained():
    """What a story needs is not slop: a phrase of common words ("one day", "that could") has no word to ban,
    and a narrative word off the antislop list ("began": ~20x its web/news rate in any story) is not kept,
    while a listed word at the same counts is."""
    everyday = " ".join([s for s in SENTENCES if "began" not in s] * 4)  # ~350 words: "began" once in it is ~20x its human rate, as in a story
    stories = []
    for i in range(6):
        text = f"{everyday} One day the girl began to sing, and the bird whispered that it could fly. {everyday}"
        stories.append({"prompt_id": i, "sample": 0, "text": text})
    patterns, _ = rank_patterns(stories, top=20, min_stories=3)
    texts = {p["text"] for p in patterns}
    assert "whispered" in texts
    assert "began" not in texts and "one day" not in texts and not any(p["cut"] in ("day", "could") for p in patterns)


def test_a_phrase_word_is_bad_only_inside_its_phrase(tmp_path):
    """Another pattern's word is banned at every slot only when it is a word or name; a phrase's word (here
    "barely") is slop inside its phrase, not at the other patterns' slots."""
    tok = make_tokenizer("bytelevel")
    stories = []
    for i in range(5):
        text = f"{FILLER} Her voice barely above the noise, she whispered to Elara. {FILLER}"
        stories.append({"prompt_id": i, "sample": 0, "text": text, "ids": tok(text)["input_ids"]})
    patterns, _ = rank_patterns(stories, top=10, min_stories=3)
    phrase = next(p for p in patterns if p["kind"] == "phrase" and p["cut"] == "barely")
    docs, trained, _ = context_documents(tok, stories, patterns, [f"p{i}" for i in range(5)], chat=True, per_pattern=2)
    by_cut = {p["cut"]: d for p, d in zip(trained, docs)}
    assert by_cut["barely"]["rules"]["bad_words"][0] == "barely"
    assert all("barely" not in d["rules"]["bad_words"] for cut, d in by_cut.items() if cut != "barely")
    assert "whispered" in by_cut["barely"]["rules"]["bad_words"]  # a word pattern is bad everywhere
    # ... and every document names the phrase through its word, for the hold to let it go inside the phrase
    phrases = sorted(" ".join(p["text"].split()[:p["text"].split().index(p["cut"]) + 1])
                     for p in trained if p["kind"] == "phrase")
    assert "voice barely" in phrases and all(d["rules"]["bad_phrases"] == phrases for d in docs)
    assert phrase in trained


def test_a_name_is_cut_where_it_is_invented_not_where_the_story_refers_back():
    """Only a name's first use in a story is slop (the model invented it there); its later uses are the character
    coming back, which keep rows hold, so a second context from the same story would push against them. A word
    gives a context at each use."""
    tok = make_tokenizer("bytelevel")
    text = "The ship landed at dawn. A young pilot named Elara stepped out. Later, Elara looked at the ancient sky."
    stories = [{"prompt_id": 0, "sample": 0, "text": text, "ids": tok(text)["input_ids"]}]
    name = {"kind": "name", "text": "Elara", "cut": "Elara"}
    assert [c for _, c in contexts_for(tok, stories, name, limit=5)] == ["The ship landed at dawn. A young pilot named"]
    word = {"kind": "word", "text": "ancient", "cut": "ancient"}
    assert len(contexts_for(tok, stories, word, limit=5)) == 1
    twice = text + " The ancient sea was calm."
    stories = [{"prompt_id": 0, "sample": 0, "text": twice, "ids": tok(twice)["input_ids"]}]
    assert len(contexts_for(tok, stories, word, limit=5)) == 2


def test_a_possessive_is_counted_as_its_word():
    """"Elara's" is Elara: one pattern, counted with its possessives (the pattern regexes match both, so two
    patterns counted each possessive twice), and "ship's" is judged as "ship", not as a rare word of its own."""
    stories = []
    for i in range(6):
        text = (f"{FILLER} Elara walked to the ship. Elara's ship's sails were red, and Elara's sister whispered. "
                f"{FILLER}")
        stories.append({"prompt_id": i, "sample": 0, "text": text})
    patterns, _ = rank_patterns(stories, top=10, min_stories=3)
    texts = [p["text"] for p in patterns]
    assert "Elara" in texts and not any("'s" in t for t in texts), texts
    assert next(p for p in patterns if p["text"] == "Elara")["count"] == 18
    stats = word_statistics(stories)
    assert stats["ship"]["count"] == 12 and "ship's" not in stats


def test_contexts_are_split_by_how_often_the_model_writes_each_pattern():
    """The bench counts every use, so a pattern written ten times as often gets more of the contexts, each at least
    two, none more than it has; the total stays contexts_per_pattern times the patterns (the training's cost)."""
    assert split_contexts([31, 3, 2], [40, 40, 40], budget=18) == [14, 2, 2]
    assert split_contexts([10, 10], [40, 40], budget=12) == [6, 6]
    assert split_contexts([31, 3, 2], [5, 40, 1], budget=18) == [5, 12, 1]  # Elara has only 5 stories: her share goes to the others
    assert split_contexts([5, 5], [1, 2], budget=12) == [1, 2]  # fewer than the budget: all there is


def test_a_frequent_pattern_gets_more_contexts_in_the_written_file():
    tok = make_tokenizer("bytelevel")
    stories = []
    for i in range(8):
        text = (f"{FILLER} The ancient door opened. " + ("The tapestry hung there. " if i < 3 else "")
                + f"{FILLER} The ancient wall fell. The ancient tree grew. {FILLER}")
        stories.append({"prompt_id": i, "sample": 0, "text": text, "ids": tok(text)["input_ids"]})
    patterns, _ = rank_patterns(stories, top=10, min_stories=3)
    counts = {p["cut"]: p["count"] for p in patterns}
    assert counts["ancient"] == 24 and counts["tapestry"] == 3
    docs, trained, _ = context_documents(tok, stories, patterns, [f"p{i}" for i in range(8)], chat=True, per_pattern=3)
    contexts = {p["cut"]: len(d["train"]) for p, d in zip(trained, docs)}
    assert contexts["ancient"] > contexts["tapestry"] >= 2
    assert sum(contexts.values()) <= 3 * len(trained)


def test_a_loop_is_cut_at_its_first_lower_case_content_word():
    """The story bench calls a story looping when a word 4-gram is written a third time; the cut is that third time,
    at the first word of the loop that is neither a capital (a name or a sentence start) nor a stopword."""
    text = "They were so happy. They were so happy. They were so happy. Then the Order of the Moon met the Order of the Sun and the Order of the Star."
    cuts = loop_cuts({"text": text})
    assert [(text[start:start + len(word)], word, gram) for start, word, gram in cuts] == [
        ("happy", "happy", "they were so happy"), ("the", "the", "the order of the")]
    assert cuts[0][0] == text.rindex("happy")
    assert cuts[1][0] == text.index("the Star")
    assert loop_cuts({"text": "Elara met Elara and Elara met Elara and Elara met Elara."}) == []  # names only
    assert loop_cuts({"text": FILLER}) == []


def test_loop_documents_follow_the_pattern_documents(tmp_path):
    tok = make_tokenizer("bytelevel")
    stories = _stories(tok)
    looping = stories[5]["text"] + " The cat sat on the mat. The cat sat on the mat. The cat sat on the mat."
    stories[5] = {**stories[5], "text": looping, "ids": tok(looping)["input_ids"]}
    patterns, _ = rank_patterns(stories, top=10, min_stories=3)
    prompts = [f"Write story {i}." for i in range(6)]
    docs, trained, notes = context_documents(tok, stories, patterns, prompts, chat=True, per_pattern=2, loops=5)
    loop_docs = [d for d in docs if d["family"].startswith("loop_")]
    assert len(docs) == len(trained) + 1 and docs[-1] is loop_docs[0]
    assert loop_docs[0]["rules"]["bad_words"][0] == "mat"
    assert loop_docs[0]["train"] == [{"user": prompts[2], "text": looping[:looping.rindex(" mat")]}]
    assert any(n.startswith("loop contexts: 1 ") for n in notes)
    rows = load_contexts(str(write_context_file(tmp_path / "found.yaml", docs)))
    assert rows[-1]["bad_words"][0] == "mat"
    assert context_documents(tok, stories, patterns, prompts, chat=True, per_pattern=2)[0] == docs[:-1]
    # never more than a quarter of the pattern contexts, however many stories loop
    stories = [{**s, "text": s["text"] + loop, "ids": tok(s["text"] + loop)["input_ids"]} for s in _stories(tok)
               for loop in [" The cat sat on the mat. The cat sat on the mat. The cat sat on the mat."]]
    docs, trained, _ = context_documents(tok, stories, patterns, prompts, chat=True, per_pattern=2, loops=40)
    pattern_contexts = sum(len(d["train"]) for d in docs[:len(trained)])
    assert 0 < len(docs) - len(trained) == pattern_contexts // 4 < len(stories)


def test_loop_contexts_come_from_every_prompt_before_a_second_from_one():
    tok = make_tokenizer("bytelevel")
    loop = " The cat sat on the mat. The cat sat on the mat. The cat sat on the mat."
    stories = [{"prompt_id": p, "sample": k, "text": SENTENCES[k] + loop} for p, k in ((0, 0), (0, 1), (1, 2))]
    stories = [{**s, "ids": tok(s["text"])["input_ids"]} for s in stories]
    assert [p for p, *_ in loop_contexts(tok, stories, limit=2)] == [0, 1]
    assert [p for p, *_ in loop_contexts(tok, stories, limit=5)] == [0, 1, 0]
