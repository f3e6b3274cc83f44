"""Elarablation tab: next-token bars base vs adapter, train with a progress bar, names before/after, push.

Backend over :mod:`hf_steer.elarablation` (``list_library``, ``load_contexts``, ``train``, the sampler),
:func:`hf_steer.demo.next_token_table` and :func:`hf_steer.push_to_hub`, on the tab's own copy of the
base model (each training run wraps a fresh copy in PEFT, so the base stays pristine for the bars).

The Hub token is typed into a password box, handed to ``push_to_hub(token=...)`` and nothing else: it is
never printed, logged, put in a message (any error text is scrubbed of it) or kept after the call, and
the studio launches with Gradio's run history off so the browser does not store it either.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections import Counter
from pathlib import Path

import torch

from ..errors import HfSteerError
from .app import Studio, _page_error, guarded, number, text

TYPED = "(typed context below)"
DEFAULT_FAMILY = "female_names"


def _typed_rows(context: str, bad: str, good: str) -> list[dict]:
    row = {"text": context, "family": "typed", "source": "<studio>"}
    if bad.strip():
        row["bad"] = [bad.strip()]
    if good.strip():
        row["good"] = [good.strip()]
    return [row]


class ElaraBackend:
    """The pristine base, the current adapter (trained here or loaded), one lock for all of it."""

    def __init__(self, studio: Studio):
        self.studio = studio
        self.lock = threading.Lock()
        self.adapter = None  # a PeftModel over a private copy of the base
        self.adapter_folder: Path | None = None
        self.last_train: dict | None = None

    def families(self) -> list[str]:
        from ..elarablation import list_library

        return list_library()

    # -- contexts ----------------------------------------------------------------------------------------------
    def contexts(self, family, typed, bad="", good="", split: str = "train"):
        """The context Dataset: a library family's ``split``, or the typed context with its rules."""
        from ..elarablation import load_contexts

        family = text(family, "family", allow_empty=True)
        if family and family != TYPED:
            if family not in self.families():
                raise HfSteerError(f"family {family!r} is not in the library: pick one of {', '.join(self.families())}")
            return load_contexts(family, split=split)
        typed = text(typed, "typed context")
        return load_contexts(_typed_rows(typed, text(bad, "bad rule", allow_empty=True),
                                         text(good, "good rule", allow_empty=True)))

    def probe_text(self, family, typed) -> str:
        """The context the bars are drawn for: the typed one, else the family's first held-out context."""
        from ..elarablation.contexts import render_context

        _, tokenizer = self.studio.base()
        typed = typed.strip() if isinstance(typed, str) else ""
        if typed:
            return typed
        rows = self.contexts(family, "", split="heldout")
        return render_context(rows[0], tokenizer)

    # -- the two models ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def bars(self, context: str, k) -> dict:
        from ..demo import next_token_table

        context = text(context, "context")
        k = number(k, "top-k", 1, 50, integer=True)
        with self.lock:
            model, tokenizer = self.studio.base()
            out = {"context": context, "base": next_token_table(model, tokenizer, context, k=k), "adapter": None}
            if self.adapter is not None:
                out["adapter"] = next_token_table(self.adapter, tokenizer, context, k=k)
        return out

    def names(self, family, typed, samples) -> list[list]:
        """Sampled first names over the held-out contexts (or the typed one): base vs adapter counts."""
        from ..elarablation.contexts import tokenize_context
        from ..elarablation.sampling import name_counts, sample_continuations

        samples = number(samples, "samples", 1, 500, integer=True)
        typed = typed.strip() if isinstance(typed, str) else ""
        rows = self.contexts(family if not typed else TYPED, typed, split="heldout")
        with self.lock:
            model, tokenizer = self.studio.base()
            counts = {"base": Counter(), "adapter": Counter()}
            for which, m in (("base", model), ("adapter", self.adapter)):
                if m is None:
                    continue
                for i, row in enumerate(rows):
                    gen = torch.Generator().manual_seed(i)
                    counts[which] += name_counts(sample_continuations(m, tokenizer, tokenize_context(row, tokenizer),
                                                                      n=samples, generator=gen))
        names = sorted(set(counts["base"]) | set(counts["adapter"]), key=lambda n: -(counts["base"][n] + counts["adapter"][n]))
        def row(label, ns):
            return [label, sum(counts["base"][n] for n in ns),
                    sum(counts["adapter"][n] for n in ns) if self.adapter is not None else ""]

        table = [row(n or "(no name)", [n]) for n in names[:24]]
        if len(names) > 24:  # the rest in one row, so each column still adds up to every sample drawn
            table.append(row(f"({len(names) - 24} other names)", names[24:]))
        return table

    # -- training, loading, pushing -------------------------------------------------------------------------------
    def default_output(self) -> str:
        return str(self.studio.work_folder / "elarablation" / time.strftime("adapter-%Y%m%d-%H%M%S"))

    def train(self, family, typed, bad, good, epochs, learning_rate, output_dir, progress=None) -> str:
        from transformers import TrainerCallback

        from ..elarablation import train

        epochs = number(epochs, "epochs", 0.1, 100)
        learning_rate = number(learning_rate, "learning rate", 1e-6, 1.0)
        output_dir = text(output_dir, "output folder", allow_empty=True) or self.default_output()
        dataset = self.contexts(family, typed, bad, good)  # bad input fails here, before any model work

        class Progress(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if progress is not None and state.max_steps:
                    progress((state.global_step, state.max_steps), desc="training", unit="steps")

        with self.lock:
            model, tokenizer = self.studio.base()
            result = train(dataset, output_dir, copy.deepcopy(model), tokenizer=tokenizer, num_train_epochs=epochs,
                           learning_rate=learning_rate, callbacks=[Progress()])
            self.adapter = result["trainer"].model.eval()
            self.adapter_folder = Path(result["output_dir"])
            self.last_train = {k: v for k, v in result.items() if k != "trainer"}
        final = result["final"]
        return (f"Trained {result['steps']} steps in {result['train_seconds']:.1f} s on {len(dataset)} context(s); "
                f"last step: top-1 p={final.get('top1_prob', float('nan')):.3f}, bad mass={final.get('bad_mass', float('nan')):.3f}. "
                f"Adapter saved in **{self.adapter_folder}**.")

    def load_adapter(self, folder) -> str:
        from peft import PeftModel

        folder = Path(text(folder, "adapter folder")).expanduser()
        if not (folder / "adapter_config.json").is_file():
            raise HfSteerError(f"folder {folder} has no adapter_config.json: pass a folder written by Train or "
                               "`hf-steer elarablate train`")
        meta = folder / "hf_steer.json"
        if meta.is_file() and json.loads(meta.read_text()).get("method") not in (None, "elarablation"):
            raise HfSteerError(f"folder {folder} holds a {json.loads(meta.read_text()).get('method')!r} adapter, "
                               "not an Elarablation one: pass an Elarablation adapter folder")
        with self.lock:
            model, _ = self.studio.base()
            try:
                self.adapter = PeftModel.from_pretrained(copy.deepcopy(model), str(folder)).eval()
            except (RuntimeError, ValueError, KeyError) as e:
                raise HfSteerError(f"adapter {folder} does not fit this base model ({str(e).splitlines()[0][:120]}): "
                                   "load it with the base it was trained on (--model)") from None
            self.adapter_folder = folder
        return f"Loaded adapter **{folder}**."

    def push(self, repo_id, token, private) -> str:
        from ..hub import push_to_hub

        if self.adapter_folder is None:
            raise HfSteerError("no adapter to push yet: train one (or load a folder) first")
        repo_id = text(repo_id, "repo id")
        token = token.strip() if isinstance(token, str) and token.strip() else None
        try:
            url = push_to_hub(self.adapter_folder, repo_id, private=bool(private), token=token)
        except Exception as e:
            raise _page_error(e, secrets=(token or "",)) from None
        return f"Pushed **{self.adapter_folder.name}** to {url}"


def plot_bars(bars: dict):
    """Top-k next tokens: base (left) and adapter (right), same y scale."""
    from ..plotting import pyplot

    plt = pyplot()
    panels = [("base", bars["base"], "tab:red")]
    if bars["adapter"] is not None:
        panels.append(("adapter", bars["adapter"], "tab:green"))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for ax, (label, rows, color) in zip(axes, panels):
        ax.bar(range(len(rows)), [p for _, p in rows], color=color)
        ax.set_xticks(range(len(rows)), [repr(t)[1:-1] for t, _ in rows], rotation=70, fontsize=8)
        ax.set_title(label)
        ax.set_ylabel("next-token probability")
    if bars["adapter"] is None:
        axes[1].text(0.5, 0.5, "no adapter yet:\ntrain one or load a folder", ha="center", va="center")
        axes[1].set_axis_off()
    context = bars["context"] if len(bars["context"]) < 70 else "…" + bars["context"][-68:]
    fig.suptitle(repr(context), fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig


def build(backend: ElaraBackend) -> None:
    import gradio as gr

    gr.Markdown(
        "Pick a family of contexts from the library (or type a context and the rules for its next token), look "
        "at what the model would write next, train an adapter that punishes the slop token there, and compare. "
        "The trained adapter is saved with its `hf_steer.json`; push it to the Hub with a token (never shown or kept)."
    )
    families = [*backend.families(), TYPED]
    with gr.Row():
        with gr.Column(scale=2):
            family = gr.Dropdown(families, value=DEFAULT_FAMILY if DEFAULT_FAMILY in families else families[0],
                                 label="library family", elem_id="ela-family")
            typed = gr.Textbox("", label="typed context (used when the family is the typed one, and for the bars)",
                               placeholder='The elf girl nods. "My name is', elem_id="ela-context")
            with gr.Row():
                bad = gr.Textbox(r"^ ?El", label="bad next tokens (regex)", elem_id="ela-bad")
                good = gr.Textbox(r"^ [A-Z][a-z]*$", label="good next tokens (regex)", elem_id="ela-good")
            with gr.Row():
                k = gr.Slider(5, 30, value=15, step=1, label="top-k bars", elem_id="ela-k")
                samples = gr.Slider(10, 300, value=50, step=10, label="names sampled per context", elem_id="ela-samples")
            with gr.Row():
                epochs = gr.Slider(1, 16, value=8, step=1, label="epochs", elem_id="ela-epochs")
                lr = gr.Number(2e-3, label="learning rate", elem_id="ela-lr")
            output = gr.Textbox("", label="adapter folder (empty: a new one in the studio's work folder)",
                                elem_id="ela-output")
            with gr.Row():
                show = gr.Button("Show next tokens", elem_id="ela-show")
                names_button = gr.Button("Sample names", elem_id="ela-names")
                train_button = gr.Button("Train", variant="primary", elem_id="ela-train")
                load_button = gr.Button("Load adapter folder", elem_id="ela-load")
        with gr.Column(scale=3):
            bars = gr.Plot(label="next tokens: base vs adapter", elem_id="ela-bars")
            names = gr.Dataframe(headers=["name", "base", "adapter"], label="sampled names", interactive=False,
                                 elem_id="ela-names-table")
            status = gr.Markdown("", elem_id="ela-status")
    with gr.Row():
        repo = gr.Textbox("", label="Hub repo id", placeholder="your-name/elarablated-smollm2", elem_id="ela-repo")
        token = gr.Textbox("", label="Hub token (or leave empty if you are logged in)", type="password",
                           elem_id="ela-token")
        private = gr.Checkbox(False, label="private", elem_id="ela-private")
        push = gr.Button("Push to the Hub", elem_id="ela-push")

    @guarded
    def on_show(fam, ctx, top_k):
        return plot_bars(backend.bars(backend.probe_text(fam, ctx), top_k))

    @guarded
    def on_names(fam, ctx, n, progress=gr.Progress()):
        progress(0.1, desc="sampling names")
        return backend.names(fam, ctx, n)

    @guarded
    def on_train(fam, ctx, bad_rule, good_rule, n_epochs, rate, out_dir, top_k, progress=gr.Progress()):
        msg = backend.train(fam, ctx, bad_rule, good_rule, n_epochs, rate, out_dir, progress)
        return msg, str(backend.adapter_folder), plot_bars(backend.bars(backend.probe_text(fam, ctx), top_k))

    @guarded
    def on_load(folder, fam, ctx, top_k):
        msg = backend.load_adapter(folder)
        return msg, plot_bars(backend.bars(backend.probe_text(fam, ctx), top_k))

    def on_push(repo_id, hub_token, is_private):
        try:
            return backend.push(repo_id, hub_token, is_private), ""
        except Exception as e:
            raise _page_error(e, secrets=(hub_token if isinstance(hub_token, str) else "",)) from None

    # preprocess=False: the handlers check the raw values themselves (one clear line for a bad one)
    show.click(on_show, [family, typed, k], [bars], preprocess=False)
    names_button.click(on_names, [family, typed, samples], [names], preprocess=False)
    train_button.click(on_train, [family, typed, bad, good, epochs, lr, output, k], [status, output, bars],
                       preprocess=False)
    load_button.click(on_load, [output, family, typed, k], [status, bars], preprocess=False)
    # The token box is cleared once the push went through; the event stays off the public API page.
    push.click(on_push, [repo, token, private], [status, token], api_visibility="private", preprocess=False)
