"""abcGPT tab: load a trained folder (or a starter built once on first use), slide α, read the voice change.

Backend over :mod:`hf_steer.abcgpt` (``load_abcgpt``, ``generate_text``, ``train`` / ``TrainConfig``,
``parse_mix``) and :mod:`hf_steer.abcgpt.adapter`: the folder may also hold an **abc adapter** (abcGPT's dial
as a PEFT adapter on a pretrained model, written by ``hf-steer abc adapt train`` or its bench), loaded on its
base model with ``load_adapter`` and sampled with ``generate(alpha=...)``; its length is then in tokens. With two sources the dial is one α slider; with N>2 there is one slider per source, kept
on the simplex (moving one rescales the others so the weights sum to 1).

The **source score** shown under the generations is measured, not asserted: the mean per-character
log-likelihood ratio of the generated text under two character-bigram models fitted on the sources'
training texts (add-one smoothing), ``log p_last(x) - log p_first(x)``: positive reads like the second
source. It needs no extra model, so it works on any folder whose training texts are still on disk
(``training_args.json`` names them; the bundled ones travel with hf_steer). The abcGPT benchmark's score
uses trained specialist models instead; a bigram model is cruder but costs nothing.

The loss-by-α curve is the one the training run measured on held-out text (``hf_steer.json`` metrics),
with the current dial marked.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import threading
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import HfSteerError
from .app import Studio, guarded, number, text

MAX_SOURCES = 6
ADAPTER_MAX_TOKENS = 200  # an abc adapter writes tokens on a pretrained base: seconds each on 2 CPU cores
STARTER_NAME = "abcgpt-starter-v1"
# The starter: small enough to train on first use (96 wide, 3 blocks, 600 steps of 16 x 64 characters:
# 30 s measured on 2 CPU cores shared with other jobs), big enough that the dial visibly moves the voice
# from TinyStories to Shakespeare (bigram source score of 3 samples: -0.11 at α=0, +0.09 at α=1).
STARTER = dict(n_embd=96, n_layer=3, n_head=4, block_size=64, batch_size=16, steps=600, learning_rate=3e-3,
               save_every=0, log_every=100, eval_batches=2)


class BigramScorer:
    """Character-bigram log-likelihoods per source (add-one smoothing over the characters seen)."""

    def __init__(self, texts: dict[str, str]):
        self.names = list(texts)
        alphabet = sorted(set("".join(texts.values())))
        self.index = {c: i for i, c in enumerate(alphabet)}
        size = len(alphabet) + 1  # last slot: a character no source has
        self.logp = {}
        for name, t in texts.items():
            counts = np.ones((size, size))
            ids = [self.index[c] for c in t]
            np.add.at(counts, (ids[:-1], ids[1:]), 1)
            self.logp[name] = np.log(counts / counts.sum(1, keepdims=True))

    def loglik(self, s: str) -> dict[str, float]:
        """Mean per-character log-likelihood of ``s`` under each source."""
        unk = len(self.index)
        ids = [self.index.get(c, unk) for c in s]
        if len(ids) < 2:
            return {n: 0.0 for n in self.names}
        return {n: float(lp[ids[:-1], ids[1:]].mean()) for n, lp in self.logp.items()}

    def score(self, texts: list[str]) -> dict:
        """``{"score": mean LLR last-vs-first source, "shares": {source: mean posterior}}`` over ``texts``."""
        lls = [self.loglik(t) for t in texts]
        first, last = self.names[0], self.names[-1]
        llr = float(np.mean([ll[last] - ll[first] for ll in lls]))
        shares = Counter()
        for t, ll in zip(texts, lls):
            # posterior over sources of the whole text (equal priors): softmax of the total log-likelihoods
            totals = {n: v * max(len(t) - 1, 1) for n, v in ll.items()}
            top = max(totals.values())
            w = {n: math.exp(v - top) for n, v in totals.items()}
            z = sum(w.values())
            for n in w:
                shares[n] += w[n] / z / len(lls)
        return {"score": round(llr, 4), "shares": {n: round(shares[n], 3) for n in self.names}}


def on_simplex(weights: list, moved: int) -> list[float]:
    """Weights with the ``moved`` one kept and the others rescaled so all sum to 1 (each in [0, 1])."""
    w = [number(x, f"weight {i + 1}", 0.0, 1.0) for i, x in enumerate(weights)]
    if not 0 <= moved < len(w):
        raise HfSteerError(f"moved slider {moved} is not one of the {len(w)} sources")
    rest = 1.0 - w[moved]
    others = sum(x for i, x in enumerate(w) if i != moved)
    n_other = len(w) - 1
    return [
        w[i] if i == moved else (w[i] / others * rest if others > 0 else rest / n_other)
        for i in range(len(w))
    ]


FOLDER_HINT = "pass a folder written by `hf-steer abc train` (abcGPT) or `hf-steer abc adapt train` (abc adapter)"


def folder_kind(folder: Path) -> str:
    """``"abcgpt"`` or ``"adapter"`` (an abc adapter), or one line saying why the folder is neither."""
    if folder.is_file():
        raise HfSteerError(f"{folder} is a file, not a folder: {FOLDER_HINT}")
    if not folder.is_dir():
        raise HfSteerError(f"folder {folder} does not exist: {FOLDER_HINT}")
    adapter_config = folder / "adapter_config.json"
    if adapter_config.is_file():
        from ..abcgpt.adapter.config import ABC_ADAPTER_PEFT_TYPE

        peft_type = _json_field(adapter_config, "peft_type")
        if peft_type != ABC_ADAPTER_PEFT_TYPE:
            raise HfSteerError(f"folder {folder} holds a {peft_type} adapter, not an abc adapter: {FOLDER_HINT}")
        return "adapter"
    config = folder / "config.json"
    if not config.is_file():
        raise HfSteerError(f"folder {folder} has no config.json or adapter_config.json: {FOLDER_HINT}")
    model_type = _json_field(config, "model_type")
    if model_type != "abcgpt":
        raise HfSteerError(f"folder {folder} holds a {model_type!r} model, not an abcGPT: {FOLDER_HINT}")
    return "abcgpt"


def _json_field(path: Path, key: str):
    try:
        return json.loads(path.read_text(encoding="utf-8")).get(key)
    except (ValueError, OSError, AttributeError):
        raise HfSteerError(f"{path} is not a readable config: {FOLDER_HINT}") from None


def source_texts(folder: Path) -> dict[str, str] | None:
    """The training part of each source the folder was trained on, or None when they are not on disk.

    An abcGPT names them in ``training_args.json``; an abc adapter in ``hf_steer.json`` (``datasets`` in the order
    of ``source_names``, ``val_fraction`` among the hyperparameters)."""
    from ..abcgpt.training import BUNDLED_SOURCES, read_source, split_text

    args_file, meta_file = folder / "training_args.json", folder / "hf_steer.json"
    if args_file.is_file():
        args = json.loads(args_file.read_text())
        sources, lowercase = args.get("sources") or {}, args.get("lowercase")
        val_fraction = args.get("val_fraction", 0.1)
    elif meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        names, paths = meta.get("source_names") or [], meta.get("datasets") or []
        if len(names) != len(paths):
            return None
        sources, lowercase = dict(zip(names, paths)), False
        val_fraction = (meta.get("hyperparameters") or {}).get("val_fraction", 0.1)
    else:
        return None
    out = {}
    for name, path in sources.items():
        p = Path(path)
        if not p.is_file() and name in BUNDLED_SOURCES:
            p = BUNDLED_SOURCES[name]  # the bundled texts, wherever hf_steer is installed now
        if not p.is_file():
            return None
        train_part, _ = split_text(read_source(name, p), val_fraction)
        out[name] = train_part.lower() if lowercase else train_part
    return out or None


def loss_curves(folder: Path, names: list[str]) -> dict[str, list[float]] | None:
    """{source: held-out loss at α = 0, 0.1, ..., 1} from the folder's hf_steer.json (None if absent)."""
    meta_file = folder / "hf_steer.json"
    if not meta_file.is_file():
        return None
    metrics = json.loads(meta_file.read_text()).get("metrics") or {}
    label = "alpha" if len(names) == 2 else "t"
    grid = [round(i / 10, 1) for i in range(11)]
    try:
        return {n: [float(metrics[f"{label}={a}"][n]) for a in grid] for n in names}
    except (KeyError, TypeError, ValueError):
        return None


class AbcBackend:
    """The loaded abcGPT, its sources' bigram scorer and loss curves; one lock (load/train vs generate)."""

    def __init__(self, studio: Studio):
        self.studio = studio
        self.lock = threading.Lock()
        self.folder: Path | None = None
        self.model = self.tokenizer = self.scorer = self.curves = None
        self.names: list[str] = []
        self.kind = "abcgpt"  # or "adapter": an abc adapter on a pretrained base (length in tokens)

    @property
    def starter_folder(self) -> Path:
        return self.studio.work_folder / STARTER_NAME

    def build_starter(self, progress=None) -> Path:
        """Train the starter model once (into a temp folder renamed into place) and return its folder."""
        folder = self.starter_folder
        if (folder / "config.json").is_file():
            return folder
        from ..abcgpt.training import BUNDLED_SOURCES, TrainConfig, train

        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{STARTER_NAME}.tmp-", dir=folder.parent))
        try:
            if progress:
                progress(0.05, desc="training the starter abcGPT once (TinyStories ↔ Shakespeare, about 30 s)")
            sources = {k: str(BUNDLED_SOURCES[k]) for k in ("tinystories", "shakespeare")}
            train(TrainConfig(sources=sources, output_dir=str(tmp), **STARTER))
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return folder

    def load(self, folder=None, progress=None) -> str:
        """Load ``folder`` (empty: the configured one, else the starter, built on first use): an abcGPT or an
        abc adapter (on the base model it records)."""
        from ..abcgpt import load_abcgpt

        folder = text(folder, "abcGPT or abc adapter folder", allow_empty=True) if folder is not None else ""
        with self.lock:
            if not folder:
                folder = self.studio.config.abc_folder or str(self.build_starter(progress))
            path = Path(folder).expanduser()
            kind = folder_kind(path)
            if kind == "adapter":
                from ..abcgpt.adapter import load_adapter

                if progress:
                    progress(0.1, desc="loading the abc adapter and its base model")
                model, tokenizer = load_adapter(path)
                names = list(model.source_names)
            else:
                model, tokenizer = load_abcgpt(path)
                names = list(model.config.source_names)
            texts = source_texts(path)
            self.scorer = BigramScorer(texts) if texts and list(texts) == names else None
            self.model, self.tokenizer, self.names, self.folder, self.kind = model, tokenizer, names, path, kind
            self.curves = loss_curves(path, names)
        if kind == "adapter":
            config = model.peft_config[model.active_adapter]
            trainable = sum(p.numel() for n, p in model.named_parameters() if "abc_" in n) / 1e6
            return (f"Loaded the abc adapter **{path}** on {model.base_model.model.name_or_path}: sources "
                    f"{', '.join(names)} (rank {config.r}, {trainable:.2f} M adapter parameters); length in tokens.")
        return (f"Loaded **{path}**: sources {', '.join(names)} "
                f"({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, context "
                f"{model.config.n_positions} characters).")

    def ensure_loaded(self, progress=None) -> None:
        if self.model is None:
            self.load(None, progress)

    def dial(self, alpha, weights) -> float | dict[str, float]:
        """α (two sources) or a {source: weight} mixture on the simplex (N sources), checked."""
        if len(self.names) == 2:
            return number(alpha, "α", 0.0, 1.0)
        w = [number(x, f"weight of {n}", 0.0, 1.0) for n, x in zip(self.names, list(weights)[: len(self.names)])]
        if len(w) != len(self.names):
            raise HfSteerError(f"the mixture has {len(w)} weights for {len(self.names)} sources: give one per source")
        if abs(sum(w) - 1) > 1e-3:
            raise HfSteerError(f"the mixture weights sum to {sum(w):.3g}, not 1: move a slider to put them back on the simplex")
        return dict(zip(self.names, w))

    def generate(self, dial, prompt, samples, length, temperature, seed) -> tuple[list[str], dict | None]:
        from ..abcgpt import generate_text

        prompt = (prompt if isinstance(prompt, str) else "") or "\n"
        samples = number(samples, "samples", 1, 8, integer=True)
        temperature = number(temperature, "temperature", 0.05, 2.0)
        seed = number(seed, "seed", 0, 2**31 - 1, integer=True)
        prompt = prompt.replace("\\n", "\n")
        with self.lock:
            if self.kind == "adapter":
                from ..abcgpt.adapter import generate_text as adapter_generate

                length = number(length, "tokens", 1, ADAPTER_MAX_TOKENS, integer=True)
                new = adapter_generate(self.model, self.tokenizer, prompt, dial, num_samples=samples,
                                       max_new_tokens=length, temperature=temperature, seed=seed)
                texts = [prompt + t for t in new]
            else:
                room = self.model.config.n_positions - len(prompt)
                length = number(length, "characters", 1, max(room, 1), integer=True)
                kwargs = {"alpha": dial} if not isinstance(dial, dict) else {"mix": dial}
                texts = generate_text(self.model, self.tokenizer, prompt=prompt, max_new_tokens=length,
                                      temperature=temperature, num_samples=samples, seed=seed, **kwargs)
                new = [t[len(prompt):] if t.startswith(prompt) else t for t in texts]
            score = self.scorer.score(new) if self.scorer is not None else None
        return texts, score

    def plot(self, dial):
        """The loss-by-α curve per source with the current dial marked (None without curves)."""
        from ..plotting import pyplot

        if not self.curves:
            return None
        plt = pyplot()
        grid = [i / 10 for i in range(11)]
        fig, ax = plt.subplots(figsize=(6, 3.2))
        n = len(self.names)
        for i, (name, ys) in enumerate(self.curves.items()):
            ax.plot(grid, ys, marker="o", color=f"C{i}", label=name)
            if isinstance(dial, dict):  # N sources: where the mixture sits on the centre -> vertex path of each
                t = min(max((dial[name] - 1 / n) / (1 - 1 / n), 0.0), 1.0)
                ax.plot([t], [float(np.interp(t, grid, ys))], marker="*", markersize=16, color=f"C{i}")
        if not isinstance(dial, dict):
            ax.axvline(dial, color="black", linestyle="--", label=f"α = {dial:.2f}")
        ax.set_xlabel("α" if n == 2 else "t (centre → that source's vertex); ★ = current mixture")
        ax.set_ylabel(f"held-out loss (nats/{'token' if self.kind == 'adapter' else 'char'})")
        ax.set_title("loss by α (measured at training)", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        plt.close(fig)
        return fig


def score_line(score: dict | None, names: list[str]) -> str:
    if score is None:
        return "source score: the training texts of this model are not on disk, so there is nothing to compare with."
    shares = ", ".join(f"{n} {score['shares'][n]:.0%}" for n in names)
    return (f"**source score {score['score']:+.3f}** (mean per-character bigram log-likelihood ratio, "
            f"+ = reads like {names[-1]}, − = like {names[0]}) · reads like: {shares}")


def build(backend: AbcBackend) -> None:
    import gradio as gr

    gr.Markdown(
        "An abcGPT has one frozen source position on every unit; a spotlight gate passes the units near the dial. "
        "Slide α and the same model writes in another voice. Leave the folder empty to use the starter model "
        "(trained once on TinyStories and Shakespeare, then cached), or give an abc adapter folder "
        "(`hf-steer abc adapt train`): the same dial on a pretrained model."
    )
    with gr.Row():
        folder = gr.Textbox(backend.studio.config.abc_folder or "", label="abcGPT or abc adapter folder (empty: the starter)",
                            elem_id="abc-folder", scale=4)
        load = gr.Button("Load", elem_id="abc-load", scale=1)
    info = gr.Markdown("No model loaded yet: press Load, or move the dial.", elem_id="abc-info")
    with gr.Row():
        with gr.Column(scale=2):
            alpha = gr.Slider(0, 1, value=0.0, step=0.05, label="α (0 = first source, 1 = second)", elem_id="abc-alpha")
            weights = [gr.Slider(0, 1, value=0.0, step=0.01, label=f"source {i + 1}", visible=False,
                                 elem_id=f"abc-weight-{i + 1}") for i in range(MAX_SOURCES)]
            prompt = gr.Textbox("\\n", label="prompt (\\n = newline)", elem_id="abc-prompt")
            with gr.Row():
                samples = gr.Slider(1, 8, value=3, step=1, label="samples", elem_id="abc-samples")
                length = gr.Slider(10, 500, value=48, step=1, label="length (characters)", elem_id="abc-length")
            with gr.Row():
                temperature = gr.Slider(0.1, 1.5, value=0.8, step=0.05, label="temperature", elem_id="abc-temperature")
                seed = gr.Number(0, label="seed", precision=0, elem_id="abc-seed")
        with gr.Column(scale=3):
            out = gr.Textbox(label="generations", lines=10, interactive=False, elem_id="abc-out")
            score = gr.Markdown("", elem_id="abc-score")
            plot = gr.Plot(label="loss by α", elem_id="abc-plot")

    def dial_controls(length_value: int):
        n = len(backend.names)
        adapter = backend.kind == "adapter"
        length_update = gr.update(label=f"length ({'tokens' if adapter else 'characters'})",
                                  maximum=ADAPTER_MAX_TOKENS if adapter else 500, value=length_value)
        alpha_update = gr.update(visible=n == 2, label=f"α (0 = {backend.names[0]}, 1 = {backend.names[-1]})")
        weight_updates = [
            gr.update(visible=n > 2 and i < n, label=backend.names[i] if i < n else "", value=(1 / n if i < n else 0.0))
            for i in range(MAX_SOURCES)
        ]
        return [alpha_update, *weight_updates, length_update]

    def _generate(a, ws, prompt_text, n, chars, temp, seed_value, progress):
        backend.ensure_loaded(progress)
        dial = backend.dial(a, ws)
        texts, sc = backend.generate(dial, prompt_text, n, chars, temp, seed_value)
        sep = "\n" + "─" * 40 + "\n"
        return sep.join(texts), score_line(sc, backend.names), backend.plot(dial)

    @guarded
    def on_load(path, a, prompt_text, n, chars, temp, seed_value, progress=gr.Progress()):
        msg = backend.load(path, progress)
        chars = number(chars, "length", 1, 500, integer=True)
        if backend.kind == "adapter":  # tokens now: keep the slider inside the adapter's range
            chars = min(chars, ADAPTER_MAX_TOKENS)
        controls = dial_controls(chars)
        ws = [1 / len(backend.names)] * len(backend.names)
        gens = _generate(a, ws, prompt_text, n, chars, temp, seed_value, progress)
        return msg, *controls, *gens

    @guarded
    def on_dial(a, prompt_text, n, chars, temp, seed_value, *ws, progress=gr.Progress()):
        return _generate(a, ws, prompt_text, n, chars, temp, seed_value, progress)

    def make_on_weight(i):
        @guarded
        def on_weight(prompt_text, n, chars, temp, seed_value, *ws, progress=gr.Progress()):
            backend.ensure_loaded(progress)
            k = len(backend.names)
            new = on_simplex(list(ws[:k]), i)
            gens = _generate(None, new, prompt_text, n, chars, temp, seed_value, progress)
            return *[gr.update(value=round(new[j], 4)) if j < k else gr.skip() for j in range(MAX_SOURCES)], *gens

        return on_weight

    common = [prompt, samples, length, temperature, seed]
    gen_out = [out, score, plot]
    # preprocess=False: the handlers check the raw values themselves (one clear line for a bad one)
    load.click(on_load, [folder, alpha, *common], [info, alpha, *weights, length, *gen_out], preprocess=False)
    # .release: only when the user lets the slider go (a .change would also fire on programmatic updates)
    for control in (alpha, samples, length, temperature):
        control.release(on_dial, [alpha, *common, *weights], gen_out, preprocess=False)
    for i, w in enumerate(weights):
        w.release(make_on_weight(i), [*common, *weights], [*weights, *gen_out], preprocess=False)
