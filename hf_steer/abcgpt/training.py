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
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import HfSteerError
from ..utils import atomic_write_json, set_seed
from . import registration  # noqa: F401  (Auto classes; one-line α errors)
from .configuration_abcgpt import AbcGPTConfig
from .modeling_abcgpt import AbcGPTForCausalLM
from .tokenization_abcgpt import build_char_tokenizer, encode

DATA_DIR = Path(__file__).parent / "data"
# The bundled sources, by the names the CLI and the bench use by default.
BUNDLED_SOURCES = {
    "tinystories": DATA_DIR / "tinystories.txt",
    "shakespeare": DATA_DIR / "tinyshakespeare.txt",
    "names": DATA_DIR / "names.txt",
}


# ------------------------------------------------------------------------------------------ sources


def parse_source_specs(specs: list[str]) -> dict[str, Path]:
    """``["tinystories=path.txt", "shakespeare"]`` -> {name: path}; a bare name picks a bundled source."""
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        name = name.strip()
        if not sep:
            if name not in BUNDLED_SOURCES:
                raise HfSteerError(
                    f"--source {spec!r} has no path: write NAME=PATH, or one of the bundled names {', '.join(BUNDLED_SOURCES)}"
                )
            path = str(BUNDLED_SOURCES[name])
        if not name or not path.strip():
            raise HfSteerError(f"--source {spec!r} is not NAME=PATH: write e.g. shakespeare=data/shakespeare.txt")
        if name in out:
            raise HfSteerError(f"--source name {name!r} is given twice: give each source its own name")
        out[name] = Path(path.strip()).expanduser()
    if len(out) < 2:
        raise HfSteerError(f"{len(out)} source(s) given: abcGPT needs two or more, e.g. --source tinystories --source shakespeare")
    return out


def read_source(name: str, path: Path) -> str:
    """The text of one source file, with a clear error for a missing, unreadable or empty file."""
    path = Path(path)
    if not path.is_file():
        raise HfSteerError(f"corpus file for source {name!r} is missing: {path} does not exist; check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise HfSteerError(f"corpus file for source {name!r} is not UTF-8 text ({path}): convert it to UTF-8") from e
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


def build_corpus(sources: dict[str, Path], tokenizer, val_fraction: float, block_size: int) -> Corpus:
    train, val = {}, {}
    for name, path in sources.items():
        tr, va = split_text(read_source(name, path), val_fraction)
        train[name], val[name] = encode(tokenizer, tr), encode(tokenizer, va)
        for part, ids in (("training", train[name]), ("validation", val[name])):
            if len(ids) <= block_size + 1:
                raise HfSteerError(
                    f"corpus file for source {name!r} is too short: its {part} part has {len(ids)} characters, "
                    f"fewer than block_size+2={block_size + 2}; use a longer file or a smaller --block-size"
                )
    return Corpus(list(sources), train, val)


# ------------------------------------------------------------------------------------------ sampling


def sample_mixtures(rng: np.random.Generator, n_rows: int, n_sources: int, concentration: float = 0.5) -> np.ndarray:
    """(n_rows, N) mixtures ~ Dirichlet(concentration); for N=2, column 1 is α ~ Beta(c, c)."""
    return rng.dirichlet([concentration] * n_sources, size=n_rows)


def sample_sources(rng: np.random.Generator, mixtures: np.ndarray) -> np.ndarray:
    """One source index per row ~ Categorical(row's mixture); for N=2, Bernoulli(α)."""
    cdf = np.cumsum(mixtures, axis=1)
    u = rng.random((mixtures.shape[0], 1))
    return np.minimum((u > cdf).sum(axis=1), mixtures.shape[1] - 1)


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


@dataclass
class TrainConfig:
    """Everything one training run needs; validated once in ``__post_init__``."""

    sources: dict[str, str]
    output_dir: str
    n_embd: int = 128
    n_layer: int = 4
    n_head: int = 4
    block_size: int = 128
    batch_size: int = 16
    steps: int = 600
    learning_rate: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 30
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    dropout: float = 0.0
    gated: bool = True
    gate_residual: bool = True
    gate_mlp: bool = True
    gate_heads: bool = True
    gate_function: str = "cos2"
    gate_width: float = 0.35
    gate_floor: float = 0.0
    concentration: float = 0.5
    fixed_mixture: list[float] | None = None  # a specialist: always this mixture (e.g. one-hot)
    val_fraction: float = 0.1
    lowercase: bool = False
    eval_batches: int = 4
    log_every: int = 50
    save_every: int = 200
    keep_checkpoints: int = 1
    seed: int = 0
    resume: bool = False
    write_artifacts: bool = True  # hf_steer.json + α-curve PNG beside the weights
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        for key in ("n_embd", "n_layer", "n_head", "block_size", "batch_size", "steps", "eval_batches"):
            if int(getattr(self, key)) < 1:
                raise HfSteerError(f"{key} is {getattr(self, key)}: use a positive integer")
        if self.n_embd % self.n_head:
            raise HfSteerError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}: pick a multiple")
        if not 0.0 < self.val_fraction < 0.5:
            raise HfSteerError(f"val_fraction is {self.val_fraction}: use a fraction in (0, 0.5), e.g. 0.1")
        if self.gate_function not in ("cos2", "gaussian"):
            raise HfSteerError(f"gate_function is {self.gate_function!r}: use cos2 or gaussian")
        if not 0.0 <= self.gate_floor < 1.0:
            raise HfSteerError(f"gate_floor is {self.gate_floor}: use a value in [0, 1), e.g. 0 or 0.2")
        if self.fixed_mixture is not None:
            w = np.asarray(self.fixed_mixture, dtype=float)
            if w.shape != (len(self.sources),) or (w < 0).any() or abs(w.sum() - 1) > 1e-6:
                raise HfSteerError(
                    f"fixed_mixture is {self.fixed_mixture}: give {len(self.sources)} non-negative weights summing to 1"
                )


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
        eos_token_id=0,
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


def _latest_checkpoint(output_dir: Path) -> Path | None:
    ckpts = sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    ckpts = [p for p in ckpts if (p / "abc_state.json").is_file()]  # a half-written one has no state file yet
    return ckpts[-1] if ckpts else None


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

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    set_seed(cfg.seed)
    out = Path(cfg.output_dir)
    tokenizer, corpus = prepared if prepared is not None else prepare_data(cfg)
    names = corpus.names

    model = AbcGPTForCausalLM(make_model_config(cfg, len(tokenizer), names))
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.learning_rate,
        betas=(0.9, 0.99),
    )
    model, optimizer = accelerator.prepare(model, optimizer)

    start_step, log = 0, []
    ckpt = _latest_checkpoint(out) if cfg.resume else None
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        state = json.loads((ckpt / "abc_state.json").read_text())
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
        if cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
            _save_checkpoint(accelerator, out, step + 1, log, cfg.keep_checkpoints)

    tokens_per_second = tokens_seen / train_seconds if train_seconds else float("nan")
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.eval()
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
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


def _save_checkpoint(accelerator, out: Path, step: int, log: list[dict], keep: int) -> None:
    path = out / f"checkpoint-{step}"  # Trainer's naming: `hf-steer push` leaves checkpoint-* folders out
    accelerator.save_state(str(path))
    if accelerator.is_main_process:
        # Written last: a checkpoint without it was interrupted mid-save and is skipped on resume.
        atomic_write_json(path / "abc_state.json", {"step": step, "log": log})
        older = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[:-keep]
        for old in older:
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
    atomic_write_json(
        out / "hf_steer.json",
        {
            "method": "abcgpt",
            "artifact": "custom_code_model",
            "base_model": None,
            "datasets": [str(p) for p in cfg.sources.values()],
            "hyperparameters": {k: v for k, v in asdict(cfg).items() if k not in ("sources", "output_dir", "extra")},
            "metrics": metrics,
            "plots": ["alpha_curves.png"],
            "description": (
                f"abcGPT: a {n_params / 1e6:.2f}M-parameter character-level GPT trained from scratch on "
                f"{len(corpus.names)} sources with a source dial ({dial}). The metrics are held-out loss "
                "(nats/char, last 10% of each source) per source at each dial setting"
                + ("" if len(corpus.names) == 2 else " (t = fraction of the way from equal parts to that source)")
                + ". Every residual channel, MLP unit and "
                "attention head has a frozen source position m; a spotlight gate lets through units near alpha. "
                "Load with AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True) and call "
                "generate(input_ids, alpha=0.3)."
            ),
        },
    )
