"""Train an abcGPT on N sources with the dial sampled per row.

Each batch row draws its own mixture α ~ Dirichlet(½, …, ½) and then its source ~ Categorical(α); with
two sources that is α ~ Beta(½, ½) and source ~ Bernoulli(α), so Shakespeare rows mostly come with α
near 1. The row is a random window of that source's training text and the model sees the row's α.

The loop runs through ``accelerate`` (CPU, one GPU, or ``accelerate launch`` data parallel): every
process draws its own rows from a generator seeded by (seed, process, step), so a resumed run draws
the same rows it would have drawn without the interruption. Checkpoints are ``accelerator.save_state``
folders ``<output_dir>/checkpoint-N``; ``resume=True`` continues from the newest.
Validation text is the END of each source file (``val_fraction``), never the middle.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..artifacts import Artifact, read_json_object
from ..errors import HfSteerError
from ..utils import atomic_write_json, set_seed
from . import registration  # noqa: F401  (Auto classes; one-line α errors)
from .config import BUNDLED_SOURCES, DATA_DIR, TrainConfig, parse_source_specs  # noqa: F401  (re-exported)
from .configuration_abcgpt import AbcGPTConfig
from .modeling_abcgpt import AbcGPTForCausalLM
from .sampling import sample_mixtures, sample_sources
from .tokenization_abcgpt import build_char_tokenizer, encode

# ------------------------------------------------------------------------------------------ sources


def read_source(name: str, path: Path) -> str:
    """The text of one source file, with a clear error for a missing, unreadable or empty file."""
    path = Path(path)
    if path.is_dir():
        raise HfSteerError(f"corpus file for source {name!r} is a folder: {path}; point at a text file")
    if not path.is_file():
        raise HfSteerError(f"corpus file for source {name!r} is missing: {path} does not exist; check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise HfSteerError(f"corpus file for source {name!r} is not UTF-8 text ({path}): convert it to UTF-8") from e
    except OSError as e:
        raise HfSteerError(f"corpus file for source {name!r} cannot be read ({path}: {e.strerror}): check it") from None
    if not text.strip():
        raise HfSteerError(f"corpus file for source {name!r} is empty: {path} has no text; point at a file with text")
    return text


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """(train, validation): validation is the last ``val_fraction`` of the text, so no window crosses over."""
    cut = int(len(text) * (1.0 - val_fraction))
    return text[:cut], text[cut:]


@dataclass
class Corpus:
    """Token ids per source, split into training and held-out (end-of-file) parts."""

    names: list[str]
    train: dict[str, torch.Tensor]
    val: dict[str, torch.Tensor]


def build_corpus(sources: dict[str, Path], tokenizer, val_fraction: float, block_size: int, encoder=None) -> Corpus:
    """Read, split and encode every source. ``encoder(tokenizer, text) -> LongTensor`` defaults to abcGPT's
    character lookup (:func:`encode`); the abc adapter passes a subword encoder for a pretrained model's tokenizer."""
    encoder = encoder or encode
    unit = "characters" if encoder is encode else "tokens"
    train, val = {}, {}
    for name, path in sources.items():
        tr, va = split_text(read_source(name, path), val_fraction)
        train[name], val[name] = encoder(tokenizer, tr), encoder(tokenizer, va)
        for part, ids in (("training", train[name]), ("validation", val[name])):
            if len(ids) <= block_size + 1:
                raise HfSteerError(
                    f"corpus file for source {name!r} is too short: its {part} part has {len(ids)} {unit}, "
                    f"fewer than block_size+2={block_size + 2}; use a longer file or a smaller --block-size"
                )
    return Corpus(list(sources), train, val)


# ------------------------------------------------------------------------------------------ sampling


def sample_batch(
    corpus: Corpus,
    rng: np.random.Generator,
    batch_size: int,
    block_size: int,
    fixed_mixture: list[float] | None = None,
    concentration: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(input_ids (B, T), mixtures (B, N), source index per row) drawn from the training splits."""
    n = len(corpus.names)
    if fixed_mixture is not None:
        mixtures = np.tile(np.asarray(fixed_mixture, dtype=np.float64), (batch_size, 1))
    else:
        mixtures = sample_mixtures(rng, batch_size, n, concentration)
    sources = sample_sources(rng, mixtures)
    rows = []
    for s in sources:
        ids = corpus.train[corpus.names[s]]
        start = int(rng.integers(0, len(ids) - block_size))
        rows.append(ids[start : start + block_size])
    return torch.stack(rows), torch.tensor(mixtures, dtype=torch.float32), sources


# ------------------------------------------------------------------------------------------ training


def make_model_config(cfg: TrainConfig, vocab_size: int, names: list[str]) -> AbcGPTConfig:
    return AbcGPTConfig(
        vocab_size=vocab_size,
        n_positions=cfg.block_size,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        dropout=cfg.dropout,
        source_names=names,
        gate_residual=cfg.gated and cfg.gate_residual,
        gate_mlp=cfg.gated and cfg.gate_mlp,
        gate_heads=cfg.gated and cfg.gate_heads,
        gate_function=cfg.gate_function,
        gate_width=cfg.gate_width,
        gate_floor=cfg.gate_floor,
        m_seed=cfg.seed,
        # No end of text: training reads windows of running text, so the model never learns to stop, and an
        # eos id would only cut generation short when <|endoftext|> is sampled by chance. nanoGPT has none.
        eos_token_id=None,
        pad_token_id=0,
        bos_token_id=0,
    )


def _lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup then cosine decay to ``min_lr_ratio`` of the peak (nanoGPT's schedule)."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    ratio = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return cfg.learning_rate * ratio


_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# The model settings a checkpoint must share with the run that resumes it (else its weights do not fit).
_RESUME_KEYS = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "source_names", "gate_residual",
                "gate_mlp", "gate_heads", "gate_function", "gate_width", "gate_floor", "m_seed")


def _latest_checkpoint(output_dir: Path) -> Path | None:
    ckpts = [(int(m.group(1)), p) for p in output_dir.glob("checkpoint-*") if (m := _CHECKPOINT.match(p.name))]
    ckpts = [(n, p) for n, p in sorted(ckpts) if (p / "abc_state.json").is_file()]  # half-written: no state file yet
    return ckpts[-1][1] if ckpts else None


def _resume_state(out: Path, cfg: TrainConfig, model_config: AbcGPTConfig) -> tuple[Path, dict]:
    """(checkpoint, its abc_state.json) to resume from, or one line saying why the run cannot resume."""
    ckpt = _latest_checkpoint(out) if out.is_dir() else None
    if ckpt is None:
        raise HfSteerError(
            f"no checkpoint in {out}: run once without --resume (a run saves checkpoint-N every --save-every steps "
            "and at its last step)"
        )
    state = read_json_object(ckpt / "abc_state.json", "checkpoint state")
    step = state.get("step")
    if not isinstance(step, int) or not isinstance(state.get("log"), list):
        raise HfSteerError(f"checkpoint state {ckpt / 'abc_state.json'} has no step and log: remove {ckpt.name}")
    saved = state.get("model") or {}
    now = model_config.to_dict()
    differ = [f"{k}={saved[k]!r} (now {now[k]!r})" for k in _RESUME_KEYS if k in saved and saved[k] != now[k]]
    if differ:
        raise HfSteerError(
            f"{ckpt} was trained with {', '.join(differ)}: resume with the same sources and size flags "
            f"(see {out / 'training_args.json'}) or train into a new --output-dir"
        )
    if step >= cfg.steps:
        raise HfSteerError(
            f"{ckpt} is already at step {step} of --steps {cfg.steps}: pass a larger --steps to train on"
        )
    return ckpt, state


def check_output_dir(path: str | os.PathLike) -> Path:
    """The output folder, created if missing, or one line when it is a file or cannot be written."""
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise HfSteerError(f"output_dir {out} is a file: pass a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HfSteerError(f"output_dir {out} cannot be created ({e.strerror}): pick a folder you can write") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise HfSteerError(f"output_dir {out} is not writable: pick a folder you can write")
    return out


def estimated_training_bytes(cfg: TrainConfig, vocab_size: int) -> int:
    """Rough peak memory of one training process: fp32 weights, gradients and two AdamW moments, plus the
    activations kept for backward (about 10·C + 3·inner floats per token per layer, the attention
    probabilities H·T when they are materialised, and the logits). Measured on CPU (3 steps, growth of
    peak RSS during ``train``): 118 MiB estimated vs 119 MiB at 4x128, batch 16x128; 2044 vs 1721 MiB at
    6x384, batch 32x256."""
    c, layers, t, b, h = cfg.n_embd, cfg.n_layer, cfg.block_size, cfg.batch_size, cfg.n_head
    inner = 4 * c
    params = vocab_size * c + t * c + layers * (4 * c * c + 2 * c * inner + 11 * c + inner) + 2 * c
    per_token = layers * (10 * c + 3 * inner + h * t) + 3 * vocab_size
    return 16 * params + 4 * b * t * per_token


def check_memory(cfg: TrainConfig, vocab_size: int) -> None:
    """One line, before anything is allocated, when the model cannot fit in the memory this machine has free."""
    import psutil  # an accelerate dependency

    need = estimated_training_bytes(cfg, vocab_size)
    if torch.cuda.is_available():
        free, where = torch.cuda.mem_get_info()[0], "GPU"
    else:
        free, where = psutil.virtual_memory().available, "RAM"
    if need > free:
        raise HfSteerError(
            f"a {cfg.n_layer}x{cfg.n_embd} model with batch {cfg.batch_size}x{cfg.block_size} needs about "
            f"{need / 2**30:.1f} GiB but {free / 2**30:.1f} GiB of {where} is free: lower --n-embd, --n-layer, "
            "--batch-size or --block-size"
        )


@dataclass
class TrainResult:
    output_dir: Path
    model: AbcGPTForCausalLM
    tokenizer: object
    corpus: Corpus
    tokens_per_second: float
    final_train_loss: float
    log: list[dict]
    is_main_process: bool = True


def prepare_data(cfg: TrainConfig):
    """(tokenizer, corpus) for ``cfg``'s sources; the bench builds it once and shares it between its runs.

    The vocabulary comes from the training parts only; a character that appears only in held-out text
    becomes <unk>, as it would for any unseen text.
    """
    sources = {name: Path(p) for name, p in cfg.sources.items()}
    tokenizer = build_char_tokenizer(
        (split_text(read_source(n, p), cfg.val_fraction)[0] for n, p in sources.items()), lowercase=cfg.lowercase
    )
    return tokenizer, build_corpus(sources, tokenizer, cfg.val_fraction, cfg.block_size)


def train(cfg: TrainConfig, prepared: tuple | None = None) -> TrainResult:
    """Train (or resume) one model; saves weights, tokenizer, config and ``hf_steer.json`` to ``output_dir``.

    ``prepared`` is an optional (tokenizer, corpus) from :func:`prepare_data` with the same sources.
    """
    from accelerate import Accelerator

    out = Path(cfg.output_dir).expanduser()
    tokenizer, corpus = prepared if prepared is not None else prepare_data(cfg)
    names = corpus.names
    model_config = make_model_config(cfg, len(tokenizer), names)
    ckpt, state = _resume_state(out, cfg, model_config) if cfg.resume else (None, None)
    if not cfg.resume and out.is_dir() and (old := _latest_checkpoint(out)) is not None:
        # Training over it would leave a checkpoint of another run for a later --resume to pick up.
        raise HfSteerError(
            f"{out} already holds {old.name} of an earlier run: pass --resume to continue it, or train into a new "
            "--output-dir (or delete the old run first)"
        )
    check_memory(cfg, len(tokenizer))
    check_output_dir(out)

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    set_seed(cfg.seed)
    model = AbcGPTForCausalLM(model_config)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.learning_rate,
        betas=(0.9, 0.99),
    )
    model, optimizer = accelerator.prepare(model, optimizer)

    start_step, log = 0, []
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        start_step, log = state["step"], state["log"]
        accelerator.print(f"resumed from {ckpt} at step {start_step}")

    model.train()
    tokens_seen, train_seconds, recent = 0, 0.0, []
    for step in range(start_step, cfg.steps):
        rng = np.random.default_rng([cfg.seed, accelerator.process_index, step])
        x, mixtures, _ = sample_batch(corpus, rng, cfg.batch_size, cfg.block_size, cfg.fixed_mixture, cfg.concentration)
        x, mixtures = x.to(accelerator.device), mixtures.to(accelerator.device)
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, cfg)
        t0 = time.perf_counter()
        loss = model(input_ids=x, alpha=mixtures, labels=x, use_cache=False).loss
        accelerator.backward(loss)
        if cfg.grad_clip:
            accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        train_seconds += time.perf_counter() - t0
        tokens_seen += x.numel()
        recent.append(loss.item())
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            entry = {"step": step + 1, "train_loss": float(np.mean(recent)), "lr": _lr_at(step, cfg)}
            log.append(entry)
            accelerator.print(json.dumps(entry))
            recent = []
        if cfg.save_every and ((step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps):
            # The last step is always saved too, so `--resume --steps MORE` continues a finished run.
            _save_checkpoint(accelerator, out, step + 1, log, cfg.keep_checkpoints, model_config)

    tokens_per_second = tokens_seen / train_seconds if train_seconds else float("nan")
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.eval()
    if accelerator.is_main_process:
        register_auto_classes()
        unwrapped.save_pretrained(out)
        tokenizer.save_pretrained(out)
        atomic_write_json(out / "training_args.json", asdict(cfg))
        atomic_write_json(
            out / "training_log.json",
            {"log": log, "tokens_per_second": tokens_per_second, "num_processes": accelerator.num_processes},
        )
        if cfg.write_artifacts:
            write_artifact_files(out, unwrapped, tokenizer, corpus, cfg)
    accelerator.wait_for_everyone()
    final = log[-1]["train_loss"] if log else float("nan")
    return TrainResult(out, unwrapped, tokenizer, corpus, tokens_per_second, final, log, accelerator.is_main_process)


def _save_checkpoint(accelerator, out: Path, step: int, log: list[dict], keep: int, model_config: AbcGPTConfig) -> None:
    path = out / f"checkpoint-{step}"  # Trainer's naming: `hf-steer push` leaves checkpoint-* folders out
    accelerator.save_state(str(path))
    if accelerator.is_main_process:
        # Written last: a checkpoint without it was interrupted mid-save and is skipped on resume.
        saved = model_config.to_dict()
        atomic_write_json(path / "abc_state.json", {"step": step, "log": log, "model": {k: saved[k] for k in _RESUME_KEYS}})
        ckpts = sorted((int(m.group(1)), p) for p in out.glob("checkpoint-*") if (m := _CHECKPOINT.match(p.name)))
        for _, old in ckpts[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def register_auto_classes() -> None:
    """Make ``save_pretrained`` copy the modeling/config files and write ``auto_map`` (trust_remote_code loading)."""
    AbcGPTConfig.register_for_auto_class()
    AbcGPTForCausalLM.register_for_auto_class("AutoModelForCausalLM")


def write_artifact_files(
    out: Path, model, tokenizer, corpus: Corpus, cfg: TrainConfig, metrics_extra: dict | None = None,
    curves: dict | None = None, reference: dict | None = None,
) -> None:
    """``hf_steer.json`` (artifact custom_code_model) and the α-curve PNG, so ``hf-steer push`` can publish ``out``.

    ``curves`` (from :func:`~hf_steer.abcgpt.evaluation.loss_by_alpha`) is computed when not given;
    ``reference`` may hold ``specialist`` / ``mixture`` losses per source to draw as dashed lines.
    """
    from .evaluation import ALPHA_GRID, loss_by_alpha, plot_alpha_curves

    if curves is None:
        curves = loss_by_alpha(model, corpus, cfg.block_size, cfg.eval_batches, cfg.batch_size)
    reference = reference or {}
    plot_alpha_curves(curves, out / "alpha_curves.png", title=f"abcGPT held-out loss ({', '.join(corpus.names)})",
                      specialist=reference.get("specialist"), mixture=reference.get("mixture"))
    n_params = sum(p.numel() for p in model.parameters())
    # One column per dial setting, one row per source: how the card's metrics table reads best.
    label = "alpha" if len(corpus.names) == 2 else "t"
    metrics = {f"{label}={a}": {n: curves[n][i] for n in corpus.names} for i, a in enumerate(ALPHA_GRID)}
    metrics.update(metrics_extra or {})
    dial = (
        f"alpha=0 is {corpus.names[0]}, alpha=1 is {corpus.names[1]}"
        if len(corpus.names) == 2
        else f"alpha is a mixture over ({', '.join(corpus.names)})"
    )
    Artifact(
        method="abcgpt",
        artifact="custom_code_model",
        base_model=None,  # trained from scratch
        datasets=[str(p) for p in cfg.sources.values()],
        hyperparameters={k: v for k, v in asdict(cfg).items() if k not in ("sources", "output_dir", "extra")},
        metrics=metrics,
        plots=["alpha_curves.png"],
        description=(
            f"abcGPT: a {n_params / 1e6:.2f}M-parameter character-level GPT trained from scratch on "
            f"{len(corpus.names)} sources with a source dial ({dial}). The metrics are held-out loss "
            "(nats/char, last 10% of each source) per source at each dial setting"
            + ("" if len(corpus.names) == 2 else " (t = fraction of the way from equal parts to that source)")
            + ". Every residual channel, MLP unit and "
            "attention head has a frozen source position m; a spotlight gate lets through units near alpha. "
            "Load with AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True) and call "
            "generate(input_ids, alpha=0.3)."
        ),
    ).save(out)
