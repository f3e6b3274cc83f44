"""`hf-steer elarablate train / merge / find / library` end to end on a tiny model, and their error lines."""

import json

import torch

from hf_steer.cli import main
from hf_steer.elarablation.contexts import load_contexts
from hf_steer.elarablation.discover import over_representation, phrase_hits, write_candidates


def test_train_then_merge_write_push_ready_folders(tmp_path, tiny_folder, name_contexts, capsys):
    adapter, merged = tmp_path / "adapter", tmp_path / "merged"
    rc = main(["elarablate", "train", str(name_contexts), "--output-dir", str(adapter), "--model", str(tiny_folder),
               "--epochs", "2", "--top-k", "20", "--lora-layers", "0-1"])
    assert rc == 0
    assert (adapter / "adapter_model.safetensors").is_file()
    manifest = json.loads((adapter / "hf_steer.json").read_text())
    assert manifest["method"] == "elarablation" and manifest["artifact"] == "adapter"
    assert manifest["hyperparameters"]["loss_type"] == "margin" and manifest["datasets"] == ["test_names"]
    assert "train_seconds" in manifest["metrics"]
    assert "trained 2 steps" in capsys.readouterr().out

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
    assert main(["elarablate", "merge", "--adapter", str(tmp_path), "--output", str(tmp_path / "m")]) == 2
    assert "has no adapter_config.json" in capsys.readouterr().err


def test_library_lists_families(capsys):
    assert main(["elarablate", "library"]) == 0
    out = capsys.readouterr().out
    for family in ("female_names", "elf_names", "whisper", "spine", "mix_of", "place_names"):
        assert family in out


def test_discovery_ranks_over_used_words_and_writes_loadable_contexts(tmp_path):
    from collections import Counter

    model_counts = Counter({"elara": 6, "whispered": 4, "dog": 4, "ran": 3})
    reference = {"dog": 500, "ran": 800, "whispered": 2}
    ranked = over_representation(model_counts, reference, 100_000, {"elara": 98586, "whispered": 63557})
    assert [e["text"] for e in ranked[:2]] == ["elara", "whispered"]
    texts = ['The elf girl nods. "My name is Elara," she says, her voice barely above a whisper.']
    assert phrase_hits(texts, [["voice barely above a whisper", 19295]])[0]["count"] == 1
    out = tmp_path / "found.yaml"
    assert write_candidates(out, ranked[:1], texts) == 1
    rows = load_contexts(str(out))
    assert rows[0]["text"] == 'The elf girl nods. "My name is' and rows[0]["family"] == "found_elara"


def test_find_on_a_tiny_model(tmp_path, tiny_folder, capsys):
    out = tmp_path / "found.yaml"
    assert main(["elarablate", "find", "--model", str(tiny_folder), "--output", str(out), "--samples", "2",
                 "--max-new-tokens", "12"]) == 0
    assert out.is_file() and "candidate contexts" in capsys.readouterr().out
