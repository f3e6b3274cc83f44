"""DRµGS tab: per-type θ / depth / spread, N dosed draws beside the sober greedy answer, streamed; vergence.

Backend over :mod:`hf_steer.drugs` (``DrugsConfig``, ``Dose``, ``depth_profile``, ``inject``, ``sober``,
``sober_before``, ``Dgenerate``), on the tab's own copy of the base model.

Every draw is one row of ONE batched ``Dgenerate`` call: each row draws its own noise (as in
``hf-steer drugs explore``), so N draws cost about one generation on a CPU. The sober answer is
generated with the same batch shape, so a dose of θ=0 everywhere gives exactly the sober text (a
batch of one may round differently from a batch of N).

Thin glue written here: the batch streamer (transformers' ``TextIteratorStreamer`` takes one row) and
the vergence of the *current* dose (``drugs.vergence`` sweeps θ × depth ranges; the tab needs one
curve for the dose on the sliders, from the same public pieces: ``sober`` and ``sober_before``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import torch

from ..errors import HfSteerError
from .app import Studio, guarded, number, text

TYPES = "HQKVA"
TYPE_NAMES = {"H": "hidden state in", "Q": "queries", "K": "keys", "V": "values", "A": "head outputs"}
MAX_THETA = 1.5  # radians; the author's useful range tops out well below this
MAX_DRAWS = 6
MAX_TOKENS = 200
DEFAULT_PROMPT = "Write the opening line of a story about a lighthouse keeper."


class BatchStreamer:
    """A ``generate(streamer=...)`` streamer for a batch: puts the decoded text of every row after each step."""

    def __init__(self, tokenizer, rows: int):
        self.tokenizer = tokenizer
        self.ids: list[list[int]] = [[] for _ in range(rows)]
        self.queue: queue.Queue = queue.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompt
            self._prompt_seen = True
            return
        for row, token in zip(self.ids, value.reshape(len(self.ids), -1)[:, -1].tolist()):
            row.append(token)
        self.queue.put(self.texts())

    def end(self) -> None:
        self.queue.put(None)

    def texts(self) -> list[str]:
        return [self.tokenizer.decode(row, skip_special_tokens=True) for row in self.ids]


def parse_doses(values: list) -> dict[str, tuple[float, float, float]]:
    """The 15 slider values (θ, depth, spread for H, Q, K, V, A) checked: {type: (θ, depth, spread)}."""
    if not isinstance(values, (list, tuple)) or len(values) != 3 * len(TYPES):
        raise HfSteerError(f"dose sliders: expected {3 * len(TYPES)} values (θ, depth, spread per type), got {values!r:.80}")
    out = {}
    for i, letter in enumerate(TYPES):
        theta = number(values[3 * i], f"θ of {letter}", 0.0, MAX_THETA)
        depth = number(values[3 * i + 1], f"depth of {letter}", 0.0, 1.0)
        spread = number(values[3 * i + 2], f"spread of {letter}", 0.0, 1.0)
        out[letter] = (theta, depth, spread)
    return out


def make_config(doses: dict[str, tuple[float, float, float]]):
    from ..drugs import Dose, DrugsConfig, depth_profile

    return DrugsConfig(doses={
        letter: Dose(theta, depth_profile(depth, spread)) for letter, (theta, depth, spread) in doses.items() if theta > 0
    })


class DrugsBackend:
    """The tab's dosed model (its own copy of the base) and one lock: one generation at a time."""

    def __init__(self, studio: Studio):
        self.studio = studio
        self.lock = threading.Lock()
        self._pair = None

    def pair(self):
        if self._pair is None:
            from ..drugs import DrugsConfig, inject

            model, tokenizer = self.studio.fresh_copy()
            self._pair = inject(model, DrugsConfig()), tokenizer
        return self._pair

    def _inputs(self, prompt: str, rows: int):
        from ..drugs.explore import chat_inputs

        model, tokenizer = self.pair()
        return chat_inputs(tokenizer, [prompt] * rows, True, model.device)

    def _stream(self, enc, max_new_tokens: int, seed: int, dosed: bool) -> Iterator[list[str]]:
        from ..drugs import sober

        model, tokenizer = self.pair()
        streamer = BatchStreamer(tokenizer, enc["input_ids"].shape[0])
        failure: list[BaseException] = []

        def run():
            try:
                kwargs = dict(max_new_tokens=max_new_tokens, seed=seed, streamer=streamer,
                              pad_token_id=tokenizer.pad_token_id)
                if dosed:
                    model.Dgenerate(**enc, **kwargs)
                else:
                    with sober(model):
                        model.Dgenerate(**enc, **kwargs)
            except BaseException as e:
                failure.append(e)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        while (texts := streamer.queue.get()) is not None:
            yield texts
        thread.join()
        if failure:
            raise failure[0]

    def generate(self, prompt, doses: dict, draws, max_new_tokens, seed) -> Iterator[tuple[str, list[str]]]:
        """Stream ``(sober text, [dosed draw texts])``: the sober answer first, then the draws."""
        prompt = text(prompt, "prompt")
        draws = number(draws, "draws", 1, MAX_DRAWS, integer=True)
        max_new_tokens = number(max_new_tokens, "new tokens", 1, MAX_TOKENS, integer=True)
        seed = number(seed, "seed", 0, 2**31 - 1, integer=True)
        config = make_config(doses)
        with self.lock:
            from ..drugs import inject

            model, _ = self.pair()
            inject(model, config)
            enc = self._inputs(prompt, draws)
            sober_text = ""
            for texts in self._stream(enc, max_new_tokens, seed, dosed=False):
                sober_text = texts[0]
                yield sober_text, [""] * draws
            for texts in self._stream(enc, max_new_tokens, seed, dosed=True):
                yield sober_text, texts

    @torch.no_grad()
    def vergence(self, prompt, doses: dict, seed) -> dict:
        """Per layer: the dose's θ per type, and ``1 - cos`` between the dosed and sober hidden state at the
        position that predicts the next token (the prompt read sober, one noise draw at that position)."""
        from ..drugs import inject, sober, sober_before

        prompt = text(prompt, "prompt")
        seed = number(seed, "seed", 0, 2**31 - 1, integer=True)
        config = make_config(doses)
        with self.lock:
            model, _ = self.pair()
            enc = self._inputs(prompt, 1)
            with sober(model):
                ref = model(**enc, output_hidden_states=True).hidden_states[1:]
            inject(model, config)
            torch.manual_seed(seed)  # the noise draws from torch's RNG when the config has no seed
            with sober_before(model, enc["input_ids"].shape[1] - 1):
                out = model(**enc, output_hidden_states=True).hidden_states[1:]
            layers = len(out)
            divergence = [
                float(1 - torch.nn.functional.cosine_similarity(a[0, -1].float(), b[0, -1].float(), dim=0))
                for a, b in zip(out, ref)
            ]
        return {"layers": layers, "divergence": divergence, "thetas": config.layer_thetas(layers)}


def plot_vergence(result: dict):
    """Bars: θ per layer for each dosed type; line (right axis, log): the divergence it causes."""
    from ..plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    layers = list(range(result["layers"]))
    dosed = [t for t in TYPES if any(result["thetas"][t])]
    width = 0.8 / max(len(dosed), 1)
    for i, letter in enumerate(dosed):
        ax.bar([x + (i - (len(dosed) - 1) / 2) * width for x in layers], result["thetas"][letter], width=width,
               label=f"θ {letter} ({TYPE_NAMES[letter]})", alpha=0.6)
    ax.set_xlabel("layer")
    ax.set_ylabel("θ (radians)")
    ax2 = ax.twinx()
    ax2.plot(layers, [max(v, 1e-7) for v in result["divergence"]], color="black", marker=".", label="1 − cos vs sober")
    ax2.set_yscale("log")
    ax2.set_ylabel("1 − cos (dosed vs sober)")
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    title = "vergence at the predicted token" if dosed else "no dose: θ = 0 everywhere (the model is sober)"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig


def build(backend: DrugsBackend) -> None:
    import gradio as gr

    gr.Markdown(
        "Rotate hidden states (H), queries (Q), keys (K), values (V) or head outputs (A) by random angles up to θ "
        "at the chosen depth (0 = first layer, 1 = last; spread = half-width of the full-dose band), then decode "
        "greedily. Each draw is its own noise; the sober greedy answer is on the left. θ = 0 everywhere is sober."
    )
    with gr.Row():
        prompt = gr.Textbox(DEFAULT_PROMPT, label="prompt", elem_id="drugs-prompt", scale=4)
        with gr.Column(scale=1):
            draws = gr.Slider(1, MAX_DRAWS, value=3, step=1, label="draws", elem_id="drugs-draws")
            tokens = gr.Slider(8, MAX_TOKENS, value=40, step=1, label="new tokens", elem_id="drugs-tokens")
            seed = gr.Number(0, label="seed", precision=0, elem_id="drugs-seed")
    sliders = []
    with gr.Row():
        for letter in TYPES:
            with gr.Column(min_width=150):
                gr.Markdown(f"**{letter}**: {TYPE_NAMES[letter]}")
                default = 0.3 if letter == "A" else 0.0
                sliders += [
                    gr.Slider(0, MAX_THETA, value=default, step=0.01, label=f"θ {letter}", elem_id=f"drugs-theta-{letter}"),
                    gr.Slider(0, 1, value=0.5, step=0.01, label=f"depth {letter}", elem_id=f"drugs-depth-{letter}"),
                    gr.Slider(0, 1, value=0.17, step=0.01, label=f"spread {letter}", elem_id=f"drugs-spread-{letter}"),
                ]
    with gr.Row():
        run = gr.Button("Generate", variant="primary", elem_id="drugs-generate")
        plot_button = gr.Button("Vergence plot", elem_id="drugs-vergence-button")
    with gr.Row():
        sober_box = gr.Textbox(label="sober (greedy)", lines=6, interactive=False, elem_id="drugs-sober",
                               elem_classes=["gen-card"])
        draw_boxes = [
            gr.Textbox(label=f"draw {i + 1}", lines=6, interactive=False, visible=i < 3, elem_id=f"drugs-draw-{i + 1}",
                       elem_classes=["gen-card"])
            for i in range(MAX_DRAWS)
        ]
    plot = gr.Plot(label="vergence for the current dose", elem_id="drugs-plot")

    @guarded
    def on_generate(prompt_text, n, max_tokens, seed_value, *dose_values):
        doses = parse_doses(list(dose_values))
        n = number(n, "draws", 1, MAX_DRAWS, integer=True)
        boxes = []
        for sober_text, texts in backend.generate(prompt_text, doses, n, max_tokens, seed_value):
            boxes = [sober_text, *[gr.update(value=texts[i] if i < n else "", visible=i < n) for i in range(MAX_DRAWS)]]
            yield *boxes, gr.skip()
        # the vergence plot of this dose last, in the same event (the page is idle only when all is drawn)
        yield *boxes, plot_vergence(backend.vergence(prompt_text, doses, seed_value))

    @guarded
    def on_vergence(prompt_text, seed_value, *dose_values):
        return plot_vergence(backend.vergence(prompt_text, parse_doses(list(dose_values)), seed_value))

    # preprocess=False: the handlers check every raw value themselves (numbers() above), so a bad value sent
    # to the API gets our one-line message instead of a component's preprocessing traceback.
    run.click(on_generate, [prompt, draws, tokens, seed, *sliders], [sober_box, *draw_boxes, plot], preprocess=False)
    plot_button.click(on_vergence, [prompt, seed, *sliders], [plot], preprocess=False)
