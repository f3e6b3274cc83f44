"""``hf_steer.json``: what every output folder says about itself, written and read by one typed object.

Every method writes its artifact (a PEFT adapter, a merged model, a custom-code model) into a folder
with an ``hf_steer.json`` beside the weights. ``hf-steer push`` reads it to render the model card:
the method, the base model (as a Hub id when there is one), the data, the hyperparameters, the
measured figures and the plots. One dataclass holds those fields, so no writer can drop one (before
this file there were seven hand-written dicts, one of which left out ``base_model`` and
``description`` and produced a thin card).

    Artifact(method="elarablation", artifact="adapter", base_model=hub_model_id(path),
             hyperparameters={...}, description="...").save(folder)
    record_metrics(folder, {"kl_nats": 0.01}, plots=["bench.png"])   # a bench adds its figures later
    Artifact.load(folder)                                             # None when the folder has none
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import HfSteerError
from .utils import atomic_write_json

METADATA_FILE = "hf_steer.json"
ARTIFACT_KINDS = ("adapter", "merged_model", "custom_code_model", "custom_generate")
METHODS = ("elarablation", "drugs", "lora_memory", "abcgpt", "abc_adapter")
BUNDLED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
# Folder name of the converted bundled model (see models.bundled_model_path): its Hub id is known.
_BUNDLED_FOLDER = re.compile(r"^SmolLM2-135M-Instruct-v\d+-\d+$")


def hub_model_id(name_or_path: str | os.PathLike | None) -> str | None:
    """What a card calls a base model: a Hub repo id, or ``None`` for a local path the Hub cannot link to.

    ``"bundled"`` and the converted bundled folder (a cache path) both become the bundled model's Hub
    id, so every method records the same name for the same model.
    """
    if not name_or_path:
        return None
    name = str(name_or_path)
    if name in ("bundled", "SmolLM2-135M-Instruct"):
        return BUNDLED_HUB_ID
    path = Path(name).expanduser()
    if _BUNDLED_FOLDER.match(path.name):
        return BUNDLED_HUB_ID
    if path.is_absolute() or name.startswith((".", "~")) or path.exists():
        return None
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def base_model_name(name_or_path: str | os.PathLike | None) -> str | None:
    """The base model as recorded in ``hf_steer.json``: its Hub id when it has one, else the path given.

    ``None`` means what :func:`hf_steer.load_model` loads for ``None``: the bundled model.
    """
    if not name_or_path:
        return BUNDLED_HUB_ID
    return hub_model_id(name_or_path) or str(name_or_path)


@dataclass
class Artifact:
    """The contents of one ``hf_steer.json``.

    Args:
        method: which hf_steer method wrote the folder (``elarablation``, ``lora_memory``, ...).
        artifact: ``adapter``, ``merged_model``, ``custom_code_model`` or ``custom_generate`` (a decoding
            method for ``model.generate(custom_generate=...)``, no weights).
        base_model: Hub id (or path) of the base model; ``None`` for a model trained from scratch.
        description: the card's first paragraph: what this is and how to use it.
        datasets: data the artifact was trained on (Hub ids, or file names).
        hyperparameters: training settings, shown as a table on the card.
        metrics: measured figures, flat ``{name: value}`` or ``{condition: {name: value}}``.
        plots: PNG files in the folder that the card embeds.
        extra: method-specific fields kept verbatim (``base_fingerprint``, ``tags``...).
    """

    method: str
    artifact: str
    base_model: str | None = None
    description: str = ""
    datasets: list[str] = field(default_factory=list)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.artifact not in ARTIFACT_KINDS:
            raise HfSteerError(f"artifact {self.artifact!r} is unknown: use one of {', '.join(ARTIFACT_KINDS)}")
        if not isinstance(self.method, str) or not self.method:
            raise HfSteerError(f"method {self.method!r} must be a non-empty string: name the hf_steer method")
        if isinstance(self.datasets, str):
            self.datasets = [self.datasets]
        self.datasets = [str(d) for d in self.datasets]
        self.plots = sorted(dict.fromkeys(str(p) for p in self.plots))

    # -- writing --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return {**extra, **data}

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``folder/hf_steer.json`` atomically (the folder is created if missing)."""
        return atomic_write_json(Path(folder) / METADATA_FILE, self.to_dict())

    # -- reading --------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = METADATA_FILE) -> Artifact:
        check_metadata(data, where)
        if data.get("artifact") is None:
            raise HfSteerError(f"{where} has no 'artifact': use one of {', '.join(ARTIFACT_KINDS)}")
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names and v is not None}
        extra = {k: v for k, v in data.items() if k not in names}
        return cls(**{"method": "unknown", **known}, extra=extra)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Artifact | None:
        """The folder's ``hf_steer.json`` (checked), or ``None`` when it has none."""
        path = Path(folder) / METADATA_FILE
        if not path.is_file():
            return None
        return cls.from_dict(read_json_object(path, METADATA_FILE), where=str(path))


def check_metadata(data: dict[str, Any], where: str = METADATA_FILE) -> dict[str, Any]:
    """Check the types of the known fields of a (possibly hand-written, partial) ``hf_steer.json``."""
    expected = {"method": str, "artifact": str, "base_model": str, "datasets": (list, str),
                "hyperparameters": dict, "metrics": dict, "plots": list, "description": str}
    for key, types in expected.items():
        if data.get(key) is not None and not isinstance(data[key], types):
            raise HfSteerError(f"{where} has a bad {key!r} ({type(data[key]).__name__}): see docs/CONVENTIONS.md")
    if data.get("artifact") is not None and data["artifact"] not in ARTIFACT_KINDS:
        raise HfSteerError(f"{where} has artifact {data['artifact']!r}: use one of {', '.join(ARTIFACT_KINDS)}")
    return data


def read_metadata(folder: str | os.PathLike) -> dict[str, Any]:
    """The folder's ``hf_steer.json`` as a checked dict (it may be hand-written and partial), or ``{}``."""
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        return {}
    return check_metadata(read_json_object(path, METADATA_FILE), str(path))


def record_metrics(folder: str | os.PathLike, metrics: dict[str, Any], plots: list[str] | tuple = ()) -> Artifact:
    """Merge measured ``metrics`` (and PNG names) into the folder's existing ``hf_steer.json``."""
    art = Artifact.load(folder)
    if art is None:
        raise HfSteerError(f"{Path(folder) / METADATA_FILE} is missing: record figures into a folder an hf_steer "
                           "method wrote")
    art.metrics = {**art.metrics, **metrics}
    art.plots = sorted({*art.plots, *plots})
    art.save(folder)
    return art


def read_json_object(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """A JSON file that must hold an object, read with one-line errors naming the file and the fix."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise HfSteerError(f"{what} {path} is not valid JSON ({e.msg}, line {e.lineno}): fix or remove it") from None
    except (OSError, UnicodeDecodeError) as e:
        raise HfSteerError(f"{what} {path} cannot be read ({e}): check the file") from None
    if not isinstance(data, dict):
        raise HfSteerError(f"{what} {path} must hold a JSON object, not {type(data).__name__}: fix or remove it")
    return data
