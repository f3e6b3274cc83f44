"""hf_steer.utils: atomic writes, reusing freed memory."""

import os
import platform
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hf_steer.utils import atomic_write_json, atomic_write_text


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_gives_the_mode_a_plain_write_gives_and_keeps_an_old_file_s_mode(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    new = atomic_write_json(tmp_path / "report.json", {"a": 1})
    assert new.read_text() == '{\n  "a": 1\n}\n'
    assert _mode(new) == _mode(plain)  # mkstemp's 0600 made every report, state and context file private
    os.chmod(new, 0o600)
    atomic_write_text(new, "again")
    assert new.read_text() == "again" and _mode(new) == 0o600  # a user's own chmod stays


def test_atomic_write_that_fails_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = atomic_write_text(tmp_path / "state.json", "old")
    with pytest.raises(TypeError):
        atomic_write_text(path, None)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


_FAULTS = """
import resource, sys
from hf_steer.utils import reusing_freed_memory

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        block = b"x" * 100_000_000  # a training step's logits: allocated, written, freed
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

plain = faults()
with reusing_freed_memory() as changed:
    reused = faults()
print(changed, plain, reused, faults())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_reusing_freed_memory_stops_large_blocks_faulting_in_fresh_pages_and_restores_the_default_after():
    out = subprocess.run([sys.executable, "-c", _FAULTS], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    changed, plain, reused, after = out.stdout.split()
    assert changed == "True"
    # ten 100 MB blocks are ~244k fresh pages through mmap; reused, only the first block's ~24k
    assert int(plain) > 150_000
    assert int(reused) < int(plain) / 4
    assert int(after) > 150_000  # glibc's defaults back: the rest of the process is as it was


def test_frozen_linears_in_stores_frozen_weights_at_the_autocast_precision_and_gives_them_back():
    """``frozen_linears_in``: under bf16 autocast the same outputs to the bit (autocast casts to the same values) and
    the same gradients of what trains; the frozen weights come back as they were, an output layer's tie to the
    embeddings included; a weight that trains and one not in floating point are left alone."""
    import torch
    from conftest import make_tiny_model

    from hf_steer.utils import frozen_linears_in

    torch.manual_seed(0)
    model = make_tiny_model("llama")
    model.config.tie_word_embeddings = True
    model.lm_head.weight = model.model.embed_tokens.weight
    for p in model.parameters():
        p.requires_grad_(False)
    trained = model.model.layers[-1].mlp.down_proj.weight
    trained.requires_grad_(True)
    frozen = {name: p for name, p in model.named_parameters()}
    ids = torch.randint(0, model.config.vocab_size, (2, 9))

    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(input_ids=ids).logits
        logits.float().square().mean().backward()
        grad, trained.grad = trained.grad.clone(), None
        return logits.detach(), grad

    before = run()
    with frozen_linears_in(model, torch.bfloat16) as count:
        assert count == sum(1 for m in model.modules() if isinstance(m, torch.nn.Linear)) - 1  # not the trained one
        assert model.lm_head.weight.dtype == torch.bfloat16 and trained.dtype == torch.float32
        inside = run()
    assert torch.equal(before[0], inside[0]) and torch.equal(before[1], inside[1])
    assert all(p is frozen[name] and p.dtype == torch.float32 for name, p in model.named_parameters())
    assert model.lm_head.weight is model.model.embed_tokens.weight
