"""DRµGS: noise inside the layers. Rotate hidden states, queries, keys, values or head outputs by small
random angles at chosen depths, then mostly take the most likely token.

    from hf_steer.drugs import inject, DrugsConfig, Dose, depth_profile
    model = inject(model, DrugsConfig(doses={"A": Dose(0.3, depth_profile(0.5, 0.15))}))
    model.Dgenerate(**inputs, max_new_tokens=40, seed=0)
"""

from .dose import TYPES, Dose, DosePoint, DrugsConfig, depth_profile
from .generation import DrugsGenerationMixin
from .inject import Drugs, dosed, find_attention_modules, inject, remove, sober, sober_before
from .rotation import angle_between, random_rotation

__all__ = [
    "TYPES",
    "Dose",
    "DosePoint",
    "Drugs",
    "DrugsConfig",
    "DrugsGenerationMixin",
    "angle_between",
    "depth_profile",
    "dosed",
    "find_attention_modules",
    "inject",
    "random_rotation",
    "remove",
    "sober",
    "sober_before",
]
