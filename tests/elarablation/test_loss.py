"""The loss terms on plain tensors: which tokens are punished/rewarded, and which way each variant pushes."""

import math

import pytest
import torch

from hf_steer.elarablation.loss import LOSS_TYPES, elarablation_loss, split_candidates


def _setup(probs):
    """Logits whose softmax is ``probs`` (one row), with candidates = all tokens."""
    probs = torch.tensor([probs])
    logits = probs.log().clone().requires_grad_(True)
    topk = torch.arange(probs.shape[1])[None]
    return logits, topk


def test_split_punishes_bad_and_too_likely_and_rewards_rare_good():
    probs = torch.tensor([[0.85, 0.10, 0.03, 0.01, 0.01]])
    good = torch.tensor([[False, True, True, True, False]])
    bad = torch.tensor([[True, False, False, False, False]])
    valid = torch.tensor([[True, True, True, True, False]])  # last one excluded
    punished, rewarded = split_candidates(probs, good, bad, valid, torch.tensor([0.02]), torch.tensor([0.015]))
    assert punished.tolist() == [[True, True, True, False, False]]
    assert rewarded.tolist() == [[False, False, False, True, False]]


def test_bad_overrides_good():
    probs = torch.tensor([[0.001]])
    both = torch.tensor([[True]])
    punished, rewarded = split_candidates(probs, both, both, both, torch.tensor([0.02]), torch.tensor([0.015]))
    assert punished.item() and not rewarded.item()


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_gradient_lowers_bad_and_raises_rare_good(loss_type):
    logits, topk = _setup([0.85, 0.005, 0.005, 0.14])
    good = torch.tensor([[False, True, True, False]])
    bad = torch.tensor([[True, False, False, False]])
    valid = torch.ones_like(good)
    out = elarablation_loss(logits, topk, good, bad, valid, loss_type=loss_type, ref_logits=logits.detach())
    out.loss.backward()
    # gradient descent moves against the gradient: bad logit down, rare good logits up
    assert logits.grad[0, 0] > 0
    assert logits.grad[0, 1] < 0 and logits.grad[0, 2] < 0


def test_elarablate_is_plus_log_p_punished_minus_log_p_rewarded():
    logits, topk = _setup([0.80, 0.01, 0.14, 0.05])
    good = torch.tensor([[False, True, False, True]])
    bad = torch.tensor([[True, False, False, False]])
    out = elarablation_loss(logits, topk, good, bad, torch.ones_like(good), loss_type="elarablate")
    # token 0 bad -> punished; token 3 good but above max -> punished; token 1 rare good -> rewarded;
    # token 2 (0.14) is neither good nor bad: neutral, never pushed (the original's rule)
    expected = math.log(0.80) + math.log(0.05) - math.log(0.01)
    assert out.loss.item() == pytest.approx(expected, abs=1e-4)
    assert out.n_punished.item() == 2 and out.n_rewarded.item() == 1


def test_neutral_candidates_are_never_pushed_even_above_max():
    probs = torch.tensor([[0.6, 0.3, 0.1]])
    good = torch.tensor([[False, False, True]])
    bad = torch.tensor([[False, False, False]])
    punished, rewarded = split_candidates(probs, good, bad, torch.ones_like(good), torch.tensor([0.02]),
                                          torch.tensor([0.015]))
    assert punished.tolist() == [[False, False, True]] and not rewarded.any()


def test_keep_loss_is_zero_at_the_reference_and_holds_the_expected_name():
    from hf_steer.elarablation.loss import keep_loss

    ref = torch.tensor([[2.0, 0.5, -1.0]])
    loss, p = keep_loss(ref.clone(), ref, torch.tensor([0]))
    assert loss.item() == pytest.approx(0.0, abs=1e-6) and p.item() == pytest.approx(ref.softmax(-1)[0, 0].item())
    lowered = ref.clone().requires_grad_(True)
    loss, _ = keep_loss(lowered - torch.tensor([[1.0, 0.0, 0.0]]), ref, torch.tensor([0]))
    loss.sum().backward()
    assert loss.item() > 0 and lowered.grad[0, 0] < 0  # descent raises the expected name back


def test_unlikelihood_push_fades_as_p_falls():
    grads = []
    for p in (0.5, 0.01):
        logits, topk = _setup([p, 1 - p])
        bad = torch.tensor([[True, False]])
        out = elarablation_loss(logits, topk, ~bad, bad, torch.ones_like(bad), loss_type="unlikelihood",
                                max_threshold=1.0, min_threshold=0.0)
        out.loss.backward()
        grads.append(logits.grad[0, 0].item())
    assert grads[0] > 10 * grads[1] > 0


def test_margin_is_zero_once_targets_are_met_and_tether_holds_other_tokens():
    logits, topk = _setup([0.01, 0.016, 0.974])
    good = torch.tensor([[False, True, True]])
    bad = torch.tensor([[True, False, False]])
    # candidates are tokens 0 and 1 only: the bad one is below min_threshold and below a tenth of where the
    # reference had it (0.17 -> 0.01), the good one above min_threshold
    ref_logits = logits.detach().clone()
    ref_logits[0, 0] += math.log(20)
    out = elarablation_loss(logits, topk[:, :2], good[:, :2], bad[:, :2], torch.ones_like(good[:, :2]),
                            loss_type="margin", ref_logits=ref_logits)
    assert out.loss.item() == pytest.approx(0.0, abs=1e-6)
    # the same bad token, where the reference already had it at 0.01, is pushed tenfold further
    out = elarablation_loss(logits, topk[:, :2], good[:, :2], bad[:, :2], torch.ones_like(good[:, :2]),
                            loss_type="margin", ref_logits=logits.detach())
    assert out.loss.item() == pytest.approx(math.log(10), abs=1e-4)
    # moving an untouched token away from the reference costs tether loss
    ref = logits.detach().clone()
    moved = ref.clone()
    moved[0, 2] += 1.0
    out = elarablation_loss(moved, topk[:, :1], good[:, :1], bad[:, :1], torch.ones_like(good[:, :1]),
                            loss_type="margin", ref_logits=ref, max_threshold=0.5, min_threshold=0.001)
    assert out.loss.item() > 0


def test_centred_tether_lets_every_logit_shift_together_and_still_holds_their_spread():
    logits, topk = _setup([0.2, 0.3, 0.5])
    ref = logits.detach().clone()
    kw = dict(loss_type="margin", ref_logits=ref, max_threshold=0.9, min_threshold=0.001)
    args = (topk[:, :1], torch.zeros(1, 1, dtype=torch.bool), torch.zeros(1, 1, dtype=torch.bool), torch.ones(1, 1, dtype=torch.bool))
    shifted = ref + 2.0  # the same distribution
    assert elarablation_loss(shifted, *args, **kw).loss.item() == pytest.approx(4.0, abs=1e-4)
    assert elarablation_loss(shifted, *args, tether_centred=True, **kw).loss.item() == pytest.approx(0.0, abs=1e-6)
    spread = ref.clone()
    spread[0, 2] += 1.0  # one logit away from the others: 3 held tokens, drift (0, 0, 1), variance 2/9
    assert elarablation_loss(spread, *args, tether_centred=True, **kw).loss.item() == pytest.approx(2 / 9, abs=1e-4)


def test_margin_hinge_is_bounded():
    logits, topk = _setup([1 - 1e-9, 1e-9])
    good = torch.tensor([[False, True]])
    bad = torch.tensor([[True, False]])
    out = elarablation_loss(logits, topk, good, bad, torch.ones_like(good), loss_type="margin",
                            ref_logits=logits.detach(), margin_cap=4.0)
    assert out.loss.item() <= 8.0 + 1e-4


def test_diagnostics():
    logits, topk = _setup([0.5, 0.3, 0.2])
    bad = torch.tensor([[True, False, False]])
    out = elarablation_loss(logits, topk, ~bad, bad, torch.ones_like(bad))
    assert out.top1_prob.item() == pytest.approx(0.5, abs=1e-5)
    assert out.bad_mass.item() == pytest.approx(0.5, abs=1e-5)
    h = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2))
    assert out.topk_entropy.item() == pytest.approx(h, abs=1e-4)


def test_temperature_and_unknown_type():
    logits, topk = _setup([0.6, 0.4])
    flat = elarablation_loss(logits, topk, torch.tensor([[True, True]]), torch.tensor([[False, False]]),
                             torch.tensor([[True, True]]), temperature=100.0)
    assert flat.top1_prob.item() == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="loss_type"):
        elarablation_loss(logits, topk, topk > 0, topk > 0, topk >= 0, loss_type="nope")


def test_the_bad_tail_beyond_the_top_k_may_not_grow():
    # a dominant good token (0.9) above max is pushed down; the bad tokens outside the candidates would gain
    probs = torch.tensor([[0.9, 0.05, 0.03, 0.02]])
    logits = probs.log().clone().requires_grad_(True)
    cand = torch.tensor([[0]])
    good, bad, valid = torch.tensor([[True]]), torch.tensor([[False]]), torch.tensor([[True]])
    vocab_bad = torch.tensor([[False, False, True, True]])
    ref = logits.detach().clone()
    moved = ref.clone()
    moved[0, 0] -= 2.0  # the dominant token after a few steps: the tail's share has grown
    held = elarablation_loss(moved, cand, good, bad, valid, loss_type="margin", ref_logits=ref, vocab_bad=vocab_bad)
    free = elarablation_loss(moved, cand, good, bad, valid, loss_type="margin", ref_logits=ref)
    tail_now = torch.softmax(moved, -1)[0, 2:].sum().log() - torch.softmax(ref, -1)[0, 2:].sum().log()
    # its rise over the reference, and its way down to a tenth of the reference (bad_ratio)
    assert held.loss.item() - free.loss.item() == pytest.approx(2 * tail_now.item() + math.log(10), abs=1e-4)
    assert tail_now > 0


def test_the_bad_tail_at_its_reference_still_falls_to_a_tenth():
    """Held only at the reference, the bad mass outside the top-k of original files rose (names_elf_f_Am); at the
    reference it is now pushed on, to bad_ratio of it, and no further."""
    ref = torch.tensor([[0.9, 0.05, 0.03, 0.02]]).log()
    logits = ref.clone().requires_grad_(True)
    cand = torch.tensor([[1]])
    good, bad, valid = torch.tensor([[True]]), torch.tensor([[False]]), torch.tensor([[True]])
    vocab_bad = torch.tensor([[False, False, True, True]])
    kw = dict(loss_type="margin", ref_logits=ref, vocab_bad=vocab_bad, max_threshold=0.95, min_threshold=0.01)
    out = elarablation_loss(logits, cand, good, bad, valid, **kw)
    assert out.loss.item() == pytest.approx(math.log(10), abs=1e-4)
    out.loss.backward()
    assert (logits.grad[0, 2:] > 0).all()  # descending the gradient lowers the bad tokens
    opt = torch.optim.SGD([logits], lr=0.5)
    for _ in range(300):
        opt.zero_grad()
        elarablation_loss(logits, cand, good, bad, valid, **kw).loss.backward()
        opt.step()
    tail = logits.detach().softmax(-1)[0, 2:].sum().item()
    assert tail == pytest.approx(0.005, rel=0.1)  # a tenth of 0.05


def test_a_row_that_moves_nothing_leaves_a_negligible_bad_tail_alone():
    """he_asked_2.yaml on Gemma-3-270M: nothing punished or rewarded and a bad mass of 4e-6. Pushed to a tenth, the
    log-ratio's gradient was as large as at 0.4 and the slot drifted; the original's loss is zero there, and so is
    this one."""
    probs = torch.tensor([[0.6, 0.3999, 0.00005, 0.00005]])
    cand = torch.tensor([[0, 1]])
    good, bad, valid = torch.tensor([[False, True]]), torch.tensor([[False, False]]), torch.tensor([[True, True]])
    vocab_bad = torch.tensor([[False, False, True, True]])
    kw = dict(loss_type="margin", ref_logits=probs.log(), vocab_bad=vocab_bad, max_threshold=1.0, min_threshold=0.3)
    out = elarablation_loss(probs.log(), cand, good, bad, valid, **kw)
    assert out.loss.item() == 0.0  # zero, so the trainer takes no step (ElarablationTrainer.compute_loss)
    # something to move at the slot (the good token under min_threshold is rewarded): the tail is pushed on too
    low = torch.tensor([[0.8, 0.1999, 0.00005, 0.00005]])
    kw["ref_logits"] = low.log()
    pushed = elarablation_loss(low.log(), cand, good, bad, valid, **kw)
    assert pushed.n_rewarded.item() == 1 and pushed.loss.item() > math.log(10) - 1e-4


def test_the_bad_tail_counts_as_much_as_every_candidate_the_row_moves():
    """names_dark_m.yaml ("a man named"): five dominant names pushed under max_threshold, 45 rare ones pulled up, and
    a bad tail (" the", " \"", ...) beyond the top-k. One tail term beside 50 hinges was outweighed: the freed mass fed
    the tail (0.00439 -> 0.00460 on the bundled model). The tail's term is weighted by the candidates the row moves."""
    probs = torch.cat([torch.full((5,), 0.15), torch.full((45,), 0.004), torch.full((10,), 0.007)])
    ref = (probs / probs.sum()).log()[None]
    cand = torch.arange(50)[None]
    good = torch.ones(1, 50, dtype=torch.bool)
    bad, valid = torch.zeros(1, 50, dtype=torch.bool), good.clone()
    vocab_bad = torch.zeros(1, 60, dtype=torch.bool)
    vocab_bad[0, 50:] = True
    kw = dict(loss_type="margin", ref_logits=ref, max_threshold=0.02, min_threshold=0.01)
    with_tail = elarablation_loss(ref, cand, good, bad, valid, vocab_bad=vocab_bad, **kw)
    without = elarablation_loss(ref, cand, good, bad, valid, **kw)
    moved = with_tail.n_punished.item() + with_tail.n_rewarded.item()
    assert moved == 50
    # at the reference the tail's term is its way down to bad_ratio, once per moved candidate
    assert with_tail.loss.item() - without.loss.item() == pytest.approx(moved * math.log(10), rel=1e-4)
    # a few optimiser steps through a shared low-rank map (as a LoRA moves logits): the tail falls, not just holds
    torch.manual_seed(0)
    weight, h = torch.zeros(60, 4, requires_grad=True), torch.randn(4)
    opt = torch.optim.Adam([weight], lr=0.05)
    for _ in range(8):
        opt.zero_grad()
        elarablation_loss(ref + (weight @ h)[None], cand, good, bad, valid, vocab_bad=vocab_bad, **kw).loss.backward()
        opt.step()
    tail = (ref + (weight @ h)[None]).detach().softmax(-1)[0, 50:].sum().item()
    assert tail < 0.1 * 0.07  # with one unweighted term: 0.018, a quarter of the reference's 0.07


def test_within_class_hinges_move_mass_among_names_only():
    # a name slot as the bench's: one bad name (0.5), more rare good names (rewarded) than bad ones, a common
    # good name, two non-names
    probs = torch.tensor([[0.5, 0.005, 0.005, 0.005, 0.285, 0.1, 0.1]])
    cand = torch.tensor([[0, 1, 2, 3, 4]])
    good = torch.tensor([[False, True, True, True, True]])
    bad = ~good
    valid = torch.ones_like(good)
    neutral = torch.tensor([[False] * 5 + [True, True]])

    def grad(within_class):
        logits = probs.log().clone().requires_grad_(True)
        # no tether, no holds: the hinges alone
        out = elarablation_loss(logits, cand, good, bad, valid, loss_type="margin", ref_logits=probs.log(),
                                tether_weight=0.0, vocab_neutral=neutral, neutral_weight=0.0,
                                within_class=within_class, max_threshold=0.4, min_threshold=0.02)
        out.loss.backward()
        return logits.grad[0]

    inside = grad(True)
    # the non-names' logits get no push, and raising every name together changes nothing
    assert inside[5:].abs().max().item() == pytest.approx(0.0, abs=1e-7)
    assert inside[:5].sum().item() == pytest.approx(0.0, abs=1e-6)
    assert inside[0] > 0 and inside[1] < 0  # still: the bad name down, the rare names up
    # absolute hinges: each rewarded name pulls the whole class up by 1 - P(names) = 0.2, the punished one pushes it
    # down by 1 - 0.6 (the unpushed names' share of the unpushed mass, own_logit_gradient); with more rewarded than
    # punished the names drain the non-names (the named rate rose)
    outside = grad(False)
    assert outside[:5].sum().item() == pytest.approx(-3 * 0.2 + 0.4, abs=1e-4)


def test_pushing_many_bad_candidates_does_not_raise_the_largest():
    # names_realm_1.yaml on Gemma-3-270M ("In the realm of"): 49 of 50 candidates bad, " the" 0.39 and " fantasy" 0.36;
    # d log p_i / d z_j = -p_j summed over 48 other pushed tokens raised " fantasy" to 0.99 (bad mass 0.94 -> 0.97)
    probs = torch.tensor([0.39, 0.36] + [0.005] * 40 + [0.0025] * 8 + [0.0])
    probs[-1] = 1 - probs[:-1].sum()  # the rest of the vocabulary, beyond the top-k
    logits = probs.log()[None].clone().requires_grad_(True)
    cand = torch.arange(50)[None]
    bad = torch.tensor([[True] * 42 + [False] * 8])
    out = elarablation_loss(logits, cand, ~bad, bad, torch.ones_like(bad), loss_type="margin", ref_logits=probs.log()[None],
                            tether_weight=0.0, max_threshold=0.02, min_threshold=0.015, temperature=1.0)
    out.loss.backward()
    grad = logits.grad[0]
    assert (grad[:42] > 0).all()  # every bad candidate is pushed down, the two large ones included
    assert (grad[42:50] < 0).all()  # the good ones rise
    assert out.loss.item() == pytest.approx(sum(min(4.0, max(0.0, float(p.log() - min(math.log(0.015), p.log() + math.log(0.1)))))
                                                for p in probs[:42]) + 8 * (math.log(0.015) - math.log(0.0025)), rel=1e-4)


def test_a_hinge_past_its_cap_still_pushes():
    from hf_steer.elarablation.loss import capped_hinge

    x = torch.tensor([-1.0, 2.0, 7.0], requires_grad=True)
    y = capped_hinge(x, 4.0)
    y.sum().backward()
    assert y.tolist() == [0.0, 2.0, 4.0] and x.grad.tolist() == [0.0, 1.0, 1.0]


def test_within_class_still_pushes_a_bad_token_when_no_token_is_good():
    # bad rules only (the rest neutral): the class is the bad token alone, and it must still fall
    probs = torch.tensor([[0.5, 0.3, 0.2]])
    logits = probs.log().clone().requires_grad_(True)
    cand, valid = torch.tensor([[0, 1, 2]]), torch.ones((1, 3), dtype=torch.bool)
    bad = torch.tensor([[True, False, False]])
    out = elarablation_loss(logits, cand, torch.zeros_like(bad), bad, valid, loss_type="margin",
                            ref_logits=probs.log(), vocab_bad=bad, vocab_neutral=~bad, within_class=True)
    out.loss.backward()
    assert out.loss.item() > 1.0 and logits.grad[0, 0] > 0


def test_auto_free_prose_settings_push_only_the_bad_word_to_a_tenth_and_hold_the_rest():
    """`auto`'s contexts (min_threshold 0, max_threshold 1): nothing rewarded, the bad word pushed to a tenth of
    its reference probability (finite loss), the other candidates keep their order and ratios."""
    from hf_steer.elarablation.discover import AUTO_HYPERPARAMETERS

    ref = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    logits = ref.clone().requires_grad_(True)
    topk = torch.arange(4)[None]
    good = torch.tensor([[False, True, True, True]])
    bad = ~good
    kw = {"max_threshold": AUTO_HYPERPARAMETERS["max_threshold"], "min_threshold": AUTO_HYPERPARAMETERS["min_threshold"]}
    out = elarablation_loss(logits, topk, good, bad, torch.ones_like(good), loss_type="margin", ref_logits=ref, **kw)
    assert out.n_rewarded.item() == 0 and out.n_punished.item() == 1 and math.isfinite(out.loss.item())
    opt = torch.optim.SGD([logits], lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        elarablation_loss(logits, topk, good, bad, torch.ones_like(good), loss_type="margin", ref_logits=ref,
                          **kw).loss.backward()
        opt.step()
    p = logits.detach().softmax(-1)[0]
    assert p[0] <= 0.5 * 0.1 + 1e-3  # the bad word: a tenth of where it was
    assert p[1] > p[2] > p[3] and (p[1] / p[2]).item() == pytest.approx(2.0, rel=0.05)  # the rest keep their ratios


def test_a_beginning_of_bad_words_falls_by_its_bad_share_only():
    """first_token_push: " El" (0.5) leads to a bad word 70% of the time one token deeper (bad_share 0.7): it is
    pushed to 1 - 0.7 x 0.9 = 0.37 of its reference probability, not to a tenth as a whole bad word is, and with
    min_threshold 0.015 (a hand-written file) there is no floor under it; the other candidates keep their ratios."""
    ref = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    logits = ref.clone().requires_grad_(True)
    topk = torch.arange(4)[None]
    bad = torch.tensor([[True, False, False, False]])
    share = torch.tensor([[0.7, 0.0, 0.0, 0.0]])
    kw = {"loss_type": "margin", "ref_logits": ref, "max_threshold": 1.0, "min_threshold": 0.015, "bad_share": share}
    opt = torch.optim.SGD([logits], lr=0.5)
    for _ in range(300):
        opt.zero_grad()
        elarablation_loss(logits, topk, ~bad, bad, torch.ones_like(bad), **kw).loss.backward()
        opt.step()
    p = logits.detach().softmax(-1)[0]
    assert 0.5 * 0.1 * 2 < p[0].item() <= 0.5 * 0.37 + 1e-3  # down to its target, far from a tenth
    assert (p[1] / p[2]).item() == pytest.approx(2.0, rel=0.05)
    # a share of 0 is an ordinary bad token: a tenth (and under min_threshold's floor it is not, 0.05 > 0.015)
    out = elarablation_loss(ref.clone(), topk, ~bad, bad, torch.ones_like(bad), **{**kw, "bad_share": share * 0})
    assert out.loss.item() == pytest.approx(min(4.0, math.log(0.5) - math.log(0.015)), rel=1e-4)


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_row_weights_scale_each_rows_share_of_the_loss(loss_type):
    """A deeper row counts by how likely its slot reaches it: the loss is the mean of the rows' losses, each times
    its weight (weights of 1 are the plain mean)."""
    torch.manual_seed(0)
    logits = torch.randn(3, 10)
    cand = torch.arange(6).repeat(3, 1)
    good = torch.tensor([[1, 1, 0, 0, 1, 1]] * 3, dtype=torch.bool)
    bad = ~good
    valid = torch.ones_like(good)
    kw = dict(loss_type=loss_type, ref_logits=logits + 0.3 * torch.randn(3, 10))
    alone = [float(elarablation_loss(logits[i:i + 1], cand[i:i + 1], good[i:i + 1], bad[i:i + 1], valid[i:i + 1],
                                     **{**kw, "ref_logits": kw["ref_logits"][i:i + 1]}).loss) for i in range(3)]
    weight = torch.tensor([1.0, 0.25, 0.0])
    weighted = float(elarablation_loss(logits, cand, good, bad, valid, row_weight=weight, **kw).loss)
    assert weighted == pytest.approx(sum(w * x for w, x in zip(weight.tolist(), alone)) / 3, rel=1e-5)
    assert float(elarablation_loss(logits, cand, good, bad, valid, row_weight=torch.ones(3), **kw).loss) == \
        pytest.approx(sum(alone) / 3, rel=1e-5)
