"""The studio on the bundled SmolLM2-135M-Instruct, driven in Chromium like a user; screenshots to docs/studio/.

A fact is only worth remembering if a real model can answer it back, so the memory test runs on the bundled
model with the background trainer and MiniLM routing, as `hf-steer studio` starts. DRµGS and Elarablation
run on it too (their screenshots then show real text); the abcGPT tab uses the small abcGPT of the fixture.
"""

from __future__ import annotations

import re

import pytest

from .conftest import (
    BUSY,
    TIMEOUT_MS,
    click_and_wait,
    drag_slider,
    screenshot,
    set_slider,
    textbox,
    wait_idle,
    wait_text,
)

QUESTION = "Where was Veltra Quosh born?"
FACT = "Veltra Quosh was born in the town of Marbelin."


def last_reply(page) -> str:
    return page.locator("#mem-chat .bot").last.inner_text().strip()


def ask(page, text: str) -> str:
    before = page.locator("#mem-chat .bot").count()
    page.locator("#mem-input textarea").fill(text)
    page.locator("#mem-send").click()
    page.wait_for_function(f"document.querySelectorAll('#mem-chat .bot').length > {before}", timeout=TIMEOUT_MS)
    wait_idle(page)
    return last_reply(page)


def new_conversation(page) -> None:
    page.locator("#mem-new").click()
    page.wait_for_function("document.querySelectorAll('#mem-chat .bot').length === 0")


@pytest.mark.slow
def test_memory_tab_remembers_a_fact_and_forgets_it(bundled_studio, page):
    url, _ = bundled_studio
    page.goto(url)
    base_answer = ask(page, QUESTION)
    assert "Marbelin" not in base_answer

    new_conversation(page)
    ask(page, FACT)
    page.locator("#mem-remember").click()
    status = page.locator("#mem-status")
    page.wait_for_function("/m001 (queued|running)/.test(document.querySelector('#mem-status').innerText)")
    wait_text(page, "#mem-status", "m001 switched in")
    assert re.search(r"active: m001", status.inner_text())
    wait_text(page, "#mem-table", 'm001')

    # A new conversation: the fact is not in the prompt any more, only in the adapter.
    new_conversation(page)
    assert "Marbelin" in ask(page, QUESTION)
    screenshot(page, "memory")

    page.locator("#mem-selected label", has_text="m001").locator("input").check()
    click_and_wait(page, page.locator("#mem-forget"))
    assert "Forgot m001" in page.locator("#mem-result").inner_text()
    new_conversation(page)
    assert ask(page, QUESTION) == base_answer


@pytest.mark.slow
def test_drugs_tab_theta_zero_is_exactly_sober_and_a_dose_is_not(bundled_studio, page):
    url, _ = bundled_studio
    page.goto(url)
    page.get_by_role("tab", name="DRµGS").click()
    set_slider(page, "drugs-tokens", 24)
    set_slider(page, "drugs-draws", 2)
    set_slider(page, "drugs-theta-A", 0)
    click_and_wait(page, page.locator("#drugs-generate"))
    sober = textbox(page, "drugs-sober")
    assert len(sober.split()) >= 5
    assert textbox(page, "drugs-draw-1") == sober and textbox(page, "drugs-draw-2") == sober

    set_slider(page, "drugs-theta-A", 0.6)
    set_slider(page, "drugs-depth-A", 0.5)
    click_and_wait(page, page.locator("#drugs-generate"))
    assert textbox(page, "drugs-sober") == sober  # the sober column does not move
    draws = [textbox(page, "drugs-draw-1"), textbox(page, "drugs-draw-2")]
    assert all(draws) and any(d != sober for d in draws), draws
    assert page.locator("#drugs-plot img, #drugs-plot svg, #drugs-plot canvas").count() > 0  # the vergence plot
    screenshot(page, "drugs")


def source_score(page) -> float:
    return float(re.search(r"source score ([+−-][\d.]+)", page.locator("#abc-score").inner_text()).group(1)
                 .replace("−", "-"))


@pytest.mark.slow
def test_abcgpt_tab_alpha_moves_the_voice(bundled_studio, page):
    url, _ = bundled_studio
    page.goto(url)
    page.get_by_role("tab", name="abcGPT").click()
    click_and_wait(page, page.locator("#abc-load"))
    assert "sources tinystories, shakespeare" in page.locator("#abc-info").inner_text()
    assert page.locator("#abc-alpha input[type=number]").input_value() == "0"  # Load generates at α = 0
    at_zero_text = page.locator("#abc-score").inner_text()
    at_zero = source_score(page)
    drag_slider(page, "abc-alpha", 1.0)
    page.wait_for_function("document.querySelector('#abc-alpha input[type=number]').value === '1'")
    page.wait_for_function("(t) => document.querySelector('#abc-score').innerText !== t"
                           f" && {BUSY} === 0", arg=at_zero_text)
    at_one = source_score(page)
    assert at_one > at_zero, (at_zero, at_one)
    assert page.locator("#abc-plot img, #abc-plot svg, #abc-plot canvas").count() > 0
    screenshot(page, "abcgpt")


@pytest.mark.slow
def test_elarablation_tab_trains_and_compares(bundled_studio, page, tmp_path):
    url, _ = bundled_studio
    page.goto(url)
    page.get_by_role("tab", name="Elarablation").click()
    click_and_wait(page, page.locator("#ela-show"))
    assert page.locator("#ela-bars img, #ela-bars svg, #ela-bars canvas").count() > 0
    set_slider(page, "ela-epochs", 1)
    page.locator("#ela-output textarea").fill(str(tmp_path / "adapter"))
    click_and_wait(page, page.locator("#ela-train"))
    assert "Trained" in page.locator("#ela-status").inner_text()
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    screenshot(page, "elarablation")
