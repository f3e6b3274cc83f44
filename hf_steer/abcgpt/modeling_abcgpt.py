"""AbcGPT: a GPT-2-shaped character LM with a source dial α, written as transformers writes its models.

Every gated unit (a residual channel, an MLP hidden unit, an attention head) owns a frozen source
position m, drawn once from ``config.m_seed`` and stored as a persistent buffer; ``forward(..., alpha=)``
takes the dial and a spotlight gate lets through the units whose m is near α (the math: ``gates.py``).

Transformers' current model style, as in ``models/llama/modeling_llama.py``:
- attention goes through ``ALL_ATTENTION_FUNCTIONS`` (``attn_implementation="sdpa"`` or ``"eager"``, chosen at
  load time or with ``set_attn_implementation``), the module keeps ``config``, ``layer_idx``, ``scaling``,
  ``is_causal``, and this file defines ``eager_attention_forward``; anything that wraps the interface (e.g.
  DRµGS) therefore reaches abcGPT's attention like any other decoder's;
- the causal/padding mask comes from ``masking_utils.create_causal_mask`` for the chosen implementation;
- the loss is ``self.loss_function`` (``ForCausalLMLoss``: labels shifted inside, -100 ignored);
- ``output_hidden_states`` / ``output_attentions`` are collected by ``capture_outputs`` from the blocks and
  the attention modules (attention weights need ``attn_implementation="eager"``, as for every model);
- ``cache`` is the KV cache (``past_key_values`` is still accepted, as transformers does).
The dial is ``alpha``, keyword-only after the usual arguments.

Tried and dropped: calling ``F.scaled_dot_product_attention`` directly with a hand-built boolean mask
(the first version). Same numbers (a saved tiny model gave the same logits, cache and padding included,
to 1e-5 before and after the move), but invisible to the attention interface, so DRµGS could not dose it
and ``output_hidden_states`` was silently dropped.

This file imports only torch, transformers, its configuration and ``gates.py``, so ``save_pretrained``
copies them beside the weights and ``AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)``
works in a process that has never heard of hf_steer.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, slice_logits_to_keep
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import capture_outputs

from .configuration_abcgpt import AbcGPTConfig
from .gates import alpha_to_mixture, draw_source_positions, gate_values

# ------------------------------------------------------------------------------------------- blocks


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain attention; ``attention_mask`` is the additive float mask ``create_causal_mask`` builds for eager."""
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value)
    return attn_output.transpose(1, 2).contiguous(), attn_weights


class AbcGPTAttention(nn.Module):
    """Causal self-attention (GPT-2's fused ``c_attn``) whose heads are scaled by their gates."""

    def __init__(self, config: AbcGPTConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.num_key_value_groups = 1
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.dropout
        self.is_causal = True
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.dropout)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        head_gate: torch.Tensor | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        query, key, value = self.c_attn(hidden_states).split(self.config.n_embd, dim=-1)
        query = query.view(hidden_shape).transpose(1, 2)
        key = key.view(hidden_shape).transpose(1, 2)
        value = value.view(hidden_shape).transpose(1, 2)
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=0.0 if not self.training else self.attention_dropout,
            scaling=self.scaling,
            **kwargs,
        )  # attn_output: (batch, seq, heads, head_dim)
        if head_gate is not None:
            attn_output = attn_output * head_gate  # (batch, 1, heads, 1): a silenced head writes nothing
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        return self.resid_dropout(self.c_proj(attn_output)), attn_weights


class AbcGPTMLP(nn.Module):
    def __init__(self, config: AbcGPTConfig):
        super().__init__()
        inner = config.n_inner or 4 * config.n_embd
        self.c_fc = nn.Linear(config.n_embd, inner)
        self.c_proj = nn.Linear(inner, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, unit_gate: torch.Tensor | None = None) -> torch.Tensor:
        h = F.gelu(self.c_fc(x))
        if unit_gate is not None:
            h.mul_(unit_gate)  # (B, 1, inner); in place is safe: gelu's backward keeps its input, not h
        return self.dropout(self.c_proj(h))


class AbcGPTBlock(GradientCheckpointingLayer):
    def __init__(self, config: AbcGPTConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = AbcGPTAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = AbcGPTMLP(config)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        gates: dict | None = None,
        **kwargs,
    ) -> torch.Tensor:
        gates = gates or {}
        res = gates.get("residual")  # (B, 1, C): a channel far from α gets no writes from any block
        a, _ = self.attn(
            self.ln_1(hidden_states),
            attention_mask=attention_mask,
            cache=cache,
            head_gate=gates["heads"][self.layer_idx] if "heads" in gates else None,
            **kwargs,
        )
        # addcmul fuses gate and residual add into one pass: the gates' cost is memory traffic, not flops.
        hidden_states = torch.addcmul(hidden_states, a, res) if res is not None else hidden_states + a
        h = self.mlp(self.ln_2(hidden_states), gates["mlp"][self.layer_idx] if "mlp" in gates else None)
        return torch.addcmul(hidden_states, h, res) if res is not None else hidden_states + h


# ------------------------------------------------------------------------------------------- models


class AbcGPTPreTrainedModel(PreTrainedModel):
    config_class = AbcGPTConfig
    config: AbcGPTConfig
    base_model_prefix = "transformer"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["AbcGPTBlock"]
    _supports_sdpa = True
    _can_record_outputs = {"hidden_states": AbcGPTBlock, "attentions": AbcGPTAttention}
    # Bad α raises this. ValueError here; hf_steer swaps in its HfSteerError (a ValueError subclass) so its
    # CLI prints the message as one line. A copied remote-code file keeps ValueError.
    input_error: type[ValueError] = ValueError

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, (AbcGPTAttention, AbcGPTMLP)):
            # GPT-2's scaled init of the projections that write into the residual stream.
            init.normal_(module.c_proj.weight, mean=0.0, std=self.config.initializer_range / math.sqrt(2 * self.config.n_layer))
        if isinstance(module, AbcGPTModel):
            for name, value in module.draw_all_positions().items():
                init.copy_(getattr(module, name), value)

    def alpha_to_mixture(self, alpha, batch_size: int) -> torch.Tensor:
        """Check ``alpha`` and return one mixture per row, (batch_size, N), on the model's device (see ``gates.py``)."""
        return alpha_to_mixture(alpha, self.config.source_names, batch_size, self.device, self.input_error)


class AbcGPTModel(AbcGPTPreTrainedModel):
    def __init__(self, config: AbcGPTConfig):
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList([AbcGPTBlock(config, i) for i in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.gradient_checkpointing = False
        # One persistent buffer per gated family, each its own storage (no views of a shared tensor), so
        # safetensors saves every m exactly once. An ungated model has none.
        for name, value in self.draw_all_positions().items():
            self.register_buffer(name, value, persistent=True)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.wte

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.wte = value

    def draw_all_positions(self) -> dict[str, torch.Tensor]:
        """m for every enabled family, from ``config.m_seed``; always drawn in the same order so switching one
        family off leaves the others' m unchanged."""
        c = self.config
        g = torch.Generator(device="cpu").manual_seed(c.m_seed)
        inner = c.n_inner or 4 * c.n_embd
        drawn = {
            "m_residual": draw_source_positions((c.n_embd,), c.n_sources, g),
            "m_mlp": draw_source_positions((c.n_layer, inner), c.n_sources, g),
            "m_heads": draw_source_positions((c.n_layer, c.n_head), c.n_sources, g),
        }
        enabled = {"m_residual": c.gate_residual, "m_mlp": c.gate_mlp, "m_heads": c.gate_heads}
        return {k: v for k, v in drawn.items() if enabled[k]}

    def compute_gates(self, mixture: torch.Tensor) -> dict[str, torch.Tensor]:
        """Gates for a (B, N) mixture, shaped to broadcast against the activations they scale."""
        c = self.config
        B = mixture.shape[0]
        fn, w, floor = c.gate_function, c.gate_width, c.gate_floor
        gates: dict[str, torch.Tensor] = {}
        if c.gate_residual:
            gates["residual"] = gate_values(mixture, self.m_residual, fn, w, floor)[:, None, :]
        if c.gate_mlp:
            L, inner, _ = self.m_mlp.shape
            g = gate_values(mixture, self.m_mlp.reshape(L * inner, -1), fn, w, floor).view(B, L, 1, inner)
            gates["mlp"] = g.unbind(1)
        if c.gate_heads:
            L, H, _ = self.m_heads.shape
            g = gate_values(mixture, self.m_heads.reshape(L * H, -1), fn, w, floor).view(B, L, 1, H, 1)
            gates["heads"] = g.unbind(1)  # (B, 1, H, 1) per layer: the attention output is (B, T, H, D)
        return gates

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        *,
        mixture: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        r"""
        mixture: the dial as one mixture per row, (batch, n_sources) (``AbcGPTForCausalLM`` turns ``alpha`` into
            it); ``None`` runs every unit ungated.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.wte(input_ids)
        T = inputs_embeds.shape[1]
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        past = cache.get_seq_length() if cache is not None else 0
        if past + T > self.config.n_positions:
            raise self.input_error(
                f"input of {past + T} tokens is longer than n_positions={self.config.n_positions}: shorten it "
                "(generate() slides the window by itself)"
            )
        if position_ids is None:
            if attention_mask is not None and attention_mask.ndim == 2:
                # Left padding: count only real tokens so each row's first real token sits at position 0.
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)[:, -T:]
            else:
                position_ids = torch.arange(past, past + T, device=inputs_embeds.device)[None]

        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=position_ids,
        )
        gates = self.compute_gates(mixture) if mixture is not None and self.config.gated else {}
        hidden_states = self.drop(inputs_embeds + self.wpe(position_ids))
        if "residual" in gates:
            hidden_states = hidden_states * gates["residual"]
        for block in self.h:
            hidden_states = block(
                hidden_states, attention_mask=causal_mask, cache=cache if use_cache else None, gates=gates, **kwargs
            )
        hidden_states = self.ln_f(hidden_states)
        return BaseModelOutputWithPast(last_hidden_state=hidden_states, cache=cache if use_cache else None)


class AbcGPTForCausalLM(AbcGPTPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}

    def __init__(self, config: AbcGPTConfig):
        super().__init__(config)
        self.transformer = AbcGPTModel(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.transformer.wte

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.transformer.wte = value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        *,
        alpha: float | list | torch.Tensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        r"""
        alpha: the source dial (keyword only). Two sources: a number in [0, 1] or one per row, shape (B,).
            N sources: a mixture, shape (N,) or (B, N), weights in [0, 1] summing to 1. None = equal parts.
            ``generate(input_ids, alpha=0.3)`` passes it to every step.
        labels: as ``input_ids``; shifted inside by ``self.loss_function``, -100 ignored.
        """
        batch_size = (input_ids if input_ids is not None else inputs_embeds).shape[0]
        outputs: BaseModelOutputWithPast = self.transformer(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            mixture=self.alpha_to_mixture(alpha, batch_size),
            **kwargs,
        )
        hidden_states = slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)
        logits = self.lm_head(hidden_states)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    def prepare_inputs_for_generation(self, input_ids, next_sequence_length=None, cache=None, attention_mask=None,
                                      inputs_embeds=None, **kwargs):
        """The stock preparation, plus nanoGPT's sliding window once the text outgrows ``n_positions``.

        The position table is learned and absolute, so cached keys cannot be shifted: when the next forward
        would reach past ``n_positions``, the cache is emptied and the last ``n_positions`` tokens are
        encoded again from position 0, exactly what nanoGPT's ``idx[:, -block_size:]`` does. Until then
        every step costs one position; afterwards every step re-reads one block.
        """
        n = self.config.n_positions
        total = attention_mask.shape[1] if attention_mask is not None else input_ids.shape[1]
        if inputs_embeds is None and total > n and input_ids.shape[1] >= n:
            if cache is not None:
                cache.reset()
            input_ids = input_ids[:, -n:]
            if attention_mask is not None:
                attention_mask = attention_mask[:, -n:]
                kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
            else:
                kwargs["position_ids"] = torch.arange(n, device=input_ids.device)[None].expand(input_ids.shape[0], n)
            next_sequence_length = None
        return super().prepare_inputs_for_generation(
            input_ids, next_sequence_length=next_sequence_length, cache=cache, attention_mask=attention_mask,
            inputs_embeds=inputs_embeds, **kwargs,
        )


__all__ = [
    "AbcGPTForCausalLM",
    "AbcGPTModel",
    "AbcGPTPreTrainedModel",
    "alpha_to_mixture",
    "draw_source_positions",
    "eager_attention_forward",
    "gate_values",
]
