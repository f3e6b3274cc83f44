"""Train an abc adapter with ``transformers.Trainer`` on N text sources, with abcGPT's dial schedule.

Every optimizer step draws its rows exactly as abcGPT's own training does, through the same function
(:func:`hf_steer.abcgpt.training.sample_batch`, generator seeded by ``(seed, 0, step)``): each row draws a
mixture α ~ Dirichlet(½, …, ½) (two sources: Beta(½, ½)), then its source ~ Categorical(α) (Bernoulli(α)),
then a random window of that source's training text, and the model sees the row's α. The rows of step k are
items ``k·B … k·B+B-1`` of :class:`DialRows`, read in order (sequential sampling), so a run resumed by the
Trainer from ``checkpoint-N`` draws exactly the rows the uninterrupted run would have drawn.

``vertex_fraction`` (default 0) can move the dial of that share of the rows to the vertex of the source each
was drawn from (α exactly 0 or 1; :func:`to_vertices`, its own generator seeded by ``(seed, 1, step)``, so the rows,
their sources and windows are unchanged). Beta(½, ½) alone gives the ends few rows near them: a TinyStories row
comes with α ~ Beta(½, 3/2) (median 0.16), so the α=0 end is trained mostly by rows that are only partly on there.
Measured on the bundled model (80 steps, normalized gates, held-out loss over the single-source LoRA at the
matching end; docs/abc_adapter.md): 0 (plain Beta(½, ½)) TinyStories +4.01% / Shakespeare +0.75%; 0.25: +3.41% /
+0.30%; 0.35: +3.53% / +0.37%; 0.5: +3.63% / +0.50%, and the middle worse (α=½ over the mixture LoRA +1.1%/+0.6%, +1.6%/+0.9%,
+1.9%/+1.0%, +2.4%/+1.2%); 0.25 with ``gate_floor=0.2``: +3.56% / +0.64%, middle +0.9%/+0.4%, and a narrower dial (every unit
always carries some of both sources). Those runs took 8 rows a step; with 16 (the rows of both specialists, the
bench's pooled rows since 2026-12-03) plain Beta(½, ½) reaches the ends (+0.58% / +1.02%) with a smoother dial
(largest step 0.31) than 0.25 (+0.27% / +0.91%, largest step 0.36), so 0 is the default again.

The plain LoRA baselines of the bench use the same code with ``gated=False``: the same rows (the mixture
LoRA) or rows of one source only (``fixed_mixture``, the specialists), the same rank, layers and steps.
Held-out text is the END of each source file (``val_fraction``); training windows never reach it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from ...artifacts import BUNDLED_HUB_ID, Artifact, base_model_name, hub_model_id
from ...errors import HfSteerError
from ...models import keep_4bit_weights_unpacked, load_model
from ...utils import atomic_write_json
from ..training import Corpus, build_corpus, sample_batch
from .adapt_config import AbcAdaptConfig
from .config import AbcAdapterConfig

CURVES_PNG = "alpha_curves.png"


class DialRows(torch.utils.data.Dataset):
    """Item ``i`` is row ``i % B`` of step ``i // B``'s batch from :func:`sample_batch` (abcGPT's sampler)."""

    def __init__(self, corpus: Corpus, cfg: AbcAdaptConfig, with_alpha: bool = True) -> None:
        self.corpus, self.cfg, self.with_alpha = corpus, cfg, with_alpha
        self._step, self._batch = -1, None

    def __len__(self) -> int:
        return self.cfg.steps * self.cfg.batch_size

    def batch(self, step: int):
        """(input_ids (B, T), mixtures (B, N), source index per row) of optimizer step ``step``."""
        if step != self._step:
            rng = np.random.default_rng([self.cfg.seed, 0, step])
            ids, mixtures, sources = sample_batch(self.corpus, rng, self.cfg.batch_size, self.cfg.block_size,
                                                  self.cfg.fixed_mixture, self.cfg.concentration)
            if self.cfg.vertex_fraction and self.cfg.fixed_mixture is None:
                mixtures = to_vertices(mixtures, sources, self.cfg.vertex_fraction, np.random.default_rng([self.cfg.seed, 1, step]))
            self._batch, self._step = (ids, mixtures, sources), step
        return self._batch

    def __getitem__(self, i: int) -> dict:
        step, row = divmod(int(i), self.cfg.batch_size)
        ids, mixtures, _ = self.batch(step)
        item = {"input_ids": ids[row], "labels": ids[row]}
        if self.with_alpha:
            item["alpha"] = mixtures[row]
        return item


def to_vertices(mixtures: torch.Tensor, sources: np.ndarray, fraction: float, rng: np.random.Generator) -> torch.Tensor:
    """Each row, with probability ``fraction``, gets the one-hot dial of the source it was drawn from.

    The rows (their sources and windows) are those abcGPT's sampler drew; only their dial moves to the vertex,
    so the ends of the dial are trained at exactly α=0 / α=1 instead of only near them.
    """
    out = mixtures.clone()
    pick = rng.random(len(sources)) < fraction
    for row in np.flatnonzero(pick):
        out[row] = 0.0
        out[row, int(sources[row])] = 1.0
    return out


class AbcAdaptTrainer(Trainer):
    """``Trainer`` for abc adapters: rows are read in order (they are the dial schedule) and the per-row
    ``alpha`` column always reaches the model, whatever ``remove_unused_columns`` says."""

    def __init__(self, model=None, *args, **kwargs) -> None:
        if model is not None:
            keep_4bit_weights_unpacked(model)  # no packed AVX512-BF16 4-bit path (no autograd there)
        super().__init__(model, *args, **kwargs)

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return torch.utils.data.SequentialSampler(dataset)

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if "alpha" not in self._signature_columns:
            self._signature_columns.append("alpha")


def training_arguments(cfg: AbcAdaptConfig) -> TrainingArguments:
    """The Trainer's arguments for ``cfg``: AdamW, linear warm-up then cosine down to ``min_lr_ratio`` (abcGPT's
    schedule), one checkpoint kept, CPU in fp32 when there is no GPU."""
    cuda = torch.cuda.is_available()
    return TrainingArguments(
        output_dir=cfg.output_dir,
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": cfg.min_lr_ratio},
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        optim="adamw_torch",
        max_grad_norm=1.0,
        logging_steps=max(1, cfg.logging_steps),
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=max(1, cfg.save_steps),
        save_total_limit=1,
        report_to="none",
        use_cpu=not cuda,
        bf16=False,
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=0,
        train_sampling_strategy="sequential",
        remove_unused_columns=False,
        disable_tqdm=not cfg.progress,
    )


def adapter_config(cfg: AbcAdaptConfig, names: list[str]):
    """The PEFT config of the run: an :class:`AbcAdapterConfig` or, with ``gated=False``, a plain ``LoraConfig``
    with the same rank, scaling, targets and layers."""
    targets = cfg.target_modules
    targets = "all-linear" if targets in (["all-linear"], "all-linear") else list(targets)
    common = dict(r=cfg.r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=targets,
                  layers_to_transform=cfg.layer_indices(), task_type="CAUSAL_LM")
    if not cfg.gated:
        from peft import LoraConfig

        return LoraConfig(**common)
    return AbcAdapterConfig(
        **common, unit_size=cfg.unit_size, source_names=list(names), gate_function=cfg.gate_function,
        gate_width=cfg.gate_width, gate_floor=cfg.gate_floor, gate_normalize=cfg.gate_normalize, m_seed=cfg.seed,
        balanced_positions=cfg.balanced_positions,
    )


def wrap_model(model, cfg: AbcAdaptConfig, names: list[str]):
    """``get_peft_model`` for the run, with PEFT's complaints about the targets turned into one line."""
    from peft import get_peft_model

    from . import registration  # noqa: F401  (the ABC_ADAPTER type)

    torch.manual_seed(cfg.seed)  # the adapter's init
    try:
        return get_peft_model(model, adapter_config(cfg, names))
    except HfSteerError:
        raise
    except ValueError as e:
        raise HfSteerError(
            f"target_modules {cfg.target_modules} / layers {cfg.layers!r} do not fit this model "
            f"({str(e).splitlines()[0][:160]}): check the layer names and block indices"
        ) from None


def prepare_corpus(cfg: AbcAdaptConfig, tokenizer) -> Corpus:
    """Token ids of every source with the base model's tokenizer, split into training / held-out (the END)."""
    return build_corpus(
        {n: Path(p) for n, p in cfg.sources.items()}, tokenizer, cfg.val_fraction, cfg.block_size, encoder=encode_text
    )


def encode_text(tokenizer, text: str) -> torch.Tensor:
    """Whole text -> 1-D LongTensor of the tokenizer's ids (no special tokens); 100k-character chunks keep
    memory flat on megabyte files. (abcGPT's own encoder is a character lookup; a pretrained model's
    tokenizer is subword, so the adapter encodes through it.)"""
    ids: list[int] = []
    step = 100_000
    for start in range(0, len(text), step):
        ids.extend(tokenizer(text[start : start + step], add_special_tokens=False)["input_ids"])
    return torch.tensor(ids, dtype=torch.long)


def train_adapter(cfg: AbcAdaptConfig, model=None, tokenizer=None, corpus: Corpus | None = None, log=print,
                  callbacks: list | None = None):
    """Train (or resume) one adapter; saves it, the tokenizer, ``training_log.json`` and ``hf_steer.json``.

    ``model`` / ``tokenizer`` / ``corpus`` may be passed in (the bench loads the base once and passes a copy);
    by default the base is loaded from ``cfg.base_model``. ``callbacks``: extra ``TrainerCallback``s.
    Returns the trained ``PeftModel``.
    """
    if model is None:
        model, tokenizer = load_model(cfg.base_model, load_in_4bit=cfg.load_in_4bit)
    elif tokenizer is None:
        raise HfSteerError("train_adapter got a model without its tokenizer: pass both")
    peft_model = wrap_model(model, cfg, list(cfg.sources))  # a bad target fails before the sources are read
    corpus = corpus or prepare_corpus(cfg, tokenizer)
    if list(corpus.names) != list(cfg.sources):
        raise HfSteerError(f"corpus sources {corpus.names} differ from the config's {list(cfg.sources)}: build it from cfg")
    out = Path(cfg.output_dir)
    resume = get_last_checkpoint(str(out)) if cfg.resume and out.is_dir() else None
    if resume:
        log(f"resuming from {resume}")
    trainer = AbcAdaptTrainer(
        model=peft_model, args=training_arguments(cfg), train_dataset=DialRows(corpus, cfg, with_alpha=cfg.gated),
        callbacks=callbacks,
    )
    result = trainer.train(resume_from_checkpoint=resume)
    peft_model.eval()
    out.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    history = [h for h in trainer.state.log_history if "loss" in h]
    atomic_write_json(out / "training_log.json", {
        "log": history, "train_runtime_s": result.metrics.get("train_runtime"),
        "train_tokens": cfg.steps * cfg.batch_size * cfg.block_size, "resumed_from": resume,
    })
    if cfg.gated:
        write_artifact(out, peft_model, corpus, cfg)
    return peft_model


def write_artifact(out: Path, model, corpus: Corpus, cfg: AbcAdaptConfig, curves: dict | None = None,
                   reference: dict | None = None, metrics_extra: dict | None = None) -> Artifact:
    """``hf_steer.json`` (method ``abc_adapter``, artifact ``adapter``) and the α-curve PNG the card shows.

    ``curves`` (held-out loss per source at each α, from :func:`~hf_steer.abcgpt.evaluation.loss_by_alpha`) is
    measured here with ``cfg.eval_windows`` windows when not given; ``reference`` may hold ``specialist`` /
    ``mixture`` losses per source, drawn as dashed / dotted lines.
    """
    from ..evaluation import ALPHA_GRID, loss_by_alpha, plot_alpha_curves

    names = corpus.names
    plots, metrics = [], {}
    if curves is None and cfg.eval_windows:
        curves = loss_by_alpha(model, corpus, cfg.block_size, 1, cfg.eval_windows)
    if curves:
        reference = reference or {}
        plot_alpha_curves(curves, out / CURVES_PNG, title=f"abc adapter: held-out loss along the dial ({', '.join(names)})",
                          specialist=reference.get("specialist"), mixture=reference.get("mixture"))
        plots.append(CURVES_PNG)
        label = "alpha" if len(names) == 2 else "t"
        metrics = {f"{label}={a}": {n: curves[n][i] for n in names} for i, a in enumerate(ALPHA_GRID)}
    metrics.update(metrics_extra or {})
    dial = (f"alpha=0 is {names[0]}, alpha=1 is {names[1]}" if len(names) == 2
            else f"alpha is a mixture over ({', '.join(names)})")
    peft_config = model.peft_config["default"]
    base = base_model_name(cfg.base_model)
    art = Artifact(
        method="abc_adapter",
        artifact="adapter",
        base_model=base,
        datasets=[str(p) for p in cfg.sources.values()],
        hyperparameters={k: v for k, v in asdict(cfg).items() if k not in ("sources", "output_dir", "resume", "progress")},
        metrics=metrics,
        plots=plots,
        description=(
            f"An abc adapter: abcGPT's source dial on {base}. A rank-{cfg.r} LoRA whose rank components each have a "
            f"frozen source position m and are gated by a spotlight around the dial ({dial}); trained on "
            f"{len(names)} sources with the dial drawn from Beta(1/2, 1/2) (Dirichlet for more sources) and each row's "
            "source drawn from it. The metrics are held-out loss (nats/token, last "
            f"{cfg.val_fraction:.0%} of each source) per source at each dial setting"
            + ("" if len(names) == 2 else " (t = fraction of the way from equal parts to that source)")
            + ". Load with `from hf_steer.abcgpt.adapter import AbcAdapterConfig` (this registers the method with "
            "PEFT), then `PeftModel.from_pretrained(base, repo)` and `model.generate(input_ids, alpha=0.3)`."
        ),
        extra={"source_names": list(names), "peft_type": peft_config.peft_type},
    )
    art.save(out)
    return art


def load_adapter(path: str | os.PathLike, base_model: str | None = None, device: str | None = None):
    """(PeftModel, tokenizer) of a saved abc adapter on its base model (the recorded one unless ``base_model``).

    The recorded base is the bundled model's cache folder when the adapter was trained on it; any machine
    with hf_steer has that model, so it is loaded from there (a Hub id otherwise, a path when it exists).
    """
    from peft import PeftModel

    from . import registration  # noqa: F401
    from .config import ABC_ADAPTER_PEFT_TYPE

    folder = Path(path).expanduser()
    config_file = folder / "adapter_config.json"
    if not config_file.is_file():
        raise HfSteerError(f"adapter folder {folder} has no adapter_config.json: pass a folder written by `hf-steer abc adapt train`")
    saved = json.loads(config_file.read_text(encoding="utf-8"))
    if saved.get("peft_type") != ABC_ADAPTER_PEFT_TYPE:
        raise HfSteerError(
            f"adapter {folder} is a {saved.get('peft_type')} adapter, not an abc adapter: load it with peft.PeftModel"
        )
    if base_model is None:
        recorded = saved.get("base_model_name_or_path")
        if recorded and Path(recorded).exists():
            base_model = recorded
        elif recorded and hub_model_id(recorded) != BUNDLED_HUB_ID:
            base_model = recorded
    model, tokenizer = load_model(base_model, device=device)
    peft_model = PeftModel.from_pretrained(model, str(folder))
    peft_model.eval()
    return peft_model, tokenizer

