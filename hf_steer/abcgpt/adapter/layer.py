"""The abc adapter layer: a LoRA whose rank components are scaled by abcGPT's spotlight gate.

    y = W x + B · (g(α, m) ⊙ s · A x)        s = lora_alpha / r,  g ∈ [floor, 1]^r per batch row

``abc_A`` / ``abc_B`` are trained as LoRA's ``lora_A`` / ``lora_B``; ``abc_m`` holds the frozen source position of
every unit (a persistent buffer, saved with the weights). The gates are not computed here: the tuner
(:class:`~.model.AbcAdapterModel`) computes every layer's gates in one batched call when the dial changes and
hands each layer its slice, already multiplied by ``s`` and cast to the adapter's dtype. A forward therefore
costs exactly what a plain LoRA forward costs (LoRA multiplies by ``s``; this layer multiplies by ``s·g``
instead) -- the gates' only price is that one call per dial change.
"""

from __future__ import annotations

import math
import warnings
import zlib

import torch
from peft.tuners._buffer_dict import BufferDict
from peft.tuners.tuners_utils import BaseTunerLayer, _get_in_out_features, check_adapters_to_merge
from torch import nn
from transformers.pytorch_utils import Conv1D

from ...errors import HfSteerError
from ..gates import draw_source_positions
from .config import AbcAdapterConfig
from .dial import rows_for_batch


def positions_for(key: str, n_units: int, n_sources: int, m_seed: int, balanced: bool = False) -> torch.Tensor:
    """Source positions of one layer's units, (n_units, N): abcGPT's U-shaped law, seeded by ``m_seed`` and the
    module's name (so a layer's m does not depend on which other layers are adapted); ``balanced``: as many units
    lean to each source (``draw_source_positions``)."""
    seed = (m_seed * 1_000_003 + zlib.crc32(key.encode("utf-8"))) % (2**63)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return draw_source_positions((n_units,), n_sources, generator, balanced=balanced)


class AbcAdapterLayer(BaseTunerLayer):
    adapter_layer_names = ("abc_A", "abc_B")
    other_param_names = ("abc_m", "r", "unit_size", "scaling", "abc_dropout")

    def __init__(self, base_layer: nn.Module, **kwargs) -> None:
        self.base_layer = base_layer
        self.r: dict[str, int] = {}
        self.unit_size: dict[str, int] = {}
        self.scaling: dict[str, float] = {}
        self.abc_dropout = nn.ModuleDict({})
        self.abc_A = nn.ModuleDict({})
        self.abc_B = nn.ModuleDict({})
        self.abc_m = BufferDict({}, persistent=True)
        # adapter -> {key: gate}; key 0 is the gate as set, (rows, 3-D input?) its per-batch shapes
        self._abc_gates: dict[str, dict] = {}
        self._merged_gates: dict[str, torch.Tensor] = {}
        self._abc_dropout_on: dict[str, bool] = {}
        self._disable_adapters = False
        self.merged_adapters = []
        in_features, out_features = _get_in_out_features(self.get_base_layer())
        if in_features is None:
            raise HfSteerError(f"layer {type(base_layer).__name__} cannot carry an abc adapter: target linear layers")
        self.in_features, self.out_features = in_features, out_features
        self.kwargs = kwargs

    def update_layer(self, adapter_name: str, config: AbcAdapterConfig, key: str, inference_mode: bool = False) -> None:
        r = config.r
        self.r[adapter_name] = r
        self.unit_size[adapter_name] = config.unit_size
        self.scaling[adapter_name] = config.scaling
        self.abc_dropout[adapter_name] = nn.Dropout(config.lora_dropout) if config.lora_dropout > 0 else nn.Identity()
        self._abc_dropout_on[adapter_name] = config.lora_dropout > 0
        self.abc_A[adapter_name] = nn.Linear(self.in_features, r, bias=False)
        self.abc_B[adapter_name] = nn.Linear(r, self.out_features, bias=False)
        if config.init_lora_weights:
            nn.init.kaiming_uniform_(self.abc_A[adapter_name].weight, a=math.sqrt(5))
            nn.init.zeros_(self.abc_B[adapter_name].weight)
        self.abc_m[adapter_name] = positions_for(
            key, r // config.unit_size, config.n_sources, config.m_seed, config.balanced_positions
        )
        self._move_adapter_to_device_of_base_layer(adapter_name)
        self.set_adapter(self.active_adapters, inference_mode=inference_mode)

    def _move_adapter_to_device_of_base_layer(self, adapter_name: str, device=None) -> None:
        super()._move_adapter_to_device_of_base_layer(adapter_name, device)
        if adapter_name in self.abc_m:  # m stays float32 whatever the base dtype: it decides who is on
            self.abc_m[adapter_name] = self.abc_m[adapter_name].float()

    # -- gates -----------------------------------------------------------------------------------------

    def set_gate(self, adapter_name: str, gate: torch.Tensor) -> None:
        """Store this layer's gate factors: (G, r) = each rank component's unit gate times ``s``."""
        A = self.abc_A[adapter_name].weight
        if gate.device != A.device or gate.dtype != A.dtype:
            gate = gate.to(device=A.device, dtype=A.dtype)
        self._abc_gates[adapter_name] = {0: gate[:, None, :]}

    def _gate(self, adapter_name: str, x: torch.Tensor) -> torch.Tensor:
        """The gate factors for input ``x``: (rows, 1, r) for (batch, tokens, features), (1, r) for 2-D inputs;
        a new batch size is expanded once and kept (``generate`` calls every layer once per token)."""
        gates = self._abc_gates.get(adapter_name)
        if gates is None:
            raise HfSteerError("the abc adapter has no dial set: run it through its PeftModel (get_peft_model)")
        key = (x.shape[0], True) if x.ndim >= 3 else (1, False)
        gate = gates.get(key)
        if gate is None:
            gate = gates[0]
            if x.ndim >= 3:
                gate = rows_for_batch(gate, x.shape[0])
            elif gate.shape[0] != 1:
                raise HfSteerError("alpha per row needs inputs shaped (batch, tokens, features): pass one alpha")
            else:
                gate = gate[:, 0, :]
            gates[key] = gate
        return gate

    # -- merging at a fixed dial -------------------------------------------------------------------------

    def get_delta_weight(self, adapter_name: str) -> torch.Tensor:
        """ΔW = B · diag(s·g) · A at the current dial (which must be one dial for every row)."""
        gate = self._abc_gates.get(adapter_name, {}).get(0)
        if gate is None or gate.shape[0] != 1:
            raise HfSteerError("merging needs one dial for every row: call set_alpha(a) with a single alpha first")
        A, B = self.abc_A[adapter_name].weight, self.abc_B[adapter_name].weight
        delta = B.float() @ (gate[0, 0, :, None].float() * A.float())
        if isinstance(self.get_base_layer(), Conv1D):
            delta = delta.T
        self._merged_gates[adapter_name] = gate
        return delta


class Linear(nn.Module, AbcAdapterLayer):
    """An ``nn.Linear`` (or ``Conv1D``, or a quantized linear layer) with abc adapters beside it."""

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: AbcAdapterConfig, key: str, **kwargs) -> None:
        super().__init__()
        AbcAdapterLayer.__init__(self, base_layer, **kwargs)
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, config, key)

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        for name in check_adapters_to_merge(self, adapter_names):
            if name not in self.abc_A:
                continue
            base = self.get_base_layer()
            if not hasattr(base.weight, "data") or base.weight.dtype not in (torch.float32, torch.float16, torch.bfloat16):
                raise HfSteerError("merging into a quantized base layer is not supported: load the base in 16/32 bit")
            delta = self.get_delta_weight(name).to(base.weight.dtype)
            if safe_merge and not torch.isfinite(base.weight.data + delta).all():
                raise HfSteerError(f"merging adapter {name!r} gives NaN or inf weights: it is broken")
            base.weight.data += delta
            self.merged_adapters.append(name)

    def unmerge(self) -> None:
        if not self.merged:
            warnings.warn("Already unmerged. Nothing to do.", stacklevel=2)
            return
        while self.merged_adapters:
            name = self.merged_adapters.pop()
            gate = self._merged_gates.pop(name)
            A, B = self.abc_A[name].weight, self.abc_B[name].weight
            delta = B.float() @ (gate[0, 0, :, None].float() * A.float())
            if isinstance(self.get_base_layer(), Conv1D):
                delta = delta.T
            base = self.get_base_layer()
            base.weight.data -= delta.to(base.weight.dtype)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        result = self.base_layer(x, *args, **kwargs)
        if self.merged:
            return result
        # Kept lean: this runs for every adapted layer at every generated token (one multiply more than
        # LoRA's output scaling would cost: none, the gate factor carries the scaling).
        for name in self.active_adapters:
            if name not in self.abc_A:
                continue
            A = self.abc_A[name]
            h = x if x.dtype == A.weight.dtype else x.to(A.weight.dtype)
            if self._abc_dropout_on.get(name):
                h = self.abc_dropout[name](h)
            out = self.abc_B[name](A(h) * self._gate(name, x))
            result = result + (out if out.dtype == result.dtype else out.to(result.dtype))
        return result

    def __repr__(self) -> str:
        return "abc_adapter." + super().__repr__()
