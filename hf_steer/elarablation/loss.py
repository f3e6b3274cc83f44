"""The Elarablation loss terms as pure functions on tensors (no model, no tokenizer, no I/O).

Everything works on the next-token logits at ONE position per row (the slop point) and on the top-k
candidate tokens of that position, already classified good / bad / excluded by the context rules:

- a candidate is *punished* when it is bad, or when it is good and its probability is above
  ``max_threshold``;
- a candidate is *rewarded* when it is good, not punished, and below ``min_threshold``;
- a *neutral* candidate (neither good nor bad: the original elarablate's rule for tokens no regex
  matches) is never pushed, so it is left to the tether.

Three ways to turn those sets into a loss (``loss_type``):

``elarablate``
    The original: ``+log p`` for every punished token, ``-log p`` for every rewarded one. The push on a
    bad token never fades (d log p / d logit = 1 - p), so it keeps shoving mass around long after the
    token is rare; that is what lets it erase a 0.85 token in few steps, and also what drifts the rest
    of the model.
``unlikelihood``
    ``-log(1 - p)`` for punished tokens (Welleck et al. 2019): the push is ~p, so it fades as the token
    becomes rare. Rewards as above.
``margin``
    Bounded hinges in log-space: a bad token is pushed until ``p <= min_threshold`` AND
    ``p <= bad_ratio x`` its reference probability (only the latter when ``min_threshold`` is 0; so a bad
    token already under ``min_threshold`` still falls, tenfold by default: otherwise the tether held its
    logit while a dominant good token was pushed down, and its probability rose), a good token that is merely too frequent until
    ``p <= max_threshold``, a rewarded token until ``p >= min_threshold``; each hinge is capped at
    ``margin_cap`` nats so one far-off token cannot dominate. A tether (FTPO-style) keeps the logits of every *other* token at their frozen reference
    values (mean squared error), so the step moves only the tokens it means to move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..benchmarking import kl_per_position
from .arguments import LOSS_TYPES  # one list, shared with the CLI

# Probability mass a slot's hold treats as none (the neutral class's, the bad tail's when the row moves nothing).
NEGLIGIBLE_MASS = 1e-4


@dataclass
class LossOutput:
    """The scalar loss plus per-row diagnostics (all detached except ``loss``)."""

    loss: torch.Tensor
    top1_prob: torch.Tensor  # (B,) largest probability in the whole vocabulary
    topk_entropy: torch.Tensor  # (B,) entropy (nats) of the renormalised top-k distribution
    bad_mass: torch.Tensor  # (B,) probability mass on bad candidates
    n_punished: torch.Tensor  # (B,) how many candidates were punished
    n_rewarded: torch.Tensor  # (B,) how many candidates were rewarded


def split_candidates(
    probs: torch.Tensor,
    good: torch.Tensor,
    bad: torch.Tensor,
    valid: torch.Tensor,
    max_threshold: torch.Tensor,
    min_threshold: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks ``(punished, rewarded)`` over the top-k candidates.

    Args:
        probs: (B, K) probabilities of the candidates.
        good, bad, valid: (B, K) bool masks; ``valid`` is false for excluded tokens and for slots past a
            row's own candidates. Bad overrides good; a valid candidate that is neither is neutral.
        max_threshold, min_threshold: (B,) per-row thresholds.
    """
    bad = bad & valid
    good = good & valid & ~bad
    punished = bad | (good & (probs > max_threshold[:, None]))
    rewarded = good & ~punished & (probs < min_threshold[:, None])
    return punished, rewarded


def capped_hinge(x: torch.Tensor, cap: float) -> torch.Tensor:
    """``x.clamp(0, cap)`` in value, but with the gradient of ``x`` wherever ``x > 0``.

    A plain clamp has no gradient past the cap: a token more than ``cap`` nats over its target was never pushed.
    On Gemma-3-270M, ``names_realm_1.yaml`` ("In the realm of", every lower-case word bad): " fantasy" rose from
    0.36 to 0.99 at T=0.7 and, past 4 nats over its 0.015 target at 0.82, nothing pushed it down again (bad mass
    0.940 -> 0.966 at T=1, 2026-12-06). The value is still capped, so one far-off token cannot dominate the loss.
    """
    value = x.clamp(min=0)
    return value - (value - cap).clamp(min=0).detach()


def own_logit_gradient(cand_logp: torch.Tensor, scaled_logits: torch.Tensor, topk_ids: torch.Tensor,
                       pushed: torch.Tensor, in_partition: torch.Tensor | None = None) -> torch.Tensor:
    """``cand_logp`` in value, with a gradient that cannot lower a pushed candidate by raising another pushed one.

    ``d log p_i / d z_j = [i = j] - p_j``: pushing ``n`` candidates' log-probabilities down moves the logit of a pushed
    token j by ``-(1 - n p_j)``, so when ``n p_j > 1`` the descent *raises* the largest bad token (its own hinge pulls
    it down by 1, the others push it up by ``n p_j``). With 49 of 50 candidates bad, " fantasy" (0.36) took the
    whole slot (above). Here a pushed token's gradient is that of its logit against the tokens not in ``pushed``:
    ``[i = j] - q_j``, ``q`` the distribution renormalised over them (the loss passes the bad punished candidates, so
    these are the good and the neutral, which the tether and the holds keep in line), and 0 on the other pushed
    tokens. It still sums to zero, so raising every token of the partition together changes nothing
    (``within_class`` relies on it). ``in_partition`` (B, V) is the row's class (``within_class``), ``None`` the
    whole vocabulary; a row with nothing unpushed in it keeps the plain gradient.
    """
    pushed_vocab = torch.zeros_like(scaled_logits, dtype=torch.bool).scatter(1, topk_ids, pushed)
    allowed = torch.ones_like(pushed_vocab) if in_partition is None else in_partition
    keep = allowed & ~pushed_vocab
    keep = torch.where(keep.any(-1, keepdim=True), keep, allowed)  # nothing unpushed: the plain gradient
    partition = torch.where(keep, scaled_logits, torch.finfo(scaled_logits.dtype).min)
    own = scaled_logits.gather(1, topk_ids) - partition.logsumexp(-1, keepdim=True)
    return cand_logp.detach() + own - own.detach()


def _weighted_mean(row_loss: torch.Tensor, row_weight: torch.Tensor | None) -> torch.Tensor:
    return row_loss.mean() if row_weight is None else (row_loss * row_weight).mean()


def elarablation_loss(
    logits: torch.Tensor,
    topk_ids: torch.Tensor,
    good: torch.Tensor,
    bad: torch.Tensor,
    valid: torch.Tensor,
    max_threshold: torch.Tensor | float = 0.02,
    min_threshold: torch.Tensor | float = 0.015,
    temperature: torch.Tensor | float = 1.0,
    loss_type: str = "elarablate",
    ref_logits: torch.Tensor | None = None,
    tether_weight: float = 1.0,
    tether_centred: bool = False,
    margin_cap: float = 4.0,
    bad_ratio: float = 0.1,
    vocab_bad: torch.Tensor | None = None,
    vocab_neutral: torch.Tensor | None = None,
    neutral_weight: float = 1.0,
    within_class: bool = False,
    bad_share: torch.Tensor | None = None,
    row_weight: torch.Tensor | None = None,
) -> LossOutput:
    """Loss at the slop point for a batch of rows.

    Args:
        logits: (B, V) next-token logits of the model being trained.
        topk_ids: (B, K) candidate token ids (the current top-k).
        good, bad, valid: (B, K) bool masks from the context rules (see :func:`split_candidates`).
        max_threshold, min_threshold, temperature: floats or (B,) tensors.
        loss_type: one of ``LOSS_TYPES``.
        ref_logits: (B, V) frozen reference logits; required by ``margin`` (the tether).
        tether_weight: weight of the tether term (``margin`` only).
        tether_centred: tether the variance of ``logits - ref_logits`` over the unmoved tokens instead of its mean
            square, so moving every logit together costs nothing (the softmax does not see it).
        margin_cap: largest value, in nats, of one hinge term (``margin`` only).
        bad_ratio: a bad token's target is at most this fraction of its reference probability (``margin`` only).
        vocab_bad: (B, V) bool, the tokens of the WHOLE vocabulary each row's rules call bad (``margin`` only;
            rows of all False have none): their total probability may not rise over the reference's and, in a
            row with no bad candidate, is pushed to ``bad_ratio`` of it. The hinges see only the top-k; when a
            dominant good token is pushed down, its mass would otherwise spread over every other token, the bad
            tail beyond the top-k included. The term counts once per candidate the row moves (punished or
            rewarded), so a row of many hinges does not outweigh it.
        vocab_neutral: (B, V) bool, the tokens each row's rules call neither good nor bad (``margin`` only): their
            total probability is held at the reference's (squared log-ratio, ``neutral_weight``), so a slot keeps
            its shape (a name slot stays as often a name slot: rewarding dozens of rare names otherwise drew
            the mass of every non-name there, and the named rate rose 9 points).
        within_class: read the hinges of a row with ``vocab_neutral`` within the *named class* (every token that
            is not neutral), renormalised to the reference's class mass: ``log p(x) - log P(class) + log
            P_ref(class)``. Scaling every name up together then satisfies no hinge, so pushing a bad name down and
            rewarding rare names moves mass among names only; the name-vs-non-name split is left to the neutral
            hold and the tether (``margin`` only). A row with no good token in its vocabulary (bad rules only) is
            read as without it: its bad tokens' mass can only go to the non-names.
        bad_share: (B, K) floats, ``margin`` only: a bad candidate with a share ``q`` > 0 only *begins* bad words
            (" El" of Elara), ``q`` of its reference probability leading to one; it is pushed down to
            ``1 - q (1 - bad_ratio)`` of its reference probability (its bad part tenfold down, the rest kept),
            with no ``min_threshold`` floor.
        row_weight: (B,) floats, each row's weight in the average (default 1): a deeper row counts by how likely
            the base is to reach it from its slot (``path_prob``), as its bad mass counts in the word's.

    Returns:
        :class:`LossOutput`. The loss sums the terms of a row and averages over rows, so the step size per
        context does not depend on the batch size.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type {loss_type!r} is unknown: use one of {', '.join(LOSS_TYPES)}")
    batch = logits.shape[0]

    def per_row(x: torch.Tensor | float) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=logits.device).expand(batch).float()

    max_t, min_t, temp = per_row(max_threshold), per_row(min_threshold), per_row(temperature)
    logits = logits.float()
    scaled = logits / temp[:, None]
    logprobs = torch.log_softmax(scaled, dim=-1)
    cand_logp = logprobs.gather(1, topk_ids)
    in_partition = None  # (B, V): the tokens a row's probabilities are normalised over, when not the whole vocabulary
    if loss_type == "margin" and within_class and vocab_neutral is not None and ref_logits is not None:
        neg = torch.finfo(logprobs.dtype).min
        ref_all = torch.log_softmax(ref_logits.float() / temp[:, None], dim=-1)
        shift = (torch.where(vocab_neutral, neg, logprobs).logsumexp(-1)
                 - torch.where(vocab_neutral, neg, ref_all).logsumexp(-1))
        # a row whose class is its bad tokens alone (bad rules, no good ones) has nowhere else to put their mass:
        # read it as before, or the bad tokens would never move
        has_good = (~vocab_neutral & ~(vocab_bad if vocab_bad is not None else vocab_neutral)).any(-1)
        cand_logp = cand_logp - torch.where(has_good, shift, 0.0)[:, None]
        in_partition = ~vocab_neutral | ~has_good[:, None]
    cand_p = cand_logp.exp()
    punished, rewarded = split_candidates(cand_p.detach(), good, bad, valid, max_t, min_t)
    bad_mask = bad & valid

    if loss_type == "elarablate":
        terms = torch.where(punished, cand_logp, torch.zeros_like(cand_logp))
        terms = terms - torch.where(rewarded, cand_logp, torch.zeros_like(cand_logp))
        loss = _weighted_mean(terms.sum(-1), row_weight)
    elif loss_type == "unlikelihood":
        # log1p(-p) is -inf at p == 1; clamp keeps a (huge but finite) push there.
        push = -torch.log1p(-cand_p.clamp(max=1 - 1e-6))
        terms = torch.where(punished, push, torch.zeros_like(push))
        terms = terms - torch.where(rewarded, cand_logp, torch.zeros_like(cand_logp))
        loss = _weighted_mean(terms.sum(-1), row_weight)
    else:
        if ref_logits is None:
            raise ValueError("loss_type 'margin' needs ref_logits for its tether")
        # A bad token must fall below min_threshold and to a fraction of where it was (it should become rare,
        # not merely non-dominant); a good-but-frequent token only below max_threshold.
        ref_cand_logp = torch.log_softmax(ref_logits.float() / temp[:, None], dim=-1).gather(1, topk_ids)
        # min_threshold 0 (free prose in `auto`: reward nothing) leaves the relative target alone; log(0) = -inf
        # would make the hinge a constant with no gradient
        floor = torch.where(min_t > 0, min_t.clamp(min=1e-30).log(), torch.zeros_like(min_t))
        bad_target = torch.minimum(floor[:, None].expand_as(ref_cand_logp), ref_cand_logp + math.log(bad_ratio))
        if bad_share is not None:
            soft = bad_share.float().clamp(0, 1)
            bad_target = torch.where(soft > 0, ref_cand_logp + torch.log1p(-soft * (1 - bad_ratio)), bad_target)
        target_down = torch.where(bad_mask, bad_target, max_t.log()[:, None].expand_as(bad_target))
        # Only the bad punished candidates leave the partition: a too-frequent good token's push stays a flattening
        # over every other token (the pushed bad ones aside). With every punished token out, pushing dominant good
        # names down fed the bad tail beyond the top-k (the unpushed tokens' share): 3 of the bundled model's original
        # files rose (names_dark_m 0.0044 -> 0.0054; 38 of 43 lowered, 41 before; 2026-12-06).
        down_logp = own_logit_gradient(cand_logp, scaled, topk_ids, punished & bad_mask, in_partition)
        down = capped_hinge(down_logp - target_down, margin_cap)
        up = capped_hinge(min_t.log()[:, None] - cand_logp, margin_cap)
        terms = torch.where(punished, down, torch.zeros_like(down)) + torch.where(rewarded, up, torch.zeros_like(up))
        moved = torch.zeros_like(logits, dtype=torch.bool).scatter(1, topk_ids, punished | rewarded)
        n_held = (~moved).sum(-1).clamp(min=1)
        drift = logits - ref_logits.float()
        if tether_centred:
            drift = drift - ((drift * ~moved).sum(-1) / n_held)[:, None]
        tether = (drift.pow(2) * ~moved).sum(-1) / n_held
        row_loss = terms.sum(-1) + tether_weight * tether
        if vocab_bad is not None:
            has = vocab_bad.any(-1)
            neg = torch.finfo(logprobs.dtype).min
            tail = torch.where(vocab_bad, logprobs, neg).logsumexp(-1)
            ref_all = torch.log_softmax(ref_logits.float() / temp[:, None], dim=-1)
            ref_tail = torch.where(vocab_bad, ref_all, neg).logsumexp(-1)
            # Never above the reference; and where no candidate is bad (every bad token lies beyond the hinges' top-k),
            # down to ``bad_ratio`` of it, as a visible bad token is pushed. Held only, that bad mass rose wherever a
            # dominant good token was pushed down (its freed mass spreads over every held token in proportion): 4 of 16
            # original files ended with more bad mass than they started with (names_elf_f_Am 0.0011 -> 0.0021,
            # names_dark_m 0.0044 -> 0.0053; issue 16, 2026-12-04). Pushed at every row instead, the slot bench's
            # named rate fell 3.95 points and El- back-references kept 86.7% (goals: +-2 points, 90%).
            # A row that moves nothing (no candidate punished or rewarded, now or at the reference) and whose bad tail
            # is negligible is left alone, as the original leaves it (its loss is zero there): pushed on, a log-ratio
            # has the same gradient at 4e-6 as at 0.4, Adam takes full steps on it, and the slot fell apart
            # (Gemma-3-270M, he_asked_2.yaml: bad mass 3.7e-6 -> 4.4e-5, the forced-good "." 0.30 -> 0.07).
            ref_moved = split_candidates(ref_cand_logp.exp(), good, bad, valid, max_t, min_t)
            active = (punished | rewarded | ref_moved[0] | ref_moved[1]).any(-1) | (ref_tail > math.log(NEGLIGIBLE_MASS))
            # At the reference itself clamp(min=0) passes the gradient: the first step pushes the whole bad tail too, and
            # Adam's momentum carries it. The slot bench relies on it (bundled, Intel AVX512-BF16, 2026-12-06: with no
            # gradient there El- incidence 31.5% -> 1.61%, 19.6x, against 1.45%, 21.8x, with it; perplexity -0.04%
            # against +0.29%).
            rise = (tail - ref_tail).clamp(min=0, max=margin_cap)
            fall = (tail - ref_tail - math.log(bad_ratio)).clamp(min=0, max=margin_cap)
            unseen = ~bad_mask.any(-1) & active
            # Weighted by the candidates the row moves: one tail term beside 50 hinges (names_dark_m: 5 dominant names
            # down, 45 rare ones up) was outweighed and the freed mass fed the tail, 0.00439 -> 0.00460 on the
            # bundled model; weighted, 0.00082 (2026-12-07).
            n_moved = (punished | rewarded).sum(-1).clamp(min=1)
            row_loss = row_loss + n_moved * torch.where(has, rise + torch.where(unseen, fall, 0.0), 0.0)
        if vocab_neutral is not None:
            neg = torch.finfo(logprobs.dtype).min
            ref_all = torch.log_softmax(ref_logits.float() / temp[:, None], dim=-1)
            mass = torch.where(vocab_neutral, logprobs, neg).logsumexp(-1)
            ref_mass = torch.where(vocab_neutral, ref_all, neg).logsumexp(-1)
            held = ref_mass > math.log(NEGLIGIBLE_MASS)  # a slot with (almost) no neutral mass has none to hold
            row_loss = row_loss + neutral_weight * torch.where(held, (mass - ref_mass).pow(2), 0.0)
        loss = _weighted_mean(row_loss, row_weight)

    with torch.no_grad():
        probs_k = torch.where(valid, cand_p, torch.zeros_like(cand_p))
        renorm = probs_k / probs_k.sum(-1, keepdim=True).clamp(min=1e-12)
        entropy = -(renorm * renorm.clamp(min=1e-12).log()).sum(-1)
        top1 = logprobs.max(-1).values.exp()
        bad_mass = torch.where(bad_mask, cand_p, torch.zeros_like(cand_p)).sum(-1)
    return LossOutput(
        loss=loss,
        top1_prob=top1.detach(),
        topk_entropy=entropy.detach(),
        bad_mass=bad_mass.detach(),
        n_punished=punished.sum(-1).float(),
        n_rewarded=rewarded.sum(-1).float(),
    )


def keep_loss(
    logits: torch.Tensor,
    ref_logits: torch.Tensor,
    expected_ids: torch.Tensor,
    temperature: torch.Tensor | float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss at *keep* slots (a name introduced earlier in the text must come back), per row.

    Two terms, both zero while the model is where the reference was:

    - ``KL(reference || model)`` of the whole next-token distribution at the slot (the slot is held);
    - a floor on the expected name's first token: ``max(0, log p_ref(e) - log p(e))`` (the name may
      rise, never fall).

    This is what makes the loss tell *inventing* a name (a slop slot: its bad tokens are pushed down)
    from *reusing* one (a keep slot: the same token is held up): without keep rows the adapter learns a
    token ban (" El" down everywhere), and a character already named Elara loses her name.

    Args:
        logits, ref_logits: (B, V) model and frozen reference logits at the slot.
        expected_ids: (B,) first token of the expected name.

    Returns:
        ``(loss per row (B,), p(expected) per row (B,), detached)``.
    """
    batch = logits.shape[0]
    temp = torch.as_tensor(temperature, dtype=torch.float32, device=logits.device).expand(batch)[:, None]
    logp = torch.log_softmax(logits.float() / temp, dim=-1)
    ref = torch.log_softmax(ref_logits.float() / temp, dim=-1)
    kl = kl_per_position(ref, logp)
    e_logp = logp.gather(1, expected_ids[:, None])[:, 0]
    e_ref = ref.gather(1, expected_ids[:, None])[:, 0]
    floor = (e_ref - e_logp).clamp(min=0)
    return kl + floor, e_logp.detach().exp()
