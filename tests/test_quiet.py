"""A clean run prints hf_steer's own lines only: no library warnings, no loading bars (``-v`` shows them)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import make_tiny_model, make_tokenizer

NOISE = ("Warning", "warnings.warn", "deprecated", "Loading weights", "it/s]", "kernels-community")


def _demo(folder, out, *extra):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_STEER_VERBOSE", "PYTHONWARNINGS",
                                                            "TRANSFORMERS_VERBOSITY")}
    cmd = [sys.executable, "-m", "hf_steer.cli", *extra, "demo", "--model", str(folder), "--epochs", "1",
           "--samples", "4", "--output-dir", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_demo_run_has_no_third_party_noise_and_verbose_brings_it_back(tmp_path):
    folder = tmp_path / "tiny"
    make_tiny_model("llama").save_pretrained(folder)
    make_tokenizer("bytelevel").save_pretrained(folder)
    quiet = _demo(folder, tmp_path / "quiet")
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    noisy_lines = [line for line in (quiet.stdout + quiet.stderr).splitlines() if any(n in line for n in NOISE)]
    assert not noisy_lines, noisy_lines[:5]
    assert "AFTER: top-10 next tokens" in quiet.stdout
    verbose = _demo(folder, tmp_path / "verbose", "-v")
    assert verbose.returncode == 0
    # -v keeps the libraries' own output (here at least transformers' weight-loading bar)
    assert any(n in verbose.stderr for n in NOISE), verbose.stderr[-1000:]
