"""The on-disk catalog of a memory profile: one JSON file of rows plus one safetensors folder per adapter.

Layout of a profile folder::

    catalog.json            {"format", "base_model", "base_fingerprint", "active": [...], "rows": {...}}
    catalog.json.bak        the previous good catalog (restore it by hand if the main one is damaged)
    adapters/<name>/        adapter_model.safetensors + adapter_config.json + hf_steer.json

Crash safety: every write goes to a temporary file/folder that is fsynced and renamed into place, so a
process killed at any instant leaves the last complete catalog (and every adapter folder it names)
intact. An adapter folder is written *before* the row that names it, so a row never points at nothing;
a killed process can at worst leave an unnamed folder, which is ignored. A catalog that does not parse
is never overwritten: it is copied aside and the user gets one line saying where.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import HfSteerError
from ..utils import atomic_write_text

CATALOG_FILE = "catalog.json"
FORMAT = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def check_name(name: str, what: str = "adapter name") -> str:
    """Names become PEFT module keys and folder names: letters, digits, ``_`` and ``-`` only."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise HfSteerError(
            f"{what} {name!r} is not allowed: use 1-64 letters, digits, '_' or '-', starting with a letter or digit"
        )
    if name in "lora_":  # PEFT matches adapter names inside parameter keys; these would hit 'lora_A' etc.
        raise HfSteerError(f"{what} {name!r} is too short to be safe with PEFT: use a name like 'm001'")
    return name


def base_fingerprint(model) -> str:
    """A short id of a base model's weights: architecture sizes plus a hash of its first embedding rows.

    Embeddings are never quantized by bitsandbytes, so a 4-bit and a 16-bit load of the same model share
    a fingerprint (their adapters are interchangeable), while any other model differs.
    """
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = base.config
    emb = base.get_input_embeddings().weight
    rows = emb[: min(8, emb.shape[0])].detach().to("cpu", torch.float32).contiguous()
    digest = hashlib.sha1(rows.numpy().tobytes()).hexdigest()[:12]
    return f"{cfg.model_type}-h{cfg.hidden_size}-l{getattr(cfg, 'num_hidden_layers', 0)}-v{cfg.vocab_size}-{digest}"


class Catalog:
    """Rows describing the adapters of one profile, saved atomically after every change.

    Args:
        folder: the profile folder (created if missing).
        base_model: name or path of the base model (informative, shown in errors and cards).
        fingerprint: :func:`base_fingerprint` of the base; a catalog saved for another base is refused.
    """

    def __init__(self, folder: str | os.PathLike, base_model: str, fingerprint: str):
        self.folder = Path(folder)
        self.path = self.folder / CATALOG_FILE
        self.base_model = str(base_model)
        self.fingerprint = fingerprint
        self.rows: dict[str, dict[str, Any]] = {}
        self.active: list[str] = []
        if self.path.exists():
            self._load()
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.save()

    # -- reading --------------------------------------------------------------------------------
    def _load(self) -> None:
        text = self.path.read_text(encoding="utf-8", errors="replace")
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or not isinstance(data.get("rows"), dict):
                raise ValueError("no 'rows' object")
        except ValueError as e:
            backup = self.path.with_name(f"{CATALOG_FILE}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            shutil.copy2(self.path, backup)
            last_good = self.path.with_name(CATALOG_FILE + ".bak")
            hint = f"restore {last_good} (the last good save)" if last_good.exists() else "move it away to start empty"
            raise HfSteerError(
                f"catalog {self.path} is corrupt ({str(e).splitlines()[0][:80]}): a copy was kept at {backup}; {hint}"
            ) from None
        if data.get("format", FORMAT) > FORMAT:
            raise HfSteerError(f"catalog {self.path} has format {data['format']}: upgrade hf_steer to read it")
        saved = data.get("base_fingerprint")
        if saved and saved != self.fingerprint:
            raise HfSteerError(
                f"catalog {self.path} belongs to base model {data.get('base_model')!r} ({saved}), not to the loaded "
                f"{self.base_model!r} ({self.fingerprint}): load that base model or use another profile/folder"
            )
        self.rows = data["rows"]
        self.active = [n for n in data.get("active", []) if n in self.rows]

    # -- writing --------------------------------------------------------------------------------
    def to_json(self) -> str:
        data = {
            "format": FORMAT,
            "base_model": self.base_model,
            "base_fingerprint": self.fingerprint,
            "active": self.active,
            "rows": self.rows,
        }
        return json.dumps(data, indent=1, ensure_ascii=False) + "\n"

    def save(self) -> None:
        """Write the catalog atomically; the previous complete version becomes ``catalog.json.bak``."""
        if self.path.exists():
            previous = self.path.read_text(encoding="utf-8", errors="replace")
            try:
                json.loads(previous)
            except ValueError:
                previous = None  # never let a damaged file replace the last good backup
            if previous is not None:
                atomic_write_text(self.path.with_name(CATALOG_FILE + ".bak"), previous)
        atomic_write_text(self.path, self.to_json())

    # -- rows -----------------------------------------------------------------------------------
    def __contains__(self, name: str) -> bool:
        return name in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, name: str) -> dict[str, Any]:
        if name not in self.rows:
            known = ", ".join(self.rows) or "none yet"
            raise HfSteerError(f"adapter {name!r} is not in catalog {self.path} (known: {known}): check the name")
        return self.rows[name]

    def names(self, kind: str | None = None) -> list[str]:
        return [n for n, r in self.rows.items() if kind is None or r.get("kind") == kind]

    def add(self, row: dict[str, Any], save: bool = True) -> None:
        name = check_name(row["name"])
        if name in self.rows:
            raise HfSteerError(f"adapter name {name!r} already exists in {self.path}: pick another name or forget it first")
        row.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        row.setdefault("base_fingerprint", self.fingerprint)
        self.rows[name] = row
        if save:
            self.save()

    def remove(self, name: str, save: bool = True) -> dict[str, Any]:
        row = self.get(name)
        del self.rows[name]
        self.active = [n for n in self.active if n != name]
        if save:
            self.save()
        shutil.rmtree(self.adapter_dir(name), ignore_errors=True)
        return row

    def new_name(self, prefix: str = "m") -> str:
        """The next free ``m001``-style name (never reuses a live name)."""
        i = len(self.rows) + 1
        while f"{prefix}{i:03d}" in self.rows or self.adapter_dir(f"{prefix}{i:03d}").exists():
            i += 1
        return f"{prefix}{i:03d}"

    # -- adapter folders ------------------------------------------------------------------------
    def adapter_dir(self, name: str) -> Path:
        return self.folder / "adapters" / name

    def write_adapter(self, name: str, write) -> Path:
        """Build an adapter folder with ``write(tmp_folder)`` and rename it into place (atomic)."""
        target = self.adapter_dir(check_name(name))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=target.parent))
        try:
            write(tmp)
            for f in tmp.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            if target.exists():  # a leftover of a crash or a regenerated adapter: replace it
                old = target.with_name(f".{name}.old-{os.getpid()}")
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target
