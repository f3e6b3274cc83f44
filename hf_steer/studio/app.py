"""The studio's frame: the shared base model, the error boundary every handler goes through, the Blocks.

Each tab lives in its own file (``memory_tab``, ``drugs_tab``, ``abcgpt_tab``, ``elarablation_tab``) as a
backend class (plain Python over the method's public API, testable without a browser) plus a
``build(backend)`` that lays out the Gradio components and wires them. Gradio is imported here and in
the tab files only, which only ``hf-steer studio`` (or a user calling :func:`build_app`) imports.

Why each tab gets its own copy of the base model: DRµGS changes the model's class and attention
implementation, LoRA memory and Elarablation wrap it in PEFT layers; sharing one object would let one
tab's state leak into another's answers. The base is read from disk once and deep-copied (about 0.5 s
for SmolLM2-135M instead of 6-7 s per load).
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from ..errors import HfSteerError
from .config import StudioConfig

TITLE = "hf-steer studio"


class Studio:
    """What the four tabs share: the config, the base model (loaded once, lazily) and the work folder."""

    def __init__(self, config: StudioConfig | None = None, *, model=None, tokenizer=None):
        self.config = config or StudioConfig()
        self._pair = (model, tokenizer) if model is not None else None
        if model is not None and tokenizer is None:
            raise HfSteerError("tokenizer is missing: pass the tokenizer that goes with the model")
        self._load_lock = threading.Lock()
        self.closers: list = []  # called when the server stops (the memory's training process)
        self.tabs: dict[str, Any] = {}  # tab id -> its backend (scripts and tests reach the state here)
        if self.config.threads:
            import torch

            torch.set_num_threads(self.config.threads)

    @property
    def work_folder(self) -> Path:
        if self.config.work_folder:
            return Path(self.config.work_folder).expanduser()
        from ..models import cache_dir

        return cache_dir() / "studio"

    @property
    def model_path(self) -> str:
        """The resolved base model path (what the memory's background worker loads)."""
        from ..models import resolve_model_path

        if self._pair is not None and self.config.model is None:
            return getattr(self._pair[0].config, "name_or_path", "") or "in-memory model"
        return resolve_model_path(self.config.model)

    @property
    def loaded(self) -> bool:
        return self._pair is not None

    def base(self):
        """``(model, tokenizer)`` of the pristine base, loading it on first use (one load at a time)."""
        with self._load_lock:
            if self._pair is None:
                from ..models import load_model

                self._pair = load_model(self.config.model)
            return self._pair

    def fresh_copy(self):
        """A private ``(model, tokenizer)`` a tab may modify (inject, wrap in PEFT, train)."""
        model, tokenizer = self.base()
        return copy.deepcopy(model), tokenizer

    def close(self) -> None:
        for close in self.closers:
            close()

    def preload(self) -> threading.Thread:
        """Load the base in a background thread (the page answers meanwhile); errors surface on first use."""

        def run():
            try:
                self.base()
            except Exception:  # nothing to show it on yet: the first action that needs the model retries and says why
                pass

        thread = threading.Thread(target=run, name="hf-steer-studio-preload", daemon=True)
        thread.start()
        return thread


# -- input checking and the error boundary ------------------------------------------------------------------


def number(value: Any, name: str, low: float, high: float, *, integer: bool = False) -> float | int:
    """``value`` as a number in [low, high], else one :class:`HfSteerError` naming the input and the range.

    Handlers get whatever a client sends (the page's sliders, or anyone calling the HTTP API directly):
    strings, None, NaN, booleans and out-of-range numbers all end here.
    """
    if isinstance(value, bool) or value is None:
        raise HfSteerError(f"{name} is {value!r}: give a number from {low:g} to {high:g}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise HfSteerError(f"{name} is {value!r}, not a number: give a number from {low:g} to {high:g}") from None
    if math.isnan(x) or not low <= x <= high:
        raise HfSteerError(f"{name} is {value!r}, outside {low:g}..{high:g}: give a number in that range")
    if integer:
        if x != int(x):
            raise HfSteerError(f"{name} is {value!r}, not a whole number: give an integer from {low:g} to {high:g}")
        return int(x)
    return x


def text(value: Any, name: str, *, allow_empty: bool = False) -> str:
    """``value`` as a string (stripped); empty only when ``allow_empty``."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise HfSteerError(f"{name} is a {type(value).__name__}, not text: type it into the box")
    value = value.strip()
    if not value and not allow_empty:
        raise HfSteerError(f"{name} is empty: type something first")
    return value


def _page_error(e: BaseException, secrets: tuple[str, ...] = ()):
    """The :class:`gradio.Error` shown on the page for ``e``: one line, no traceback in the browser.

    An :class:`HfSteerError` is the user's to fix and shown as is. Anything else is a bug: its traceback
    goes to the server's stderr and the page gets its one-line summary.
    """
    import gradio as gr

    if isinstance(e, gr.Error):
        return e
    if isinstance(e, HfSteerError):
        message = str(e)
    else:
        traceback.print_exception(e, file=sys.stderr)
        first = (str(e).strip().splitlines() or [""])[0][:300]
        message = f"{type(e).__name__}: {first} (this is a bug; the details are in the server's log)"
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return gr.Error(message, print_exception=False)


def guarded(fn):
    """Wrap a Gradio handler (function or generator) so every error reaches the page as one clear line."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:
                raise _page_error(e) from None

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise _page_error(e) from None

    return wrapper


# -- the app -------------------------------------------------------------------------------------------------


INTRO = (
    "Four ways to steer what **{model}** writes. Every tab calls the same Python API as `hf-steer` "
    "(see the docs): **Memory** learns the chat as LoRA adapters; **DRµGS** puts noise inside the layers; "
    "**abcGPT** slides a source dial; **Elarablation** trains a slop token out."
)

CSS = """
.gen-card textarea {font-size: 14px}
#studio-title {margin-bottom: 0}
"""


def build_app(studio: Studio | StudioConfig | None = None):
    """The studio's ``gradio.Blocks`` (not launched): one tab per method over one :class:`Studio`."""
    import gradio as gr

    from . import abcgpt_tab, drugs_tab, elarablation_tab, memory_tab

    if not isinstance(studio, Studio):
        studio = Studio(studio)
    model_name = studio.config.model or "SmolLM2-135M-Instruct (bundled)"
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}", elem_id="studio-title")
        gr.Markdown(INTRO.format(model=model_name))
        studio.tabs = {
            "memory": memory_tab.MemoryBackend(studio), "drugs": drugs_tab.DrugsBackend(studio),
            "abcgpt": abcgpt_tab.AbcBackend(studio), "elarablation": elarablation_tab.ElaraBackend(studio),
        }
        with gr.Tabs():
            with gr.Tab("Memory", id="memory"):
                memory_tab.build(studio.tabs["memory"])
            with gr.Tab("DRµGS", id="drugs"):
                drugs_tab.build(studio.tabs["drugs"])
            with gr.Tab("abcGPT", id="abcgpt"):
                abcgpt_tab.build(studio.tabs["abcgpt"])
            with gr.Tab("Elarablation", id="elarablation"):
                elarablation_tab.build(studio.tabs["elarablation"])
    demo.studio = studio
    return demo


def launch(config: StudioConfig, *, block: bool = True, model=None, tokenizer=None):
    """Build and serve the studio; returns ``(demo, url)`` when ``block`` is False.

    The page is served before the base model is loaded (``preload`` loads it in a background thread),
    so the studio answers within seconds; the first action waits for the load if it is still running.
    """
    import os

    # No usage reporting, and no run history: that would keep every input (a Hub token included) in the browser.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    studio = Studio(config, model=model, tokenizer=tokenizer)
    demo = build_app(studio)
    # One event of each kind at a time (Gradio's default); the memory tab adds its own lock across events.
    demo.queue(default_concurrency_limit=1)
    if config.preload:
        studio.preload()
    if not block:
        _, url, _ = _serve(demo, config, gr)
        print(f"hf-steer studio on {url}", flush=True)
        return demo, url
    url = None
    try:  # Ctrl-C is how a user stops a server: a clean exit wherever it lands (even inside launch)
        _, url, _ = _serve(demo, config, gr)
        print(f"hf-steer studio on {url} (Ctrl-C to stop)", flush=True)
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        studio.close()
        demo.close()
    return demo, url


def _serve(demo, config: StudioConfig, gr):
    try:
        return demo.launch(
            server_name=config.host, server_port=config.port or None, prevent_thread_lock=True, show_error=True,
            quiet=True, run_history=False, ssr_mode=False, footer_links=["api", "gradio"], theme=gr.themes.Soft(),
            css=CSS,
        )
    except OSError as e:
        raise HfSteerError(f"cannot listen on {config.host}:{config.port} ({e}): pick another --port or stop what uses it") from None
