"""Generation on a dosed model: stock ``generate()`` plus ``Dgenerate`` and cold showers.

A dosed model is still the model it was: ``model.generate(...)`` runs the stock loop with every
logits processor, sampler, streamer and stopping criterion, the noise coming from inside the layers
(the prompt is read sober, see :mod:`~hf_steer.drugs.injection`). :func:`~hf_steer.drugs.inject` adds
two callables to the model object:

* ``model.Dgenerate(..., seed=None, cold_shower_every=None)`` (:func:`drugs_generate`) - ``generate``
  with DRµGS defaults: greedy unless told otherwise, the noise seeded per call (same seed, same
  text), the prompt read sober even without a KV cache, and cold showers on a schedule.
* ``model.cold_shower(cache, input_ids)`` (:func:`cold_shower`) - recompute a KV cache sober, e.g.
  between chat turns; ``model.cold_shower(every=t)`` sets ``Dgenerate``'s schedule.

A *cold shower* every ``t`` new tokens throws the KV cache away and recomputes it sober from all
tokens so far, then the next step reads that cache: noise-conditioned cache entries would otherwise
pile up, each step adding noise on top of noise. It runs as a public :class:`ColdShower` logits
processor (it leaves the scores alone): ``Dgenerate`` adds it, and stock ``generate`` takes it as
``logits_processor=[ColdShower(model, every=16)]``. (Before, a subclass overrode
``prepare_inputs_for_generation`` and the private ``_prefill``; see the injection module.)

Everything here uses only public transformers APIs, and nothing here imports hf_steer beyond this
folder and ``errors``: ``hf-steer drugs export`` copies these files into a ``custom_generate`` repo.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList

from ..errors import HfSteerError
from .injection import _state


def _check_every(every, name: str = "cold_shower_every") -> None:
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise HfSteerError(f"{name} {every!r} is not a count >= 1: give a number of tokens or None")


def _dosed_state(model):
    state = _state(model)
    if state is None:
        raise HfSteerError(f"{type(model).__name__} is not dosed: call hf_steer.drugs.inject(model, ...) first")
    return state


def _prompt_length(args: tuple, kwargs: dict) -> int | None:
    for ids in (args[0] if args else None, kwargs.get("input_ids"), kwargs.get("inputs")):
        if isinstance(ids, torch.Tensor) and ids.dim() == 2 and not ids.is_floating_point():
            return ids.shape[1]
    return None


def drugs_generate(model, *args, seed: int | None = None, cold_shower_every: int | None = None, **kwargs):
    """``model.Dgenerate``: ``generate`` with DRµGS defaults, greedy (``do_sample=False``) unless told otherwise.

    Args:
        seed: seeds the noise (and, when sampling, torch's RNG) so the same seed gives the same text;
            ``None`` draws the noise from torch's global RNG.
        cold_shower_every: recompute the KV cache sober every this many new tokens (default: the
            schedule set with ``model.cold_shower(every=t)``, else none).
        *args, **kwargs: anything ``generate`` takes (``max_new_tokens``, ``streamer``, ...).
    """
    state = _dosed_state(model)
    every = cold_shower_every if cold_shower_every is not None else state.shower_every
    _check_every(every)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise HfSteerError(f"seed {seed!r} is not an integer from 0 to 2**63-1: give a seed such as 0")
    kwargs.setdefault("do_sample", False)
    if not kwargs["do_sample"]:
        # Silence "temperature is set but do_sample=False" from models whose config samples.
        kwargs.setdefault("temperature", None)
        kwargs.setdefault("top_p", None)
        kwargs.setdefault("top_k", None)
    if every is not None:
        processors = LogitsProcessorList(kwargs.get("logits_processor") or [])
        processors.append(ColdShower(model, every))
        kwargs["logits_processor"] = processors
    prompt_length = _prompt_length(args, kwargs)
    saved = (state.sober_before, state._seed)
    if seed is not None:
        state.seed(seed)
        if kwargs["do_sample"]:
            torch.manual_seed(seed)
    if prompt_length and not state.config.dose_prompt:
        # Every prompt position but the last (which predicts the first new token) is read sober, with
        # or without a KV cache.
        state.sober_before = prompt_length - 1
    try:
        # The class's generate, not the instance attribute: a model loaded from a repo that carries this
        # very custom_generate has its instance `generate` pointing back here.
        return type(model).generate(model, *args, **kwargs)
    finally:
        state.sober_before = saved[0]
        state.seed(saved[1])
        state.last_cache = state.last_mask = None
        state.last_model_kwargs = {}


class ColdShower(LogitsProcessor):
    """Wash the noise out of the KV cache every ``every`` new tokens of a ``generate`` call on a dosed model.

    A logits processor that leaves the scores alone: when ``every`` new tokens have been read into
    the cache since the last shower, it recomputes the cache ``generate`` is using, sober, from the
    tokens it holds (``input_ids``, which the processor is handed). Greedy search and sampling only:
    beam search reorders the cache behind the processor's back. One instance per ``generate`` call.
    """

    def __init__(self, model, every: int):
        _check_every(every, "ColdShower every")
        _dosed_state(model)
        self.model = model
        self.every = every
        self.prompt_length: int | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.prompt_length is None:  # the first call follows the prompt: nothing generated yet
            self.prompt_length = input_ids.shape[1]
            return scores
        generated = input_ids.shape[1] - self.prompt_length
        if generated <= 0 or generated % self.every:
            return scores
        state = _dosed_state(self.model)
        cache = state.last_cache() if state.last_cache is not None else None
        if cache is None or not isinstance(cache, DynamicCache) or cache.get_seq_length() != input_ids.shape[1]:
            raise HfSteerError(
                "ColdShower cannot find the KV cache this generate() reads (it needs greedy or sampling "
                "with use_cache=True and a DynamicCache; beam search reorders the cache): drop the shower"
            )
        mask = state.last_mask
        mask = mask[:, : input_ids.shape[1]] if mask is not None and mask.dim() == 2 else None
        cold_shower(self.model, cache, input_ids, mask, **state.last_model_kwargs)
        return scores


def cold_shower(
    model,
    cache=None,
    input_ids: torch.LongTensor | None = None,
    attention_mask: torch.Tensor | None = None,
    *,
    position_ids: torch.LongTensor | None = None,
    every: int | None = None,
    **model_kwargs,
):
    """``model.cold_shower``: wash the noise out of a KV cache, or set ``Dgenerate``'s shower schedule.

    * ``model.cold_shower(cache, input_ids, attention_mask)`` - recompute ``cache`` in place from
      ``input_ids`` (every token the cache should hold) with the noise off, e.g. between chat turns
      while the user types. Returns the cache. Further keywords are the model's own forward arguments
      (abcGPT's ``alpha=...``) and are passed to the re-read; a :class:`ColdShower` passes the ones the
      last forward of its ``generate`` got.
    * ``model.cold_shower(every=t)`` - from now on, ``Dgenerate`` showers every ``t`` new tokens
      (stock ``generate``: pass ``logits_processor=[ColdShower(model, t)]``).
    """
    state = _dosed_state(model)
    if every is not None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise HfSteerError(f"cold shower every={every!r} is not a count >= 1: give a number of tokens")
        state.shower_every = every
        if cache is None:
            return None
    if cache is None or input_ids is None:
        raise HfSteerError("cold_shower needs the cache and the input_ids it holds: cold_shower(cache, input_ids)")
    if not isinstance(cache, DynamicCache):
        raise HfSteerError(f"cache is a {type(cache).__name__}: cold showers need a DynamicCache")
    if position_ids is None and attention_mask is not None:
        # Same positions generate() gives left-padded rows.
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
    host = state.host()
    fresh = DynamicCache(config=host.config)
    was = state.active
    state.active = False
    try:
        with torch.no_grad():
            host(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                cache=fresh,
                use_cache=True,
                logits_to_keep=1,  # we only want the cache
                **model_kwargs,
            )
    finally:
        state.active = was
    # Swap the contents, not the object: generate() keeps its own reference to the cache.
    cache.layers = fresh.layers
    return cache
