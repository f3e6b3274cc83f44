"""`hf-steer elarablate auto` on a tiny model: every stage, resuming, edited contexts, and its one-line errors."""

import json
import re
from collections import Counter

import pytest
from conftest import make_tiny_model, make_tokenizer

from hf_steer.cli import main
from hf_steer.elarablation.arguments import AutoArguments
from hf_steer.elarablation.auto import ADDED_SETTINGS, AutoState, run_auto, user_patterns
from hf_steer.elarablation.config import ElarablationConfig
from hf_steer.elarablation.discover import context_documents
from hf_steer.elarablation.pipeline import RECORDED
from hf_steer.elarablation.stories import load_prompts, read_jsonl
from hf_steer.errors import HfSteerError
from hf_steer.models import load_model

SMALL = dict(stories_per_prompt=1, eval_stories_per_prompt=1, max_new_tokens=60, min_stories=2, top=3,
             contexts_per_pattern=2, generation_batch_size=34, train_epochs=1.0)


def _run(work, tiny_folder, lines=None, config=None, **overrides):
    log = (lines.append if lines is not None else lambda line: None)
    return run_auto(work, model=str(tiny_folder), settings=AutoArguments(**{**SMALL, **overrides}), config=config,
                    log=log)


def _a_word_it_writes(work, tiny_folder) -> str:
    """A word the tiny model's stories use where a context can be cut before it. The model is random, so whether
    discovery finds a pattern in its 34 stories is a matter of the draw (another sampler drew none): the stories stage
    is run on its own, and the test names the pattern (``--patterns``) as a user would."""
    with pytest.raises(HfSteerError):  # stops at the patterns: none named, and the stories stage is what we need
        _run(work, tiny_folder, min_stories=35)
    stories = read_jsonl(work / "stories_train.jsonl")
    _, tokenizer = load_model(str(tiny_folder))
    prompts, chat = load_prompts("stories:train")
    counts = Counter(w for s in stories for w in re.findall(r"\b[a-z]{2,}\b", s["text"]))
    for word, _ in counts.most_common():
        docs, _, _ = context_documents(tokenizer, stories, user_patterns(stories, word), prompts, chat, 2, 3, 64)
        if docs:
            return word
    pytest.fail(f"no word of the tiny model's {len(stories)} stories has a context: {counts.most_common(5)}")


def test_every_stage_writes_its_files_and_a_rerun_resumes(tmp_path, tiny_folder, capfd):
    word = _a_word_it_writes(tmp_path / "first", tiny_folder)

    def run(work, tiny_folder, lines=None, config=None, **overrides):  # every run names the pattern, as a user would
        return _run(work, tiny_folder, lines, config, patterns=word, **overrides)

    work = tmp_path / "work"
    lines = []
    report = run(work, tiny_folder, lines)
    for name in ("stories_train.jsonl", "patterns.json", "contexts.yaml", "stories_eval_before.jsonl",
                 "adapter/adapter_model.safetensors", "stories_eval_after.jsonl", "report.json", "report.png"):
        assert (work / name).is_file(), name
    state = json.loads((work / "state.json").read_text())
    assert list(state["finished"]) == ["stories", "patterns", "before", "train", "after"]
    assert len(read_jsonl(work / "stories_eval_after.jsonl")) == 34
    saved = json.loads((work / "report.json").read_text())
    assert saved["before"]["stories"] == saved["after"]["stories"] == 34 and "machine" in saved
    assert any("targeted patterns per 1,000 words" in line for line in report["summary"])
    used = saved["before"]["pattern_stories"][word], saved["after"]["pattern_stories"][word]
    assert any(f"({used[0]}->{used[1]} stories)" in line for line in report["summary"] if "most frequent" in line)
    assert report["bf16"] is False and state["settings"]["bf16"] is False  # fp32 unless --bf16, on a CPU
    # chat prompts: the hold's default for them, recorded as run (the report's settings too) and trained with
    assert state["settings"]["hold_weight"] == report["settings"]["hold_weight"] == 57.0
    assert json.loads((work / "adapter" / "hf_steer.json").read_text())["hyperparameters"]["context_weight"] == 57.0
    # the training stage shows its progress (hf_steer quiets transformers, whose default then hid the bar)
    err, steps = capfd.readouterr().err, state["finished"]["train"]["steps"]
    assert "reading the base model (pending)" in err and f"{steps}/{steps} [" in err

    # a run killed while writing the last stage: half its stories, a torn last line
    state["finished"].pop("after")
    (work / "state.json").write_text(json.dumps(state))
    rows = (work / "stories_eval_after.jsonl").read_text().splitlines()
    (work / "stories_eval_after.jsonl").write_text("\n".join(rows[:10]) + "\n" + rows[10][:15])
    lines.clear()
    run(work, tiny_folder, lines)
    assert not any(line.startswith("[1/5]") or line.startswith("[4/5]") for line in lines)
    assert any(line.startswith("[5/5]") for line in lines)
    assert len(read_jsonl(work / "stories_eval_after.jsonl")) == 34

    # the user edits the context file: the next run trains and evaluates again, nothing else
    contexts = work / "contexts.yaml"
    contexts.write_text(contexts.read_text() + "\n# my note\n")
    lines.clear()
    run(work, tiny_folder, lines)
    assert any("was edited" in line for line in lines) and any(line.startswith("[4/5]") for line in lines)
    assert not any(line.startswith("[1/5]") or line.startswith("[3/5]") for line in lines)

    # the adapter records every hyperparameter (bad_ratio was once left out), and auto's state the same ones
    recorded = json.loads((work / "adapter" / "hf_steer.json").read_text())["hyperparameters"]
    state = json.loads((work / "state.json").read_text())
    assert set(RECORDED) <= set(recorded) and recorded["bad_ratio"] == state["settings"]["bad_ratio"] == 0.1
    # a folder from an older hf-steer, which recorded fewer settings, resumes with today's defaults for them: these
    # are the settings of a real work folder from 2026-12-04 (and train_deeper_rows, recorded since that evening)
    old_keys = ("model chat_template prompts stories_per_prompt max_new_tokens story_temperature top min_stories "
                "contexts_per_pattern context_tokens generation_batch_size seed eval_prompts eval_stories_per_prompt "
                "patterns train_epochs hold_weight lora_r lora_alpha lora_layers per_device_train_batch_size "
                "learning_rate loss_type top_k bad_ratio keep_weight neutral_weight within_class auto_keep "
                "anchor_weight load_in_4bit first_token_push train_deeper_rows").split()
    assert set(state["settings"]) - set(old_keys) <= set(ADDED_SETTINGS)
    state["settings"] = {k: state["settings"][k] for k in old_keys}
    (work / "state.json").write_text(json.dumps(state))
    # it ran before let_go_beginnings existed, so without it: resumed as it ran (--no-let-go-beginnings)
    # (and before loop_contexts: without loop contexts, --loop-contexts 0)
    with pytest.raises(HfSteerError, match="it has let_go_beginnings=False, loop_contexts=0"):
        run(work, tiny_folder)
    # and before hold_let_go_words existed: without a list, as today's default
    with pytest.raises(HfSteerError, match="it has hold_let_go_words=None, let_go_beginnings=False"):
        run(work, tiny_folder, hold_let_go_words="antislop")
    lines.clear()
    old = ElarablationConfig(output_dir=str(work / "adapter"), let_go_beginnings=False)
    run(work, tiny_folder, lines, config=old, loop_contexts=0)
    assert not any(line[:1] == "[" and line[2:4] == "/5" for line in lines), lines

    with pytest.raises(HfSteerError, match="was started with other settings \\(max_new_tokens differ\\): it has "
                       "max_new_tokens=60; run it with those"):
        run(work, tiny_folder, max_new_tokens=61, config=old, loop_contexts=0)
    # left out, the count of held-out stories is decided by the prompts and recorded as run: this folder ran with 1
    with pytest.raises(HfSteerError, match="\\(eval_stories_per_prompt differ\\): it has eval_stories_per_prompt=1;"):
        run(work, tiny_folder, eval_stories_per_prompt=None, config=old, loop_contexts=0)


def test_a_folder_started_before_a_setting_existed_resumes_with_the_value_it_ran_with(tmp_path):
    """A work folder from before first_token_push trained without it: resumed with today's default it is an error
    that names the value; with that value (--no-first-token-push) it resumes, its finished stages kept."""
    AutoState(tmp_path, {"max_new_tokens": 20}).finish("stories", file="stories_train.jsonl")
    with pytest.raises(HfSteerError, match="first_token_push differ\\): it has first_token_push=False"):
        AutoState(tmp_path, {"max_new_tokens": 20, "first_token_push": True})
    state = AutoState(tmp_path, {"max_new_tokens": 20, "first_token_push": False})
    assert state.done("stories") and state.data["settings"]["first_token_push"] is False
    # one started with first_token_push, before train_deeper_rows existed, trained its deeper rows
    AutoState(tmp_path / "b", {"first_token_push": True}).finish("stories", file="stories_train.jsonl")
    with pytest.raises(HfSteerError, match="it has train_deeper_rows=True"):
        AutoState(tmp_path / "b", {"first_token_push": True, "train_deeper_rows": False})
    assert AutoState(tmp_path / "b", {"first_token_push": True, "train_deeper_rows": True}).done("stories")
    # tether_weight was not recorded before it was a flag: such a folder ran with the default, 1.0
    AutoState(tmp_path / "c", {"top_k": 50}).finish("stories", file="stories_train.jsonl")
    with pytest.raises(HfSteerError, match="it has tether_weight=1.0"):
        AutoState(tmp_path / "c", {"top_k": 50, "tether_weight": 0.1})
    assert AutoState(tmp_path / "c", {"top_k": 50, "tether_weight": 1.0}).done("stories")
    # nor bf16, a flag since 2026-12-07: such a folder drew its stories and trained in fp32
    with pytest.raises(HfSteerError, match="it has bf16=False"):
        AutoState(tmp_path / "c", {"top_k": 50, "bf16": True})
    assert AutoState(tmp_path / "c", {"top_k": 50, "bf16": False}).done("stories")


def test_bad_inputs_are_one_line_each(tmp_path, tiny_folder, capsys):
    empty = tmp_path / "none.txt"
    empty.write_text("\n")
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("took a zzyzx\n")
    cases = [
        # checked before the first story is written, not after three stages
        (["--hold-let-go-words", str(phrases)], "none of its 1 words and phrases ends in a word that is one token"),
        (["--prompts", str(empty)], "has no prompts"),
        (["--patterns", "zzqqzz"], "pattern 'zzqqzz' never occurs in the 34 stories"),
        (["--eval-prompts", "stories:train"], "--eval-prompts share prompts with --prompts"),
        (["--max-new-tokens", "0"], "--max-new-tokens 0 must be a positive whole number"),
        (["--rounds", "0"], "--rounds 0 must be a positive whole number: e.g. 1"),
        (["--hold-let-go-words", str(tmp_path / "my_words.txt")], "is not a file: give a file with one word or phrase per line"),
    ]
    for flags, message in cases:
        rc = main(["elarablate", "auto", "--work-dir", str(tmp_path / "w"), "--model", str(tiny_folder),
                   "--stories-per-prompt", "1", "--max-new-tokens", "8", "--threads", "1", *flags])
        last = capsys.readouterr().err.strip().splitlines()[-1]  # progress bars go to stderr before it
        assert rc == 2 and last.startswith("hf-steer: error: ") and message in last, (flags, last)
    no_template = tmp_path / "plain-model"
    make_tiny_model("llama").save_pretrained(no_template)
    make_tokenizer("bytelevel", chat_template=False).save_pretrained(no_template)
    rc = main(["elarablate", "auto", "--work-dir", str(tmp_path / "w2"), "--model", str(no_template),
               "--stories-per-prompt", "1", "--max-new-tokens", "8"])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and "no chat template: name one (--chat-template" in last and "--prompts openings" in last


def test_rounds_run_the_loop_again_on_the_merged_model_and_join_into_one_adapter(tmp_path, tiny_folder):
    """--rounds 2: round 2 writes its own folder on the model with round 1 merged in, starts from round 1's
    after-stories, and all_rounds_adapter/ on the user's model writes exactly what the two rounds merged one after the
    other write. Raising --rounds on a finished folder adds a round; a rerun resumes; a retrained round 1 restarts 2."""
    import torch
    from peft import PeftModel

    word = _a_word_it_writes(tmp_path / "first", tiny_folder)
    work = tmp_path / "work"
    lines = []
    _run(work, tiny_folder, lines, patterns=word)  # one round, as a user first runs it
    lines.clear()
    report = _run(work, tiny_folder, lines, patterns=word, rounds=2)
    # round 1 is finished and kept: only round 2's stages run, and its before-stories are round 1's after-stories
    assert [line[:15] for line in lines if line.startswith("round")] == [
        "round 2/2 [1/5]", "round 2/2 [2/5]", "round 2/2 [4/5]", "round 2/2 [5/5]"], lines
    round2 = work / "round2"
    assert (round2 / "stories_eval_before.jsonl").read_text() == (work / "stories_eval_after.jsonl").read_text()
    assert len(read_jsonl(round2 / "stories_train.jsonl")) == 34  # its own stories (a one-step adapter may leave
    # every sampled token as round 1's, so their text is not compared; on the real model they differ)
    assert [r["round"] for r in report["rounds"]] == [1, 2] and report["adapter"] == "all_rounds_adapter"
    assert report["files"] == {"before": "stories_eval_before.jsonl", "after": "round2/stories_eval_after.jsonl"}
    assert any(line.startswith("after round 2") for line in report["summary"])
    assert json.loads((work / "report.json").read_text())["rounds"][1]["folder"] == "work/round2"

    # the joined adapter: rank 8 + 8 on the user's model, the same logits as round 1 merged and round 2 on top
    ids = torch.tensor([[5, 17, 42, 99, 3, 64]])
    base, _ = load_model(str(tiny_folder))
    merged = PeftModel.from_pretrained(base, str(work / "adapter")).merge_and_unload()
    both = PeftModel.from_pretrained(merged, str(round2 / "adapter")).eval()
    joined = PeftModel.from_pretrained(load_model(str(tiny_folder))[0], str(work / "all_rounds_adapter")).eval()
    plain = load_model(str(tiny_folder))[0].eval()
    with torch.no_grad():
        want, got, untrained = both(ids).logits, joined(ids).logits, plain(ids).logits
    assert joined.peft_config["default"].r == 16
    assert (want - untrained).abs().max() > 1e-4  # the rounds moved the model, so the comparison means something
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    saved = json.loads((work / "all_rounds_adapter" / "hf_steer.json").read_text())
    assert saved["hyperparameters"]["rounds"] == 2 and saved["hyperparameters"]["lora_r"] == 16
    # and as the report's line says: merged as trained, it is a plain model of both rounds
    assert main(["elarablate", "merge", "--adapter", str(work / "all_rounds_adapter"), "--scale", "1",
                 "--output", str(tmp_path / "merged")]) == 0
    with torch.no_grad():
        torch.testing.assert_close(load_model(str(tmp_path / "merged"))[0].eval()(ids).logits, want,
                                   atol=1e-5, rtol=1e-4)

    lines.clear()
    _run(work, tiny_folder, lines, patterns=word, rounds=2)  # finished: nothing runs again
    assert not any(line.startswith(("[", "round", "joining")) for line in lines), lines

    # round 1 trained again on fewer contexts (the user dropped one): round 2's model changed, so round 2 starts over
    import yaml

    contexts = work / "contexts.yaml"
    doc = yaml.safe_load(contexts.read_text())
    assert len(doc["train"]) >= 2
    contexts.write_text(yaml.safe_dump({**doc, "train": doc["train"][1:]}))
    lines.clear()
    _run(work, tiny_folder, lines, patterns=word, rounds=2)
    assert any("round 2 starts over" in line for line in lines)
    assert any(line.startswith("round 2/2 [1/5]") for line in lines) and any("joining 2" in line for line in lines)



def test_a_later_round_skips_named_patterns_the_rounds_before_trained_out(tmp_path, tiny_folder):
    """--patterns with --rounds: a named pattern missing from round 2's stories was trained out, not misspelt: round 2
    goes on with the others and says so; with none left it is one clear error, not 'never occurs ... check the
    spelling'."""
    from hf_steer.elarablation.auto import _patterns

    word = _a_word_it_writes(tmp_path / "first", tiny_folder)
    stories = tmp_path / "first" / "stories_train.jsonl"
    _, tokenizer = load_model(str(tiny_folder))
    prompts, chat = load_prompts("stories:train")
    settings = AutoArguments(**{**SMALL, "patterns": f"{word},Elara"})
    patterns, lines = _patterns(lambda: (None, tokenizer), stories, tmp_path / "c.yaml", prompts, chat, settings,
                                later_round=True)
    assert [p["text"] for p in patterns] == [word]
    assert "  not trained again: 'Elara' no longer occurs in this round's stories" in lines
    with pytest.raises(HfSteerError, match="never occurs in the 34 stories: check the spelling"):  # round 1: a typo
        _patterns(lambda: (None, tokenizer), stories, tmp_path / "c.yaml", prompts, chat, settings)
    with pytest.raises(HfSteerError, match="^none of --patterns occurs in this round's 34 stories: the rounds before "
                       "trained them out, so there is nothing for another round; use fewer --rounds$"):
        _patterns(lambda: (None, tokenizer), stories, tmp_path / "c.yaml", prompts, chat,
                  AutoArguments(**{**SMALL, "patterns": "Elara,zzqqzz"}), later_round=True)
