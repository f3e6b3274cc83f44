"""Generation on a dosed model: stock ``generate()`` plus ``Dgenerate`` and cold showers.

:func:`~hf_steer.drugs.injection.inject` makes the model's class a subclass of
:class:`DrugsGenerationMixin` and of its own class, so everything ``generate()`` offers (logits
processors, samplers, streamers, stopping criteria, beam search) runs on top of the noise. The mixin
only adds three things around the stock loop:

* the prompt is read sober (``_prefill``): every prompt position but the last, which predicts the
  first new token, is left undosed, so the cache starts clean; ``dose_prompt=True`` doses it all.
* a *cold shower* every ``t`` new tokens (``prepare_inputs_for_generation``): the KV cache is thrown
  away and recomputed sober from all tokens so far, then fed to the next step. Noise-conditioned
  cache entries would otherwise pile up, each step adding noise on top of noise.
* ``seed=``: the noise comes from a generator seeded per call, so the same seed gives the same text.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, GenerationMixin

from ..errors import HfSteerError


class DrugsGenerationMixin(GenerationMixin):
    """Mixed into a dosed model's class by ``inject``; never instantiated on its own."""

    # --- public API -------------------------------------------------------------------------------

    def Dgenerate(self, *args, seed: int | None = None, cold_shower_every: int | None = None, **kwargs):  # noqa: N802
        """``generate`` with DRµGS defaults: greedy (``do_sample=False``) unless told otherwise.

        Args:
            seed: seeds the noise (and, when sampling, torch's RNG) so the same seed gives the same text.
            cold_shower_every: recompute the KV cache sober every this many new tokens (default:
                the config's ``cold_shower_every``).
            *args, **kwargs: anything ``generate`` takes (``max_new_tokens``, ``streamer``, ...).
        """
        kwargs.setdefault("do_sample", False)
        if not kwargs["do_sample"]:
            # Silence "temperature is set but do_sample=False" from models whose config samples.
            kwargs.setdefault("temperature", None)
            kwargs.setdefault("top_p", None)
            kwargs.setdefault("top_k", None)
        return self.generate(*args, seed=seed, cold_shower_every=cold_shower_every, **kwargs)

    def generate(self, *args, seed: int | None = None, cold_shower_every: int | None = None, **kwargs):
        state = self._drugs_state
        every = cold_shower_every if cold_shower_every is not None else state.config.cold_shower_every
        if every is not None and (not isinstance(every, int) or every < 1):
            raise HfSteerError(f"cold_shower_every {every!r} is not a count >= 1: give a number of tokens or None")
        saved = (state.sober_before, state._seed, getattr(self, "_drugs_shower_every", None))
        if seed is not None:
            state.seed(seed)
            if kwargs.get("do_sample"):
                torch.manual_seed(seed)
        self._drugs_shower_every = every
        try:
            return super().generate(*args, **kwargs)
        finally:
            state.sober_before, self._drugs_shower_every = saved[0], saved[2]
            state.seed(saved[1])

    def cold_shower(
        self,
        cache=None,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *,
        position_ids: torch.LongTensor | None = None,
        every: int | None = None,
    ):
        """Wash the noise out of a KV cache, or schedule showers during generation.

        * ``model.cold_shower(cache, input_ids, attention_mask)`` - recompute ``cache`` in place from
          ``input_ids`` (every token the cache should hold) with the noise off, e.g. between chat
          turns while the user types. Returns the cache.
        * ``model.cold_shower(every=t)`` - from now on, ``generate`` showers every ``t`` new tokens.
        """
        state = self._drugs_state
        if every is not None:
            if not isinstance(every, int) or every < 1:
                raise HfSteerError(f"cold shower every={every!r} is not a count >= 1: give a number of tokens")
            state.config.cold_shower_every = every
            if cache is None:
                return None
        if cache is None or input_ids is None:
            raise HfSteerError("cold_shower needs the cache and the input_ids it holds: cold_shower(cache, input_ids)")
        if not isinstance(cache, DynamicCache):
            raise HfSteerError(f"cache is a {type(cache).__name__}: cold showers need a DynamicCache")
        if position_ids is None and attention_mask is not None:
            # Same positions generate() gives left-padded rows.
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
        fresh = DynamicCache(config=self.config)
        was = state.active
        state.active = False
        try:
            with torch.no_grad():
                self(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    position_ids=position_ids,
                    cache=fresh,
                    use_cache=True,
                    logits_to_keep=1,  # we only want the cache
                )
        finally:
            state.active = was
        # Swap the contents, not the object: generate() keeps its own reference to the cache.
        cache.layers = fresh.layers
        return cache

    # --- hooks into the stock generation loop -----------------------------------------------------

    def _prefill(self, input_ids, generation_config, model_kwargs, *args, **kwargs):
        state = self._drugs_state
        self._drugs_prompt_len = input_ids.shape[1]
        if not state.config.dose_prompt:
            # Index of the last prompt token: it predicts the first new token, so it is dosed.
            state.sober_before = input_ids.shape[1] - 1
        return super()._prefill(input_ids, generation_config, model_kwargs, *args, **kwargs)

    def prepare_inputs_for_generation(self, input_ids, *args, **kwargs):
        every = getattr(self, "_drugs_shower_every", None)
        cache = kwargs.get("cache")
        if every and cache is not None and not kwargs.get("is_first_iteration"):
            generated = input_ids.shape[1] - getattr(self, "_drugs_prompt_len", input_ids.shape[1])
            # Shower only when the cache holds everything but the newest token (a normal decode step).
            if generated > 0 and generated % every == 0 and cache.get_seq_length() == input_ids.shape[1] - 1:
                mask = kwargs.get("attention_mask")
                positions = kwargs.get("position_ids")
                self.cold_shower(
                    cache,
                    input_ids[:, :-1],
                    mask[:, :-1] if mask is not None else None,
                    position_ids=positions[..., :-1] if positions is not None and positions.dim() == 2 else None,
                )
        return super().prepare_inputs_for_generation(input_ids, *args, **kwargs)
