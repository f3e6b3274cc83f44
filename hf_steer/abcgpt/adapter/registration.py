"""Register the abc adapter with PEFT, the way ``peft.utils.register_peft_method`` does (imported before any
public name of :mod:`hf_steer.abcgpt.adapter`).

``register_peft_method`` itself refuses any name that is not a member of ``peft.PeftType``, a closed enum
that only PEFT's own methods can be added to (editing it at run time means poking at ``enum`` internals).
The supported route for a method that lives outside PEFT is a plain-string ``peft_type``:
``PeftConfig.peft_type`` is typed ``str | PeftType`` and PEFT keeps string types working for this use
(huggingface/peft#2634, #2635). So the four registries that ``register_peft_method`` fills are filled here
for the string ``"ABC_ADAPTER"``, with the same uniqueness checks; ``get_peft_model``, ``save_pretrained``,
``PeftModel.from_pretrained`` and ``load_adapter`` then dispatch on it like on any PEFT method.
"""

from peft.mapping import (
    PEFT_TYPE_TO_CONFIG_MAPPING,
    PEFT_TYPE_TO_PREFIX_MAPPING,
    PEFT_TYPE_TO_TUNER_MAPPING,
)

from .config import ABC_ADAPTER_PEFT_TYPE, AbcAdapterConfig
from .model import AbcAdapterModel


def register() -> None:
    """Idempotent: a second import (or a reload) leaves the registries as they are."""
    if PEFT_TYPE_TO_CONFIG_MAPPING.get(ABC_ADAPTER_PEFT_TYPE) is not None:
        return
    prefix = AbcAdapterModel.prefix
    taken = {p: t for t, p in PEFT_TYPE_TO_PREFIX_MAPPING.items()}
    if prefix in taken:
        raise KeyError(f"PEFT method {taken[prefix]} already uses the parameter prefix {prefix!r}")
    PEFT_TYPE_TO_PREFIX_MAPPING[ABC_ADAPTER_PEFT_TYPE] = prefix
    PEFT_TYPE_TO_CONFIG_MAPPING[ABC_ADAPTER_PEFT_TYPE] = AbcAdapterConfig
    PEFT_TYPE_TO_TUNER_MAPPING[ABC_ADAPTER_PEFT_TYPE] = AbcAdapterModel


register()
