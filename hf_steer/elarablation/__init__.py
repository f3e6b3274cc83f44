"""Elarablation: train slop tokens out of a model at the exact point they would start.

Public names: :class:`ElarablationConfig`, :class:`ElarablationTrainer`, :func:`load_contexts`,
:func:`train` and :func:`merge` (the API behind ``hf-steer elarablate``).
"""

from ..utils import lazy_exports

# public name -> submodule that defines it (imported on first use: ``import hf_steer.<method>.cli`` stays cheap)
_EXPORTS = {
    "ElarablationConfig": ".config",
    "list_library": ".contexts",
    "load_contexts": ".contexts",
    "LOSS_TYPES": ".loss",
    "elarablation_loss": ".loss",
    "merge": ".pipeline",
    "train": ".pipeline",
    "ElarablationTrainer": ".trainer",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
