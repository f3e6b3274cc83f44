"""The prefix-tree sampler draws from the model's own distribution, and stops where a name is complete."""

from collections import Counter

import pytest
import torch
from conftest import make_tiny_model, make_tokenizer

from hf_steer.elarablation.bench import continuation_probability, is_repetitive, kept, name_figures
from hf_steer.elarablation.sampling import (
    InverseCdfSampling,
    first_name,
    name_is_complete,
    sample_continuations,
)


def test_first_token_frequencies_match_the_softmax():
    model, tok = make_tiny_model("llama"), make_tokenizer("bytelevel")
    context = 'The elf girl nods. "My name is'
    with torch.no_grad():
        probs = model(**tok(context, return_tensors="pt")).logits[0, -1].softmax(-1)
    samples = sample_continuations(model, tok, context, n=3000, temperature=1.0, max_new_tokens=1,
                                   done=lambda t: False, generator=torch.Generator().manual_seed(0))
    assert sum(samples.values()) == 3000
    # several byte-level pieces decode to the same text ("\ufffd"): compare per decoded text
    expected = Counter()
    for i, p in enumerate(probs.tolist()):
        expected[tok.decode([i])] += p
    for text, p in expected.most_common(3):
        observed = samples[text] / 3000
        assert abs(observed - p) < 4 * (p * (1 - p) / 3000) ** 0.5 + 1e-3


def test_longer_continuations_match_generate_statistics():
    # with a cache, depth 2 must see the same distribution as a fresh forward of context + token
    model, tok = make_tiny_model("llama"), make_tokenizer("bytelevel")
    ids = tok("Her voice was")["input_ids"]
    samples = sample_continuations(model, tok, ids, n=50, temperature=1e-5, max_new_tokens=3, done=lambda t: False)
    greedy = model.generate(torch.tensor([ids]), max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert list(samples) == [tok.decode(greedy[0, len(ids):])]


def test_name_rules():
    assert first_name(' Elara," she') == "Elara" and first_name(" the\nBob") is None
    assert name_is_complete(" Elara,") and not name_is_complete(" Ela")
    figures = name_figures(Counter({"Elara": 6, "Mira": 2, "Tom": 2, None: 10}))
    assert figures["incidence"] == 0.6 and figures["named_rate"] == 0.5 and figures["top_name_share"] == 0.6
    assert 2.5 < figures["effective_names"] < 2.6  # exp(H(0.6, 0.2, 0.2))


def test_back_reference_probability_is_the_exact_product_over_the_name_s_tokens():
    model, tok = make_tiny_model("llama"), make_tokenizer("bytelevel")
    context = "Lyra and Elara were friends. Lyra was quiet, while"
    ids = tok(context)["input_ids"]
    name = tok(context + " Elara")["input_ids"][len(ids):]
    expected = 1.0
    with torch.no_grad():
        for t in name:
            expected *= model(input_ids=torch.tensor([ids])).logits[0, -1].softmax(-1)[t].item()
            ids = ids + [t]
    assert continuation_probability(model, tok, context, "Elara") == pytest.approx(expected, rel=1e-4)
    rows = [{"expected": "Elara"}, {"expected": "Kael"}]
    assert kept([0.8, 0.2], [0.4, 0.2], rows) == pytest.approx(0.6)
    assert kept([0.8, 0.2], [0.4, 0.2], rows, lambda n: n.startswith("El")) == pytest.approx(0.5)


def test_repetition_detector():
    assert is_repetitive(" Am Am Am") and is_repetitive(" the cat and the cat")
    assert not is_repetitive(' Amara," she said with a smile.')



def test_name_plot_shares_are_over_all_named_samples(tmp_path):
    """The bench hands the plot only the top names: bars must still be shares of all named samples."""
    from hf_steer.elarablation.plots import name_shares, plot_names

    assert name_shares(Counter({"Elara": 40, "Elian": 20, None: 5}), k=10, total=100) == [("Elara", 0.4), ("Elian", 0.2)]
    assert name_shares(Counter({"Aria": 3, "Tom": 1}), k=1) == [("Aria", 0.75)]
    path = plot_names(Counter({"Elara": 40}), Counter({"Aria": 5}), tmp_path / "p.png", totals=(100, 200))
    assert path.stat().st_size > 0


def test_inverse_cdf_sampling_draws_from_the_softmax_at_its_temperature():
    """The stories' sampler: greedy decoding over its scores takes a token drawn from softmax(scores / T), never
    one of probability 0, and the same seed draws the same tokens."""
    scores = torch.tensor([2.0, 1.0, 0.0, -float("inf"), 0.5, -1.0])
    rows = scores.expand(40_000, -1).clone()
    for temperature in (0.7, 1.5):
        out = InverseCdfSampling(temperature, seed=0)(None, rows)
        drawn = out.argmax(-1)
        assert torch.isinf(out).sum(-1).eq(len(scores) - 1).all() and out.max(-1).values.eq(0).all()
        freq = torch.bincount(drawn, minlength=len(scores)).float() / len(rows)
        expected = torch.softmax(scores / temperature, -1)
        assert freq[3] == 0
        # 40,000 draws: a probability's standard error is at most 0.0025
        torch.testing.assert_close(freq, expected, atol=0.01, rtol=0)
    again = InverseCdfSampling(0.7, seed=0)(None, rows[:50]).argmax(-1)
    assert torch.equal(again, InverseCdfSampling(0.7, seed=0)(None, rows[:50]).argmax(-1))
    assert not torch.equal(again, InverseCdfSampling(0.7, seed=1)(None, rows[:50]).argmax(-1))
    with pytest.raises(ValueError, match="temperature"):
        InverseCdfSampling(0.0, seed=0)


@pytest.mark.parametrize("vocab", [49_152, 1_000])
def test_inverse_cdf_sampling_in_blocks_draws_what_one_cumulative_sum_draws(vocab):
    """The two-level read (blocks, then the tokens of one block) takes the token the whole-vocabulary float64
    cumulative sum takes for the same uniform number, on a vocabulary of whole blocks and on a ragged one."""
    torch.manual_seed(0)
    scores = torch.randn(64, vocab) * 3
    scores[:, ::7] = -float("inf")
    for seed in range(3):
        probs = torch.softmax(scores / 0.7, dim=-1).double().cumsum(-1)
        u = torch.rand((64, 1), generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * probs[:, -1:]
        whole = torch.searchsorted(probs, u, right=True)[:, 0]
        assert torch.equal(InverseCdfSampling(0.7, seed)(None, scores.clone()).argmax(-1), whole)
