"""AbcGPT configuration: a small GPT whose units are gated by a source dial α.

Kept free of hf_steer imports: this file is copied next to the weights so a saved folder loads with
``AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)`` anywhere.
"""

from __future__ import annotations

from transformers import PreTrainedConfig

GATE_FUNCTIONS = ("cos2", "gaussian")


class AbcGPTConfig(PreTrainedConfig):
    r"""
    Args:
        vocab_size: tokens in the (character-level) vocabulary.
        n_positions: longest context the learned position table covers.
        n_embd, n_layer, n_head: GPT width, depth and heads (``n_embd`` divisible by ``n_head``).
        n_inner: MLP hidden units (default ``4 * n_embd``).
        dropout: one dropout rate for embeddings, attention output and MLP output.
        source_names: the N sources the dial moves between, in order (2 or more). With 2 sources α is a
            scalar: 0 = the first source, 1 = the second.
        gate_residual, gate_mlp, gate_heads: which unit families carry a source position m and a gate.
        gate_function: ``"cos2"`` (the spotlight cos²(π/2·min(d/d_max, 1))) or ``"gaussian"``
            (exp(-(d/d_max)² / (2·gate_width²))).
        gate_width: width of the Gaussian gate, in units of the normalised distance.
        gate_floor: the least any gate lets through, in [0, 1): gate = floor + (1 − floor)·spotlight. 0 is
            the pure spotlight; a floor keeps every unit partly on at every α, trading dial contrast for
            capacity at the ends of the dial.
        m_seed: seed that draws every unit's source position m (stored in the weights too).
    """

    model_type = "abcgpt"
    keys_to_ignore_at_inference = ["cache"]
    attribute_map = {
        "hidden_size": "n_embd",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
    }

    def __init__(
        self,
        vocab_size: int = 128,
        n_positions: int = 256,
        n_embd: int = 128,
        n_layer: int = 4,
        n_head: int = 4,
        n_inner: int | None = None,
        dropout: float = 0.0,
        layer_norm_epsilon: float = 1e-5,
        initializer_range: float = 0.02,
        source_names: list[str] | None = None,
        gate_residual: bool = True,
        gate_mlp: bool = True,
        gate_heads: bool = True,
        gate_function: str = "cos2",
        gate_width: float = 0.35,
        gate_floor: float = 0.0,
        m_seed: int = 0,
        use_cache: bool = True,
        tie_word_embeddings: bool = True,
        **kwargs,
    ):
        source_names = list(source_names) if source_names is not None else ["source_a", "source_b"]
        if len(source_names) < 2 or len(set(source_names)) != len(source_names):
            raise ValueError(
                f"source_names is {source_names!r}: give two or more distinct names, e.g. ['tinystories', 'shakespeare']"
            )
        if gate_function not in GATE_FUNCTIONS:
            raise ValueError(f"gate_function is {gate_function!r}: use one of {', '.join(GATE_FUNCTIONS)}")
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}: pick a width that is")
        if not gate_width > 0:
            raise ValueError(f"gate_width is {gate_width}: use a positive width such as 0.35")
        if not 0.0 <= gate_floor < 1.0:
            raise ValueError(f"gate_floor is {gate_floor}: use a value in [0, 1), e.g. 0 or 0.2")
        self.vocab_size = vocab_size
        self.n_positions = n_positions
        self.n_embd = n_embd
        self.n_layer = n_layer
        self.n_head = n_head
        self.n_inner = n_inner
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        self.source_names = source_names
        self.gate_residual = gate_residual
        self.gate_mlp = gate_mlp
        self.gate_heads = gate_heads
        self.gate_function = gate_function
        self.gate_width = gate_width
        self.gate_floor = gate_floor
        self.m_seed = m_seed
        self.use_cache = use_cache
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)

    @property
    def n_sources(self) -> int:
        return len(self.source_names)

    @property
    def gated(self) -> bool:
        """False for the plain GPT baseline (all gates switched off)."""
        return self.gate_residual or self.gate_mlp or self.gate_heads


__all__ = ["AbcGPTConfig"]
