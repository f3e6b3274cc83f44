"""docs/abcgpt.md's Python example runs as written, in a process that has plain transformers and no hf_steer."""

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "abcgpt.md"


def use_snippet() -> str:
    use = DOC.read_text(encoding="utf-8").split("## Use", 1)[1]
    return re.search(r"```python\n(.*?)```", use, re.S).group(1)


def test_use_snippet_runs_as_written(trained, tmp_path):
    snippet = use_snippet()
    assert 'from_pretrained("runs/abc"' in snippet and "max_new_tokens=200" in snippet
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "abc").symlink_to(trained)  # what `hf-steer abc train ... --output-dir runs/abc` wrote
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # One thread: on a busy 2-core machine two threads contend and the 200 steps take 5x longer.
    env.update(HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # 200 sampled characters from a model whose context is 64: the window slid (decoding drops sampled specials)
    assert len(proc.stdout) > 150 and "Traceback" not in proc.stderr
