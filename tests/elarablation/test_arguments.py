"""The adapter's layer settings: ranges, lists, ``topN`` and ``auto``'s own default; ``auto``'s hold weight."""

import pytest
from conftest import make_tiny_model

from hf_steer.elarablation.arguments import AutoArguments, AutoLoraArguments, LoraArguments
from hf_steer.elarablation.pipeline import default_lora_config
from hf_steer.errors import HfSteerError


def test_top_n_layers_count_from_the_models_top():
    model = make_tiny_model("llama", num_hidden_layers=5)

    def layers(text):
        return default_lora_config(model, layers=LoraArguments(lora_layers=text).layers()).layers_to_transform

    assert layers(None) == [2, 3, 4]  # the upper half, as before
    assert layers("top2") == layers("TOP 2") == [3, 4]
    assert layers("top9") == [0, 1, 2, 3, 4]  # a model with fewer layers than asked: every one of them
    assert layers("1-2") == [1, 2] and layers("4,0") == [0, 4]
    # a work folder's state.json records the upper half as None: `--lora-layers None` resumes it
    assert LoraArguments(lora_layers="None").lora_layers is None and layers("none") == [2, 3, 4]
    for text in ("top0", "top-2", "topx", "9-3"):
        with pytest.raises(HfSteerError, match=f"--lora-layers '{text}' is not a range: use e.g. 15-29, 20,21,22 or top6"):
            LoraArguments(lora_layers=text)
    with pytest.raises(HfSteerError, match=r"LoRA layers \[7\] are out of range: the model has layers 0..4"):
        layers("3,7")


def test_auto_trains_the_top_six_layers_and_the_rest_the_upper_half():
    assert AutoLoraArguments().lora_layers == "top6" and LoraArguments().lora_layers is None
    model = make_tiny_model("llama", num_hidden_layers=30)
    assert default_lora_config(model, layers=AutoLoraArguments().layers()).layers_to_transform == list(range(24, 30))


def test_auto_judges_at_least_100_held_out_stories_unless_told():
    """3 stories per prompt on the shipped 34 held-out prompts, more on a user's few (30 stories read one adapter at slop
    index +26%, 100 at -25%); a count the user gives is kept."""
    assert AutoArguments().eval_stories_per_prompt is None
    assert AutoArguments().with_eval_stories(34).eval_stories_per_prompt == 3
    assert AutoArguments().with_eval_stories(10).eval_stories_per_prompt == 10
    assert AutoArguments().with_eval_stories(15).eval_stories_per_prompt == 7
    assert AutoArguments().with_eval_stories(200).eval_stories_per_prompt == 3
    assert AutoArguments(eval_stories_per_prompt=1).with_eval_stories(10).eval_stories_per_prompt == 1
    with pytest.raises(HfSteerError, match="^--eval-stories-per-prompt 0 must be a positive whole number, or leave it out for its default$"):
        AutoArguments(eval_stories_per_prompt=0)


def test_auto_holds_chat_prompts_at_57_and_plain_openings_at_100_unless_told():
    """A chat context is held from its story on, a plain opening whole: their defaults differ (on Gemma-3-270M's
    openings 57 moved the judge three times as far as 100); a weight the user gives is kept for either."""
    assert AutoArguments().hold_weight is None
    assert AutoArguments().with_hold_weight(chat=True).hold_weight == 57.0
    assert AutoArguments().with_hold_weight(chat=False).hold_weight == 100.0
    assert AutoArguments(hold_weight=0.0).with_hold_weight(chat=False).hold_weight == 0.0
    assert AutoArguments(hold_weight=80.0).with_hold_weight(chat=True).hold_weight == 80.0
    with pytest.raises(HfSteerError, match="--hold-weight -1.0 is negative: use 0 \\(off\\) or more"):
        AutoArguments(hold_weight=-1.0)
