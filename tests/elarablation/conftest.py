"""Fixtures for the Elarablation tests (the saved tiny model, `tiny_folder`, is in tests/conftest.py)."""


import pytest


@pytest.fixture
def name_contexts(tmp_path):
    path = tmp_path / "names.yaml"
    path.write_text(
        "family: test_names\nrules: {good: ['^ [A-Z]'], bad: ['^ ?El']}\nhyperparameters: {top_k: 20}\n"
        "train: ['The elf girl nods. \"My name is', 'The dwarf grunted. \"They call me']\n"
        "heldout: ['Her voice was']\n"
    )
    return path
