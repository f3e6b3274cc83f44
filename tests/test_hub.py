"""Hub publishing, for real: push to a Hub-protocol server on 127.0.0.1, download back, compare logits.

The server (tests/hub_server.py) speaks the HTTP protocol huggingface_hub uses, so these tests run the
real client code: create_repo, preupload, the NDJSON commit, model_info, snapshot_download.
"""

from __future__ import annotations

import copy
import hashlib
import json
import socket
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_model, make_tokenizer
from hub_server import HubServer

from hf_steer.cli import main
from hf_steer.errors import HfSteerError
from hf_steer.hub import BUNDLED_HUB_ID, push_to_hub, templates_dir

TOKEN = "hf_loopbackSecretToken0123456789abcdef"
OTHER_TOKEN = "hf_someoneElsesToken0123456789abcdef"
USER = "tester"
PROMPT = 'The elf girl nods. "My name is'
ADAPTER_META = {
    "method": "elarablation",
    "artifact": "adapter",
    "base_model": "hf-internal-testing/tiny-random-LlamaForCausalLM",
    "datasets": ["hf-steer/elara-contexts", "contexts/local.yaml"],
    "hyperparameters": {"learning_rate": 1e-4, "max_steps": 30, "loss": "elarablate"},
    "metrics": {"before": {"p_elara": 0.3123, "distinct_names": 4}, "after": {"p_elara": 0.0021, "distinct_names": 17}},
    "plots": ["before_after.png"],
    "description": "Removes the over-represented name Elara.",
}


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A loopback Hub that huggingface_hub talks to, with a token for ``tester`` in ``HF_TOKEN``.

    huggingface_hub reads HF_ENDPOINT, HF_HOME... once, at import (``constants``), and the module-level
    ``api`` object keeps the endpoint it was built with; the process has imported it long before this
    fixture runs, so besides the environment (for anything reading it later, and subprocesses) the
    constants and that object are patched. ``HfApi()`` built later reads the patched endpoint.
    """
    from huggingface_hub import constants, hf_api

    with HubServer(tokens={TOKEN: USER, OTHER_TOKEN: "someone"}) as server:
        hf_home = tmp_path / "hf_home"
        env = {"HF_ENDPOINT": server.url, "HF_HOME": str(hf_home), "HF_HUB_CACHE": str(hf_home / "hub"),
               "HF_XET_CACHE": str(hf_home / "xet"), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_TOKEN": TOKEN}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE"):
            monkeypatch.delenv(name, raising=False)
        patches = {
            "ENDPOINT": server.url,
            "HUGGINGFACE_CO_URL_TEMPLATE": server.url + "/{repo_id}/resolve/{revision}/{filename}",
            "HF_HUB_OFFLINE": False,  # offline mode would block loopback too
            "HF_HUB_DISABLE_TELEMETRY": True,
            "HF_HOME": str(hf_home),
            "HF_HUB_CACHE": str(hf_home / "hub"),
            "HF_XET_CACHE": str(hf_home / "xet"),
            "HF_TOKEN_PATH": str(hf_home / "token"),  # never the developer's real saved token
            "HF_STORED_TOKENS_PATH": str(hf_home / "stored_tokens"),
        }
        for name, value in patches.items():
            monkeypatch.setattr(constants, name, value)
        monkeypatch.setattr(hf_api.api, "endpoint", server.url)
        yield server


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """A tiny Llama folder, a LoRA adapter on it (with hf_steer.json and a plot), and both models."""
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("artifacts")
    tokenizer = make_tokenizer("bytelevel")

    full = make_tiny_model("llama", seed=1)
    full.save_pretrained(root / "full")
    tokenizer.save_pretrained(root / "full")
    (root / "full" / "README.md").write_text("my own notes, not for the Hub\n")

    base = make_tiny_model("llama", seed=2)
    base.save_pretrained(root / "base")
    # init_lora_weights=False: random A and B, so the adapter really changes the logits.
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(copy.deepcopy(base), config)
    peft_model.eval()
    adapter = root / "adapter"
    peft_model.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    (adapter / "hf_steer.json").write_text(json.dumps(ADAPTER_META))
    (adapter / "before_after.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a plot")

    return {"root": root, "tokenizer": tokenizer, "full": full, "base": base, "peft_model": peft_model}


def _logits(model, tokenizer) -> torch.Tensor:
    with torch.no_grad():
        return model(**tokenizer(PROMPT, return_tensors="pt")).logits


def _folder_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def _card(text: str):
    from huggingface_hub import ModelCard

    return ModelCard(text)


def _assert_no_token_anywhere(hub: HubServer, repo_id: str, *outputs: str) -> None:
    for path, content in hub.files(repo_id).items():
        assert TOKEN.encode() not in content, path
    for output in outputs:
        assert TOKEN not in output


def test_push_adapter_round_trip(hub, artifacts, capsys):
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError
    from peft import PeftModel

    adapter = artifacts["root"] / "adapter"
    before = _folder_digest(adapter)

    url = push_to_hub(adapter, f"{USER}/elara-lora", private=True)

    assert url == f"{hub.url}/{USER}/elara-lora"
    repo = hub.repos[f"{USER}/elara-lora"]
    assert repo.private and len(repo.commits) == 1  # everything, card included, in one commit
    assert set(hub.files(f"{USER}/elara-lora")) == set(before) | {"README.md"}
    assert _folder_digest(adapter) == before  # the user's folder is untouched
    writes = [r for r in hub.requests if r.method == "POST"]
    assert writes and all(r.authorization == f"Bearer {TOKEN}" for r in writes)

    # Private: others cannot see it, the owner (HF_TOKEN) can download it.
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=OTHER_TOKEN).model_info(f"{USER}/elara-lora")
    assert HfApi().model_info(f"{USER}/elara-lora").private is True
    local = Path(snapshot_download(f"{USER}/elara-lora"))

    reloaded = PeftModel.from_pretrained(copy.deepcopy(artifacts["base"]), local)
    reloaded.eval()
    expected = _logits(artifacts["peft_model"], artifacts["tokenizer"])
    assert torch.equal(_logits(reloaded, artifacts["tokenizer"]), expected)
    assert not torch.equal(_logits(artifacts["base"], artifacts["tokenizer"]), expected)  # the adapter matters

    card = _card((local / "README.md").read_text())
    assert card.data.base_model == ADAPTER_META["base_model"]
    assert card.data.library_name == "peft"
    assert {"hf-steer", "elarablation", "lora"} <= set(card.data.tags)
    assert card.data.datasets == ["hf-steer/elara-contexts"]  # a local file is no Hub dataset
    assert "| metric | before | after |" in card.text and "| p_elara | 0.3123 | 0.0021 |" in card.text
    assert "| learning_rate | 0.0001 |" in card.text
    assert "![before_after.png](before_after.png)" in card.text
    assert ADAPTER_META["description"] in card.text
    # The pushed adapter config names the base on the Hub; the local one keeps its local path.
    pushed_config = json.loads((local / "adapter_config.json").read_text())
    assert pushed_config["base_model_name_or_path"] == ADAPTER_META["base_model"]

    captured = capsys.readouterr()
    _assert_no_token_anywhere(hub, f"{USER}/elara-lora", captured.out, captured.err)


def test_push_full_model_round_trip(hub, artifacts):
    from huggingface_hub import snapshot_download
    from transformers import AutoModelForCausalLM

    folder = artifacts["root"] / "full"
    url = push_to_hub(folder, "tiny-full", commit_message="first push")  # no namespace: the user's own

    assert url == f"{hub.url}/{USER}/tiny-full"
    repo = hub.repos[f"{USER}/tiny-full"]
    assert repo.private is False and repo.commits[0].message == "first push"
    assert (folder / "README.md").read_text() == "my own notes, not for the Hub\n"

    local = Path(snapshot_download(f"{USER}/tiny-full"))
    model = AutoModelForCausalLM.from_pretrained(local)
    model.eval()
    assert torch.equal(_logits(model, artifacts["tokenizer"]), _logits(artifacts["full"], artifacts["tokenizer"]))

    # No hf_steer.json: the card is inferred from config.json and still says what the model is.
    card = _card((local / "README.md").read_text())
    assert card.data.library_name == "transformers" and card.data.tags == ["hf-steer"]
    assert card.data.pipeline_tag == "text-generation"
    assert "LlamaForCausalLM" in card.text and f'from_pretrained("{USER}/tiny-full")' in card.text

    # Pushing again to the existing repo adds a commit.
    push_to_hub(folder, f"{USER}/tiny-full")
    assert len(repo.commits) == 2


def test_push_custom_code_model(hub, tmp_path, monkeypatch):
    folder = tmp_path / "custom"
    folder.mkdir()
    config = {"model_type": "abcgpt", "architectures": ["AbcGPTForCausalLM"],
              "auto_map": {"AutoConfig": "configuration_abcgpt.AbcGPTConfig",
                           "AutoModelForCausalLM": "modeling_abcgpt.AbcGPTForCausalLM"}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_abcgpt.py").write_text("# config code\n")
    (folder / "hf_steer.json").write_text(json.dumps({"method": "abcgpt", "artifact": "custom_code_model",
                                                      "metrics": {"alpha_0.5_ppl": 12.5}}))

    with pytest.raises(HfSteerError, match="misses modeling_abcgpt.py"):
        push_to_hub(folder, f"{USER}/abc")
    (folder / "modeling_abcgpt.py").write_text("# model code\n")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "modeling_abcgpt.cpython-311.pyc").write_bytes(b"\0")

    monkeypatch.delenv("HF_TOKEN")  # an explicit token works without any login
    overrides = {"license": "apache-2.0", "tags": ["alpha-dial"], "description": "One dial from A to B."}
    push_to_hub(folder, f"{USER}/abc", token=TOKEN, card_overrides=overrides)

    files = hub.files(f"{USER}/abc")
    assert {"modeling_abcgpt.py", "configuration_abcgpt.py", "config.json", "README.md"} <= set(files)
    assert not any("__pycache__" in path for path in files)
    card = _card(files["README.md"].decode())
    assert {"hf-steer", "abcgpt", "custom_code", "alpha-dial"} <= set(card.data.tags)
    assert card.data.license == "apache-2.0" and "One dial from A to B." in card.text
    assert "trust_remote_code=True" in card.text and "modeling_abcgpt.AbcGPTForCausalLM" in card.text
    assert "| alpha_0.5_ppl | 12.5 |" in card.text


def test_templates_ship_inside_the_package():
    """``hf_steer/model_cards`` (a link to the top-level folder) is what wheels carry as package data."""
    import hf_steer.hub

    folder = templates_dir()
    assert folder == Path(hf_steer.hub.__file__).parent / "model_cards"
    assert {p.name for p in folder.glob("*.md")} >= {"adapter.md", "merged_model.md", "custom_code_model.md"}


def test_cli_push(hub, artifacts, capsys):
    code = main(["push", str(artifacts["root"] / "adapter"), f"{USER}/cli-lora", "--private",
                 "--commit-message", "from the CLI"])

    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.strip() == f"{hub.url}/{USER}/cli-lora"
    repo = hub.repos[f"{USER}/cli-lora"]
    assert repo.private and repo.commits[-1].message == "from the CLI"
    _assert_no_token_anywhere(hub, f"{USER}/cli-lora", captured.out, captured.err)


def _bad_folder(tmp_path: Path, kind: str) -> Path:
    folder = tmp_path / kind
    folder.mkdir()
    if kind == "corrupt":
        (folder / "config.json").write_text("{}")
        (folder / "hf_steer.json").write_text('{"method": "elarablation",')
    if kind == "config":
        (folder / "config.json").write_text('{"model_type": "llama"}')
    return folder


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing folder", "does not exist"),
        ("no config", "neither config.json nor adapter_config.json"),
        ("bad repo id", "is not valid"),
        ("corrupt hf_steer.json", "is not valid JSON"),
        ("bad card metadata", "rejected the card"),
        ("not logged in", "hf auth login"),
        ("wrong token", "refused the credentials"),
        ("someone else's namespace", "cannot write to"),
        ("hub unreachable", "could not reach the Hub"),
    ],
)
def test_bad_input_is_one_clear_line(hub, tmp_path, monkeypatch, capsys, case, expected):
    folder, repo_id = _bad_folder(tmp_path, "config"), f"{USER}/model"
    if case == "missing folder":
        folder = tmp_path / "nowhere"
    elif case == "no config":
        folder = _bad_folder(tmp_path, "empty")
    elif case == "bad repo id":
        repo_id = "a/b/c d"
    elif case == "corrupt hf_steer.json":
        folder = _bad_folder(tmp_path, "corrupt")
    elif case == "bad card metadata":
        (folder / "hf_steer.json").write_text(json.dumps({"license": "no-such-licence"}))
    elif case == "not logged in":
        monkeypatch.delenv("HF_TOKEN")
    elif case == "wrong token":
        monkeypatch.setenv("HF_TOKEN", "hf_notAValidTokenAtAll0123456789")
    elif case == "someone else's namespace":
        repo_id = "someone/model"
    elif case == "hub unreachable":
        from huggingface_hub import constants

        with socket.socket() as closed:  # a port nobody listens on once this socket is closed
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")

    with pytest.raises(HfSteerError) as error:
        push_to_hub(folder, repo_id)
    message = str(error.value)
    assert expected in message and "\n" not in message
    if case in ("not logged in", "wrong token"):
        assert "HF_TOKEN" in message and "login" in message

    assert main(["push", str(folder), repo_id]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"hf-steer: error: {message}\n"
    assert TOKEN not in captured.out + captured.err


@pytest.mark.slow
def test_push_adapter_on_bundled_model(hub, bundled, tmp_path):
    """A LoRA adapter on the real bundled SmolLM2 round-trips with identical logits.

    The 540 MB float32 model itself would travel base64-encoded inside the commit body (the loopback
    Hub answers "regular" uploads, not LFS), so the adapter carries the real-model check instead.
    """
    from huggingface_hub import snapshot_download
    from peft import LoraConfig, PeftModel, get_peft_model

    model, tokenizer = bundled
    torch.manual_seed(0)
    config = LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    peft_model.eval()
    peft_model.save_pretrained(tmp_path / "adapter")
    tokenizer.save_pretrained(tmp_path / "adapter")

    expected = _logits(peft_model, tokenizer)

    push_to_hub(tmp_path / "adapter", f"{USER}/smollm2-lora")
    local = Path(snapshot_download(f"{USER}/smollm2-lora"))

    # unload() strips the LoRA layers and gives back the untouched base (cheaper than a second copy).
    reloaded = PeftModel.from_pretrained(peft_model.unload(), local)
    reloaded.eval()
    assert torch.equal(_logits(reloaded, tokenizer), expected)
    # The converted bundled folder is published under its Hub id, in the card and the adapter config.
    card = _card((local / "README.md").read_text())
    assert card.data.base_model == BUNDLED_HUB_ID
    assert json.loads((local / "adapter_config.json").read_text())["base_model_name_or_path"] == BUNDLED_HUB_ID
    assert "Q4_1 GGUF build" in card.text
