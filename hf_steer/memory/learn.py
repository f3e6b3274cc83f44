"""One chunk -> one trained adapter, in memory: the step ``remember``, the background worker and a Ray task share.

Nothing here writes to disk. An adapter travels as *files* -- ``{file name: bytes}`` for
``adapter_model.safetensors``, ``adapter_config.json`` and ``hf_steer.json`` -- so a worker process or a
Ray task on another machine hands it back through a queue or the object store, and only the process
that owns the catalog writes it (one writer: no cross-process locking, and no scratch copy of the
user's words in a temporary folder).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ..artifacts import METADATA_FILE, Artifact, base_model_name
from ..errors import HfSteerError
from . import augment as aug
from .train import TrainPreset, lora_config, train_adapter

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def linear_module_names(model) -> set[str]:
    """Short names of the model's Linear layers (what ``target_modules`` may name)."""
    import torch

    names = set()
    for full, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt", "Conv1D"):
            names.add(full.rsplit(".", 1)[-1])
    names.discard("lm_head")
    return names


def num_layers(model) -> int:
    cfg = model.config
    return getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", 1)


def add_adapter(peft, model, name: str, config):
    """Add a fresh adapter ``name``; returns the PeftModel (created around ``model`` when ``peft`` is None)."""
    from peft import get_peft_model

    if peft is None:
        return get_peft_model(model, config, adapter_name=name)
    peft.add_adapter(name, config)
    return peft


def train_alone(peft, tokenizer, name: str, examples: list[tuple[str, str]], preset: TrainPreset, seed: int) -> dict:
    """Train adapter ``name`` as the only active and only trainable adapter; returns the figures.

    Every other adapter is inactive and frozen meanwhile, so the adapter learns its text against the
    bare base and can later be stacked, rolled up or forgotten on its own. The caller restores its stack.
    """
    peft.base_model.set_adapter([name], inference_mode=False)
    return train_adapter(peft, tokenizer, name, examples, preset, seed=seed)


def adapter_artifact(name: str, kind: str, base_model: str, fingerprint: str, *, profile: str | None = None,
                     preset: dict | None = None, metrics: dict | None = None, description: str | None = None) -> Artifact:
    """The ``hf_steer.json`` of one memory adapter (the card ``hf-steer push`` renders reads it)."""
    what = {"chunk": "a chunk of conversation", "behaviour": "a behaviour the user asked for",
            "rollup": "a roll-up of several chunk adapters"}.get(kind, kind)
    return Artifact(
        method="lora_memory", artifact="adapter", base_model=base_model_name(base_model),
        description=description or (
            f"LoRA memory adapter {name!r}: {what}, learned by hf_steer's LoRA memory"
            + (f" in profile {profile!r}" if profile else "")
            + ". Load it with PEFT on the base model, or stack it with others in hf_steer.memory.LoraMemory."),
        hyperparameters=dict(preset or {}), metrics=dict(metrics or {}),
        extra={"base_fingerprint": fingerprint, "adapter_name": name, "kind": kind},
    )


def adapter_files(peft, name: str, artifact: Artifact) -> dict[str, bytes]:
    """Adapter ``name`` as ``{file name: bytes}``: weights, PEFT config and ``hf_steer.json``.

    PEFT's ``save_pretrained`` puts a non-default adapter in a subfolder and writes a card naming no base
    model; writing the three files ourselves keeps one flat folder per adapter that
    ``load_adapter(folder, name)`` reads back, with a card only when ``hf-steer push`` renders one.
    """
    from peft import get_peft_model_state_dict
    from safetensors.torch import save

    state = get_peft_model_state_dict(peft, adapter_name=name)
    files = {ADAPTER_WEIGHTS: save({k: v.detach().to("cpu").contiguous() for k, v in state.items()})}
    with tempfile.TemporaryDirectory() as tmp:  # the config's own writer (it normalises sets, versions)
        peft.peft_config[name].save_pretrained(tmp)
        files[ADAPTER_CONFIG] = (Path(tmp) / ADAPTER_CONFIG).read_bytes()
    files[METADATA_FILE] = (json.dumps(artifact.to_dict(), indent=2, ensure_ascii=False) + "\n").encode()
    return files


def write_adapter_files(folder: str | os.PathLike, files: dict[str, bytes]) -> None:
    """Write ``{file name: bytes}`` into ``folder`` (the catalog renames the folder into place)."""
    for fname, data in files.items():
        if fname not in (ADAPTER_WEIGHTS, ADAPTER_CONFIG, METADATA_FILE):
            raise HfSteerError(f"adapter file {fname!r} is not one a memory adapter has: the adapter came back damaged")
        (Path(folder) / fname).write_bytes(data)


def files_metadata(files: dict[str, bytes]) -> dict[str, Any]:
    """The ``hf_steer.json`` inside adapter files (``{}`` when absent or unreadable)."""
    try:
        data = json.loads(files.get(METADATA_FILE, b"{}").decode())
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def preset_augment(preset: TrainPreset) -> dict[str, Any]:
    """The augmentation settings a preset carries (see :func:`hf_steer.memory.augment.fact_examples`)."""
    return {"templates_per_topic": preset.templates_per_topic, "echo": preset.echo,
            "with_notes": preset.notes_examples, "statements": preset.plain_statements}


def chunk_row(name: str, kind: str, turns: list[dict], preset: TrainPreset, stats: dict, cfg) -> dict:
    """The catalog row of a freshly trained adapter (the caller adds its facts or behaviours)."""
    return {
        "name": name, "kind": kind, "turns": turns, "tokens": stats["tokens"], "preset": preset.to_dict(),
        "r": cfg.r, "target_modules": sorted(cfg.target_modules), "layers": cfg.layers_to_transform, "train": stats,
    }


class ChunkTrainer:
    """A base model that trains one planned job at a time and hands the adapter back as files.

    Used by the background worker process and by Ray tasks. A job is what
    :meth:`~hf_steer.memory.memory.LoraMemory.plan` returns (``name``, ``kind``, ``turns``, ``facts``
    or ``behaviours``, ``supersedes``, ``preset``) plus ``anchors`` and ``seed``; the answer is
    ``{"name", "row", "files", "fingerprint", "seconds"}``. The adapter is removed from the model
    afterwards, so every job trains against the bare base.
    """

    def __init__(self, model, tokenizer, base_model: str, fingerprint: str | None = None):
        from ..models import keep_4bit_weights_unpacked
        from .catalog import base_fingerprint

        keep_4bit_weights_unpacked(model)
        self.model, self.tokenizer, self.base_model = model, tokenizer, base_model
        self.fingerprint = fingerprint or base_fingerprint(model)
        self.module_names = linear_module_names(model)

    def _generate(self, prompts: list[str], max_new_tokens: int = 24) -> list[str]:
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(prompts), 16):
                enc = self.tokenizer(prompts[i : i + 16], return_tensors="pt", padding=True, add_special_tokens=False,
                                     padding_side="left").to(next(self.model.parameters()).device)
                gen = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                          pad_token_id=self.tokenizer.pad_token_id)
                width = enc["input_ids"].shape[1]
                out += [self.tokenizer.decode(g[width:], skip_special_tokens=True).strip() for g in gen]
        return out

    def train(self, job: dict[str, Any]) -> dict[str, Any]:
        from .behaviour import behaviour_examples

        preset = job["preset"]
        if isinstance(preset, dict):
            preset = TrainPreset.from_dict(preset)
        name, turns, kind = job["name"], aug.normalize_chunk(job["turns"]), job.get("kind", "chunk")
        start = time.perf_counter()
        if kind == "behaviour":
            examples, probes = behaviour_examples(self.tokenizer, self._generate, job["behaviours"]), []
            preset = preset.for_behaviour()
        else:
            examples, probes = aug.fact_examples(job["facts"], self.tokenizer, **preset_augment(preset))
            examples += [tuple(a) for a in job.get("anchors") or []][: preset.anchors]
        config = lora_config(preset, num_layers(self.model), self.module_names)
        peft = add_adapter(None, self.model, name, config)
        try:
            stats = train_alone(peft, self.tokenizer, name, examples, preset, job.get("seed", 0))
            row = chunk_row(name, kind, turns, preset, stats, peft.peft_config[name])
            if kind == "behaviour":
                row.update(behaviours=job["behaviours"], statements=[], probes=[])
            else:
                row.update(facts=job["facts"], statements=[f["text"] for f in job["facts"]], probes=probes,
                           supersedes=job.get("supersedes", []), notes=job.get("notes", []))
            art = adapter_artifact(name, kind, self.base_model, self.fingerprint, preset=preset.to_dict(),
                                   metrics=stats)
            files = adapter_files(peft, name, art)
        finally:
            self.model = peft.unload()  # back to the bare base for the next job
        return {"name": name, "row": row, "files": files, "fingerprint": self.fingerprint,
                "seconds": round(time.perf_counter() - start, 2)}
