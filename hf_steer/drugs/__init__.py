"""DRµGS: noise inside the layers. Rotate hidden states, queries, keys, values or head outputs by small
random angles at chosen depths, then mostly take the most likely token.

    from hf_steer.drugs import inject, DrugsConfig, Dose, depth_profile
    model = inject(model, DrugsConfig(doses={"A": Dose(0.3, depth_profile(0.5, 0.15))}))
    model.Dgenerate(**inputs, max_new_tokens=40, seed=0)
"""

from ..utils import lazy_exports

# public name -> submodule that defines it (imported on first use: ``import hf_steer.<method>.cli`` stays cheap)
_EXPORTS = {
    "TYPES": ".dose",
    "Dose": ".dose",
    "DosePoint": ".dose",
    "DrugsConfig": ".dose",
    "depth_profile": ".dose",
    "ColdShower": ".generation",
    "Drugs": ".injection",
    "dosed": ".injection",
    "find_attention_modules": ".injection",
    "inject": ".injection",
    "remove": ".injection",
    "sober": ".injection",
    "sober_before": ".injection",
    "export_custom_generate": ".export",
    "generate": ".hub_generate",
    "angle_between": ".rotation",
    "random_rotation": ".rotation",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
