"""The Python API behind ``hf-steer elarablate train / merge``: train an adapter, merge it, describe both.

Every folder written here carries ``hf_steer.json`` (one :class:`~hf_steer.artifacts.Artifact`) so
``hf-steer push`` can publish it with a card.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainingArguments

from ..artifacts import Artifact, base_model_name
from ..errors import HfSteerError
from .arguments import ElarablationArguments, LoraArguments
from .config import ElarablationConfig

METHOD = "elarablation"
DESCRIPTION = (
    "Elarablation: an adapter trained at the exact points where the base model reaches for slop (an "
    "over-used name such as Elara, a stock word or phrase), punishing bad and over-likely next tokens and "
    "rewarding good rare ones, while slots that refer back to a name the text already introduced are held; "
    "one forward pass per batch of contexts, never training on the contexts themselves."
)
# The hyperparameters an adapter's hf_steer.json records: every Elarablation field but how the model was loaded,
# and the Trainer settings that shape the adapter. Read off the dataclass: a hand-kept list here left out bad_ratio,
# so auto (which records this list) stopped recording it and could not resume its own older folders (2026-12-05).
_TRAINER_FIELDS = {f.name for f in dataclasses.fields(TrainingArguments)}  # ElarablationArguments re-defaults some
RECORDED = tuple(f.name for f in dataclasses.fields(ElarablationArguments)
                 if f.name not in _TRAINER_FIELDS and f.name != "load_in_4bit") + (
    "learning_rate", "num_train_epochs", "per_device_train_batch_size", "seed")


def default_lora_config(model, r: int = LoraArguments.lora_r, alpha: int = LoraArguments.lora_alpha,
                        layers: Sequence[int] | None = None,
                        target_modules: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj")):
    """LoRA r8/α16 on the attention projections of the upper half of the layers (the original recipe's
    "layer range"). The upper half also halves the backward pass: gradients stop at the lowest adapter."""
    from peft import LoraConfig

    n_layers = model.config.num_hidden_layers
    if layers is None:
        layers = list(range(n_layers // 2, n_layers))
    bad = [i for i in layers if i >= n_layers]
    if bad:
        raise HfSteerError(f"LoRA layers {bad} are out of range: the model has layers 0..{n_layers - 1}")
    # "top6" comes as -6..-1: the top six, or every layer of a model with fewer
    layers = sorted({i if i >= 0 else n_layers + i for i in layers if i >= -n_layers})
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(target_modules),
                      layers_to_transform=list(layers), task_type="CAUSAL_LM")


def train(
    contexts: Any,
    output_dir: str | os.PathLike,
    model: Any = None,
    *,
    config: ElarablationConfig | None = None,
    lora: LoraArguments | None = None,
    resume_from_checkpoint: str | bool | None = None,
    callbacks: list | None = None,
    tokenizer=None,
    chat_template: str | None = None,
    **config_fields: Any,
) -> dict[str, Any]:
    """Train an Elarablation LoRA adapter on ``contexts`` and save it in ``output_dir``.

    Args:
        contexts: anything :func:`~hf_steer.elarablation.contexts.load_contexts` accepts, or a Dataset.
        output_dir: where the adapter, README.md and hf_steer.json go.
        model: a model object, a folder / ``.gguf`` / Hub id, or ``None`` for the bundled model.
        config: an :class:`ElarablationConfig` (its ``output_dir`` is replaced by ``output_dir``); or give its
            fields as keywords (``loss_type``, ``learning_rate``, ``load_in_4bit``, ...).
        lora: the adapter (default :class:`LoraArguments`: r8/α16 on the upper half of the layers).
        chat_template: a template for a model that has none (``gemma``, ``chatml`` or a file).

    Returns:
        ``{"output_dir", "train_seconds", "steps", "final": {last logged metrics}, "trainer"}``.
    """
    import dataclasses

    import datasets as hf_datasets

    from ..models import load_model
    from ..utils import set_seed
    from .chat import apply_chat_template
    from .chat import chat_template as chat_template_text
    from .contexts import load_contexts
    from .trainer import ElarablationTrainer

    check_output_dir(output_dir)
    lora = lora or LoraArguments()
    if chat_template:
        chat_template_text(chat_template)  # a bad name is an error before the model loads
    # Validate the cheap inputs (config, contexts) before the expensive one (the model).
    if config is None:
        config = ElarablationConfig(output_dir=str(output_dir), **config_fields)
    else:
        config = dataclasses.replace(config, output_dir=str(output_dir), **config_fields)
    dataset = contexts if isinstance(contexts, hf_datasets.Dataset) else load_contexts(contexts)
    # The LoRA matrices are drawn before Trainer seeds itself: without this the same command gave another
    # adapter each run (measured on the slot bench: El- back-references kept 78-90% from one init to another).
    set_seed(config.seed)
    model_name = None
    if model is None or isinstance(model, (str, os.PathLike)):
        model_name = model
        model, loaded_tokenizer = load_model(model, load_in_4bit=config.load_in_4bit,
                                             device="cpu" if config.use_cpu else None)
        tokenizer = tokenizer or loaded_tokenizer
    if tokenizer is None:
        raise HfSteerError("a model object needs its tokenizer: pass tokenizer=...")
    apply_chat_template(tokenizer, chat_template)
    peft_config = default_lora_config(model, lora.lora_r, lora.lora_alpha, lora.layers())
    trainer = ElarablationTrainer(model, config, dataset, tokenizer, peft_config=peft_config, callbacks=callbacks)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    seconds = time.perf_counter() - start
    trainer.save_model(str(output_dir))
    logs = [entry for entry in trainer.state.log_history if "loss" in entry and "train_loss" not in entry]
    hyper = {k: getattr(config, k) for k in RECORDED}
    hyper.update(lora_r=lora.lora_r, lora_alpha=lora.lora_alpha, lora_layers=list(peft_config.layers_to_transform),
                 lora_target_modules=sorted(peft_config.target_modules), contexts=len(dataset),
                 trained_positions=len(trainer._rows), load_in_4bit=config.load_in_4bit, bf16=bool(config.bf16))
    if chat_template:
        hyper["chat_template"] = chat_template
    base = base_model_name(model_name if model_name is not None else getattr(model.config, "_name_or_path", None))
    Artifact(method=METHOD, artifact="adapter", base_model=base, description=DESCRIPTION,
             datasets=sorted({r["family"] for r in dataset if r["family"]}), hyperparameters=hyper,
             metrics={"train_seconds": round(seconds, 2)}).save(output_dir)
    return {"output_dir": str(output_dir), "train_seconds": seconds, "steps": trainer.state.global_step,
            "final": logs[-1] if logs else {}, "trainer": trainer}


def check_output_dir(output_dir: str | os.PathLike) -> Path:
    """An output folder that exists as a file, or cannot be created, is one clear error before any work."""
    path = Path(output_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise HfSteerError(f"output folder {path} is a file: choose a folder name")
    parent = next((p for p in [path, *path.parents] if p.exists()), None)
    if parent is None or not os.access(parent, os.W_OK):
        raise HfSteerError(f"output folder {path} cannot be created ({parent} is not writable): choose another place")
    return path


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
    import math

    if not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise HfSteerError(f"--scale {scale} is not a positive number: use e.g. 1.0 (as trained) or 2.0 (the original)")
    check_output_dir(output)
    model, tokenizer = load_adapter(adapter, scale)
    merged = model.merge_and_unload()
    output = Path(output)
    merged.save_pretrained(output)
    tokenizer.save_pretrained(output)
    old = Artifact.load(adapter) or Artifact(method=METHOD, artifact="adapter")
    Artifact(method=METHOD, artifact="merged_model", base_model=old.base_model or base_model_name(None),
             description=DESCRIPTION, datasets=old.datasets, hyperparameters={**old.hyperparameters, "merge_scale": scale},
             metrics=old.metrics).save(output)
    return output
