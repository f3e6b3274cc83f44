"""DRµGS as a transformers ``custom_generate`` method: ``model.generate(..., drugs={...})``.

``hf-steer drugs export FOLDER`` copies this file as ``custom_generate/generate.py`` of a Hub repo,
beside verbatim copies of the files it imports (``dose.py``, ``injection.py``, ``generation.py``,
``rotation.py``, ``errors.py``), so a user without hf_steer runs::

    out = model.generate(**inputs, custom_generate="user/drugs", trust_remote_code=True,
                         drugs={"A": 0.3, "depth": 0.5, "spread": 0.17, "seed": 0}, max_new_tokens=40)

Inside hf_steer the same function is ``hf_steer.drugs.generate(model, ..., drugs={...})``.
"""

from __future__ import annotations

from ..errors import HfSteerError
from .dose import DrugsConfig
from .generation import drugs_generate
from .injection import _state, inject, remove

# The keys of ``drugs=``, each with what it does (the exported README's table comes from here).
DRUGS_KEYS = {
    "H, Q, K, V, A": "θ in radians per injection type: H the hidden state entering attention, Q/K/V the "
                     "queries, keys and values, A the attention heads' outputs (e.g. 'A': 0.3); or a full "
                     "dose {'theta', 'profile', 'method'}",
    "depth": "centre of the dosed layers, 0 (first) to 1 (last); default: every layer",
    "spread": "half-width of the full-dose band around depth (default 0.17: the middle third)",
    "method": "θ of a layer between profile points: 'ceil' (default), 'floor' or 'interpolate'",
    "sinks": "first positions of every sequence never dosed (default 4)",
    "dose_prompt": "dose the prompt too (default False: read it sober, dose from its last position on)",
    "persist_kv": "keep the K/V noise in the cache (default False: it touches one step only)",
    "seed": "seed of the noise (and of sampling): same seed, same text (default: torch's global RNG)",
    "cold_shower_every": "recompute the KV cache sober every this many new tokens (default: never)",
}
_OPTIONS = ("seed", "cold_shower_every")


def generate(model, *args, drugs=None, **kwargs):
    """Generate with DRµGS: dose ``model``, run ``generate`` (greedy unless ``do_sample=True``), sober it up.

    Args:
        model: a transformers causal LM whose attention goes through ``ALL_ATTENTION_FUNCTIONS``.
        drugs: the doses, e.g. ``{"A": 0.3, "depth": 0.5, "seed": 0}`` (keys: see ``DRUGS_KEYS``).
        *args, **kwargs: anything ``model.generate`` takes (``max_new_tokens``, ``do_sample``,
            ``temperature``, ``streamer``, ``logits_processor`` ...): stock samplers run on top.

    The model is left exactly as it was: no hooks, its own attention implementation, and, if it was
    already dosed, its previous dose.
    """
    if drugs is None:
        raise HfSteerError("no drugs= given: pass the doses, e.g. drugs={'A': 0.3, 'depth': 0.5, 'seed': 0}")
    if not hasattr(drugs, "items"):
        raise HfSteerError(f"drugs is a {type(drugs).__name__}: give a dict such as {{'A': 0.3, 'depth': 0.5}}")
    allowed = {*"HQKVAhqkva", "depth", "spread", "method", "sinks", "dose_prompt", "persist_kv", *_OPTIONS}
    unknown = [k for k in drugs if k not in allowed]
    if unknown:
        raise HfSteerError(f"drugs has unknown keys {unknown}: use {', '.join(DRUGS_KEYS)}")
    options = {k: v for k, v in drugs.items() if k in _OPTIONS}
    config = DrugsConfig.from_dict({k: v for k, v in drugs.items() if k not in _OPTIONS})
    previous = _state(model)
    previous_config = previous.config if previous is not None else None
    inject(model, config)
    try:
        return drugs_generate(model, *args, **options, **kwargs)
    finally:
        if previous_config is not None:
            inject(model, previous_config)
        else:
            remove(model)
