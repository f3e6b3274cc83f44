"""Fixtures for the Elarablation tests: a tiny random model saved as a folder (for the CLI and recipes)."""


import pytest
from conftest import make_tiny_model, make_tokenizer


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """A saved tiny llama + byte-level tokenizer with a chat template (loads with load_model)."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    make_tiny_model("llama").save_pretrained(folder)
    make_tokenizer("bytelevel").save_pretrained(folder)
    return folder


@pytest.fixture
def name_contexts(tmp_path):
    path = tmp_path / "names.yaml"
    path.write_text(
        "family: test_names\nrules: {good: ['^ [A-Z]'], bad: ['^ ?El']}\nhyperparameters: {top_k: 20}\n"
        "train: ['The elf girl nods. \"My name is', 'The dwarf grunted. \"They call me']\n"
        "heldout: ['Her voice was']\n"
    )
    return path
