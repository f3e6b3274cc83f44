"""Elarablation under `accelerate launch` (one GPU QLoRA, FSDP-QLoRA, CPU data parallel).

The model is loaded here rather than by hf_steer.models.load_model because distributed 4-bit loading
needs two things a single-process loader does not: ``bnb_4bit_quant_storage=bfloat16`` (FSDP shards
the packed 4-bit weights as bf16 tensors) and ``low_cpu_mem_usage`` (with the accelerate config's
cpu-efficient loading, only rank 0 materialises the weights).
"""

from __future__ import annotations

import argparse

import torch


def quantization_config(quant_storage: str = "bfloat16"):
    """nf4 + double quantisation, bf16 compute, packed weights stored as ``quant_storage`` (FSDP-QLoRA)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16,
                              bnb_4bit_quant_storage=getattr(torch, quant_storage))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("contexts", nargs="+", help="context files / library family names")
    p.add_argument("--model", default=None, help="model folder or Hub id (default: bundled SmolLM2)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--load-in-4bit", action="store_true", help="QLoRA")
    p.add_argument("--bnb-4bit-quant-storage", default="bfloat16", help="storage dtype of packed 4-bit weights")
    # Defaults of the training settings live in ElarablationConfig: a flag left out keeps the config's value.
    p.add_argument("--loss-type", default=None)
    p.add_argument("--learning-rate", "--lr", dest="lr", type=float, default=None)
    p.add_argument("--epochs", type=float, default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None, help="contexts per device per step")
    p.add_argument("--lora-layers", default=None, help="e.g. 40-79 (default: upper half)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    from transformers import AutoModelForCausalLM

    from hf_steer.elarablation import ElarablationConfig, ElarablationTrainer, load_contexts
    from hf_steer.elarablation.arguments import LoraArguments
    from hf_steer.elarablation.pipeline import default_lora_config
    from hf_steer.models import keep_4bit_weights_unpacked, load_tokenizer, resolve_model_path

    args = parse_args(argv)
    path = resolve_model_path(args.model)
    kwargs = {"dtype": torch.bfloat16 if torch.cuda.is_available() else torch.float32, "low_cpu_mem_usage": True}
    if args.load_in_4bit:
        kwargs["quantization_config"] = quantization_config(args.bnb_4bit_quant_storage)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if args.load_in_4bit:
        # On an AVX512-BF16 CPU bitsandbytes would repack the weights onto a path without autograd (see models.py).
        keep_4bit_weights_unpacked(model)
    tokenizer = load_tokenizer(path)
    given = {"loss_type": args.loss_type, "learning_rate": args.lr, "num_train_epochs": args.epochs,
             "max_steps": args.max_steps, "per_device_train_batch_size": args.batch_size}
    config = ElarablationConfig(
        output_dir=args.output_dir, gradient_checkpointing=args.load_in_4bit, ddp_find_unused_parameters=False,
        **{k: v for k, v in given.items() if v is not None},
    )
    trainer = ElarablationTrainer(model, config, load_contexts(args.contexts), tokenizer,
                                  peft_config=default_lora_config(model, layers=LoraArguments(lora_layers=args.lora_layers).layers()))
    trainer.train()
    trainer.save_model(args.output_dir)
    if trainer.is_world_process_zero():
        print(f"saved adapter in {args.output_dir} after {trainer.state.global_step} steps "
              f"on {trainer.accelerator.num_processes} process(es)")
    # Tear the process group down before the interpreter exits: otherwise a gloo rank can abort at
    # exit ("terminate called without an active exception") after a successful run.
    # Every rank waits for rank 0's save first: a rank that tore its group down while the other was still
    # inside the trainer aborted once on a CI machine (SIGABRT, exit -6) though training had finished.
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
