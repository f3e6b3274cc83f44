"""`hf-steer elarablate train / merge / find / library` end to end on a tiny model, and their error lines."""

import json

import torch

from hf_steer.cli import main


def test_train_then_merge_write_push_ready_folders(tmp_path, tiny_folder, name_contexts, capsys):
    adapter, merged = tmp_path / "adapter", tmp_path / "merged"
    rc = main(["elarablate", "train", str(name_contexts), "--output-dir", str(adapter), "--model", str(tiny_folder),
               "--epochs", "2", "--top-k", "20", "--lora-layers", "0-1"])
    assert rc == 0
    assert (adapter / "adapter_model.safetensors").is_file()
    manifest = json.loads((adapter / "hf_steer.json").read_text())
    assert manifest["method"] == "elarablation" and manifest["artifact"] == "adapter"
    assert manifest["hyperparameters"]["loss_type"] == "margin" and manifest["datasets"] == ["test_names"]
    assert manifest["base_model"] == str(tiny_folder) and manifest["description"].startswith("Elarablation")
    assert "train_seconds" in manifest["metrics"]
    assert "trained 2 steps" in capsys.readouterr().out
    card = (adapter / "README.md").read_text()
    assert "fine-tuned version of [None]" not in card and 'model="None"' not in card and "Elarablation" in card

    assert main(["elarablate", "merge", "--adapter", str(adapter), "--scale", "2.0", "--output", str(merged)]) == 0
    manifest = json.loads((merged / "hf_steer.json").read_text())
    assert manifest["artifact"] == "merged_model" and manifest["hyperparameters"]["merge_scale"] == 2.0

    # the merged weights are base + 2 x (the adapter's delta)
    from hf_steer.elarablation.pipeline import load_adapter
    from hf_steer.models import load_model

    scaled, tok = load_adapter(adapter, scale=2.0)
    merged_model, _ = load_model(merged)
    ids = tok("The elf girl nods.", return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(scaled(**ids).logits, merged_model(**ids).logits, atol=1e-4, rtol=1e-4)


def test_cli_errors_are_one_line(tmp_path, tiny_folder, name_contexts, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("response_text: 'x'\ntoken_rules: {bad_token_regexes: ['(El']}\n")
    assert main(["elarablate", "train", str(bad), "--output-dir", str(tmp_path / "o"), "--model", str(tiny_folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hf-steer: error: ") and "bad.yaml: regex '(El' is invalid" in err and "\n" not in err
    assert main(["elarablate", "train", str(name_contexts), "--output-dir", "o", "--min-threshold", "0.5"]) == 2
    assert "min_threshold=0.5 is not below max_threshold=0.02" in capsys.readouterr().err
    for flags, message in ((["--learning-rate", "-1"], "learning_rate=-1.0 must be a positive number"),
                           (["--lr", "0"], "learning_rate=0.0 must be a positive number"),
                           (["--lora-r", "0"], "lora_r=0 must be a whole number"),
                           (["--lora-layers", "9-3"], "--lora-layers '9-3' is not a range"),
                           (["--chat-template", "nope"], "--chat-template 'nope' is neither")):
        assert main(["elarablate", "train", str(name_contexts), "--output-dir", str(tmp_path / "o")] + flags) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("hf-steer: error: ") and message in err and "\n" not in err, err
    assert main(["elarablate", "merge", "--adapter", str(tmp_path), "--output", str(tmp_path / "m")]) == 2
    assert "has no adapter_config.json" in capsys.readouterr().err


def test_library_lists_families(capsys):
    assert main(["elarablate", "library"]) == 0
    out = capsys.readouterr().out
    for family in ("female_names", "elf_names", "whisper", "spine", "mix_of", "place_names"):
        assert family in out




def test_one_spelling_per_idea_and_defaults_from_the_config(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["elarablate", "train", "--help"])
    help_text = capsys.readouterr().out
    for flag in ("--load-in-4bit", "--4bit", "--learning-rate", "--lr", "--threads", "--num-train-epochs", "--epochs",
                 "--keep-weight", "--auto-keep", "--chat-template"):
        assert flag in help_text, flag
    from hf_steer.elarablation.arguments import ElarablationArguments

    assert f"(default: {ElarablationArguments.learning_rate})" in help_text  # the default lives in the field
    assert "(default: the upper half)" in " ".join(help_text.split())
    with pytest.raises(SystemExit):  # auto (and the story bench) train the top six layers
        main(["elarablate", "auto", "--help"])
    assert "(default: top6:" in " ".join(capsys.readouterr().out.split())


def test_fuzz_every_numeric_and_path_flag_rejects_bad_values_with_one_line(tmp_path, name_contexts, capsys):
    """Fuzz: generated bad values for each numeric/path flag of each subcommand -> exit 2, one line, no traceback,
    nothing written. The base command names a missing model, checked after every setting, so a value that is
    legal (0 turns an option off) ends in that one line instead of a run."""
    import argparse

    from hf_steer.cli import build_parser

    a_file = tmp_path / "a_file.txt"
    a_file.write_text("x")
    missing = ["--model", str(tmp_path / "no-such-model")]
    folder = tmp_path / "originals"
    folder.mkdir()
    (folder / "one.yaml").write_text("response_text: |\n  Her name was\ntoken_rules: {good_token_regexes: ['^ [A-Z]']}\n")
    base = {
        "train": [str(name_contexts), "--output-dir", str(tmp_path / "o"), *missing],
        "merge": ["--adapter", str(tmp_path), "--output", str(tmp_path / "m")],
        "auto": ["--work-dir", str(tmp_path / "w"), *missing],
        "find": ["--output", str(tmp_path / "f.yaml"), *missing],
        "bench": ["--output-json", str(tmp_path / "b.json"), *missing],
        "bench-stories": ["--output-json", str(tmp_path / "s.json"), *missing],
        "bench-original": ["--folder", str(folder), "--output-json", str(tmp_path / "o.json"), *missing],
    }
    parser = build_parser()
    group = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["elarablate"]
    commands = next(a for a in group._actions if isinstance(a, argparse._SubParsersAction)).choices
    tried = 0
    for name, args in base.items():
        for action in commands[name]._actions:
            flag = action.option_strings[0] if action.option_strings else None
            if flag is None or flag in ("-h",):
                continue
            if action.type is not None and getattr(action.type, "__name__", "") in ("int", "float", "_positive_float"):
                values = ["abc", "nan", "-1", "0", "1e999"] if action.type.__name__ != "int" else ["abc", "-1", "0", "2.5"]
            elif flag in ("--model", "--adapter", "--folder", "--resume", "--chat-template", "--prompts",
                          "--eval-prompts"):
                values = [str(tmp_path / "missing"), str(a_file)]
            elif flag in ("--output-dir", "--output", "--work-dir", "--output-json"):
                values = [str(a_file / "below_a_file")]
            else:
                continue
            for value in values:
                argv = ["elarablate", name, *[a for a in args if a != flag], flag, value]
                if flag in args:  # replace the base value of a required flag
                    i = args.index(flag)
                    argv = ["elarablate", name, *args[:i], *args[i + 2:], flag, value]
                try:
                    rc = main(argv)
                except SystemExit as e:  # argparse's own rejection: exit 2 with a usage line
                    rc = e.code
                captured = capsys.readouterr()
                tried += 1
                lines = [line for line in captured.err.strip().splitlines() if not line.startswith("usage:")
                         and not line.startswith(" ")]
                # Some values are legal (0 for an off switch, 2.5 epochs): those may not fail, but never crash.
                assert "Traceback" not in captured.err, (argv, captured.err)
                if rc != 0:
                    assert rc == 2 and len(lines) == 1, (argv, captured.err)
    assert tried >= 150
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file.txt", "names.yaml", "originals"]


def test_bench_original_from_the_cli_writes_json_and_png(tmp_path, tiny_folder, capsys):
    """`hf-steer elarablate bench-original` with the CLI's settings (it once crashed: config= was not accepted)."""
    import json

    folder = tmp_path / "originals"
    folder.mkdir()
    (folder / "names.yaml").write_text(  # shaped like the published files: a block scalar ending in a newline
        "response_text: |\n  The elf girl nods. \"My name is Am\nhyperparameters: {top_k: 20}\n"  # names_elf_f_Am's rules
        "token_rules: {good_token_regexes: ['^[a-z]'], bad_token_regexes: ['^ ', '^[^a-z]']}\n")
    (folder / "obeyed.yaml").write_text(  # rules the model already obeys: nothing punished or rewarded
        "response_text: |\n  The elf girl nods. \"My name is\nhyperparameters: {top_k: 20, max_threshold: 1, "
        "min_threshold: 0}\ntoken_rules: {bad_token_regexes: ['^QQQQ$']}\n")
    (folder / "variety.yaml").write_text(  # good rules only, as monster_variety.yaml: measured by its band
        "response_text: |\n  The elf girl nods. \"My name is\nhyperparameters: {top_k: 20}\n"
        "token_rules: {good_token_regexes: ['.']}\n")  # every token of the tiny vocabulary: something to pull up
    out = tmp_path / "original.json"
    assert main(["elarablate", "bench-original", "--folder", str(folder), "--output-json", str(out),
                 "--model", str(tiny_folder), "--epochs", "1", "--learning-rate", "0.01", "--lora-r", "4"]) == 0
    figures = json.loads(out.read_text())
    assert figures["files"] == 3 and figures["settings"]["num_train_epochs"] == 1.0
    names = next(r for r in figures["results"] if r["file"] == "names.yaml")
    assert figures["settings"]["learning_rate"] == 0.01 and names["steps"] >= 1
    # the file's one slot is measured, not the keep slots the trainer adds beside it (auto_keep)
    assert names["contexts"] == 1 and names["figure"] == "bad_mass" and not names["nothing_to_train"]
    variety = next(r for r in figures["results"] if r["file"] == "variety.yaml")
    assert variety["figure"] == "good_band_miss" and variety["before"] > 0 and not variety["nothing_to_train"]
    # the obeyed file trains nothing (its loss is zero, as the original's) and says so
    assert figures["nothing_to_train"] == ["obeyed.yaml"]
    printed = capsys.readouterr().out
    assert out.with_suffix(".png").is_file() and "readable files" in printed and "1 with nothing to train" in printed
