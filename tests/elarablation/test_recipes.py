"""The accelerate recipes: configs load with accelerate's own loader; a 2-process CPU data-parallel run."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import torch
from accelerate.commands.config.config_args import load_config_from_file

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "elarablation"


def test_configs_load_with_accelerate():
    single = load_config_from_file(str(RECIPES / "single_gpu_qlora.yaml"))
    assert single.num_processes == 1 and str(single.mixed_precision) == "bf16"
    fsdp = load_config_from_file(str(RECIPES / "fsdp_qlora_70b.yaml"))
    assert fsdp.distributed_type.value == "FSDP"
    assert fsdp.fsdp_config["fsdp_version"] == 1
    assert fsdp.fsdp_config["fsdp_cpu_ram_efficient_loading"] is True
    assert fsdp.fsdp_config["fsdp_use_orig_params"] is False  # FSDP1 + QLoRA
    cpu = load_config_from_file(str(RECIPES / "cpu_2proc.yaml"))
    assert cpu.num_processes == 2 and cpu.use_cpu


def test_script_quantizes_with_bf16_storage_for_fsdp():
    spec = importlib.util.spec_from_file_location("elarablation_recipe", RECIPES / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.quantization_config()
    assert config.bnb_4bit_quant_storage == torch.bfloat16 and config.load_in_4bit
    assert module.parse_args(["library", "--output-dir", "o"]).bnb_4bit_quant_storage == "bfloat16"


def _free_port() -> int:
    """A port nothing listens on now: accelerate's default 29500 may still be held by an earlier run."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_cpu_data_parallel_run(tmp_path, tiny_folder, name_contexts):
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    accelerate = Path(sys.executable).with_name("accelerate")
    out = tmp_path / "ddp"
    proc = subprocess.run(
        [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--main_process_port", str(_free_port()), "--mixed_precision", "no", "--dynamo_backend", "no", str(RECIPES / "train.py"), str(name_contexts),
         "--model", str(tiny_folder), "--output-dir", str(out), "--max-steps", "2", "--batch-size", "1",
         "--lora-layers", "0-1"],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "after 2 steps on 2 process(es)" in proc.stdout
    assert (out / "adapter_model.safetensors").is_file()


def test_the_recipe_keeps_its_own_4bit_load_off_the_packed_cpu_path(tmp_path, name_contexts, monkeypatch):
    """The script quantizes the model itself (bf16 storage for FSDP): it must call keep_4bit_weights_unpacked too,
    or an AVX512-BF16 CPU trains through a kernel without autograd. Simulated here on any CPU."""
    bnb = __import__("pytest").importorskip("bitsandbytes")
    from conftest import make_tiny_model, make_tokenizer

    import hf_steer.models

    folder = tmp_path / "tiny"
    make_tiny_model("llama", hidden_size=64, intermediate_size=128).save_pretrained(folder)
    make_tokenizer("bytelevel").save_pretrained(folder)
    monkeypatch.setattr(bnb.nn.modules, "has_avx512bf16", lambda: True)
    calls = []
    real = hf_steer.models.keep_4bit_weights_unpacked
    monkeypatch.setattr(hf_steer.models, "keep_4bit_weights_unpacked", lambda m: calls.append(real(m)) or calls[-1])
    spec = importlib.util.spec_from_file_location("elarablation_recipe_4bit", RECIPES / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([str(name_contexts), "--model", str(folder), "--output-dir", str(tmp_path / "out"), "--load-in-4bit",
                 "--bnb-4bit-quant-storage", "float32", "--max-steps", "1", "--batch-size", "1", "--lora-layers", "0-1"])
    assert calls and calls[0] > 0  # every Linear4bit layer of the model was kept on the plain path
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()
