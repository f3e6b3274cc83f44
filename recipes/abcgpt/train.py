"""The script the accelerate configs launch: ``hf-steer abc train`` under ``accelerate launch``.

    accelerate launch --config_file recipes/abcgpt/multi_gpu.yaml recipes/abcgpt/train.py \
        --source tinystories --source shakespeare --output-dir runs/abc --n-embd 384 --n-layer 6 --n-head 6 \
        --block-size 256 --batch-size 64 --steps 10000

Every process draws its own rows (seeded by seed, process index and step), so N processes see N times
the rows per step; gradients are averaged by DDP. Rerun with --resume to continue from the newest
checkpoint.
"""

import argparse
import sys

from hf_steer.abcgpt.cli import cmd_train, register
from hf_steer.errors import HfSteerError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="recipes/abcgpt/train.py")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["abc", "train", *(sys.argv[1:] if argv is None else argv)])
    try:
        return cmd_train(args)
    except HfSteerError as e:
        print(f"hf-steer: error: {e}", file=sys.stderr)
        return 2
    finally:
        # Tear the gloo/NCCL group down before exit, or a rank can abort at interpreter shutdown.
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
