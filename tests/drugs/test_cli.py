"""`hf-steer drugs ...` end to end on a tiny saved model, plus the bench's metrics and plot."""

from __future__ import annotations

import json

import pytest
import torch

from hf_steer.cli import main
from hf_steer.drugs.bench import continuation_nll, distinct_n, plot_bench, verdict

from .conftest import tiny


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory, tokenizer):
    folder = tmp_path_factory.mktemp("tiny_llama")
    tiny("llama").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_generate_streams_each_seed(tiny_folder, capsys):
    rc = main(["drugs", "generate", "--model", tiny_folder, "--prompt", "Once upon a time", "--dose", "A=0.5",
               "--dose", "H=0.2", "--depth", "0.5", "--spread", "0.5", "--seeds", "2", "--max-new-tokens", "4"])
    out = capsys.readouterr().out
    assert rc == 0 and "--- seed 0 ---" in out and "--- seed 1 ---" in out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--dose", "X=0.1"], "injection type 'X' is unknown"),
        (["--dose", "A=nan"], "theta nan is not a number >= 0"),
        (["--dose", "A=-0.2"], "theta -0.2 is not a number >= 0"),
        (["--dose", "A=0.1", "--depth", "1.5"], "depth 1.5 is out of range"),
        (["--dose", "A=4"], "theta 4.0 is above π"),
        ([], "no dose given"),
    ],
)
def test_generate_bad_input_is_one_line(flags, message, capsys):
    rc = main(["drugs", "generate", "--prompt", "hi", *flags])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1


def test_vergence_writes_png_and_json(tiny_folder, tmp_path):
    output = tmp_path / "v.png"
    rc = main(["drugs", "vergence", "--model", tiny_folder, "--types", "HA", "--thetas", "0.1", "0.5",
               "--ranges", "0-0.5,0.5-1", "--samples", "2", "--prompt", "Once upon a time there was",
               "--output", str(output)])
    assert rc == 0 and output.read_bytes()[:4] == b"\x89PNG"
    result = json.loads(output.with_suffix(".json").read_text())
    assert set(result["divergence"]) == {"H", "A"} and result["ranges"] == ["0-0.5", "0.5-1"]
    early = result["divergence"]["A"]["0-0.5"]
    assert len(early["0.1"]) == result["layers"] == 2
    assert sum(early["0.5"]) > 0  # the dosed run moved away from the sober one


def test_explore_writes_one_self_contained_page(tiny_folder, tmp_path):
    output = tmp_path / "e.html"
    rc = main(["drugs", "explore", "--model", tiny_folder, "--types", "AV", "--thetas", "0.3",
               "--prompt", "Once upon a time", "--prompt", "Her voice </script> was", "--samples", "2",
               "--max-new-tokens", "4", "--output", str(output)])
    page = output.read_text()
    assert rc == 0 and page.startswith("<!doctype html>") and "<script>" in page
    assert "http" not in page and "<link" not in page  # nothing fetched from elsewhere
    rows = json.loads(page.split("const ROWS = ", 1)[1].split(";\n", 1)[0].replace("<\\/", "</"))
    assert len(rows) == 2 * (1 + 2 * 1 * 2)  # per prompt: sober + types × θ × samples
    assert {r["type"] for r in rows} == {"sober", "A", "V"}
    assert page.count("</script>") == 1  # the prompt's "</script>" was escaped


def test_bench_end_to_end_on_tiny_model(tiny_folder, tmp_path):
    output = tmp_path / "bench.json"
    rc = main(["drugs", "bench", "--output-json", str(output), "--model", tiny_folder, "--judge", "none",
               "--prompts", "2", "--seeds", "2", "--max-new-tokens", "4", "--thetas", "A=0.5", "--thetas", "H=0.5",
               "--temperatures", "1.0", "--min-ps", "0.1", "--speed-rounds", "2", "--speed-tokens", "3"])
    result = json.loads(output.read_text())
    assert rc == 0 and output.with_suffix(".png").is_file()
    assert set(result["curves"]) == {"temperature", "min_p", "drugs-A", "drugs-H"}
    assert result["curves"]["temperature"][0]["knob"] == 0.0  # greedy anchors the baseline
    assert result["judge"] is None and result["machine"]["torch_threads"] >= 1
    speed = result["speed"]
    assert speed["rounds"] == 2 and len(speed["per_round"]) == 2 and speed["ratio"] > 0
    assert speed["ratio_ci95"][0] <= speed["ratio"] <= speed["ratio_ci95"][1] and speed["cpu_ratio"] > 0
    assert result["settings"]["seeds"] == 2 and result["plot"] == "bench.png"
    point = result["curves"]["drugs-A"][1]
    assert point["knob"] == 0.5 and 0 <= point["distinct2"] <= 1 and point["self_nll"] > 0
    assert point["judge_nll"] is None


def test_distinct_2():
    assert distinct_n(["a b c", "a b c"]) == 0.5
    assert distinct_n(["a b", "c d"]) == 1.0
    assert distinct_n(["one", ""]) == 0.0


def test_continuation_nll_matches_a_direct_computation_with_padding(tokenizer):
    model = tiny("llama")
    pairs = [("Once upon a time", " there was a dog"), ("Her voice was barely above a whisper, and", " shivers")]

    def direct(context, text):
        ctx, cont = tokenizer(context)["input_ids"], tokenizer(text)["input_ids"]
        with torch.no_grad():
            logprobs = torch.log_softmax(model(torch.tensor([ctx + cont])).logits[0], -1)
        return [-logprobs[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont)]

    per_token = [direct(c, t) for c, t in pairs]
    expected = sum(map(sum, per_token)) / sum(map(len, per_token))
    got = continuation_nll(model, tokenizer, [c for c, _ in pairs], [t for _, t in pairs])
    assert got == pytest.approx(expected, rel=1e-4) and got > 0
    assert continuation_nll(model, tokenizer, ["a"], [""]) != continuation_nll(model, tokenizer, ["a"], [" b"])


def test_verdict_and_plot(tmp_path):
    curves = {
        "temperature": [{"knob": 0.5, "distinct2": 0.2, "judge_nll": 2.0, "self_nll": 1.0},
                        {"knob": 1.0, "distinct2": 0.8, "judge_nll": 4.0, "self_nll": 2.0}],
        "min_p": [{"knob": 0.1, "distinct2": 0.3, "judge_nll": 2.0, "self_nll": 1.0},
                  {"knob": 0.05, "distinct2": 0.7, "judge_nll": 3.0, "self_nll": 1.5}],
        "drugs-A": [{"knob": 0.0, "distinct2": 0.1, "judge_nll": 1.5, "self_nll": 0.5},
                    {"knob": 0.3, "distinct2": 0.5, "judge_nll": 2.5, "self_nll": 1.0}],
    }
    result = verdict(curves)
    assert result["nll"] == "judge_nll"
    assert result["drugs-A"]["temperature"] == pytest.approx(0.5) and result["drugs-A"]["min_p"] == pytest.approx(0.0)
    plot_bench({"curves": curves, "judge": "gemma", "speed": {"ratio": 0.97, "ratio_ci95": [0.95, 0.99]}},
               tmp_path / "b.png")
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_shared_sober_prompt_cache_gives_the_same_generations(tokenizer):
    from hf_steer.drugs import DrugsConfig, inject
    from hf_steer.drugs.bench import _generate, _prompt_cache
    from hf_steer.drugs.explore import chat_inputs

    model = inject(tiny("llama"), DrugsConfig(doses={"A": 0.8}, sinks=1000))  # wrapper on, every position sober
    texts = ["Once upon a time", "Her voice was barely above a whisper"]
    enc, prefix = _prompt_cache(model, tokenizer, texts, seeds=3)
    full = chat_inputs(tokenizer, [t for t in texts for _ in range(3)])
    assert torch.equal(enc["input_ids"], full["input_ids"])
    shared = _generate(model, tokenizer, enc, 5, 0, prefix)
    assert shared == _generate(model, tokenizer, full, 5, 0)  # the shared prefix changes nothing else
