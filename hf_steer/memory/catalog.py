"""The on-disk catalog of a memory profile: one JSON file of rows plus one safetensors folder per adapter.

Layout of a profile folder::

    catalog.json            {"format", "base_model", "base_fingerprint", "active", "rows", "merges", "pending"?}
    catalog.json.bak        a second copy of the last complete save, written just before catalog.json
    adapters/<name>/        adapter_model.safetensors + adapter_config.json + hf_steer.json
    queue/<name>.json       a chunk said but not learned yet (turns), until its adapter is in the catalog

Crash safety: every write goes to a temporary file/folder that is fsynced and renamed into place, so a
process killed at any instant leaves the last complete catalog (and every adapter folder it names)
intact. An adapter folder is written *before* the row that names it, so a row never points at nothing;
a killed process can at worst leave an unnamed temporary folder, which the next open removes. A catalog
that does not parse is never overwritten: it is copied aside and the user gets one line saying where.

Forgetting is a promise about the disk. The backup is a mirror of the current catalog, not the previous
one, so it never keeps a forgotten row. A change that removes text (``forget``, ``regenerate``) is one
journaled step, :meth:`Catalog.commit`: new adapter folders are built under temporary names; then the
catalog without the removed text, carrying a ``pending`` list of the folder changes still to make, is
written (backup first, then the catalog: the commit point); then those changes are made and the
catalog is saved once more without ``pending``. A process killed before the commit point leaves the old
state; one killed after it leaves the new state, whose leftover folder changes the next open finishes
(the journal names folders only, never text).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import HfSteerError
from ..utils import atomic_write_text

CATALOG_FILE = "catalog.json"
BACKUP_FILE = CATALOG_FILE + ".bak"
FORMAT = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# temporary adapter folders: .<name>.<new|old>-<pid>-<random>
_TMP_DIR = re.compile(r"^\.[A-Za-z0-9][A-Za-z0-9_-]*\.(?:new|old|tmp)-(\d+)")


def check_name(name: str, what: str = "adapter name") -> str:
    """Names become PEFT module keys and folder names: letters, digits, ``_`` and ``-`` only."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise HfSteerError(
            f"{what} {name!r} is not allowed: use 1-64 letters, digits, '_' or '-', starting with a letter or digit"
        )
    if name in "lora_":  # PEFT matches adapter names inside parameter keys; these would hit 'lora_A' etc.
        raise HfSteerError(f"{what} {name!r} is too short to be safe with PEFT: use a name like 'm001'")
    return name


def profiles(folder: str | os.PathLike) -> list[str]:
    """The profiles saved under a memory folder (subfolders holding a catalog)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / CATALOG_FILE).is_file())


def require_profile(folder: str | os.PathLike, profile: str) -> None:
    """One clear line when ``profile`` does not exist under ``folder`` (a typo must not answer from nothing)."""
    check_name(profile, "profile name")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise HfSteerError(f"memory folder {folder} is a file: pass a folder (--folder)")
    if not (folder / profile / CATALOG_FILE).is_file():
        known = ", ".join(profiles(folder)) or "none yet"
        raise HfSteerError(f"profile {profile!r} does not exist in {folder} (profiles: {known}): check the name, "
                           "or create it with `remember` or `chat`")


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_tree(folder: Path) -> None:
    for f in folder.iterdir():
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


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
        self.bak_path = self.folder / BACKUP_FILE
        self.base_model = str(base_model)
        self.fingerprint = fingerprint
        self.rows: dict[str, dict[str, Any]] = {}
        self.active: list[str] = []
        self.merges: list[dict[str, Any]] = []  # merged copies written by save_merged (outside the catalog)
        self.pending: dict[str, Any] | None = None
        if self.path.exists():
            self._load()
            if self.pending:
                self._finish_pending()  # a change killed after its commit point: finish it
            self._remove_leftovers()
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
            hint = (f"restore {self.bak_path} (a copy of the last complete save)" if self.bak_path.exists()
                    else "move it away to start empty")
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
        self.merges = [m for m in data.get("merges", []) if isinstance(m, dict)]
        self.pending = data.get("pending") or None

    # -- writing --------------------------------------------------------------------------------
    def to_json(self) -> str:
        data: dict[str, Any] = {
            "format": FORMAT,
            "base_model": self.base_model,
            "base_fingerprint": self.fingerprint,
            "active": self.active,
            "rows": self.rows,
            "merges": self.merges,
        }
        if self.pending:
            data["pending"] = self.pending
        return json.dumps(data, indent=1, ensure_ascii=False) + "\n"

    def save(self) -> None:
        """Write the catalog atomically: the backup mirror first, then ``catalog.json``.

        A kill between the two leaves the old catalog and a newer backup; either way no file holds a
        row that neither the old nor the new state has.
        """
        text = self.to_json()
        atomic_write_text(self.bak_path, text)
        atomic_write_text(self.path, text)

    def commit(self, *, remove: Sequence[str] = (), install: dict[str, Path] | None = None,
               delete_paths: Sequence[str | os.PathLike] = ()) -> None:
        """Save the rows as they are now, then remove/replace adapter folders -- one journaled step.

        Args:
            remove: adapter names whose folders go (their rows are already gone from ``rows``).
            install: ``{name: folder}`` built by :meth:`stage_adapter`, replacing the named folders.
            delete_paths: other files or folders under the profile folder that go with the change
                (queued chunks, merged copies hf_steer wrote inside the memory folder).
        """
        self.pending = {
            "remove": [check_name(n) for n in remove],
            "install": {check_name(n): Path(p).name for n, p in (install or {}).items()},
            "delete": [str(Path(p).resolve().relative_to(self.folder.resolve())) for p in delete_paths],
        }
        self.save()  # the commit point: neither JSON file holds the removed rows from here on
        self._finish_pending()

    def _finish_pending(self) -> None:
        """Make the folder changes a committed ``pending`` journal names (idempotent), then save without it."""
        pending = self.pending or {}
        adapters = self.folder / "adapters"
        for name in pending.get("remove", []):
            shutil.rmtree(adapters / check_name(name), ignore_errors=True)
        for name, staged in pending.get("install", {}).items():
            self._install(adapters / staged, adapters / check_name(name))
        for rel in pending.get("delete", []):
            path = (self.folder / rel).resolve()
            if self.folder.resolve() not in path.parents:
                continue  # a journal never names anything outside the profile
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        self.pending = None
        self.save()

    @staticmethod
    def _install(staged: Path, target: Path) -> None:
        if not staged.is_dir():
            return  # installed already (a re-run after a kill)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(staged, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staged, target)

    def _remove_leftovers(self) -> None:
        """Delete temporary adapter folders of processes that are gone (killed mid-write)."""
        adapters = self.folder / "adapters"
        if not adapters.is_dir():
            return
        for path in adapters.iterdir():
            m = _TMP_DIR.match(path.name)
            if m and not _pid_alive(int(m.group(1))):
                shutil.rmtree(path, ignore_errors=True)

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

    def new_name(self, prefix: str = "m", taken: Sequence[str] = ()) -> str:
        """The next free ``m001``-style name (never reuses a live, queued or ``taken`` name)."""
        i = len(self.rows) + 1
        while True:
            name = f"{prefix}{i:03d}"
            if name not in self.rows and name not in taken and not self.adapter_dir(name).exists() \
                    and not self.queue_path(name).exists():
                return name
            i += 1

    # -- adapter folders ------------------------------------------------------------------------
    def adapter_dir(self, name: str) -> Path:
        return self.folder / "adapters" / name

    def _tmp_dir(self, name: str, kind: str) -> Path:
        parent = self.folder / "adapters"
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{check_name(name)}.{kind}-{os.getpid()}-", dir=parent))

    def stage_adapter(self, name: str, write: Callable[[Path], Any]) -> Path:
        """Build an adapter folder under a temporary name for :meth:`commit` to install; returns it."""
        tmp = self._tmp_dir(name, "new")
        try:
            write(tmp)
            _fsync_tree(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return tmp

    def write_adapter(self, name: str, write: Callable[[Path], Any]) -> Path:
        """Build a NEW adapter folder with ``write(tmp_folder)`` and rename it into place (atomic)."""
        target = self.adapter_dir(check_name(name))
        staged = self.stage_adapter(name, write)
        try:
            self._install(staged, target)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        return target

    # -- queued chunks --------------------------------------------------------------------------
    def queue_path(self, name: str) -> Path:
        return self.folder / "queue" / f"{check_name(name)}.json"

    def enqueue(self, name: str, turns: list[dict[str, Any]], **extra: Any) -> Path:
        """Keep a chunk on disk until its adapter is in the catalog (a crash or a dead worker loses nothing)."""
        path = self.queue_path(name)
        atomic_write_text(path, json.dumps({"name": name, "turns": turns, **extra}, ensure_ascii=False, indent=1) + "\n")
        return path

    def queued(self) -> dict[str, dict[str, Any]]:
        """Chunks said but not learned yet, oldest first (entries whose adapter exists are dropped)."""
        out = {}
        folder = self.folder / "queue"
        if not folder.is_dir():
            return out
        for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime):
            try:
                job = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                continue  # a torn write never happens (atomic); a hand-damaged file is skipped, not lost
            if path.stem in self.rows:
                path.unlink(missing_ok=True)
                continue
            out[path.stem] = job
        return out

    def scrub_copies(self, texts: Sequence[str]) -> list[Path]:
        """Remove ``texts`` from the catalog's damaged copies (``catalog.json.corrupt-*``); returns those changed.

        Those copies are kept for the user to recover from; a forgotten turn must not survive in them.
        Both the raw and the JSON-escaped spelling of each text are removed.
        """
        changed = []
        needles = [t for t in dict.fromkeys(texts) if t and len(t) >= 4]
        needles += [json.dumps(t, ensure_ascii=False)[1:-1] for t in needles]
        needles += [json.dumps(t)[1:-1] for t in needles]
        needles = sorted(dict.fromkeys(needles), key=len, reverse=True)
        for path in self.folder.glob(f"{CATALOG_FILE}.corrupt-*"):
            data = path.read_text(encoding="utf-8", errors="replace")
            new = data
            for n in needles:
                new = new.replace(n, "")
            if new != data:
                atomic_write_text(path, new)
                changed.append(path)
        return changed
