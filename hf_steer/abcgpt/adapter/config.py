"""AbcAdapterConfig: the PEFT config of a source-gated LoRA (abcGPT's dial on a pretrained model).

Kept light (dataclasses + PEFT's ``PeftConfig``): every field is saved in ``adapter_config.json`` and read back
by ``PeftModel.from_pretrained`` once the method is registered (see :mod:`.registration`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from peft.config import PeftConfig

from ...errors import HfSteerError
from ..gates import GATE_FUNCTIONS

# PEFT's ``PeftType`` is a closed enum (``register_peft_method`` refuses a name that is not one of its
# members), while ``PeftConfig.peft_type`` is typed ``str | PeftType`` and PEFT supports plain-string types for
# methods that live outside the library (huggingface/peft#2635). This string is what adapter_config.json says.
ABC_ADAPTER_PEFT_TYPE = "ABC_ADAPTER"


@dataclass
class AbcAdapterConfig(PeftConfig):
    r"""
    Configuration of an abc adapter: a LoRA whose rank components are gated by abcGPT's source dial α.

    Every gated unit (``unit_size`` rank components of one adapted linear layer) owns a frozen source position
    m, a point on the simplex over the N training sources drawn once from abcGPT's U-shaped law
    (Dirichlet(½, …, ½); with two sources m = sin²(πu/2)). At run time α (a point on the same simplex, a plain
    number in [0, 1] for two sources) sets each unit's gate with abcGPT's spotlight g(α, m), and the unit's
    contribution to ``B·A·x`` is scaled by it: units far from α are silent, units near it fully on.

    Args:
        r: LoRA rank of every adapted layer (the rank budget, as in ``LoraConfig.r``).
        unit_size: rank components per gated unit; they share one m. ``r`` must be a multiple of it.
        lora_alpha: LoRA scaling numerator: the update is scaled by ``lora_alpha / r`` (as in LoRA).
        lora_dropout: dropout on the adapter's input.
        target_modules: module names (or a regex, or ``"all-linear"``) to adapt; default: PEFT's LoRA default
            for the architecture.
        exclude_modules: module names (or a regex) never to adapt.
        layers_to_transform: only these layer indices (``int`` or list); ``layers_pattern`` names the layer list.
        source_names: the N sources the dial moves between, in order (2 or more). With 2, α=0 is the first.
        gate_function: ``"cos2"`` (spotlight cos²(π/2·min(d/d_max, 1))) or ``"gaussian"``.
        gate_width: width of the Gaussian gate (normalised distance).
        gate_floor: least any gate lets through, in [0, 1).
        gate_normalize: divide every row's gates by their mean over all the adapter's units, so the adapter's
            total gate (the rank it has on) is the same at every α. Without it an end of the dial has only the
            units near that source on (two sources, cos²: mean gate 0.38 at α=0 or 1, 0.68 at α=½).
            ``False`` here, so an adapter saved before this field existed loads as it was trained; training
            (``AbcAdaptConfig``, ``hf-steer abc adapt train``) turns it on by default (docs/abc_adapter.md).
        m_seed: seed of the units' source positions (they are saved in the weights too).
        balanced_positions: in every layer, as many units lean to each source (unit i to source i mod N), each
            still drawn from the U-shaped law. Independent draws leave some layers of 16 units with only 3 on
            one side. Measured on the bundled model (80 steps), it moved the two ends' gaps by ±0.24 points in
            opposite directions: no net gain, so it stays off by default (docs/abc_adapter.md).
        init_lora_weights: ``True``: A Kaiming-uniform, B zero (the adapter starts as a no-op), as LoRA.
        base_fingerprint: filled in on creation: architecture sizes and a sample of the base model's input
            embeddings, checked when the adapter is loaded, so it is never applied to another base model.
    """

    r: int = field(default=16, metadata={"help": "LoRA rank of every adapted layer (the rank budget)"})
    unit_size: int = field(default=1, metadata={"help": "rank components per gated unit (they share one m)"})
    lora_alpha: float = field(default=32.0, metadata={"help": "LoRA scaling numerator (update scaled by lora_alpha / r)"})
    lora_dropout: float = field(default=0.0, metadata={"help": "dropout on the adapter's input"})
    target_modules: list[str] | str | None = field(
        default=None, metadata={"help": "modules to adapt: names, a regex or 'all-linear' (default: PEFT's LoRA default)"}
    )
    exclude_modules: list[str] | str | None = field(default=None, metadata={"help": "modules never to adapt"})
    target_parameters: list[str] | None = field(default=None, metadata={"help": "not supported: always None"})
    layers_to_transform: list[int] | int | None = field(default=None, metadata={"help": "only these layer indices"})
    layers_pattern: list[str] | str | None = field(default=None, metadata={"help": "name of the layer list"})
    modules_to_save: list[str] | None = field(default=None, metadata={"help": "extra modules trained fully"})
    source_names: list[str] = field(
        default_factory=lambda: ["source_a", "source_b"], metadata={"help": "the N sources of the dial, in order"}
    )
    gate_function: Literal["cos2", "gaussian"] = field(default="cos2", metadata={"help": "spotlight shape"})
    gate_width: float = field(default=0.35, metadata={"help": "Gaussian gate width"})
    gate_floor: float = field(default=0.0, metadata={"help": "least any gate lets through, in [0, 1)"})
    gate_normalize: bool = field(
        default=False, metadata={"help": "divide each row's gates by their mean over all units (same rank on at every alpha)"}
    )
    m_seed: int = field(default=0, metadata={"help": "seed of the units' source positions m"})
    balanced_positions: bool = field(
        default=False, metadata={"help": "as many units of every layer lean to each source (unit i to source i mod N)"}
    )
    init_lora_weights: bool = field(default=True, metadata={"help": "A Kaiming-uniform, B zero (a no-op start)"})
    base_fingerprint: dict[str, Any] | None = field(
        default=None, metadata={"help": "filled in on creation; checked when the adapter is loaded"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.peft_type = ABC_ADAPTER_PEFT_TYPE
        if self.task_type is None:
            self.task_type = "CAUSAL_LM"
        if isinstance(self.target_modules, (list, tuple)):
            self.target_modules = set(self.target_modules)
        if self.target_parameters:
            raise HfSteerError("target_parameters is not supported by the abc adapter: target modules instead")
        if not isinstance(self.r, int) or self.r < 1:
            raise HfSteerError(f"r is {self.r!r}: use a positive integer rank such as 16")
        if not isinstance(self.unit_size, int) or self.unit_size < 1 or self.r % self.unit_size:
            raise HfSteerError(f"unit_size is {self.unit_size!r}: use a positive divisor of r={self.r}, e.g. 1")
        names = list(self.source_names)
        if len(names) < 2 or len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise HfSteerError(
                f"source_names is {names!r}: give two or more distinct names, e.g. ['tinystories', 'shakespeare']"
            )
        self.source_names = names
        if self.gate_function not in GATE_FUNCTIONS:
            raise HfSteerError(f"gate_function is {self.gate_function!r}: use one of {', '.join(GATE_FUNCTIONS)}")
        if not self.gate_width > 0:
            raise HfSteerError(f"gate_width is {self.gate_width}: use a positive width such as 0.35")
        if not 0.0 <= self.gate_floor < 1.0:
            raise HfSteerError(f"gate_floor is {self.gate_floor}: use a value in [0, 1), e.g. 0 or 0.2")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise HfSteerError(f"lora_dropout is {self.lora_dropout}: use a value in [0, 1)")

    @property
    def n_sources(self) -> int:
        return len(self.source_names)

    @property
    def scaling(self) -> float:
        return self.lora_alpha / self.r
