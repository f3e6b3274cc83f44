"""Fixtures for the studio tests: a real browser (Playwright + Debian's Chromium), studio servers, helpers.

Where Chromium or Playwright is missing the browser tests skip with one line saying why, unless
``HF_STEER_REQUIRE_BROWSER=1`` (CI sets it in .ci/run), where they fail instead: CI must not skip them.
Playwright's own browser download is never used (it is not reachable here): the tests launch
``/usr/bin/chromium`` (or ``$HF_STEER_CHROMIUM``), which the Makefile installs with apt-get.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("HF_STEER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "studio"
TIMEOUT_MS = 240_000  # one action on the bundled model on a busy 2-core machine


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for module, hint in (("gradio", "pip install -e '.[dev]'"), ("playwright", "pip install -e '.[dev]'")):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed ({hint})"
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"Chromium not found at {CHROMIUM}: install it (apt-get install chromium) or set HF_STEER_CHROMIUM"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory):
    """One headless Chromium for the session, with a fresh profile (needed when running as root)."""
    reason = browser_missing()
    if reason:
        if os.environ.get("HF_STEER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests required (HF_STEER_REQUIRE_BROWSER=1) but {reason}")
        pytest.skip(f"browser tests skipped: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1360, "height": 1000},
        )
        context.set_default_timeout(TIMEOUT_MS)
        yield context
        context.close()


@pytest.fixture
def page(browser_context):
    page = browser_context.new_page()
    yield page
    page.close()


@contextlib.contextmanager
def serve(**config):
    """A studio server on a free 127.0.0.1 port in this process; yields ``(url, studio)``."""
    from hf_steer.studio.app import launch
    from hf_steer.studio.config import StudioConfig

    demo, url = launch(StudioConfig(port=free_port(), **config), block=False)
    try:
        yield url, demo.studio
    finally:
        demo.close()
        demo.studio.close()




@pytest.fixture(scope="session")
def abc_folder(tmp_path_factory):
    """A small abcGPT trained on the bundled TinyStories and Shakespeare (a few seconds): enough for the dial
    to move the source score (measured: -0.03 at α=0, +0.20 at α=1), which is what the abcGPT tab shows."""
    import torch

    from hf_steer.abcgpt.training import BUNDLED_SOURCES, TrainConfig, train

    folder = tmp_path_factory.mktemp("abc") / "model"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(TrainConfig(sources={k: str(BUNDLED_SOURCES[k]) for k in ("tinystories", "shakespeare")},
                          output_dir=str(folder), n_embd=32, n_layer=2, n_head=4, block_size=64, batch_size=16,
                          steps=200, save_every=0, log_every=100, eval_batches=1))
    finally:
        torch.set_num_threads(threads)
    return folder


@pytest.fixture(scope="session")
def tiny_studio(browser_context, tiny_folder, abc_folder, tmp_path_factory):
    """A studio on the tiny random model (training in the server: no background process)."""
    work = tmp_path_factory.mktemp("tiny-studio")
    with serve(model=str(tiny_folder), work_folder=str(work), memory_folder=str(work / "memory"),
               background=False, retrieval=False, memory_every=0, abc_folder=str(abc_folder), chat_tokens=8) as served:
        yield served


@pytest.fixture(scope="session")
def bundled_studio(browser_context, abc_folder, tmp_path_factory):
    """A studio on the bundled SmolLM2-135M-Instruct, as `hf-steer studio` starts it (background training,
    MiniLM routing), with short chat replies to keep the suite fast."""
    work = tmp_path_factory.mktemp("bundled-studio")
    with serve(work_folder=str(work), memory_folder=str(work / "memory"), memory_every=0,
               abc_folder=str(abc_folder), chat_tokens=24, threads=2) as served:
        yield served


# -- page helpers ----------------------------------------------------------------------------------------------


def wait_text(page, selector: str, expected: str, timeout_ms: int = TIMEOUT_MS) -> None:
    """Wait until the element's text contains ``expected`` (the element may not be rendered yet)."""
    page.wait_for_function("([s, t]) => (document.querySelector(s)?.innerText || '').includes(t)",
                           arg=[selector, expected], timeout=timeout_ms)


# What Gradio shows on an output while its event runs: a pending/generating class, or a progress tracker.
BUSY = "document.querySelectorAll('.pending, .generating, .progress-text, .eta-bar').length"


def wait_idle(page, timeout_ms: int = TIMEOUT_MS) -> None:
    page.wait_for_function(f"{BUSY} === 0", timeout=timeout_ms)


def click_and_wait(page, locator, timeout_ms: int = TIMEOUT_MS) -> None:
    """Click, then wait until every output of the event (and any `.then`) has stopped pending."""
    locator.click()
    with contextlib.suppress(Exception):  # a fast event may be done before we look
        page.wait_for_function(f"{BUSY} > 0", timeout=3000)
    wait_idle(page, timeout_ms)
    time.sleep(0.3)  # the last streamed value lands just after the pending class goes


def set_slider(page, elem_id: str, value) -> None:
    """Type a value into a slider's number box (fires the slider's change, not its release)."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def drag_slider(page, elem_id: str, fraction: float) -> None:
    """Move a slider with the mouse to ``fraction`` of its track, as a user does (fires release)."""
    track = page.locator(f"#{elem_id} input[type=range]")
    box = track.bounding_box()
    y = box["y"] + box["height"] / 2
    x = box["x"] + 2 + (box["width"] - 4) * fraction
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(x, y, steps=5)
    page.mouse.up()


def textbox(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} textarea").input_value()


def toast(page, timeout_ms: int = 60_000) -> str:
    """The text of the newest error toast (waits for one)."""
    last = page.locator(".toast-message-text").last
    last.wait_for(timeout=timeout_ms)
    return last.inner_text()


def close_toasts(page) -> None:
    """Close every toast and wait until they are gone: a closed toast stays on the page while it fades out, and the
    next ``toast()`` read it instead of the new one (a fresh-clone CI run, 2026-12-05)."""
    for close in page.locator(".toast-close").all():
        with contextlib.suppress(Exception):
            close.click(timeout=2000)
    page.wait_for_function("() => document.querySelectorAll('.toast-message-text').length === 0", timeout=15_000)


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, f"screenshot {path} is suspiciously small"
    return path
