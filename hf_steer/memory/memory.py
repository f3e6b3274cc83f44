"""``LoraMemory``: a base model plus ONE PeftModel holding many named adapters, backed by a catalog.

How the pieces map onto PEFT (peft>=0.21):

* ``remember(chunk)`` adds a fresh adapter, makes it the only active *and* the only trainable one
  (``base_model.set_adapter([name])``), trains it, then re-activates the stack. Nothing else is
  active during training, so an adapter learns its chunk against the bare base and can later be
  stacked, rolled up or forgotten independently.
* Stacking is PEFT multi-adapter activation: ``base_model.set_adapter([a, b, ...])``. Every LoRA layer
  then adds ``sum_i scale_i * B_i A_i x`` to its base output -- an exact sum of the deltas.
* ``rollup`` is ``add_weighted_adapter`` into a FRESH name (PEFT silently returns when the name
  exists, so we check). ``cat`` is exact (rank = sum of ranks); ``svd`` compresses to a chosen rank;
  ``ties``/``dare_ties`` prune and sign-elect. Members stay loaded (inactive) so a roll-up can be
  rebuilt from the survivors when one of them is forgotten.
* Nothing is ever merged into 4-bit weights: re-quantizing would erase the small deltas. A merged
  16-bit copy is written from a fresh 16-bit load instead (:meth:`save_merged`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..artifacts import Artifact, base_model_name
from ..errors import HfSteerError
from ..utils import atomic_write_json
from . import augment as aug
from . import retrieval
from .behaviour import (
    asked_type,
    behaviour_examples,
    copy_candidates,
    pick_answer,
    reshape_prompt,
    short_limit,
)
from .catalog import Catalog, base_fingerprint, check_name, profiles, require_profile
from .config import AskConfig, ChatConfig, MemoryConfig, TrainPreset, get_preset
from .learn import (
    ADAPTER_WEIGHTS,
    adapter_artifact,
    adapter_files,
    add_adapter,
    chunk_row,
    files_metadata,
    linear_module_names,
    num_layers,
    preset_augment,
    train_alone,
    write_adapter_files,
)
from .train import lora_config

# PEFT's add_weighted_adapter methods, plus "retrain": a fresh adapter trained on all members' turns.
ROLLUP_METHODS = ("cat", "svd", "ties", "dare_ties", "linear", "retrain")


def default_folder() -> Path:
    """Where memories live unless told otherwise: ``$HF_STEER_MEMORY`` or the hf_steer cache."""
    if os.environ.get("HF_STEER_MEMORY"):
        return Path(os.environ["HF_STEER_MEMORY"]).expanduser()
    from ..models import cache_dir

    return cache_dir() / "memory"


def is_4bit(model) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return bool(getattr(base, "is_loaded_in_4bit", False)) or any(
        type(m).__name__ == "Linear4bit" for m in base.modules()
    )


class LoraMemory:
    """Remember conversation chunks as stackable LoRA adapters over one base model.

    Args:
        model, tokenizer: an already loaded base (as from :func:`hf_steer.models.load_model`); when
            ``model`` is None, ``base_model`` is loaded (None = the bundled SmolLM2-135M-Instruct).
        folder: where profiles live (default :func:`default_folder`); each profile is its own catalog.
        profile: the catalog to use ("work", "personal", ...).
        preset: training preset name or :class:`~hf_steer.memory.train.TrainPreset`.
        load_in_4bit: load the base in nf4 (only when ``model`` is None).
        embedder: ``"default"`` (MiniLM), None (no retrieval) or a callable ``list[str] -> (n, d)``.
        route: answer each question with only the adapters whose statements match it (needs an
            embedder); False answers with the whole active stack.
        route_threshold: cosine above which a statement matches a question.
        note_threshold, personal_note_threshold: cosine above which a statement goes in the prompt as a
            note; the second for questions about the user or the assistant (I, my, we, us, you, your), whose best
            note's chunk adapter is then routed too.
        seed: seed for each adapter's training (offset by the adapter's index).
        create: create ``profile`` when it does not exist (False: one clear error instead).
    """

    def __init__(
        self,
        model=None,
        tokenizer=None,
        *,
        base_model: str | None = None,
        folder: str | os.PathLike | None = None,
        profile: str = MemoryConfig.profile,
        preset: str | TrainPreset = TrainPreset.name,
        load_in_4bit: bool = MemoryConfig.load_in_4bit,
        embedder: Any = "default",
        seed: int = MemoryConfig.seed,
        device: str | None = None,
        route: bool = AskConfig.route,
        route_threshold: float = MemoryConfig.route_threshold,
        note_threshold: float = MemoryConfig.note_threshold,
        personal_note_threshold: float = MemoryConfig.personal_note_threshold,
        create: bool = True,
    ):
        from ..models import load_model, resolve_model_path

        if model is None:
            self.base_path = resolve_model_path(base_model)
            model, tokenizer = load_model(self.base_path, load_in_4bit=load_in_4bit, device=device)
        else:
            if tokenizer is None:
                raise HfSteerError("tokenizer is missing: pass the tokenizer that goes with the model")
            self.base_path = base_model or getattr(model.config, "name_or_path", "") or "unknown"
            from ..models import keep_4bit_weights_unpacked

            keep_4bit_weights_unpacked(model)  # a user's own 4-bit model: keep every CPU on the autograd path
        self.model = model
        self.tokenizer = tokenizer
        self.peft = None  # the PeftModel, created with the first adapter
        self.preset = get_preset(preset)
        self.seed = seed
        self.quantized = is_4bit(model)
        self.fingerprint = base_fingerprint(model)
        self.folder = Path(folder) if folder is not None else default_folder()
        self.embedder = retrieval.SentenceEmbedder() if embedder == "default" else embedder
        self.route_default = route
        self.route_threshold = route_threshold
        self.note_threshold = note_threshold
        self.personal_note_threshold = personal_note_threshold
        self._module_names = linear_module_names(model)
        self.catalog: Catalog
        self.use_profile(profile, create=create)

    # -- profiles and loading ---------------------------------------------------------------------
    @property
    def profile(self) -> str:
        return self._profile

    def profiles(self) -> list[str]:
        """The profiles saved under this memory's folder."""
        return profiles(self.folder)

    def use_profile(self, profile: str, create: bool = True) -> None:
        """Switch to another profile: unload every adapter, open its catalog, load its adapters.

        ``create=False`` refuses a profile that does not exist yet (a typo must not answer from an
        empty memory); ``create=True`` starts an empty one.
        """
        check_name(profile, "profile name")
        if not create:
            require_profile(self.folder, profile)
        self._unload_all()
        self._profile = profile
        self.catalog = Catalog(self.folder / profile, self.base_path, self.fingerprint)
        for name in self.catalog.rows:
            folder = self.catalog.adapter_dir(name)
            if not (folder / ADAPTER_WEIGHTS).is_file():
                raise HfSteerError(
                    f"adapter folder {folder} named in the catalog is missing: restore it or remove row {name!r}"
                )
            self._load_folder(name, folder)
        self._activate(self.catalog.active)

    def _reload(self) -> None:
        """Back to what is on disk (after a change failed half-way in memory)."""
        self.use_profile(self.profile)

    def _unload_all(self) -> None:
        if self.peft is not None:
            self.model = self.peft.unload()  # removes every LoRA layer, restores the plain base modules
            self.peft = None

    def _load_folder(self, name: str, folder: Path) -> None:
        from peft import PeftModel

        if self.peft is None:
            self.peft = PeftModel.from_pretrained(self.model, str(folder), adapter_name=name, is_trainable=False)
        else:
            self.peft.load_adapter(str(folder), adapter_name=name, is_trainable=False)

    def _delete(self, name: str) -> None:
        self.catalog.active = [n for n in self.catalog.active if n != name]
        if self.peft is None or name not in self.peft.peft_config:
            return
        if len(self.peft.peft_config) == 1:
            self._unload_all()  # PEFT cannot hold zero adapters: go back to the bare base
        else:
            self.peft.delete_adapter(name)
            self._fix_primary()

    def _fix_primary(self) -> None:
        # PeftModel keeps its own single ``active_adapter`` name just to look a config up (generate,
        # disable_adapter); it goes stale when that adapter is deleted. Any LoRA adapter's config will do.
        if self.peft is not None and self.peft.active_adapter not in self.peft.peft_config:
            self.peft.active_adapter = next(iter(self.peft.peft_config))

    def _activate(self, names: Sequence[str]) -> None:
        # dict.fromkeys: an adapter listed twice would be added twice to the sum
        names = [n for n in dict.fromkeys(names) if self.peft is not None and n in self.peft.peft_config]
        if self.peft is not None:
            # inference_mode=True: active for the forward pass, frozen for any optimizer.
            self.peft.base_model.set_adapter(list(names), inference_mode=True)
            self._fix_primary()
        self.catalog.active = list(names)

    # -- introspection --------------------------------------------------------------------------
    def names(self, kind: str | None = None) -> list[str]:
        return self.catalog.names(kind)

    @property
    def active(self) -> list[str]:
        return list(self.catalog.active)

    def table(self) -> list[dict[str, Any]]:
        """One summary dict per adapter (for ``/list`` and ``hf-steer memory list``)."""
        out = []
        for name, row in self.catalog.rows.items():
            out.append({
                "name": name, "kind": row.get("kind"), "active": name in self.catalog.active,
                "created": row.get("created"), "tokens": row.get("tokens"), "r": row.get("r"),
                "members": row.get("members"), "rolled_into": self.rollups_containing(name),
                "summary": (" ".join(b["text"] for b in row.get("behaviours", [])) if row.get("kind") == "behaviour"
                            else (row.get("statements") or [""])[0])[:60],
            })
        return out

    def rollups_containing(self, name: str) -> list[str]:
        return [n for n, r in self.catalog.rows.items() if r.get("kind") == "rollup" and name in r.get("members", [])]

    # -- remember -------------------------------------------------------------------------------
    def _config_for(self, preset: TrainPreset):
        return lora_config(preset, num_layers(self.model), self._module_names)

    def plan(self, chunk, name: str | None = None, *, preset: str | TrainPreset | None = None,
             taken: Sequence[str] = ()) -> list[dict[str, Any]]:
        """What a chunk teaches, as training jobs -- string work and retrieval only, no training.

        One ``chunk`` job for its facts (with each correction linked to the stored fact it replaces:
        ``supersedes``) and one ``behaviour`` job for its requests about answers; ``notes`` holds a
        line per correction that matched no stored fact (it is kept as a new fact). Raises one line
        when the chunk holds nothing to learn (only greetings or acknowledgements): nothing is trained.
        """
        preset = get_preset(preset or self.preset)
        read = aug.read_chunk(chunk)
        turns = aug.normalize_chunk(chunk)
        jobs: list[dict[str, Any]] = []
        taken = list(taken)
        if name is not None:
            check_name(name)
            if name in self.catalog or (self.peft is not None and name in self.peft.peft_config):
                raise HfSteerError(f"adapter name {name!r} already exists: pick another name or forget it first")
        if read.facts:
            facts, supersedes, notes = self._link_corrections(read.facts)
            fname = name or self.catalog.new_name(taken=taken)
            taken.append(fname)
            jobs.append({"name": fname, "kind": "chunk", "turns": turns, "facts": facts, "supersedes": supersedes,
                         "notes": notes, "preset": preset.to_dict()})
        if read.behaviours:
            bname = name if (name and not read.facts) else self.catalog.new_name("b", taken=taken)
            jobs.append({"name": bname, "kind": "behaviour", "turns": turns, "behaviours": read.behaviours,
                         "supersedes": [], "notes": [], "preset": preset.to_dict()})
        return jobs

    def _live_statements(self) -> list[tuple[str, int, str]]:
        out = []
        for n in self.names("chunk"):
            row = self.catalog.rows[n]
            dead = set(row.get("superseded", []))
            out += [(n, i, st) for i, st in enumerate(row.get("statements") or []) if i not in dead]
        return out

    def _link_corrections(self, facts: list[dict]) -> tuple[list[dict], list[list], list[str]]:
        """Link each correction to the stored fact it replaces; returns ``(facts, supersedes, notes)``.

        The stored fact is the live statement nearest to the cleaned correction (MiniLM cosine, plus
        0.3 when they share a name or a "your X" topic), if it scores 0.5 or more. Its old value is
        swapped for the new one ("... lives in Brackwell" -> "... lives in Coldharbour") and that
        statement joins the chunk's facts, so a question worded like the old fact finds the new one.
        A correction of a fact said earlier in the same chunk is linked the same way.
        """
        facts = [dict(f) for f in facts]
        stored = self._live_statements()
        supersedes: list[list] = []
        notes: list[str] = []
        added: list[dict] = []
        for i, fact in enumerate(facts):
            if not fact.get("correction"):
                continue
            clean = aug.clean_correction(fact["text"])
            fact["text"] = clean
            candidates = stored + [(None, j, f["text"]) for j, f in enumerate(facts[:i]) if not f.get("correction")]
            if not candidates:
                notes.append(f"{fact['said']!r} corrects no stored fact: kept as a new fact")
                continue
            texts = [c[2] for c in candidates]
            cos = [0.0] * len(texts)
            if self.embedder is not None:
                vecs = np.asarray(self.embedder([clean, *texts]), dtype=np.float32)
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True) + 1e-8
                cos = list(vecs[1:] @ vecs[0])
            shared = set(aug.topics(clean))
            scores = [c + (0.3 if shared.intersection(aug.topics(t)) else 0.0) for c, t in zip(cos, texts)]
            best = int(np.argmax(scores))
            if scores[best] < 0.5:
                notes.append(f"{fact['said']!r} corrects no stored fact: kept as a new fact")
                continue
            row_name, index, old = candidates[best]
            fact["corrects"] = old
            if row_name is None:
                facts[index]["superseded"] = True
            else:
                supersedes.append([row_name, index])
            swap = aug.corrected_value(fact["said"], old)
            if swap:
                added.append({"text": old.replace(swap[0], swap[1]), "said": fact["said"], "role": "user",
                              "kind": "correction", "correction": True, "corrects": old})
        facts = [f for f in facts if not f.get("superseded")] + added
        return facts, supersedes, notes

    def remember(
        self,
        chunk: str | Sequence[dict] | Sequence[str],
        name: str | None = None,
        *,
        preset: str | TrainPreset | None = None,
        activate: bool = True,
        anchors: Sequence[tuple[str, str]] | None = None,
        **overrides,
    ) -> dict[str, Any]:
        """Teach one chunk: a routed adapter for its facts and, when it asks for one, a behaviour adapter.

        Returns the facts' row (or the behaviour's, when the chunk holds only a request); ``also``
        names the other adapter it made, ``notes`` says which corrections matched no stored fact.
        ``overrides`` change single preset fields (``steps=20``, ``r=16``, ...). ``anchors`` replaces
        the replay pairs (the background worker passes the chat process's, computed once).
        """
        preset = get_preset(preset or self.preset, **overrides)
        jobs = self.plan(chunk, name, preset=preset)
        if anchors is None:
            anchors = self.anchors(preset.anchors)
        rows = []
        for job in jobs:
            row = self._train_job(job, preset, [tuple(a) for a in anchors][: preset.anchors])
            self._finish_row(job["name"], row)
            self._apply_supersedes(row)
            rows.append(row)
            if activate:
                self._activate([*self.catalog.active, job["name"]])
            self.catalog.save()
        first = rows[0]
        first["also"] = [r["name"] for r in rows[1:]]
        return first

    def _train_job(self, job: dict[str, Any], preset: TrainPreset, anchors: list[tuple[str, str]]) -> dict:
        """Train one planned job on this memory's model (the adapter is added, not yet saved)."""
        if job["kind"] == "behaviour":
            examples = behaviour_examples(self.tokenizer, self._generate_base, job["behaviours"])
            if not examples:
                raise HfSteerError(f"this base model gave no answer that follows {job['behaviours'][0]['text']!r}: "
                                   "nothing to train the behaviour on; phrase the request differently")
            row = self._train_new(job["name"], job["turns"], examples, preset.for_behaviour(), [], kind="behaviour")
            row.update(behaviours=job["behaviours"], statements=[], probes=[])
            return row
        examples, probes = aug.fact_examples(job["facts"], self.tokenizer, **preset_augment(preset))
        row = self._train_new(job["name"], job["turns"], examples, preset, anchors)
        row.update(facts=job["facts"], statements=[f["text"] for f in job["facts"]], probes=probes,
                   supersedes=job.get("supersedes", []), notes=job.get("notes", []))
        return row

    def _apply_supersedes(self, row: dict[str, Any]) -> None:
        """Mark the stored facts a new chunk corrects as superseded (no longer retrieved or routed)."""
        for row_name, index in row.get("supersedes", []):
            old = self.catalog.rows.get(row_name)
            if old is not None and index not in old.setdefault("superseded", []):
                old["superseded"].append(index)

    def _generate_base(self, prompts: list[str], max_new_tokens: int = 24) -> list[str]:
        with self.base_only():
            return self._generate(prompts, False, max_new_tokens, 16)

    def anchors(self, n: int) -> list[tuple[str, str]]:
        """``n`` (prompt, base answer) replay pairs; generated once per base model and cached on disk.

        The cache holds the base's answers to built-in questions only, never anything a user said.
        """
        if n <= 0:
            return []
        path = self.folder / f"anchors-{self.fingerprint}.json"
        cached = json.loads(path.read_text()) if path.is_file() else {}
        questions = list(aug.ANCHOR_QUESTIONS[:n])
        missing = [q for q in questions if q not in cached]
        if missing:
            for q, a in zip(missing, self.ask_many(missing, adapters=False, retrieve=False, max_new_tokens=16)):
                cached[q] = a
            atomic_write_json(path, cached)
        return [(aug.chat_prompt(self.tokenizer, q), cached[q]) for q in questions if cached[q]]

    def _train_new(
        self, name: str, turns: list[dict], examples: list[tuple[str, str]], preset: TrainPreset,
        anchors: Sequence[tuple[str, str]] = (), kind: str = "chunk",
    ) -> dict:
        previous = list(self.catalog.active)
        self.peft = add_adapter(self.peft, self.model, name, self._config_for(preset))
        try:
            stats = train_alone(self.peft, self.tokenizer, name, list(examples) + list(anchors), preset,
                                seed=self.seed + len(self.catalog))
        except BaseException:
            self._delete(name)
            self._activate(previous)
            raise
        self._activate(previous)
        return chunk_row(name, kind, turns, preset, stats, self.peft.peft_config[name])

    def _files(self, name: str, row: dict[str, Any]) -> dict[str, bytes]:
        art = adapter_artifact(name, row["kind"], self.base_path, self.fingerprint, profile=self.profile,
                               preset=row.get("preset"), metrics=row.get("train"))
        return adapter_files(self.peft, name, art)

    def _embed_row(self, row: dict[str, Any]) -> None:
        if row["kind"] == "chunk" and self.embedder is not None and row.get("statements"):
            vecs = self.embedder([retrieval.chunk_text(row), *row["statements"]])
            row["embedding"] = [round(float(x), 5) for x in vecs[0]]
            row["statement_embeddings"] = [[round(float(x), 5) for x in v] for v in vecs[1:]]

    def _finish_row(self, name: str, row: dict[str, Any], stage: bool = False) -> Path | None:
        """Write the adapter folder, embed the chunk, add the row (folder first: a row never dangles).

        ``stage``: build the folder under a temporary name and return it for :meth:`Catalog.commit`
        (the adapter replaces one of the same name in the same journaled step).
        """
        files = self._files(name, row)
        staged = None
        if stage:
            staged = self.catalog.stage_adapter(name, lambda tmp: write_adapter_files(tmp, files))
        else:
            self.catalog.write_adapter(name, lambda tmp: write_adapter_files(tmp, files))
        self._embed_row(row)
        self.catalog.add(row, save=False)
        return staged

    def add_trained(self, files: dict[str, bytes] | str | os.PathLike, row: dict[str, Any],
                    activate: bool = True) -> dict[str, Any]:
        """Take in an adapter trained elsewhere (background worker, Ray task): check it, load it, catalog it.

        ``files`` is ``{file name: bytes}`` (as :class:`~hf_steer.memory.learn.ChunkTrainer` returns) or
        a folder holding them. The chunk's queue entry (if any) goes in the same step, and the facts it
        corrects are marked superseded.
        """
        if not isinstance(files, dict):
            folder = Path(files)
            files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        name = check_name(row["name"])
        if name in self.catalog:
            raise HfSteerError(f"adapter name {name!r} already exists: pick another name or forget it first")
        if ADAPTER_WEIGHTS not in files:
            raise HfSteerError(f"adapter {name!r} came back without {ADAPTER_WEIGHTS}: it stays queued; retry it")
        meta = files_metadata(files)
        if meta.get("base_fingerprint") and meta["base_fingerprint"] != self.fingerprint:
            raise HfSteerError(
                f"adapter {name!r} was trained on base {meta.get('base_model')!r} ({meta['base_fingerprint']}), "
                f"not on this memory's base ({self.fingerprint}): it stays queued; train it on the same base model"
            )
        folder = self.catalog.write_adapter(name, lambda tmp: write_adapter_files(tmp, files))
        self._load_folder(name, folder)
        row = dict(row)
        self._embed_row(row)
        self.catalog.add(row, save=False)
        self._apply_supersedes(row)
        if activate:
            self._activate([*self.catalog.active, name])
        queued = self.catalog.queue_path(name)
        self.catalog.commit(delete_paths=[queued] if queued.exists() else [])
        return row

    # -- the queue: chunks said, not learned yet ---------------------------------------------------
    def queue_chunk(self, chunk, name: str | None = None, taken: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Plan a chunk and keep its jobs on disk until adapters trained elsewhere come back; returns the jobs.

        The chunk is read first (one line when there is nothing to learn), so only learnable chunks
        wait in the queue. :meth:`add_trained` and :meth:`forget` remove an entry.
        """
        jobs = self.plan(chunk, name, taken=taken)
        for job in jobs:
            self.catalog.enqueue(job["name"], job["turns"], job=job)
        return jobs

    def queued(self) -> dict[str, dict[str, Any]]:
        """Jobs waiting for their adapter: ``{name: {"name", "turns", "job"}}``, oldest first."""
        return self.catalog.queued()

    # -- stack ----------------------------------------------------------------------------------
    def stack(self, names: Sequence[str] | None = None) -> list[str]:
        """Activate exactly these adapters at once (default: every chunk adapter not rolled up)."""
        if names is None:
            rolled = {m for n in self.names("rollup") for m in self.catalog.rows[n].get("members", [])}
            names = [n for n in self.names("chunk") if n not in rolled] + self.names("rollup")
        for n in names:
            self.catalog.get(n)
        self._activate(list(dict.fromkeys(names)))
        self.catalog.save()
        return self.active

    # -- roll-up --------------------------------------------------------------------------------
    def _check_rollup(self, names: Sequence[str], method: str, weights) -> list[float]:
        if method not in ROLLUP_METHODS:
            raise HfSteerError(f"roll-up method {method!r} is unknown: use one of {', '.join(ROLLUP_METHODS)}")
        if not names:
            raise HfSteerError("roll-up needs at least one adapter: pass adapter names (see `/list`)")
        rows = [self.catalog.get(n) for n in names]  # unknown names raise here
        if len(set(names)) != len(names):
            raise HfSteerError(f"roll-up names {list(names)} repeat an adapter: pass each adapter once")
        bases = {r.get("base_fingerprint", self.fingerprint) for r in rows}
        if len(bases) > 1:
            raise HfSteerError(f"adapters {list(names)} were trained on different base models ({sorted(bases)}): roll up adapters of one base only")
        shapes = {(tuple(r.get("target_modules") or []), tuple(r.get("layers") or [])) for r in rows}
        if len(shapes) > 1:
            raise HfSteerError(
                f"adapters {list(names)} target different modules/layers ({sorted(shapes)}): roll up adapters trained with one preset"
            )
        if method in ("ties", "dare_ties", "linear") and len({r.get("r") for r in rows}) > 1:
            raise HfSteerError(f"roll-up method {method!r} needs equal ranks, got {[r.get('r') for r in rows]}: use cat or svd")
        weights = [1.0] * len(names) if weights is None else [float(w) for w in weights]
        if len(weights) != len(names):
            raise HfSteerError(f"roll-up weights {weights} do not match {len(names)} adapters: pass one weight per adapter")
        if method == "retrain" and any(w != 1.0 for w in weights):
            raise HfSteerError(f"roll-up method 'retrain' takes no weights (got {weights}): drop them or use cat/svd")
        return weights

    @staticmethod
    def _row_preset(row: dict[str, Any], **overrides) -> TrainPreset:
        """The preset an adapter was trained with, from its catalog row."""
        return get_preset(TrainPreset.from_dict(row["preset"]), **overrides)

    def _build_rollup(self, name: str, members: list[str], method: str, weights: list[float], svd_rank, density) -> dict | None:
        """Build roll-up ``name`` from ``members``; returns the training figures for ``retrain``."""
        if method == "retrain":
            # Summing adapters trained apart makes them interfere (each is a large, sharp delta); one
            # adapter trained on every member's turns at once has no one to interfere with.
            rows = [self.catalog.rows[m] for m in members]
            turns = [t for r in rows for t in r["turns"]]
            preset = self._row_preset(rows[0])
            # Each fact must get as many updates as it had alone. One full batch of every chunk for the
            # members' step count would give each a fraction of them (recall 0.35 instead of 0.86 for 20).
            if not preset.epochs and not preset.batch_size:  # full-batch steps are passes over the text
                preset = get_preset(preset, epochs=preset.steps, batch_size=32)
            elif not preset.epochs:
                preset = get_preset(preset, steps=preset.steps * len(members))
            # the members' live facts only: a fact a later chunk corrected does not go into the roll-up
            facts = [f for r in rows for i, f in enumerate(r.get("facts") or [{"text": t} for t in r["statements"]])
                     if i not in set(r.get("superseded", []))]
            examples, _ = aug.fact_examples(facts, self.tokenizer, **preset_augment(preset))
            return self._train_new(name, turns, examples, preset, self.anchors(preset.anchors))["train"]
        kwargs: dict[str, Any] = {}
        if method == "svd":
            kwargs["svd_rank"] = svd_rank
        if method in ("ties", "dare_ties"):
            kwargs["density"] = density
        # A fresh name is essential: on an existing name add_weighted_adapter returns without doing anything.
        if name in self.peft.peft_config:
            raise HfSteerError(f"adapter name {name!r} is still loaded: roll-ups need a fresh name")
        self.peft.add_weighted_adapter(members, weights, name, combination_type=method, **kwargs)
        return None

    def rollup(
        self,
        names: Sequence[str] | None = None,
        method: str = "cat",
        weights: Sequence[float] | None = None,
        name: str | None = None,
        *,
        svd_rank: int | None = None,
        density: float = 0.5,
        activate: bool = True,
        check: bool = True,
    ) -> dict[str, Any]:
        """Combine adapters into one new adapter; returns its row.

        ``check`` measures, on the members' probe questions, the recall of each member alone and of the
        roll-up alone, and puts both in ``row["recall_check"]`` with a one-line ``warning`` when the
        roll-up answers fewer (a ``cat`` sum of sharp adapters often does: see docs/memory.md).

        ``cat``/``svd``/``ties``/``dare_ties``/``linear`` go through PEFT's ``add_weighted_adapter``
        (``cat`` is the exact sum of the members, like stacking them). ``retrain`` trains one fresh
        adapter on all members' turns with their preset (as many passes, in chunk-sized batches): as
        slow as training the members again, but it does not add up interference.
        ``names`` defaults to every active chunk adapter. When ``activate``, the roll-up replaces its
        members in the active stack (they stay loaded so forget can rebuild it).
        """
        if names is None:
            names = [n for n in self.active if self.catalog.rows[n].get("kind") == "chunk"]
        names = list(names)
        weights = self._check_rollup(names, method, weights)
        for n in names:
            if self.catalog.rows[n].get("kind") != "chunk":
                raise HfSteerError(f"adapter {n!r} is itself a roll-up: roll up chunk adapters (its members) instead")
        name = check_name(name) if name is not None else self.catalog.new_name("r")
        if name in self.catalog:
            raise HfSteerError(f"adapter name {name!r} already exists: roll-ups need a fresh name")
        if svd_rank is None and method == "svd":
            svd_rank = max(self.catalog.rows[n]["r"] for n in names)
        try:
            train_stats = self._build_rollup(name, names, method, weights, svd_rank, density)
        except BaseException:
            self._reload()
            raise
        cfg = self.peft.peft_config[name]
        first = self.catalog.rows[names[0]]
        row = {
            "name": name, "kind": "rollup", "members": names, "method": method, "weights": weights,
            "svd_rank": svd_rank, "density": density, "r": cfg.r, "target_modules": first.get("target_modules"),
            "layers": first.get("layers"), "tokens": sum(self.catalog.rows[n].get("tokens", 0) for n in names),
        }
        if train_stats is not None:
            row["train"] = train_stats
        self._finish_row(name, row)
        if check:
            row["recall_check"] = self._recall_check(names, use=[name], what="rollup")
        if activate:
            self._activate([n for n in self.active if n not in names] + [name])
        self.catalog.save()
        return row

    # -- forget / regenerate ----------------------------------------------------------------------
    def _rebuild_rollups(self, changed: str, removed: bool) -> tuple[list[str], dict[str, Path], list[str]]:
        """Rebuild, under the same names, every roll-up that holds ``changed`` -- the one path for
        ``forget`` (``removed``: the roll-up loses that member) and ``regenerate`` (the member's new
        weights or turns go in). Returns ``(rebuilt, staged folders, dropped)``; nothing is on disk yet:
        the caller commits the staged folders in one journaled step.
        """
        rebuilt, staged, dropped = [], {}, []
        for rname in self.rollups_containing(changed):
            row = self.catalog.rows[rname]
            keep = [(m, w) for m, w in zip(row["members"], row["weights"]) if not (removed and m == changed)]
            was_active = rname in self.active
            self._delete(rname)
            if not keep:  # nothing left to roll up: the roll-up goes too
                del self.catalog.rows[rname]
                dropped.append(rname)
                continue
            members, weights = [m for m, _ in keep], [w for _, w in keep]
            method = row["method"] if len(members) > 1 or row["method"] == "retrain" else "cat"
            stats = self._build_rollup(rname, members, method, weights, row.get("svd_rank"), row.get("density", 0.5))
            row.update(members=members, weights=weights, method=method, r=self.peft.peft_config[rname].r,
                       rebuilt=time.strftime("%Y-%m-%dT%H:%M:%S"))
            if stats is not None:
                row["train"] = stats
            files = self._files(rname, row)
            staged[rname] = self.catalog.stage_adapter(rname, lambda tmp, f=files: write_adapter_files(tmp, f))
            if was_active:
                self._activate([*self.active, rname])
            rebuilt.append(rname)
        return rebuilt, staged, dropped

    def _copies_elsewhere(self, names: Sequence[str]) -> tuple[list[Path], list[str]]:
        """Merged copies that hold what ``names`` taught: ``(folders to delete, one line per copy kept)``.

        A merged folder inside the profile goes with the change; one outside the memory (where ``merge``
        wrote it) is the user's to delete, and a copy pushed to the Hub only its owner can remove there.
        """
        from ..hub import pushes_of

        deletes, notes, keep = [], [], []
        inside = self.catalog.folder.resolve()
        for record in self.catalog.merges:
            held = {*record.get("adapters", []), *record.get("chunks", [])}
            if not held.intersection(names):
                keep.append(record)
                continue
            folder = Path(record["folder"])
            if not folder.exists():
                continue  # deleted already: the record goes
            if inside in folder.resolve().parents:
                deletes.append(folder)
                continue
            keep.append(record)
            what = ", ".join(sorted(held.intersection(names)))
            notes.append(f"merged model {folder} (written by `merge` on {record.get('created', '?')}) still holds what "
                         f"{what} taught: hf_steer does not delete folders outside the memory; delete it yourself")
            for repo in pushes_of(folder):
                notes.append(f"merged model {folder} was pushed to the Hub as {repo}: a pushed copy cannot be removed "
                             f"from here; delete the repo (`hf repo delete {repo}`) or push a new version over it")
        self.catalog.merges = keep
        return deletes, notes

    @staticmethod
    def _texts(row: dict[str, Any]) -> list[str]:
        return [t["content"] for t in row.get("turns", [])] + list(row.get("statements") or [])

    def _discard(self, staged: dict[str, Path]) -> None:
        for folder in staged.values():
            shutil.rmtree(folder, ignore_errors=True)

    def forget(self, name: str) -> dict[str, Any]:
        """Forget an adapter: its weights, catalog row, retrieval entry and every copy hf_steer keeps.

        Roll-ups that held it are rebuilt from the survivors (or dropped when none is left); the backup
        catalog, queued chunks and damaged-catalog copies lose its text too, all in one journaled step
        (see :mod:`hf_steer.memory.catalog`). Returns ``{"forgotten", "rebuilt", "dropped", "copies_left"}``;
        ``copies_left`` says, one line each, where a copy is out of reach (a merged folder outside the
        memory, a model pushed to the Hub).
        """
        if name not in self.catalog and name in self.catalog.queued():
            job = self.catalog.queued()[name]
            self.catalog.commit(delete_paths=[self.catalog.queue_path(name)])
            self.catalog.scrub_copies([t["content"] for t in job.get("turns", [])])
            return {"forgotten": name, "queued": True, "rebuilt": [], "dropped": [], "copies_left": []}
        row = self.catalog.get(name)
        staged: dict[str, Path] = {}
        try:
            was_active = name in self.active
            self._delete(name)
            del self.catalog.rows[name]
            rebuilt, dropped = [], []
            if row.get("kind") != "rollup":
                rebuilt, staged, dropped = self._rebuild_rollups(name, removed=True)
            elif was_active:
                # forgetting a roll-up forgets the summary, not the facts: its members take its place
                self._activate([*self.active, *[m for m in row.get("members", []) if m in self.catalog]])
            self._activate(self.active)
            deletes, notes = self._copies_elsewhere([name])
            queued = self.catalog.queue_path(name)
            self.catalog.commit(remove=[name, *dropped], install=staged,
                                delete_paths=[*deletes, *([queued] if queued.exists() else [])])
        except BaseException:
            self._discard(staged)
            self._reload()
            raise
        self.catalog.scrub_copies(self._texts(row))
        return {"forgotten": name, "rebuilt": rebuilt, "dropped": dropped, "copies_left": notes}

    def regenerate(self, name: str, without: Sequence[int | str] = (), **overrides) -> dict[str, Any]:
        """Retrain a chunk adapter minus unwanted turns (by index, or every turn containing a text).

        The adapter keeps its name; roll-ups containing it are rebuilt with the new weights, in the same
        journaled step as the catalog change, and the removed turns leave every file (as in
        :meth:`forget`). An index or text that matches no turn is an error, not a silent no-op. The row
        records how many turns were removed, never which words were asked for. Returns the new row plus
        ``rebuilt`` and ``copies_left``.
        """
        row = self.catalog.get(name)
        if row.get("kind") == "rollup":
            raise HfSteerError(f"adapter {name!r} is a roll-up: regenerate its members, the roll-up follows")
        if row.get("kind") == "behaviour":
            raise HfSteerError(f"adapter {name!r} is a behaviour: forget it, and say the request again if you want "
                               "part of it back")
        turns = row["turns"]
        if not without:
            raise HfSteerError(f"regenerate {name!r} needs turns to drop: pass indices (0..{len(turns) - 1}) or text")
        drop: set[int] = set()
        for w in without:
            if isinstance(w, bool) or not isinstance(w, (int, str)):
                raise HfSteerError(f"regenerate {name!r}: {w!r} is neither a turn index nor a text")
            if isinstance(w, int):
                if not 0 <= w < len(turns):
                    raise HfSteerError(f"adapter {name!r} has no turn {w}: it has {len(turns)} turns "
                                       f"(0..{len(turns) - 1}); see `hf-steer memory list --json`")
                drop.add(w)
            else:
                hits = {i for i, t in enumerate(turns) if w.lower() in t["content"].lower()}
                if not w.strip() or not hits:
                    raise HfSteerError(f"no turn of adapter {name!r} contains {w!r}: nothing to drop; check the text")
                drop |= hits
        keep = [t for i, t in enumerate(turns) if i not in drop]
        if not keep:
            raise HfSteerError(f"regenerate {name!r} without {list(without)} leaves no turn: forget the adapter instead")
        read = aug.read_chunk(keep)
        if not read.facts:
            raise HfSteerError(f"regenerate {name!r} without {list(without)} leaves no fact to learn: forget the "
                               "adapter instead")
        preset = self._row_preset(row, **overrides)
        anchors = self.anchors(preset.anchors)
        staged: dict[str, Path] = {}
        try:
            was_active = name in self.active
            self._delete(name)
            del self.catalog.rows[name]
            facts, supersedes, _ = self._link_corrections(read.facts)
            job = {"name": name, "kind": "chunk", "turns": keep, "facts": facts, "supersedes": supersedes}
            new_row = self._train_job(job, preset, anchors)
            new_row["regenerated"] = {"turns_removed": len(drop), "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            if row.get("created"):
                new_row["created"] = row["created"]
            staged[name] = self._finish_row(name, new_row, stage=True)
            self._apply_supersedes(new_row)
            if was_active:
                self._activate([*self.active, name])
            rebuilt, more, dropped = self._rebuild_rollups(name, removed=False)
            staged.update(more)
            deletes, notes = self._copies_elsewhere([name])
            self.catalog.commit(remove=dropped, install=staged, delete_paths=deletes)
        except BaseException:
            self._discard(staged)
            self._reload()
            raise
        self.catalog.scrub_copies([turns[i]["content"] for i in sorted(drop)])
        return {**new_row, "rebuilt": rebuilt, "copies_left": notes}

    # -- asking ---------------------------------------------------------------------------------
    def retrieve(self, question: str, k: int = 2) -> list[dict[str, Any]]:
        """The ``k`` chunk rows nearest to ``question`` (chunk embeddings)."""
        self._need_embedder()
        return retrieval.top_k(self.embedder, [self.catalog.rows[n] for n in self.names("chunk")], question, k)

    def retrieve_statements(self, question: str, k: int = AskConfig.k, query_vec=None) -> list[str]:
        """The ``k`` live remembered statements nearest to ``question`` that pass ``note_threshold``
        (``personal_note_threshold`` for a question about the user or the assistant, "What's my name?", and for
        a statement naming what the question names, "What colour is Pumice?"): the notes put in the prompt
        (an unrelated question gets none, so its answer stays the base's; small talk, "Hello, how are you?", none
        either: :func:`~hf_steer.memory.retrieval.is_small_talk`)."""
        self._need_embedder()
        rows = [self.catalog.rows[n] for n in self.names("chunk")]
        if retrieval.is_small_talk(question):
            return []
        if retrieval.is_personal(question):
            return retrieval.top_statements(self.embedder, rows, question, k, min_score=self.personal_note_threshold,
                                            query_vec=query_vec)
        return retrieval.top_statements(self.embedder, rows, question, k, min_score=self.note_threshold,
                                        query_vec=query_vec, named_min_score=self.personal_note_threshold)

    def _need_embedder(self) -> None:
        if self.embedder is None:
            raise HfSteerError("retrieval is off for this memory (embedder=None): create it with embedder='default'")

    def route(self, question: str, query_vec=None) -> list[str]:
        """The active adapters for ``question``: every behaviour adapter; a chunk adapter when one of its
        live statements is within ``route_threshold`` cosine of it (and is its best match: a superseded
        fact's old adapter stays out), or, for a question about the user or the assistant, when it holds the
        question's best note (``personal_note_threshold``), and for a question naming what remembered
        statements name, when it is the best of the chunks naming it; a roll-up when one of its members qualifies.
        Small talk ("Hello, how are you?") takes the behaviours only.

        Routing keeps unrelated questions on the bare base (locality by construction), keeps stacked
        adapters from answering each other's questions, and keeps behaviours on for every question.
        Without an embedder: all active.
        """
        active = self.active
        if self.embedder is None or not active:
            return active
        if retrieval.is_small_talk(question):  # "Hello, how are you?" asks nothing that was said
            return [n for n in active if self.catalog.rows[n].get("kind") == "behaviour"]
        chunk_rows = [self.catalog.rows[n] for n in self.names("chunk")]
        q = query_vec if query_vec is not None else np.asarray(self.embedder([question]))[0]
        scores = retrieval.statement_scores(q, chunk_rows)
        hits = {r["name"] for r, sc in zip(chunk_rows, scores) if sc >= self.route_threshold}
        # A question about the user or the assistant: the chunk of its best note joins, as the note does
        # (personal_note_threshold); "What is my brother's name?" scored 0.479 against its statement. A
        # question naming what statements name: the best of the chunks whose statements name it.
        about = chunk_rows if retrieval.is_personal(question) else retrieval.rows_naming(question, chunk_rows)
        about_names = {r["name"] for r in about}
        scored = [(sc, r["name"]) for r, sc in zip(chunk_rows, scores) if r["name"] in about_names]
        best = max(scored, key=lambda x: x[0], default=None)
        if best is not None and best[0] >= self.personal_note_threshold:
            hits.add(best[1])
        out = []
        for n in active:
            row = self.catalog.rows[n]
            if row.get("kind") == "behaviour":
                out.append(n)
                continue
            members = row.get("members", []) if row.get("kind") == "rollup" else [n]
            if hits.intersection(members):
                out.append(n)
        return out

    @torch.no_grad()
    def answer_many(
        self,
        questions: Sequence[str],
        *,
        adapters: bool = AskConfig.adapters,
        retrieve: bool | None = None,
        route: bool | None = None,
        use: Sequence[str] | None = None,
        recite: bool = AskConfig.recite,
        k: int = AskConfig.k,
        max_new_tokens: int = AskConfig.max_new_tokens,
        batch_size: int = 16,
    ) -> list[dict[str, Any]]:
        """Greedy answers with what answered them: ``[{"answer", "adapters", "notes", "recited", "draft"}]``.

        ``adapters`` uses the active adapters, routed per question when ``route`` (default
        ``self.route_default``: only the adapters whose statements match the question, see :meth:`route`)
        or the whole stack otherwise; ``use`` names an exact adapter set instead. ``retrieve`` puts the
        top-``k`` remembered statements that pass ``note_threshold`` in the prompt as notes (default:
        whenever the memory has an embedder). With notes, ``recite`` replaces an answer that recites the wrong
        remembered statement, or part of the right one, by the question's best note whole
        (:func:`~hf_steer.memory.retrieval.best_recitation`; ``recited`` then holds the generated answer).
        Behaviour adapters do not answer: the other adapters write a draft, and the behaviours reshape it
        (:func:`~hf_steer.memory.behaviour.reshape_prompt`; ``draft`` then holds the draft). Asked directly,
        the one-word adapter picked a salient word of what it was shown ("What kind of animal did I adopt?"
        -> the ferret's name): fact recall 12/27 on the dev chats with it against 26/27 without.
        The defaults are the best measured path (see docs/memory.md): notes + routed adapters + recite, then
        every behaviour adapter.
        """
        route = self.route_default if route is None else route
        for n in use or ():
            self.catalog.get(n)
        if retrieve is None:  # the default path: notes whenever this memory can retrieve
            retrieve = AskConfig.retrieve and self.embedder is not None
        elif retrieve:
            self._need_embedder()
        vecs = (np.asarray(self.embedder(list(questions))) if self.embedder is not None and questions
                and (retrieve or (adapters and route and use is None)) else [None] * len(questions))
        notes = [self.retrieve_statements(q, k, query_vec=v) if retrieve else [] for q, v in zip(questions, vecs)]
        prompts = [aug.chat_prompt(self.tokenizer, q, retrieval.build_context(n) or None) for q, n in zip(questions, notes)]
        # The adapter set of each question, split into what it knows (chunks, roll-ups) and how to answer
        # (behaviours): the draft comes from the first, the behaviours then reshape the draft.
        behaviours = set(self.names("behaviour"))
        sets: list[tuple[str, ...]] = []
        for i, q in enumerate(questions):
            if use is not None:
                names = tuple(use)
            else:
                names = tuple(self.route(q, vecs[i]) if (adapters and route) else (self.active if adapters else ()))
            sets.append(names)
        knows, hows = zip(*(self._knows_and_hows(names, behaviours) for names in sets)) if sets else ((), ())
        drafts = self._generate_grouped(prompts, knows, max_new_tokens, batch_size)
        out = [{"answer": a, "adapters": list(names), "notes": n, "recited": None, "draft": None}
               for a, names, n in zip(drafts, sets, notes)]
        if retrieve and recite:
            rows = [self.catalog.rows[n] for n in self.names("chunk")]
            for i, r in enumerate(out):
                whole = retrieval.best_recitation(r["answer"], vecs[i], rows, notes[i])
                if whole is not None:
                    r["recited"], r["answer"] = r["answer"], whole
        todo = [i for i, h in enumerate(hows) if h and out[i]["answer"].strip()]
        for i, a in zip(todo, self._reshape([questions[i] for i in todo], [out[i]["answer"] for i in todo],
                                            [hows[i] for i in todo], max_new_tokens, batch_size)):
            out[i]["draft"], out[i]["answer"] = out[i]["answer"], a
        return out

    @staticmethod
    def _knows_and_hows(names: Sequence[str], behaviours: set[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """An adapter set split into what writes the draft (chunks, roll-ups) and what reshapes it (behaviours)."""
        return tuple(n for n in names if n not in behaviours), tuple(n for n in names if n in behaviours)

    def _reshape(self, questions: Sequence[str], drafts: Sequence[str], sets: Sequence[tuple[str, ...]],
                 max_new_tokens: int, batch_size: int) -> list[str]:
        """The behaviour adapters' answers to ``questions`` with their drafts shown: under a word limit the
        best-scored short answer the draft holds (:func:`~hf_steer.memory.behaviour.copy_candidates`), else
        what the adapters write."""
        prompts = [reshape_prompt(self.tokenizer, q, d) for q, d in zip(questions, drafts)]
        out: list[str | None] = [None] * len(prompts)
        for i, (d, names) in enumerate(zip(drafts, sets)):
            limit = short_limit([b for n in names for b in self.catalog.rows[n].get("behaviours", [])])
            candidates = copy_candidates(d, limit, retrieval.is_small_talk(questions[i])) if limit else []
            if candidates:
                kind = asked_type(questions[i])
                fit = self._type_fit(kind, candidates) if kind else None
                out[i] = pick_answer(questions[i], candidates, self._answer_scores(prompts[i], candidates, names), fit)
        rest = [i for i, a in enumerate(out) if a is None]
        for i, a in zip(rest, self._generate_grouped([prompts[i] for i in rest], [sets[i] for i in rest],
                                                      max_new_tokens, batch_size)):
            out[i] = a
        return out

    @torch.no_grad()
    def _answer_scores(self, prompt: str, answers: Sequence[str], names: Sequence[str]) -> list[float]:
        """Log-probability of each whole answer (end of turn included) after ``prompt``, with adapters ``names``."""
        tok = self.tokenizer
        start = tok(prompt, add_special_tokens=False)["input_ids"]
        ends = [tok(a + aug.answer_suffix(tok), add_special_tokens=False)["input_ids"] for a in answers]
        width = len(start) + max(map(len, ends))
        ids = torch.full((len(ends), width), tok.pad_token_id if tok.pad_token_id is not None else 0)
        mask = torch.zeros_like(ids)
        for k, e in enumerate(ends):  # right padding: the answer tokens sit at the same places in every row
            ids[k, : len(start) + len(e)] = torch.tensor(start + e)
            mask[k, : len(start) + len(e)] = 1
        model = self.peft if self.peft is not None else self.model
        device = next(model.parameters()).device
        stack = self.active
        try:
            if self.peft is not None:
                self.peft.base_model.set_adapter(list(names), inference_mode=True)
            logp = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().log_softmax(-1)
        finally:
            self._activate(stack)
        at = torch.arange(len(start) - 1, width - 1)
        picked = logp[:, at].gather(-1, ids[:, len(start):].to(device).unsqueeze(-1)).squeeze(-1)
        return (picked * mask[:, len(start):].to(device)).sum(-1).tolist()

    @torch.no_grad()
    def _type_fit(self, kind: str, answers: Sequence[str]) -> list[float]:
        """The bare base's log p(" <kind>" | "<Answer> is a(n)") for each answer: is "Nurse" a job, "Larkfield"?"""
        tok = self.tokenizer
        article = "an" if kind[0] in "aeiou" else "a"
        starts = [tok((a[0].upper() + a[1:]).rstrip(".!?") + f" is {article}", add_special_tokens=False)["input_ids"]
                  for a in answers]
        end = tok(f" {kind}", add_special_tokens=False)["input_ids"]
        width = max(map(len, starts)) + len(end)
        ids = torch.full((len(starts), width), tok.pad_token_id if tok.pad_token_id is not None else 0)
        mask = torch.zeros_like(ids)
        for k, s in enumerate(starts):  # right padding; each row's " <kind>" sits after its own answer
            ids[k, : len(s) + len(end)] = torch.tensor(s + end)
            mask[k, : len(s) + len(end)] = 1
        model = self.peft if self.peft is not None else self.model
        device = next(model.parameters()).device
        with self.base_only():
            logp = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().log_softmax(-1)
        return [sum(logp[k, len(s) - 1 + t, e].item() for t, e in enumerate(end)) for k, s in enumerate(starts)]

    def _generate_grouped(self, prompts: Sequence[str], sets: Sequence[tuple[str, ...]], max_new_tokens: int,
                          batch_size: int) -> list[str]:
        """Greedy answers to ``prompts``, each with its own adapter set (one batched generate per set)."""
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, names in enumerate(sets):
            groups.setdefault(names, []).append(i)
        answers = [""] * len(prompts)
        stack = self.active
        try:
            for names, idx in groups.items():
                if self.peft is not None and names:
                    self.peft.base_model.set_adapter(list(names), inference_mode=True)
                for i, a in zip(idx, self._generate([prompts[i] for i in idx], bool(names), max_new_tokens, batch_size)):
                    answers[i] = a
        finally:
            self._activate(stack)
        return answers

    def ask_many(self, questions: Sequence[str], **kwargs) -> list[str]:
        """Greedy answers only (see :meth:`answer_many` for the options and what answered)."""
        return [r["answer"] for r in self.answer_many(questions, **kwargs)]

    @contextmanager
    def base_only(self):
        """Run the bare base inside the block, then restore the stack.

        An empty active list rather than PEFT's ``disable_adapter()``: the latter looks the PeftModel's
        own ``active_adapter`` up in ``peft_config``, which goes stale once that adapter is deleted.
        """
        stack = self.active
        try:
            if self.peft is not None:
                self.peft.base_model.set_adapter([], inference_mode=True)
            yield
        finally:
            self._activate(stack)

    def _generate(self, prompts: list[str], with_adapters: bool, max_new_tokens: int, batch_size: int,
                  model=None) -> list[str]:
        """Greedy continuations of ``prompts`` (``model``: another model with this tokenizer, e.g. a merged copy)."""
        own = model is None
        model = model if model is not None else (self.peft if self.peft is not None else self.model)
        out_texts: list[str] = []
        kwargs = dict(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
        for i in range(0, len(prompts), batch_size):
            # left padding for this call only: the caller's tokenizer keeps its own padding side
            enc = self.tokenizer(prompts[i : i + batch_size], return_tensors="pt", padding=True,
                                 add_special_tokens=False, padding_side="left")
            enc = enc.to(next(model.parameters()).device)
            if own and self.peft is not None and not with_adapters:
                with self.base_only():
                    out = self.peft.generate(**enc, **kwargs)
            else:
                out = model.generate(**enc, **kwargs)
            width = enc["input_ids"].shape[1]
            out_texts += [self.tokenizer.decode(o[width:], skip_special_tokens=True).strip() for o in out]
        return out_texts

    def ask(self, question: str, **kwargs) -> str:
        return self.ask_many([question], **kwargs)[0]

    def answer(self, question: str, **kwargs) -> dict[str, Any]:
        """One answer with what answered it: ``{"answer", "adapters", "notes"}`` (see :meth:`answer_many`)."""
        return self.answer_many([question], **kwargs)[0]

    # -- does a roll-up or a merged copy keep what its members knew? ------------------------------
    def _probes(self, chunks: Sequence[str]) -> list[tuple[str, str, str]]:
        """``(chunk, question, expected)`` for the probe questions the chunks' rows keep."""
        return [(n, p["question"], p["expected"]) for n in chunks for p in self.catalog.rows[n].get("probes", [])]

    def chunks_of(self, names: Sequence[str]) -> list[str]:
        """The chunk adapters behind ``names`` (a roll-up stands for its members)."""
        out = []
        for n in names:
            row = self.catalog.get(n)
            out += (row.get("members") or [n]) if row.get("kind") == "rollup" else [n]
        return list(dict.fromkeys(out))

    def _recall_check(self, chunks: Sequence[str], *, use: Sequence[str] | None = None, model=None,
                      what: str) -> dict[str, Any]:
        """Probe recall of ``chunks`` by each member alone vs by ``use`` (a roll-up) or ``model`` (a merged copy).

        Returns ``{"questions", "members", what, "warning"}``; ``warning`` is one line when the
        combination answers fewer probe questions than the members did on their own.
        """
        probes = self._probes(chunks)
        if not probes:
            return {"questions": 0, "members": None, what: None, "warning": None}

        def hit(answer: str, expected: str) -> bool:
            return expected.lower() in answer.lower()

        by_member = [hit(self.answer(q, use=[c], max_new_tokens=16)["answer"], e) for c, q, e in probes]
        if model is not None:
            prompts = [aug.chat_prompt(self.tokenizer, q) for _, q, _ in probes]
            combined = [hit(a, e) for a, (_, _, e) in zip(self._generate(prompts, True, 16, 16, model=model), probes)]
        else:
            answers = self.ask_many([q for _, q, _ in probes], use=list(use), max_new_tokens=16)
            combined = [hit(a, e) for a, (_, _, e) in zip(answers, probes)]
        members, together = sum(by_member) / len(probes), sum(combined) / len(probes)
        warning = None
        if sum(combined) < sum(by_member):
            warning = (f"the {what} answers {sum(combined)}/{len(probes)} probe questions of its chunks "
                       f"({together:.2f}) where the chunk adapters alone answer {sum(by_member)} ({members:.2f}): "
                       f"it lost part of what they knew")
        return {"questions": len(probes), "members": round(members, 4), what: round(together, 4), "warning": warning}

    def chat(self, messages: list[dict[str, str]], *, retrieve: bool | None = None, route: bool | None = None,
             recite: bool = AskConfig.recite, k: int = AskConfig.k,
             max_new_tokens: int = ChatConfig.max_new_tokens) -> str:
        """One assistant reply to a message list (the REPL's turn), with the active adapters (and, as in
        :meth:`answer_many`, the best note whole when the reply recites the wrong statement, and the
        behaviours reshaping the draft reply)."""
        msgs = [{"role": "system", "content": aug.SYSTEM_PROMPT}, *messages]
        question = messages[-1]["content"]
        retrieve = (AskConfig.retrieve if retrieve is None else retrieve) and self.embedder is not None
        query_vec = np.asarray(self.embedder([question]))[0] if retrieve else None
        statements = self.retrieve_statements(question, k, query_vec=query_vec) if retrieve else []
        notes = retrieval.build_context(statements)
        if notes:
            msgs[-1] = {"role": msgs[-1]["role"], "content": f"{notes}\n\n{question}"}
        route = self.route_default if route is None else route
        stack = self.active
        names = self.route(question, query_vec) if route else stack
        if getattr(self.tokenizer, "chat_template", None):
            prompt = self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        else:
            prompt = "\n".join(f"{m['role']}: {m['content']}" for m in msgs) + "\nassistant:"
        knows, hows = self._knows_and_hows(names, set(self.names("behaviour")))
        reply = self._generate_grouped([prompt], [knows], max_new_tokens, 1)[0]
        if retrieve and recite:
            rows = [self.catalog.rows[n] for n in self.names("chunk")]
            reply = retrieval.best_recitation(reply, query_vec, rows, statements) or reply
        if hows and reply.strip():  # the behaviours reshape the draft, as in answer_many
            reply = self._reshape([question], [reply], [hows], max_new_tokens, 1)[0]
        return reply

    # -- merging --------------------------------------------------------------------------------
    def merge_in_place(self):
        """Merge the active adapters into the base weights -- refused on a 4-bit base."""
        if self.quantized:
            raise HfSteerError(
                "base model is 4-bit: merging would re-quantize the weights and wipe out the adapters' small "
                "deltas; use save_merged(folder) to write a merged 16-bit copy instead"
            )
        if self.peft is None or not self.active:
            raise HfSteerError("no active adapter to merge: remember or stack adapters first")
        merged = self.peft.merge_and_unload(adapter_names=self.active)
        self.peft = None
        self.model = merged
        return merged

    def save_merged(self, output_dir: str | os.PathLike, dtype: str = "bfloat16", names: Sequence[str] | None = None,
                    check: bool = True) -> dict[str, Any]:
        """Write the base with adapters merged in, as a fresh 16-bit (or fp32) copy; works for 4-bit memories.

        ``names`` defaults to the active adapters. A roll-up and its own members are never merged
        together (the facts would go in twice): the roll-up is merged instead of its members. Merged
        weights have no routing -- every merged adapter acts on every question -- so ``check`` measures
        the copy on the chunks' probe questions against each chunk adapter alone and warns when it
        answers fewer. The catalog records the copy (folder, adapters, the chunks they hold), so a later
        ``forget`` can say that this copy still holds a forgotten chunk.

        Returns ``{"folder", "adapters", "left_out", "notes", "recall_check"}``.
        """
        from peft import PeftModel

        from ..models import load_model

        names = list(dict.fromkeys(names if names is not None else self.active))
        if not names:
            raise HfSteerError("no active adapter to merge: remember or stack adapters first")
        for n in names:
            self.catalog.get(n)
        if dtype not in ("bfloat16", "float16", "float32"):
            raise HfSteerError(f"merge dtype {dtype!r} is not a 16/32-bit float: use bfloat16, float16 or float32")
        out = Path(output_dir)
        if out.exists() and not out.is_dir():
            raise HfSteerError(f"merge output {out} is a file: pass a folder")
        covered = {m for n in names if self.catalog.rows[n].get("kind") == "rollup" for m in self.catalog.rows[n]["members"]}
        left_out = [n for n in names if n in covered]
        names = [n for n in names if n not in covered]
        notes = []
        if left_out:
            notes.append(f"merged the roll-up(s) instead of their members {', '.join(left_out)} (never both: the facts "
                         "would go in twice)")
        if self.route_default and self.embedder is not None and len(names) > 1:
            notes.append(f"routing has no meaning in merged weights: all {len(names)} adapters act on every question "
                         "of the merged copy (`rollup --method retrain` first gives one adapter to merge)")
        base = load_model(self.base_path, dtype="float32", device="cpu", with_tokenizer=False)
        peft = None
        for n in names:
            folder = str(self.catalog.adapter_dir(n))
            if peft is None:
                peft = PeftModel.from_pretrained(base, folder, adapter_name=n)
            else:
                peft.load_adapter(folder, adapter_name=n)
        peft.base_model.set_adapter(names, inference_mode=True)
        merged = peft.merge_and_unload(adapter_names=names).to(getattr(torch, dtype))
        merged.eval()
        chunks = self.chunks_of(names)
        recall = self._recall_check(chunks, model=merged, what="merged") if check else None
        merged.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        Artifact(
            method="lora_memory", artifact="merged_model", base_model=base_model_name(self.base_path),
            description=f"Base model with LoRA memory adapters {', '.join(names)} merged in ({dtype}).",
            hyperparameters={"adapters": names, "dtype": dtype},
            metrics={"probe_recall_merged": recall["merged"], "probe_recall_chunk_adapters": recall["members"]}
            if recall and recall["questions"] else {},
        ).save(out)
        self.catalog.merges = [m for m in self.catalog.merges if Path(m["folder"]) != out.resolve()]
        self.catalog.merges.append({"folder": str(out.resolve()), "adapters": names, "chunks": chunks,
                                    "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
        self.catalog.save()
        return {"folder": out, "adapters": names, "left_out": left_out, "notes": notes, "recall_check": recall}
