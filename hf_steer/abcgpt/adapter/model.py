"""AbcAdapterModel: the PEFT tuner that injects abc adapter layers and owns the dial α.

    from peft import get_peft_model, PeftModel
    from hf_steer.abcgpt.adapter import AbcAdapterConfig        # registers the method with PEFT

    model = get_peft_model(base, AbcAdapterConfig(r=16, source_names=["tinystories", "shakespeare"]))
    model(input_ids, alpha=0.3)                  # one call at α=0.3
    model.generate(input_ids, alpha=[0.0, 1.0])  # one α per batch row
    model.set_alpha({"shakespeare": 1.0})        # the default dial for later calls ...
    with model.set_alpha(0.5): ...               # ... or only inside the block
    model.save_pretrained(folder); PeftModel.from_pretrained(base, folder)

How α reaches the layers: PEFT routes ``PeftModel.forward`` / ``generate`` through this tuner's ``forward`` /
``generate``, which take ``alpha=`` off the call and make sure the layers hold the gates for it; the base
model never sees the argument. Gates are recomputed only when the dial (compared by value) or a unit's m
changes, all layers' gates in one batched :func:`~hf_steer.abcgpt.gates.gate_values` call, so
``generate`` pays for the dial once, not once per token. In training mode the gates of the last call stay
in place until the next call, which is what a gradient-checkpointing recompute in the backward pass needs.
"""

from __future__ import annotations

from typing import Any

import torch
from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer
from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
from torch import nn
from transformers.pytorch_utils import Conv1D

from ...errors import HfSteerError
from ..gates import gate_values
from .config import AbcAdapterConfig
from .dial import alpha_to_mixture
from .layer import AbcAdapterLayer, Linear

_UNSET = object()


def base_fingerprint(model: nn.Module) -> dict[str, Any] | None:
    """Architecture sizes plus 16 input-embedding values at fixed places: what identifies a base model.

    Compared with a tolerance (:func:`same_base`), so a bfloat16 or 4-bit load (bitsandbytes never quantizes
    embeddings) of the same weights matches, while another model -- even one of the same architecture, such
    as the base and the instruct variant -- does not. ``None`` when the model has no input embeddings.
    """
    get = getattr(model, "get_input_embeddings", None)
    emb = get() if callable(get) else None
    weight = getattr(emb, "weight", None)
    if weight is None or weight.device.type == "meta" or weight.ndim != 2:
        return None
    config = getattr(model, "config", None)
    vocab, hidden = weight.shape
    rows = torch.linspace(0, vocab - 1, 16).long()
    sample = weight.detach()[rows.to(weight.device), (rows % hidden).to(weight.device)].float().cpu()
    return {
        "model_type": getattr(config, "model_type", type(model).__name__),
        "hidden_size": int(hidden),
        "num_hidden_layers": getattr(config, "num_hidden_layers", None),
        "vocab_size": int(vocab),
        "embedding_sample": [round(v, 6) for v in sample.tolist()],
    }


def same_base(saved: dict[str, Any], current: dict[str, Any] | None) -> bool:
    if current is None:
        return True  # nothing to compare with (meta weights, a bare module): the shapes still must fit
    for key in ("model_type", "hidden_size", "num_hidden_layers", "vocab_size"):
        if saved.get(key) != current.get(key):
            return False
    a, b = torch.tensor(saved["embedding_sample"]), torch.tensor(current["embedding_sample"])
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=2e-2, atol=2e-3))


def _describe(fp: dict[str, Any]) -> str:
    return f"{fp.get('model_type')}, hidden {fp.get('hidden_size')}, {fp.get('num_hidden_layers')} layers, vocab {fp.get('vocab_size')}"


class _DialRestore:
    """What :meth:`AbcAdapterModel.set_alpha` returns: the dial is set already; ``with`` restores the old one."""

    def __init__(self, tuner: AbcAdapterModel, previous) -> None:
        self._tuner, self._previous = tuner, previous

    def __enter__(self) -> _DialRestore:
        return self

    def __exit__(self, *exc) -> None:
        self._tuner._alpha = self._previous
        if not exc[0]:
            self._tuner._ensure_dial()


class AbcAdapterModel(BaseTuner):
    """PEFT tuner of the abc adapter (see the module docstring); made by ``get_peft_model`` from an
    :class:`~.config.AbcAdapterConfig`."""

    prefix: str = "abc_"
    tuner_layer_cls = AbcAdapterLayer
    target_module_mapping = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    def __init__(self, model, config, adapter_name: str = "default", low_cpu_mem_usage: bool = False, state_dict=None):
        self._alpha = None  # the default dial, as the user gave it (None = equal parts)
        self._applied: tuple | None = None  # (mixtures by adapter, state of the m buffers) the layers' gates are for
        self._layer_cache: list[AbcAdapterLayer] | None = None
        super().__init__(model, config, adapter_name, low_cpu_mem_usage=low_cpu_mem_usage, state_dict=state_dict)

    # -- PEFT tuner hooks ------------------------------------------------------------------------------

    def _pre_injection_hook(self, model: nn.Module, config: AbcAdapterConfig, adapter_name: str) -> None:
        current = base_fingerprint(model)
        if config.base_fingerprint is None:
            config.base_fingerprint = current
        elif not same_base(config.base_fingerprint, current):
            trained_on = config.base_model_name_or_path or _describe(config.base_fingerprint)
            raise HfSteerError(
                f"abc adapter {adapter_name!r} was trained on base model {trained_on} ({_describe(config.base_fingerprint)}), "
                f"not on this one ({_describe(current)}): load it on the base model it was trained on"
            )

    def _prepare_adapter_config(self, peft_config: AbcAdapterConfig, model_config: dict) -> AbcAdapterConfig:
        if peft_config.target_modules is None:
            targets = self.target_module_mapping.get(model_config.get("model_type"))
            if targets is None:
                raise HfSteerError("target_modules is not set and this architecture has no default: name the linear layers")
            peft_config.target_modules = set(targets)
        return peft_config

    def _create_and_replace(self, peft_config, adapter_name, target, target_name, parent, current_key, **kwargs) -> None:
        if isinstance(target, AbcAdapterLayer):
            target.update_layer(adapter_name, peft_config, key=current_key)
            return
        base = target.get_base_layer() if isinstance(target, BaseTunerLayer) else target
        if not isinstance(base, (nn.Linear, Conv1D)):
            raise HfSteerError(
                f"module {current_key} is a {type(base).__name__}: the abc adapter adapts linear layers only; "
                "change target_modules"
            )
        new_module = Linear(target, adapter_name, peft_config, key=current_key)
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)

    def _unload_and_optionally_merge(self, merge: bool = True, **kwargs):
        if merge:
            self._ensure_dial()
        model = super()._unload_and_optionally_merge(merge=merge, **kwargs)
        self._layer_cache = self._applied = None
        return model

    def merge_adapter(self, adapter_names=None, safe_merge: bool = False) -> None:
        self._ensure_dial()
        super().merge_adapter(adapter_names=adapter_names, safe_merge=safe_merge)

    # -- the dial --------------------------------------------------------------------------------------

    @property
    def source_names(self) -> list[str]:
        """The sources of the (first) abc adapter, in dial order."""
        return list(next(iter(self._abc_configs().values())).source_names)

    def get_alpha(self):
        """The default dial, as it was given to :meth:`set_alpha` (``None``: equal parts of every source)."""
        return self._alpha

    def set_alpha(self, alpha) -> _DialRestore:
        """Set the dial used by calls that pass no ``alpha=``; as a context manager, only inside the block.

        ``alpha``: two sources: a number in [0, 1] or one per batch row; N sources: a mixture of N weights
        summing to 1, shape (N,) or (B, N); any N: ``{"name": weight}`` or ``"name=weight,..."``; ``None``:
        equal parts.
        """
        for config in self._abc_configs().values():
            alpha_to_mixture(alpha, config.source_names)  # one-line error before anything changes
        previous, self._alpha = self._alpha, alpha
        self._ensure_dial()
        return _DialRestore(self, previous)

    def _abc_configs(self) -> dict[str, AbcAdapterConfig]:
        return {name: c for name, c in self.peft_config.items() if isinstance(c, AbcAdapterConfig)}

    def _layers(self) -> list[AbcAdapterLayer]:
        """The adapter layers, found once and again only after PEFT adds, deletes or unloads layers."""
        if self._layer_cache is None:
            self._layer_cache = [m for m in self.model.modules() if isinstance(m, AbcAdapterLayer)]
        return self._layer_cache

    def inject_adapter(self, *args, **kwargs):
        self._layer_cache = None
        return super().inject_adapter(*args, **kwargs)

    def delete_adapter(self, adapter_name: str) -> None:
        self._layer_cache = self._applied = None
        super().delete_adapter(adapter_name)

    @torch.no_grad()
    def _ensure_dial(self, alpha=_UNSET) -> None:
        """Make the layers hold the gates for ``alpha`` (default: the dial set by :meth:`set_alpha`).

        The gates of every layer come from one :func:`gate_values` call over all units, expanded to rank
        components and scaled once; each layer gets a view of its slice.
        """
        target = self._alpha if alpha is _UNSET else alpha
        configs = self._abc_configs()
        mixtures = {name: alpha_to_mixture(target, c.source_names) for name, c in configs.items()}
        layers = self._layers()
        state = tuple((m.data_ptr(), m._version) for layer in layers for m in layer.abc_m.values())
        if self._applied is not None and self._applied[1] == state and self._applied[0].keys() == mixtures.keys():
            if all(torch.equal(mixtures[n], self._applied[0][n]) for n in mixtures):
                return
        for name, mixture in mixtures.items():
            config = configs[name]
            owners = [layer for layer in layers if name in layer.abc_m]
            if not owners:
                continue
            positions = [layer.abc_m[name] for layer in owners]
            device = positions[0].device
            units = gate_values(
                mixture.to(device), torch.cat([m.to(device) for m in positions]),
                config.gate_function, config.gate_width, config.gate_floor,
            )
            if config.gate_normalize:  # the same total gate at every dial: an end has as much rank on as the middle
                units = units / units.mean(1, keepdim=True).clamp_min(1e-6)
            factors = units.repeat_interleave(config.unit_size, dim=1) * config.scaling
            factors = factors.to(owners[0].abc_A[name].weight.dtype)
            sizes = [m.shape[0] * config.unit_size for m in positions]
            for layer, piece in zip(owners, factors.split(sizes, dim=1)):
                layer.set_gate(name, piece)
        self._applied = (mixtures, state)

    # -- calls -----------------------------------------------------------------------------------------

    def forward(self, *args: Any, alpha=_UNSET, **kwargs: Any):
        self._ensure_dial(alpha)
        return self.model(*args, **kwargs)

    def generate(self, *args: Any, alpha=_UNSET, **kwargs: Any):
        """``generate`` of the base model at dial ``alpha`` (every step of the generation uses it)."""
        self._ensure_dial(alpha)
        return self.model.generate(*args, **kwargs)
