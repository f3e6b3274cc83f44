"""Story-level figures (EQ-Bench's slop index, distinct-2, loops, pattern rates) and prompt sets."""

import pytest
import torch
from conftest import make_tiny_model, make_tokenizer

from hf_steer.elarablation.stories import (
    distinct_n,
    generate_stories,
    hold_phrase_list,
    hold_word_list,
    load_prompts,
    loops,
    pattern_rate,
    render_prompt,
    slop_index,
    slop_lists,
    story_figures,
    word_spans,
    words,
)
from hf_steer.errors import HfSteerError


def test_slop_index_is_eq_bench_formula_per_thousand_words():
    slop_words, bigrams, trigrams = slop_lists()
    assert "elara" in slop_words and "whispered" in slop_words
    assert "deep breath" in bigrams and "took a" not in bigrams  # at most one stopword in a slop bigram
    assert "a deep breath" in trigrams
    text = "She took a deep breath. The dog ran home and ate his dinner with the cat."
    figures = slop_index([text])
    n = len(words(text))
    # "deep breath" (bigram), "a deep breath" and "took a deep" (trigrams) are hits; no listed word is
    hits = figures["word_hits"] + 2 * figures["bigram_hits"] + 8 * figures["trigram_hits"]
    assert figures["bigram_hits"] >= 1 and figures["trigram_hits"] >= 1
    assert figures["slop_index"] == pytest.approx(1000 * hits / n)
    assert slop_index(["The dog ran home."])["slop_index"] == 0.0


def test_slop_index_without_patterns_takes_out_only_their_hits():
    text = "She took a deep breath. The shadows whispered and the shadows fell."
    whole = slop_index([text])
    assert whole["word_hits"] == 3  # "shadows" twice, "whispered" once (both on the antislop list)
    without = slop_index([text], without=["shadows", "deep breath"])
    # "deep breath" and every gram that overlaps it go; "whispered" stays; the word count is unchanged
    assert without["word_hits"] == 1 and without["bigram_hits"] == 0 and without["trigram_hits"] == 0
    assert without["words"] == whole["words"] and without["slop_index"] == pytest.approx(1000 / whole["words"])
    figures = story_figures([text], ["shadows", "deep breath"])
    assert figures["slop_index_without_patterns"] == pytest.approx(without["slop_index"])


def test_hold_lists_split_words_from_phrases(tmp_path):
    """``hold_let_go_words``: "antislop" is the slop index's own list (its words, bigrams and trigrams); a file's
    lines of one word are words, lines of several are phrases (read as ``words`` reads text)."""
    slop_words, bigrams, trigrams = slop_lists()
    assert hold_word_list("antislop") == slop_words
    assert hold_phrase_list("antislop") == {tuple(g.split()) for g in bigrams | trigrams}
    mine = tmp_path / "mine.txt"
    mine.write_text("# tired of these\nWhispered\nTook a deep breath.\n\n  the  Sun  \n", encoding="utf-8")
    assert hold_word_list(str(mine)) == {"whispered"}
    assert hold_phrase_list(str(mine)) == {("took", "a", "deep", "breath"), ("the", "sun")}
    assert word_spans("Elara's  SUN-lit") == [("elara's", 0, 7), ("sun", 9, 12), ("lit", 13, 16)]
    assert [w for w, _, _ in word_spans("She said: \"Don't go!\"")] == words("She said: \"Don't go!\"")


def test_distinct_loops_and_pattern_rates():
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert loops("the end of the road, the end of the road, the end of the road")
    assert not loops("the end of the road, and then the end of the day")
    texts = ["Her voice was barely above a whisper. She whispered.", "He Whispered softly, whispering."]
    assert pattern_rate(texts, "whispered") == pytest.approx(1000 * 2 / 13)  # not "whispering"
    assert pattern_rate(texts, "barely above") == pytest.approx(1000 / 13)
    figures = story_figures(texts, ["whispered"])
    assert figures["stories"] == 2 and figures["pattern_rates"]["whispered"] > 0
    # one story that loops on a name holds a high rate but is one story
    looped = story_figures(["Aria, Aria, Aria, Aria, Aria, Aria.", "Tom went home.", "Aria slept."], ["Aria"])
    assert looped["pattern_stories"] == {"Aria": 2} and looped["pattern_rates"]["Aria"] > 500


def test_stories_come_in_equal_batches_and_a_resume_draws_the_same():
    model, tok = make_tiny_model("llama"), make_tokenizer("bytelevel", chat_template=True)
    sizes = []
    prompts = ["Write a story.", "Write a poem.", "Write a tale."]
    first = generate_stories(model, tok, prompts, True, 3, 6, 0.7, seed=1, batch_size=4,
                             on_batch=lambda new: sizes.append(len(new)))
    assert sizes == [3, 3, 3]  # 9 stories at most 4 a batch: three of 3, not 4, 4 and a tail of 1
    again = generate_stories(model, tok, prompts, True, 3, 6, 0.7, seed=1, batch_size=4, done=first[:3])
    assert [d["ids"] for d in again] == [d["ids"] for d in first]


def test_stories_drawn_with_bf16_run_the_model_in_bf16():
    model, tok = make_tiny_model("llama"), make_tokenizer("bytelevel", chat_template=True)
    dtypes = []
    model.get_output_embeddings().register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    for bf16 in (False, True):
        dtypes.clear()
        stories = generate_stories(model, tok, ["Write a story."], True, 2, 6, 0.7, seed=1, bf16=bf16)
        assert len(stories) == 2 and all(d["ids"] for d in stories)
        assert set(dtypes) == {torch.bfloat16 if bf16 else torch.float32}


def test_prompt_sets_ship_three_disjoint_splits(tmp_path):
    train, chat = load_prompts("stories")
    heldout, _ = load_prompts("stories:heldout")
    sealed, _ = load_prompts("stories:sealed")
    assert chat and len(train) == len(heldout) == len(sealed) == 34
    assert not (set(train) & set(heldout)) and not (set(train) & set(sealed)) and not (set(heldout) & set(sealed))
    mine = tmp_path / "mine.txt"
    mine.write_text("Write a poem.\n\nWrite a joke.\n")
    assert load_prompts(str(mine)) == (["Write a poem.", "Write a joke."], True)


def test_prompt_errors_are_one_line(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(HfSteerError, match="has no prompts"):
        load_prompts(str(empty))
    with pytest.raises(HfSteerError, match="neither a file nor a shipped set"):
        load_prompts("no_such_set")
    with pytest.raises(HfSteerError, match="has no 'nope' list"):
        load_prompts("stories:nope")
    with pytest.raises(HfSteerError, match="no chat template: name one"):
        render_prompt(make_tokenizer(chat_template=False), "Write a story.", chat=True)
    assert render_prompt(make_tokenizer(chat_template=False), "Once upon a time", chat=False) == "Once upon a time"


def test_change_intervals_are_narrow_when_every_prompt_moves_and_wide_when_one_prompt_carries_the_change():
    from hf_steer.elarablation.stories import change_intervals

    plain = "the cat sat on the mat and the dog ran to the park by the river in the rain"
    slop = "her voice barely above a whisper a testament to the tapestry of shadows " + plain

    def rows(texts):
        return [{"prompt_id": k, "text": t} for k, t in enumerate(texts)]

    # every prompt loses its slop: the whole interval is a fall, and the pattern's rate falls by all of it
    steady = change_intervals(rows([slop] * 10), rows([plain] * 10), ["tapestry"])
    assert set(steady) == {"slop_index", "patterns"}
    assert steady["slop_index"][1] < -0.99 and steady["patterns"] == (-1.0, -1.0)
    # one prompt of ten carries the whole change: redrawing the prompts reaches no change at all
    one = change_intervals(rows([slop] + [plain] * 9), rows([plain] * 10))
    assert set(one) == {"slop_index"} and one["slop_index"][1] == 0.0 and one["slop_index"][0] < -0.99
    # the same stories, the same interval (seeded); stories of one prompt are one unit
    assert change_intervals(rows([slop] + [plain] * 9), rows([plain] * 10)) == one
    assert change_intervals([], []) == {}
