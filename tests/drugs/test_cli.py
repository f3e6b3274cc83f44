"""`hf-steer drugs ...` end to end on a tiny saved model, plus the bench's metrics and plot."""

from __future__ import annotations

import json

import pytest
import torch

from hf_steer.cli import main
from hf_steer.drugs.bench import continuation_nll, distinct_n, frontier, interpolate, plot_bench, verdict

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


def test_bench_end_to_end_on_tiny_model(tiny_folder, tmp_path, capsys):
    output = tmp_path / "bench.json"
    rc = main(["drugs", "bench", "--output-json", str(output), "--model", tiny_folder, "--judge", "none",
               "--prompts", "2", "--seeds", "2", "--max-new-tokens", "4", "--thetas", "A=0.5", "--thetas", "H=0.5",
               "--temperatures", "1.0", "--min-ps", "0.1", "--speed-rounds", "2", "--speed-tokens", "3",
               "--recipes", "K=1.2,depth=0.5", "A=0.3,temperature=0.7,min_p=0.1"])
    result = json.loads(output.read_text())
    out = capsys.readouterr().out
    assert rc == 0 and output.with_suffix(".png").is_file() and "bench prompts: " in out and "heldout prompts: " in out
    assert set(result["prompt_sets"]) == {"bench", "heldout"}
    bench, heldout = result["prompt_sets"]["bench"], result["prompt_sets"]["heldout"]
    assert set(bench["curves"]) == {"temperature", "min_p", "drugs-A", "drugs-H", "recipes"}
    assert set(heldout["curves"]) == {"temperature", "min_p", "recipes"}  # no sweeps on the held-out prompts
    assert bench["prompts"] != heldout["prompts"]
    assert [p["recipe"] for p in heldout["curves"]["recipes"]] == ["K=1.2,depth=0.5", "A=0.3,temperature=0.7,min_p=0.1"]
    assert bench["curves"]["temperature"][0]["knob"] == 0.0  # greedy anchors the baseline
    assert result["judge"] is None and result["machine"]["torch_threads"] >= 1
    speed = result["speed"]
    assert speed["rounds"] == 2 and len(speed["per_round"]) == 2 and speed["ratio"] > 0
    assert speed["ratio_ci95"][0] <= speed["ratio"] <= speed["ratio_ci95"][1] and speed["cpu_ratio"] > 0
    assert result["settings"]["seeds"] == 2 and result["plot"] == "bench.png"
    point = bench["curves"]["drugs-A"][1]
    assert point["knob"] == 0.5 and 0 <= point["distinct2"] <= 1 and point["self_nll"] > 0
    assert point["judge_nll"] is None and bench["frontier"]["nll"] == "self_nll"
    assert len(point["per_prompt"]["distinct2"]) == 2 and len(point["per_prompt"]["self_nll_sum"]) == 2


def test_bench_speed_alone(tiny_folder, tmp_path, capsys):
    output = tmp_path / "speed.json"
    rc = main(["drugs", "bench", "--output-json", str(output), "--model", tiny_folder, "--no-curves",
               "--speed-rounds", "3", "--speed-tokens", "2"])
    result = json.loads(output.read_text())
    out = capsys.readouterr().out
    assert rc == 0 and result["prompt_sets"] == {} and result["speed"]["rounds"] == 3
    assert "tokens/s ratio" in out and "CPU-time ratio" in out and output.with_suffix(".png").is_file()
    assert main(["drugs", "bench", "--output-json", str(output), "--no-curves", "--speed-rounds", "0"]) == 2
    assert "nothing to measure" in capsys.readouterr().err


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


def test_verdict_frontier_and_plot(tmp_path):
    curves = {
        "temperature": [{"knob": 0.5, "distinct2": 0.2, "judge_nll": 2.0, "self_nll": 1.0},
                        {"knob": 1.0, "distinct2": 0.9, "judge_nll": 4.0, "self_nll": 2.0}],
        "min_p": [{"knob": 0.1, "distinct2": 0.3, "judge_nll": 2.0, "self_nll": 1.0},
                  {"knob": 0.05, "distinct2": 0.9, "judge_nll": 3.2, "self_nll": 1.5}],
        "drugs-A": [{"knob": 0.0, "distinct2": 0.1, "judge_nll": 1.5, "self_nll": 0.5},
                    {"knob": 0.3, "distinct2": 0.55, "judge_nll": 2.5, "self_nll": 1.0, "depth": 0.5}],
        "recipes": [{"knob": 0.0, "distinct2": 0.85, "judge_nll": 3.0, "self_nll": 1.2, "recipe": "K=1.2"},
                    {"knob": 0.0, "distinct2": 0.85, "judge_nll": 3.2, "self_nll": 1.2, "recipe": "A=0.3,temperature=0.5"}],
    }
    result = verdict(curves)
    assert result["nll"] == "judge_nll"
    assert result["drugs-A"]["temperature"] == pytest.approx(0.5) and result["drugs-A"]["min_p"] == pytest.approx(0.0)
    front = frontier(curves)
    # At distinct-2 0.85: temperature needs 2.0 + 2.0 * 0.65 / 0.7, min-p 2.0 + 1.2 * 0.55 / 0.6.
    t, m = 2.0 + 2.0 * 0.65 / 0.7, 2.0 + 1.2 * 0.55 / 0.6
    assert front["best"]["setting"] == "K=1.2" and front["goal_met"] is True
    assert front["best"]["margin_temperature"] == pytest.approx(t - 3.0, abs=1e-4)
    assert front["best"]["margin_min_p"] == pytest.approx(m - 3.0, abs=1e-4)
    assert [p["setting"] for p in front["points"]] == ["K=1.2", "A=0.3,temperature=0.5"]
    assert frontier(curves, threshold=0.95)["best"] is None and not frontier(curves, threshold=0.95)["goal_met"]
    # With per-prompt figures the margins get a 95% interval from resampling the prompts.
    for method, curve in curves.items():
        spread = 0.3 if method == "recipes" else 0.1  # prompts disagree more about the recipes
        for point in curve:
            nll = point["judge_nll"]
            point["per_prompt"] = {"distinct2": [point["distinct2"] - 0.05, point["distinct2"] + 0.05],
                                   "judge_nll_sum": [10 * (nll - spread), 10 * (nll + spread)],
                                   "judge_nll_tokens": [10, 10]}
    best = frontier(curves)["best"]
    low, high = best["margin_temperature_ci95"]
    assert low <= best["margin_temperature"] <= high and 0 < high - low < 1.0
    assert interpolate(curves["temperature"], 0.95, "judge_nll") is None  # beyond the baseline: no claim
    result = {"prompt_sets": {name: {"curves": curves, "frontier": front} for name in ("bench", "heldout")},
              "judge": "gemma", "speed": {"ratio": 0.97, "ratio_ci95": [0.95, 0.99]}}
    plot_bench(result, tmp_path / "b.png")
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


def test_the_three_prompt_sets_share_no_prompt():
    from hf_steer.drugs.bench import PROMPT_SETS
    from hf_steer.drugs.config import BenchConfig
    from hf_steer.errors import HfSteerError

    sets = [set(p) for p in PROMPT_SETS.values()]
    assert list(PROMPT_SETS) == ["bench", "heldout", "sealed"] and all(len(s) == 12 for s in sets)
    assert len(set.union(*sets)) == 36
    assert BenchConfig(prompt_sets=["sealed"]).prompt_sets == ["sealed"]
    with pytest.raises(HfSteerError, match="bench, heldout and/or sealed"):
        BenchConfig(prompt_sets=["sealed", "sealed"])
