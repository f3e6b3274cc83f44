"""Small shared helpers: seeding, quiet logging, atomic JSON writes, reusing freed memory while training, frozen
weights stored at their autocast precision."""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) in one call."""
    if not isinstance(seed, int) or not 0 <= seed < 2**32:
        from .errors import HfSteerError

        raise HfSteerError(f"seed {seed!r} is out of range: use a whole number from 0 to 4294967295")
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def quiet_third_party() -> None:
    """Silence library chatter that tells a CLI user nothing (the CLI default; ``-v`` keeps it all).

    Kept: our own messages, real errors, and warnings about the user's own settings. Dropped:
    transformers' info/warning logging and weight-loading bars; FutureWarning/DeprecationWarning
    from libraries (a user cannot act on a library's internal deprecations); bitsandbytes' "Failed to
    load CPU gemm_4bit_forward from kernels-community" (printed at import on AVX512-BF16 CPUs: an
    optional faster kernel, and hf_steer keeps 4-bit layers off that path anyway, see models.py);
    PEFT's "Adapter X was active which is now deleted" (LoRA memory deletes adapters on purpose).
    Environment variables are set too, so worker processes started later inherit the same quiet.
    """
    import logging
    import warnings

    if os.environ.get("HF_STEER_VERBOSE"):
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=r"Adapter .* was active which is now deleted")
    for name in ("bitsandbytes", "accelerate", "datasets", "sentence_transformers", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if "transformers" in sys.modules:  # else the environment above applies when it is imported
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()


# The older name (the memory worker used it).
quiet_transformers = quiet_third_party


# glibc's mallopt parameters and their defaults (malloc.h, mallopt(3))
_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD = -1, 128 * 1024
_M_MMAP_MAX, _DEFAULT_MMAP_MAX = -4, 65536


def _glibc():
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt, libc.malloc_trim  # noqa: B018 -- both or neither: glibc's
    except (OSError, AttributeError, TypeError):
        return None
    return libc


@contextlib.contextmanager
def reusing_freed_memory() -> Iterator[bool]:
    """Inside: glibc keeps freed memory for the next allocation instead of returning each large block to the kernel;
    on leaving, its defaults come back and the freed memory is returned (``malloc_trim``). Yields False where the C
    library is not glibc (nothing changed there).

    A training step on CPU allocates and frees the same large tensors every step (the logits of 8 contexts are
    ~150 MB). glibc serves each block over 32 MB with its own ``mmap`` and unmaps it when freed, so the kernel
    zeroes fresh pages every step: on the bundled model's `auto` training (2 cores, AVX512-BF16) 7.6 million page
    faults in 12 steps, 17 s of system time, 4.08 s a step; with mmap off and the heap's top trimmed only past
    2 GiB, 0.6 million, 3 s, 3.33 s a step (-18%; the training stage of the story bench 372 -> 318 s, its figures
    unchanged to the last digit). Only around training: left on for a whole `bench-stories` run it also made it
    keep what generation and the judge freed (peak memory 8.3 -> 11.4 GB), and generation was not faster.
    """
    libc = _glibc()
    if libc is None:
        yield False
        return
    libc.mallopt(_M_MMAP_MAX, 0)
    libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    try:
        yield True
    finally:
        libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)


@contextlib.contextmanager
def frozen_linears_in(model: Any, dtype: Any) -> Iterator[int]:
    """Inside: the frozen float weights of ``model``'s ``nn.Linear`` layers are stored in ``dtype`` (copies); the
    originals come back on leaving, ties (an output layer sharing the embeddings) included. Yields how many.

    Under ``torch.autocast(dtype=dtype)`` a matmul casts its weight to ``dtype`` on every call, and the cast is
    cached only for weights that train: a frozen one is cast again by each forward. For a few rows the cast is most
    of the cost: on the bundled model's vocabulary (49,152 x 576) a one-row projection took 23 ms under bf16
    autocast with the weight in fp32 and 3.9 ms with it stored in bf16 (2 cores, AMD EPYC with AVX512-BF16). For
    many rows it is not (a training step of 8 contexts, 102 stories drawn at once: no faster). The results are the
    same: autocast would cast to the same values. Use it only where every forward runs under that autocast (a bf16
    weight and an fp32 input do not multiply)."""
    import torch

    swapped = [(module, module.weight) for module in model.modules()
               if isinstance(module, torch.nn.Linear) and isinstance(module.weight, torch.nn.Parameter)
               and not module.weight.requires_grad and module.weight.is_floating_point()
               and module.weight.dtype != dtype]
    try:
        for module, weight in swapped:
            module.weight = torch.nn.Parameter(weight.detach().to(dtype), requires_grad=False)
        yield len(swapped)
    finally:
        for module, weight in swapped:
            module.weight = weight


def _umask() -> int:
    """The process umask (read by setting it, so set it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temp file + fsync + rename: readers see old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp makes the file private (0600): give it the mode a plain open() would (or the old file's)
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """JSON version of :func:`atomic_write_text` (indented, UTF-8, trailing newline)."""
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def lazy_exports(package: str, names: dict[str, str], before: str | None = None):
    """``(__getattr__, __dir__)`` for a package whose public names are imported on first use (PEP 562).

    ``names`` maps a public name to the submodule (relative to ``package``) that defines it; ``before``
    names a submodule imported ahead of any of them (abcGPT's Auto-class registration). Keeps
    ``import hf_steer.<method>.cli`` cheap, so ``hf-steer --help`` does not pay for torch or TRL.
    """
    import importlib

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if before is not None:
            importlib.import_module(before, package)
        return getattr(importlib.import_module(names[name], package), name)

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
