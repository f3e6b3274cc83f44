"""Tiny abcGPT fixtures: two (or three) small corpora cut from the bundled sources, and tiny configs."""

from __future__ import annotations

import pytest

from hf_steer.abcgpt.training import BUNDLED_SOURCES


@pytest.fixture(scope="session")
def tiny_sources(tmp_path_factory):
    """{name: path} of two ~3 KB corpora (case kept), written once to a temp folder; treat as read-only."""
    folder = tmp_path_factory.mktemp("abc_sources")
    out = {}
    for name in ("tinystories", "shakespeare"):
        path = folder / f"{name}.txt"
        path.write_text(BUNDLED_SOURCES[name].read_text(encoding="utf-8")[:3000], encoding="utf-8")
        out[name] = str(path)
    return out


# Tiny size flags for `hf-steer abc train/bench`: seconds on a CPU, a 64-character context.
TINY = ["--steps", "4", "--n-embd", "16", "--n-layer", "1", "--n-head", "2", "--block-size", "64", "--batch-size", "4"]


@pytest.fixture(scope="session")
def trained(tiny_sources, tmp_path_factory):
    """A folder written by `hf-steer abc train` on the tiny sources (gates on MLP units and heads, floor 0.2)."""
    from hf_steer.cli import main

    out = tmp_path_factory.mktemp("abc_cli") / "model"
    argv = ["abc", "train", "--output-dir", str(out), "--gates", "mlp,heads", "--gate-floor", "0.2", *TINY]
    for name, path in tiny_sources.items():
        argv += ["--source", f"{name}={path}"]
    assert main(argv) == 0
    return out


def tiny_model_config(**overrides):
    from hf_steer.abcgpt import AbcGPTConfig

    kwargs = dict(vocab_size=40, n_positions=48, n_embd=16, n_layer=2, n_head=2, source_names=["stories", "plays"], m_seed=3)
    kwargs.update(overrides)
    return AbcGPTConfig(**kwargs)


def tiny_model(**overrides):
    import torch

    from hf_steer.abcgpt import AbcGPTForCausalLM

    torch.manual_seed(0)
    return AbcGPTForCausalLM(tiny_model_config(**overrides)).eval()


def tiny_train_config(sources, output_dir, **overrides):
    from hf_steer.abcgpt.training import TrainConfig

    kwargs = dict(sources=sources, output_dir=str(output_dir), n_embd=16, n_layer=1, n_head=2, block_size=24,
                  batch_size=4, steps=6, log_every=2, save_every=0, eval_batches=1, learning_rate=1e-2, warmup_steps=2)
    kwargs.update(overrides)
    return TrainConfig(**kwargs)
