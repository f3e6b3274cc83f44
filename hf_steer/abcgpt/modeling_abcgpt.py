"""AbcGPT: a nanoGPT-style causal LM with a source dial α.

Every gated unit (a residual channel, an MLP hidden unit, an attention head) owns a frozen source
position m: a point on the simplex over the N training sources, drawn once from ``config.m_seed`` and
stored as a persistent buffer. ``forward(..., alpha=)`` takes the dial, a point on the same simplex
(a plain number in [0, 1] when there are two sources), and a spotlight gate lets through the units
whose m is near α and silences the far ones.

Distance and gate (one formula for any N, see docs/abcgpt.md):
    d(α, m)     = ½·Σ_k |α_k − m_k|          total variation distance between two mixtures
    d_max(m)    = 1 − min_k m_k              the farthest any α can be from m (reached at a vertex)
    cos2:       gate = cos²(π/2 · min(d / d_max, 1))
    gaussian:   gate = exp(−(d / d_max)² / (2·width²))
    with a floor: gate = floor + (1 − floor)·gate   (config.gate_floor, 0 by default)
With two sources, α = (1−a, a) and m = (1−μ, μ) give d = |a − μ| and d_max = max(μ, 1 − μ): the
scalar spotlight cos²(π/2·min(|a−μ| / max(μ, 1−μ), 1)). Positions are m ~ Dirichlet(½, …, ½), the
U-shaped law: with two sources μ = sin²(πu/2) for u ~ U(0, 1).

This file imports only torch, transformers and its own configuration, so ``save_pretrained`` can copy
it beside the weights and ``AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)`` works
in a process that has never heard of hf_steer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .configuration_abcgpt import AbcGPTConfig

# --------------------------------------------------------------------------------------------- gates


def draw_source_positions(shape: tuple[int, ...], n_sources: int, generator: torch.Generator) -> torch.Tensor:
    """Source positions m ~ Dirichlet(½, …, ½), shape ``(*shape, n_sources)``.

    Gamma(½) is Z²/2 for a standard normal Z, so normalised squared Gaussians are a Dirichlet(½) draw
    using only a seeded ``randn``. For two sources m[..., 1] = sin²θ with θ uniform on [0, π/2], which
    is exactly sin²(πu/2), u ~ U(0, 1): most units sit near a source, a few in between.
    """
    z = torch.randn(*shape, n_sources, generator=generator, dtype=torch.float64, device="cpu")
    sq = z.square().clamp_min(1e-30)
    return (sq / sq.sum(-1, keepdim=True)).float()


def gate_values(
    mixture: torch.Tensor, m: torch.Tensor, function: str = "cos2", width: float = 0.35, floor: float = 0.0
) -> torch.Tensor:
    """Gate of every unit for every row: ``mixture`` (B, N), ``m`` (U, N) -> (B, U) in [floor, 1]."""
    distance = 0.5 * (mixture[:, None, :] - m[None, :, :]).abs().sum(-1)
    d_max = 1.0 - m.min(-1).values  # >= 1 - 1/N > 0
    r = (distance / d_max).clamp(max=1.0)
    if function == "cos2":
        gate = torch.cos(0.5 * math.pi * r).square()
    else:
        gate = torch.exp(-r.square() / (2.0 * width * width))
    return gate if floor == 0.0 else floor + (1.0 - floor) * gate


# ------------------------------------------------------------------------------------------- blocks


class AbcGPTAttention(nn.Module):
    def __init__(self, config: AbcGPTConfig, layer_idx: int):
        super().__init__()
        self.n_head = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.layer_idx = layer_idx
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        head_gate: torch.Tensor | None,
        attn_mask: torch.Tensor | None,
        is_causal: bool,
        cache: Cache | None,
    ) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal, dropout_p=self.dropout if self.training else 0.0
        )
        if head_gate is not None:
            y = y * head_gate  # (B, H, 1, 1): a silenced head writes nothing
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class AbcGPTMLP(nn.Module):
    def __init__(self, config: AbcGPTConfig):
        super().__init__()
        inner = config.n_inner or 4 * config.n_embd
        self.c_fc = nn.Linear(config.n_embd, inner)
        self.c_proj = nn.Linear(inner, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, unit_gate: torch.Tensor | None) -> torch.Tensor:
        h = F.gelu(self.c_fc(x))
        if unit_gate is not None:
            h.mul_(unit_gate)  # (B, 1, inner); in place is safe: gelu's backward keeps its input, not h
        return self.dropout(self.c_proj(h))


class AbcGPTBlock(nn.Module):
    def __init__(self, config: AbcGPTConfig, layer_idx: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = AbcGPTAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = AbcGPTMLP(config)

    def forward(self, x, gates: dict, layer_idx: int, attn_mask, is_causal: bool, cache) -> torch.Tensor:
        res = gates.get("residual")  # (B, 1, C): a channel far from α gets no writes from any block
        a = self.attn(self.ln_1(x), gates["heads"][layer_idx] if "heads" in gates else None, attn_mask, is_causal, cache)
        # addcmul fuses gate and residual add into one pass: the gates' cost is memory traffic, not flops.
        x = torch.addcmul(x, a, res) if res is not None else x + a
        h = self.mlp(self.ln_2(x), gates["mlp"][layer_idx] if "mlp" in gates else None)
        return torch.addcmul(x, h, res) if res is not None else x + h


# ------------------------------------------------------------------------------------------- models


class AbcGPTPreTrainedModel(PreTrainedModel):
    config_class = AbcGPTConfig
    base_model_prefix = "transformer"
    main_input_name = "input_ids"
    _no_split_modules = ["AbcGPTBlock"]
    _supports_sdpa = True
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

    # -- α handling, shared by forward and the hf_steer helpers ---------------------------------------------

    def alpha_to_mixture(self, alpha, batch_size: int) -> torch.Tensor:
        """Validate ``alpha`` and return one mixture per row, shape (batch_size, N), float32 on the model's device.

        Two sources: a number a in [0, 1] (0 = first source, 1 = second), or one per row, shape (B,).
        N sources: a mixture of N weights summing to 1, shape (N,), or one per row, shape (B, N).
        ``None`` means the centre (equal parts of every source).
        """
        err = self.input_error
        n = self.config.n_sources
        names = self.config.source_names
        if alpha is None:
            return torch.full((batch_size, n), 1.0 / n, device=self.device)
        a = torch.as_tensor(alpha, dtype=torch.float32).to(self.device)
        if not torch.isfinite(a).all():
            raise err(f"alpha contains NaN or inf ({_short(a)}): pass numbers in [0, 1]")
        if n == 2 and a.ndim <= 1:
            if a.ndim == 1 and a.shape[0] not in (1, batch_size):
                raise err(
                    f"alpha has shape {tuple(a.shape)} but the batch has {batch_size} rows: pass one number or one per row"
                )
            if (a < 0).any() or (a > 1).any():
                raise err(f"alpha is {_short(a)}: it must lie in [0, 1] (0 = {names[0]}, 1 = {names[1]})")
            a = a.reshape(-1, 1).expand(batch_size, 1)
            return torch.cat([1.0 - a, a], dim=1)
        if a.ndim == 1:
            a = a[None]
        if a.ndim != 2 or a.shape[1] != n or a.shape[0] not in (1, batch_size):
            want = "a number or one per row, shape (B,), or a mixture of 2" if n == 2 else f"a mixture of {n} weights"
            raise err(
                f"alpha has shape {tuple(a.shape)}: pass {want} ({', '.join(names)}), shape ({n},) or ({batch_size}, {n})"
            )
        if (a < 0).any() or (a > 1).any():
            raise err(f"alpha mixture {_short(a)} has weights outside [0, 1]: use non-negative weights summing to 1")
        if ((a.sum(-1) - 1.0).abs() > 1e-4).any():
            raise err(f"alpha mixture {_short(a)} does not sum to 1: divide each weight by their sum")
        return a.expand(batch_size, n)


def _short(t: torch.Tensor) -> str:
    values = [round(v, 4) for v in t.flatten().tolist()[:6]]
    return str(values[0] if t.ndim == 0 else values)


class AbcGPTModel(AbcGPTPreTrainedModel):
    def __init__(self, config: AbcGPTConfig):
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList([AbcGPTBlock(config, i) for i in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        # One persistent buffer per gated family, each its own storage (no views of a shared tensor), so
        # safetensors saves every m exactly once. An ungated model has none.
        for name, value in self.draw_all_positions().items():
            self.register_buffer(name, value, persistent=True)
        self.post_init()

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
            g = gate_values(mixture, self.m_heads.reshape(L * H, -1), fn, w, floor).view(B, L, H, 1, 1)
            gates["heads"] = g.unbind(1)
        return gates

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        mixture: torch.Tensor | None = None,
        cache: Cache | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.wte(input_ids)
        B, T, _ = inputs_embeds.shape
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        past = cache.get_seq_length() if cache is not None else 0
        if past + T > self.config.n_positions:
            raise self.input_error(
                f"input of {past + T} tokens is longer than n_positions={self.config.n_positions}: shorten the prompt or max_new_tokens"
            )

        if position_ids is None:
            if attention_mask is not None and attention_mask.ndim == 2:
                # Left padding: count only real tokens so each row's first real token sits at position 0.
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)[:, -T:]
            else:
                position_ids = torch.arange(past, past + T, device=inputs_embeds.device)[None]
        attn_mask, is_causal = _attention_mask(attention_mask, B, T, past, inputs_embeds.device)

        gates = self.compute_gates(mixture) if mixture is not None and self.config.gated else {}
        x = self.drop(inputs_embeds + self.wpe(position_ids))
        if "residual" in gates:
            x = x * gates["residual"]
        for i, block in enumerate(self.h):
            x = block(x, gates, i, attn_mask, is_causal, cache if use_cache else None)
        x = self.ln_f(x)
        return BaseModelOutputWithPast(last_hidden_state=x, cache=cache if use_cache else None)


def _attention_mask(attention_mask, B: int, T: int, past: int, device) -> tuple[torch.Tensor | None, bool]:
    """Boolean SDPA mask (True = may attend), or None with ``is_causal`` when no mask is needed."""
    no_padding = attention_mask is None or bool(attention_mask.all())
    if no_padding and (past == 0 or T == 1):
        return None, T > 1  # plain causal prefill, or one new token that may see every cached one
    causal = torch.ones(T, past + T, dtype=torch.bool, device=device).tril(diagonal=past)[None, None]
    if no_padding:
        return causal, False
    mask = causal & attention_mask[:, None, None, -(past + T):].bool()
    # A left-pad query would see no key at all and SDPA would return NaN; let it see everything instead
    # (its output is never used).
    mask = mask | ~mask.any(-1, keepdim=True)
    return mask, False


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

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        alpha: float | list | torch.Tensor | None = None,
        cache: Cache | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        r"""
        alpha: the source dial. Two sources: a number in [0, 1] or one per row, shape (B,). N sources: a
            mixture, shape (N,) or (B, N), weights in [0, 1] summing to 1. None = equal parts.
            ``generate(input_ids, alpha=0.3)`` passes it to every step.
        labels: as ``input_ids``; shifted inside, -100 ignored.
        """
        B = (input_ids if input_ids is not None else inputs_embeds).shape[0]
        mixture = self.alpha_to_mixture(alpha, B)
        out = self.transformer(
            input_ids,
            mixture=mixture,
            cache=cache,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
        )
        hidden = out.last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1), ignore_index=-100
            )
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=out.cache)

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


__all__ = ["AbcGPTForCausalLM", "AbcGPTModel", "AbcGPTPreTrainedModel", "draw_source_positions", "gate_values"]
