"""The Python API behind ``hf-steer elarablate train / merge``: train an adapter, merge it, describe both.

Every folder written here carries ``hf_steer.json`` (see docs/CONVENTIONS.md) so ``hf-steer push`` can
publish it with a card.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import HfSteerError
from ..utils import atomic_write_json
from .config import ElarablationConfig

BUNDLED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
MANIFEST = "hf_steer.json"
DESCRIPTION = (
    "Elarablation: an adapter trained at the exact points where the base model reaches for slop (an "
    "over-used name such as Elara, a stock phrase), punishing bad and over-likely next tokens and rewarding "
    "good rare ones, from one forward pass per batch of contexts and never training on the contexts themselves."
)


def base_model_id(name_or_path: str | os.PathLike | None) -> str:
    """What a card calls the base model: the Hub id of the bundled model, else what the user passed."""
    if name_or_path is None or str(name_or_path) in ("", "bundled", "SmolLM2-135M-Instruct"):
        return BUNDLED_HUB_ID
    from ..models import bundled_model_path

    try:
        if Path(name_or_path).resolve() == bundled_model_path().resolve():
            return BUNDLED_HUB_ID
    except HfSteerError:
        pass
    return str(name_or_path)


def default_lora_config(model, r: int = 8, alpha: int = 16, layers: Sequence[int] | None = None,
                        target_modules: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj")):
    """LoRA r8/α16 on the attention projections of the upper half of the layers (the original recipe's
    "layer range"). The upper half also halves the backward pass: gradients stop at the lowest adapter."""
    from peft import LoraConfig

    n_layers = model.config.num_hidden_layers
    if layers is None:
        layers = list(range(n_layers // 2, n_layers))
    bad = [i for i in layers if not 0 <= i < n_layers]
    if bad:
        raise HfSteerError(f"LoRA layers {bad} are out of range: the model has layers 0..{n_layers - 1}")
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(target_modules),
                      layers_to_transform=list(layers), task_type="CAUSAL_LM")


def write_manifest(folder: str | os.PathLike, artifact: str, base_model: str, hyperparameters: dict[str, Any],
                   metrics: dict[str, Any] | None = None, plots: Sequence[str] = (),
                   datasets: Sequence[str] = ()) -> Path:
    """Write ``hf_steer.json`` into ``folder`` (merging metrics/plots already there)."""
    import json

    path = Path(folder) / MANIFEST
    old = json.loads(path.read_text()) if path.is_file() else {}
    data = {
        "method": "elarablation", "artifact": artifact, "base_model": base_model,
        "datasets": list(datasets) or old.get("datasets", []),
        "hyperparameters": hyperparameters, "metrics": {**old.get("metrics", {}), **(metrics or {})},
        "plots": sorted(set(old.get("plots", [])) | set(plots)), "description": DESCRIPTION,
    }
    return atomic_write_json(path, data)


def train(
    contexts: Any,
    output_dir: str | os.PathLike,
    model: Any = None,
    *,
    lora_r: int = 8,
    lora_alpha: int = 16,
    lora_layers: Sequence[int] | None = None,
    load_in_4bit: bool = False,
    resume_from_checkpoint: str | bool | None = None,
    callbacks: list | None = None,
    tokenizer=None,
    **config: Any,
) -> dict[str, Any]:
    """Train an Elarablation LoRA adapter on ``contexts`` and save it in ``output_dir``.

    Args:
        contexts: anything :func:`~hf_steer.elarablation.contexts.load_contexts` accepts, or a Dataset.
        output_dir: where the adapter, tokenizer, README.md and hf_steer.json go.
        model: a model object, a folder / Hub id, or ``None`` for the bundled model.
        lora_r, lora_alpha, lora_layers: the adapter (default r8/α16 on the upper half of the layers).
        load_in_4bit: QLoRA (model given by name only).
        **config: any :class:`ElarablationConfig` field (loss_type, top_k, learning_rate, ...).

    Returns:
        ``{"output_dir", "train_seconds", "steps", "final": {last logged metrics}}``.
    """
    import datasets as hf_datasets

    from ..models import load_model
    from .contexts import load_contexts
    from .trainer import ElarablationTrainer

    # Validate the cheap inputs (config, contexts) before the expensive one (the model).
    args = ElarablationConfig(output_dir=str(output_dir), load_in_4bit=load_in_4bit, **config)
    dataset = contexts if isinstance(contexts, hf_datasets.Dataset) else load_contexts(contexts)
    model_name = None
    if model is None or isinstance(model, (str, os.PathLike)):
        model_name = model
        model, loaded_tokenizer = load_model(model, load_in_4bit=load_in_4bit)
        tokenizer = tokenizer or loaded_tokenizer
    peft_config = default_lora_config(model, lora_r, lora_alpha, lora_layers)
    trainer = ElarablationTrainer(model, args, dataset, tokenizer, peft_config=peft_config, callbacks=callbacks)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    seconds = time.perf_counter() - start
    trainer.save_model(str(output_dir))
    trainer.create_model_card(model_name=Path(output_dir).name)
    logs = [entry for entry in trainer.state.log_history if "top1_prob" in entry]
    hyper = {k: getattr(args, k) for k in ("loss_type", "top_k", "max_threshold", "min_threshold", "temperature",
                                             "tether_weight", "margin_cap", "tree_depth", "tree_width",
                                             "learning_rate", "num_train_epochs", "per_device_train_batch_size")}
    hyper.update(lora_r=lora_r, lora_alpha=lora_alpha, lora_layers=list(peft_config.layers_to_transform),
                 lora_target_modules=sorted(peft_config.target_modules), contexts=len(dataset),
                 trained_positions=len(trainer._rows))
    base = base_model_id(model_name if model_name is not None else getattr(model.config, "_name_or_path", None))
    write_manifest(output_dir, "adapter", base, hyper,
                   metrics={"train_seconds": round(seconds, 2)},
                   datasets=sorted({r["family"] for r in dataset if r["family"]}))
    return {"output_dir": str(output_dir), "train_seconds": seconds, "steps": trainer.state.global_step,
            "final": logs[-1] if logs else {}, "trainer": trainer}


def load_adapter(adapter: str | os.PathLike, scale: float = 1.0):
    """``(PeftModel, tokenizer)`` for an adapter folder, its LoRA scaled by ``scale``."""
    from peft import PeftConfig, PeftModel
    from peft.tuners.lora import LoraLayer

    from ..models import load_model

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise HfSteerError(f"adapter folder {adapter} has no adapter_config.json: pass a folder written by "
                           "`hf-steer elarablate train`")
    base = PeftConfig.from_pretrained(str(adapter)).base_model_name_or_path
    model, tokenizer = load_model(base or None)
    model = PeftModel.from_pretrained(model, str(adapter))
    if scale != 1.0:
        for module in model.modules():
            if isinstance(module, LoraLayer):
                for name in module.scaling:
                    module.scaling[name] *= scale
    return model, tokenizer


def merge(adapter: str | os.PathLike, output: str | os.PathLike, scale: float = 2.0) -> Path:
    """Merge an adapter into its base model with its LoRA scaled by ``scale`` (the original recipe: 2.0)."""
    import json

    if scale <= 0:
        raise HfSteerError(f"--scale {scale} is not positive: use e.g. 1.0 (as trained) or 2.0 (the original)")
    model, tokenizer = load_adapter(adapter, scale)
    merged = model.merge_and_unload()
    output = Path(output)
    merged.save_pretrained(output)
    tokenizer.save_pretrained(output)
    manifest = Path(adapter) / MANIFEST
    old = json.loads(manifest.read_text()) if manifest.is_file() else {}
    hyper = {**old.get("hyperparameters", {}), "merge_scale": scale}
    write_manifest(output, "merged_model", old.get("base_model", BUNDLED_HUB_ID), hyper,
                   metrics=old.get("metrics"), datasets=old.get("datasets", []))
    return output
