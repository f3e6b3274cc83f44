"""The studio on a tiny random model, in Chromium: bad input, pushing to a (loopback) Hub, two browser tabs.

What these tests check does not depend on what the model writes, so a tiny random model keeps them fast.
Bad input is also sent past the page, straight to the HTTP API (gradio_client), as a script could.
"""

from __future__ import annotations

import json

import pytest
from hub_server import HubServer

from .conftest import click_and_wait, close_toasts, set_slider, toast, wait_text

TOKEN = "hf_studioSecretToken0123456789abcdef"
USER = "tester"


def api_error(url: str, api_name: str, *args) -> str:
    """Call an event of the studio through its HTTP API; return the error message it answers with."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    with pytest.raises(Exception) as info:  # gradio_client.exceptions.AppError
        client.predict(*args, api_name=api_name)
    return str(info.value)


def test_bad_input_sent_to_the_api_gets_one_clear_line(tiny_studio, tiny_folder):
    url, _ = tiny_studio
    doses = [0.0, 0.5, 0.17] * 5
    cases = [
        ("/on_generate", ["hi", 2, 16, 0, "abc", *doses[1:]], "θ of H is 'abc', not a number"),
        ("/on_generate", ["hi", 2, 16, 0, 9.0, *doses[1:]], "θ of H is 9.0, outside 0..1.5"),
        ("/on_generate", ["hi", 100, 16, 0, *doses], "draws is 100, outside 1..6"),
        ("/on_generate", ["hi", 2, "NaN", 0, *doses], "new tokens is 'NaN'"),
        ("/on_generate", ["", 2, 16, 0, *doses], "prompt is empty"),
        ("/on_forget", [["nope"]], "adapter 'nope' is not in catalog"),
        ("/on_rollup", [["nope"], "blend"], "roll-up method 'blend' is unknown"),
        ("/on_load", [str(tiny_folder), 0, "\\n", 1, 20, 0.8, 0], "holds a 'llama' model, not an abcGPT"),
        ("/on_load", ["/no/such/folder", 0, "\\n", 1, 20, 0.8, 0], "does not exist"),
        ("/on_dial", [7, "\\n", 1, 20, 0.8, 0, *[0.0] * 6], "α is 7, outside 0..1"),
    ]
    for api_name, args, expected in cases:
        message = api_error(url, api_name, *args)
        assert expected in message, (api_name, message)
        assert "Traceback" not in message and "File \"" not in message


def test_bad_input_on_the_page_shows_one_message_and_loses_nothing(tiny_studio, page, tmp_path):
    url, studio = tiny_studio
    page.goto(url)
    page.locator("#mem-forget").click()
    assert "no adapter selected: tick the adapter(s) to forget" in toast(page)
    close_toasts(page)
    page.get_by_role("tab", name="abcGPT").click()
    page.locator("#abc-folder textarea").fill(str(tmp_path))
    page.locator("#abc-load").click()
    assert "has no config.json or adapter_config.json" in toast(page)
    assert "Traceback" not in page.content()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A loopback Hub that huggingface_hub talks to (as in tests/test_hub.py), no token saved anywhere."""
    from huggingface_hub import constants, hf_api

    with HubServer(tokens={TOKEN: USER}) as server:
        hf_home = tmp_path / "hf_home"
        for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HF_HOME", str(hf_home))
        patches = {"ENDPOINT": server.url, "HF_HUB_OFFLINE": False, "HF_HOME": str(hf_home),
                   "HF_HUB_CACHE": str(hf_home / "hub"), "HF_XET_CACHE": str(hf_home / "xet"),
                   "HF_TOKEN_PATH": str(hf_home / "token"), "HF_STORED_TOKENS_PATH": str(hf_home / "stored_tokens"),
                   "HUGGINGFACE_CO_URL_TEMPLATE": server.url + "/{repo_id}/resolve/{revision}/{filename}"}
        for name, value in patches.items():
            monkeypatch.setattr(constants, name, value)
        monkeypatch.setattr(hf_api.api, "endpoint", server.url)
        yield server


def test_train_then_push_from_the_page_keeps_the_token_secret(tiny_studio, page, hub, tmp_path, capfd):
    url, _ = tiny_studio
    page.goto(url)
    page.get_by_role("tab", name="Elarablation").click()
    page.locator("#ela-family input").fill("(typed context below)")
    page.locator("#ela-family input").press("Enter")
    page.locator("#ela-context textarea").fill('The elf girl nods. "My name is')
    set_slider(page, "ela-epochs", 1)
    page.locator("#ela-output textarea").fill(str(tmp_path / "adapter"))
    click_and_wait(page, page.locator("#ela-train"))
    assert "Trained" in page.locator("#ela-status").inner_text()
    assert json.loads((tmp_path / "adapter" / "hf_steer.json").read_text())["method"] == "elarablation"

    # No token typed and nobody logged in: one line saying how to log in.
    page.locator("#ela-repo textarea, #ela-repo input").first.fill(f"{USER}/studio-adapter")
    page.locator("#ela-push").click()
    assert "not logged in to the Hugging Face Hub" in toast(page)
    close_toasts(page)
    assert hub.repos == {}

    page.locator("#ela-token input, #ela-token textarea").first.fill(TOKEN)
    click_and_wait(page, page.locator("#ela-push"))
    status = page.locator("#ela-status").inner_text()
    assert "Pushed adapter to" in status and f"{USER}/studio-adapter" in status, status
    files = hub.files(f"{USER}/studio-adapter")
    assert "adapter_model.safetensors" in files and "README.md" in files
    # The token box is emptied after the push; the token is nowhere on the page, in the repo or in the logs.
    assert page.locator("#ela-token input, #ela-token textarea").first.input_value() == ""
    assert TOKEN not in page.content()
    assert all(TOKEN.encode() not in content for content in files.values())
    out, err = capfd.readouterr()
    assert TOKEN not in out and TOKEN not in err


def test_two_browser_tabs_share_one_catalog_without_corrupting_it(tiny_studio, browser_context):
    url, studio = tiny_studio
    a, b = browser_context.new_page(), browser_context.new_page()
    try:
        a.goto(url)
        for i, fact in enumerate(["Ana Brel lives in Oskovo.", "Tomas Vek plays the cello.", "Irsa Moll grows figs."]):
            a.locator("#mem-input textarea").fill(fact)
            click_and_wait(a, a.locator("#mem-send"))
            click_and_wait(a, a.locator("#mem-remember"))
            wait_text(a, "#mem-table", f"m00{i + 1}")
        b.goto(url)
        wait_text(b, "#mem-table", 'm003')

        # At once: tab A forgets m001 while tab B rolls m002 and m003 up.
        a.locator("#mem-selected label", has_text="m001").locator("input").check()
        b.locator("#mem-selected label", has_text="m002").locator("input").check()
        b.locator("#mem-selected label", has_text="m003").locator("input").check()
        a.locator("#mem-forget").click()
        b.locator("#mem-rollup").click()
        # While an event runs the result box shows Gradio's "processing | 0.7s": wait for the answer itself.
        wait_text(a, "#mem-result", "Forgot m001")
        wait_text(b, "#mem-result", "Rolled m002, m003 into")
        rolled = b.locator("#mem-result").inner_text()
        rollup = rolled.split("into ")[1].split()[0]  # r003 or r004: the order the two clicks got the lock

        memory = studio.tabs["memory"].memory
        catalog = json.loads((memory.catalog.folder / "catalog.json").read_text())
        assert set(catalog["rows"]) == {"m002", "m003", rollup} == set(memory.catalog.rows)
        for name in catalog["rows"]:
            assert (memory.catalog.adapter_dir(name) / "adapter_model.safetensors").is_file()
        assert not memory.catalog.adapter_dir("m001").exists()
        # Both tabs redraw the same catalog.
        for p in (a, b):
            p.wait_for_function("() => { const t = document.querySelector('#mem-table').innerText;"
                                " return t.includes('" + rollup + "') && !t.includes('m001'); }")
    finally:
        a.close()
        b.close()


def test_an_abc_adapter_folder_loads_in_the_abcgpt_tab_and_dials(tiny_studio, page, tiny_folder, tmp_path):
    """What a user of `hf-steer abc adapt train` does: type the adapter's folder in the abcGPT tab and dial it."""
    from hf_steer.abcgpt.adapter import AbcAdaptConfig, train_adapter
    from hf_steer.abcgpt.training import BUNDLED_SOURCES

    sources = {}
    for name in ("tinystories", "shakespeare"):
        sources[name] = str(tmp_path / f"{name}.txt")
        (tmp_path / f"{name}.txt").write_text(BUNDLED_SOURCES[name].read_text(encoding="utf-8")[:3000], encoding="utf-8")
    folder = tmp_path / "adapter"
    train_adapter(AbcAdaptConfig(sources=sources, output_dir=str(folder), base_model=str(tiny_folder), r=4,
                                 layers="all", block_size=24, batch_size=4, steps=2, save_steps=0, logging_steps=1,
                                 eval_windows=1, warmup_steps=1, progress=False))
    url, _ = tiny_studio
    page.goto(url)
    page.get_by_role("tab", name="abcGPT").click()
    page.locator("#abc-folder textarea").fill(str(folder))
    click_and_wait(page, page.locator("#abc-load"))
    wait_text(page, "#abc-info", "Loaded the abc adapter")
    assert "sources tinystories, shakespeare" in page.locator("#abc-info").inner_text()
    assert "length (tokens)" in page.locator("#abc-length").inner_text()
    wait_text(page, "#abc-score", "source score")
    assert page.locator("#abc-out textarea").input_value().strip()  # Load wrote with the adapter at α = 0
    assert page.locator("#abc-length input[type=number]").get_attribute("max") == "200"  # tokens, not characters
