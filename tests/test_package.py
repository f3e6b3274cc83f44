"""The public names promised in the package ``__init__``s resolve, to the objects they promise, quickly."""

import importlib
import subprocess
import sys
import types

import pytest

import hf_steer

PACKAGES = ["hf_steer", "hf_steer.elarablation", "hf_steer.drugs", "hf_steer.memory", "hf_steer.abcgpt"]


@pytest.mark.parametrize("package", PACKAGES)
def test_public_names_resolve_to_objects_not_submodules(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        # a lazily exported name must not be shadowed by a submodule of the same name
        assert value is not None and not isinstance(value, types.ModuleType), f"{package}.{name}"
    assert callable(hf_steer.load_model) and callable(hf_steer.inject) and callable(hf_steer.push_to_hub)


def test_import_hf_steer_does_not_load_torch():
    """``hf-steer --help`` speed rests on this: the package and the CLI modules import nothing heavy."""
    code = ("import sys, hf_steer, hf_steer.cli; hf_steer.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
