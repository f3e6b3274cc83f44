"""The data-parallel path: a tiny 2-process CPU run (gloo) through `accelerate launch` and the recipe script."""

import json
import os
import subprocess
import sys
from pathlib import Path

from accelerate.commands.config.config_args import load_config_from_file

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "abcgpt"


def test_configs_load_with_accelerate_and_name_the_script():
    """What `accelerate launch --config_file` reads: accelerate's own loader, not a YAML parse."""
    multi = load_config_from_file(str(RECIPES / "multi_gpu.yaml"))
    assert multi.distributed_type.value == "MULTI_GPU" and multi.num_processes >= 2
    single = load_config_from_file(str(RECIPES / "single_gpu.yaml"))
    assert single.num_processes == 1
    cpu = load_config_from_file(str(RECIPES / "cpu_2proc.yaml"))
    assert cpu.distributed_type.value == "MULTI_CPU" and cpu.num_processes == 2 and cpu.use_cpu
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
