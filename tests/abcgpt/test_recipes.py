"""The data-parallel path: a tiny 2-process CPU run (gloo) through `accelerate launch` and the recipe script."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "abcgpt"


def test_configs_parse_and_name_the_script():
    for name in ("multi_gpu.yaml", "single_gpu.yaml", "cpu_2proc.yaml"):
        cfg = yaml.safe_load((RECIPES / name).read_text())
        assert cfg["num_processes"] >= 1 and "distributed_type" in cfg
    assert "recipes/abcgpt/train.py" in (RECIPES / "launch.sh").read_text()


def test_two_process_cpu_training(tiny_sources, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", str(RECIPES / "train.py"),
        "--output-dir", str(out), "--steps", "3", "--save-every", "2", "--n-embd", "16", "--n-layer", "1",
        "--n-head", "2", "--block-size", "16", "--batch-size", "2",
    ]
    for name, path in tiny_sources.items():
        cmd += ["--source", f"{name}={path}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = json.loads((out / "training_log.json").read_text())
    assert log["num_processes"] == 2 and log["log"][-1]["step"] == 3
    assert (out / "model.safetensors").is_file() and (out / "checkpoint-3" / "abc_state.json").is_file()
    assert proc.stdout.count("saved ") == 1  # only the main process reports
