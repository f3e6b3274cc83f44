"""The abc adapter package: public names resolve (and register the method with PEFT); its CLI stays light."""

import subprocess
import sys
import types


def test_public_names_resolve_and_register_with_peft():
    import hf_steer.abcgpt.adapter as adapter

    for name in adapter.__all__:
        value = getattr(adapter, name)
        assert value is not None and not isinstance(value, types.ModuleType), name
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING

    assert PEFT_TYPE_TO_CONFIG_MAPPING["ABC_ADAPTER"] is adapter.AbcAdapterConfig
    assert PEFT_TYPE_TO_TUNER_MAPPING["ABC_ADAPTER"] is adapter.AbcAdapterModel


def test_cli_module_imports_nothing_heavy():
    code = ("import sys, hf_steer.abcgpt.adapter.cli as c, argparse; p = argparse.ArgumentParser(); "
            "c.register_adapt(p.add_subparsers()); "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
