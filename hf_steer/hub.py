"""Publish an artifact folder to the Hugging Face Hub, with a model card rendered from a template.

An artifact is what a method writes for a user to keep: a PEFT adapter (``adapter_config.json``), a
merged model (``config.json``) or a custom-code model (``config.json`` with ``auto_map``). Its
``hf_steer.json`` (see docs/CONVENTIONS.md) carries the method, base model, datasets, hyperparameters,
measured metrics and plots; the card is rendered from ``model_cards/<artifact>.md`` with
``huggingface_hub.ModelCard.from_template`` and uploaded with the folder in one commit.

The token is never handled here: ``huggingface_hub`` finds it itself (``HF_TOKEN``, then the token
saved by ``hf auth login``), unless the caller passes one explicitly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .artifacts import (
    BUNDLED_HUB_ID,
    METADATA_FILE,
    hub_model_id,
    read_json_object,
    read_metadata,
)
from .errors import HfSteerError

if TYPE_CHECKING:
    from huggingface_hub import ModelCard

LOGIN_HINT = "log in with `hf auth login` (or `huggingface-cli login`) or set HF_TOKEN"

_DATA_FILE_SUFFIXES = {".yaml", ".yml", ".json", ".jsonl", ".txt", ".csv", ".tsv", ".parquet", ".arrow"}
_PEFT_NAMES = {"LORA": "LoRA", "ADALORA": "AdaLoRA", "LOHA": "LoHa", "LOKR": "LoKr", "IA3": "IA³"}
_ARTIFACT_NAMES = {"adapter": "adapter", "merged_model": "merged model", "custom_code_model": "custom-code model",
                   "custom_generate": "custom generate method"}
CUSTOM_GENERATE_FILE = "custom_generate/generate.py"  # what transformers' generate(custom_generate=...) loads


def templates_dir() -> Path:
    """Folder holding the card templates (``adapter.md``, ``merged_model.md``, ``custom_code_model.md``).

    ``hf_steer/model_cards`` links to the top-level ``model_cards/``, so the templates ship inside the
    package (wheel) and an editable install reads the repository's folder; the second candidate covers
    checkouts where git could not create the link (Windows without symlinks).
    """
    here = Path(__file__).resolve().parent
    for candidate in (Path(__file__).parent / "model_cards", here.parent / "model_cards"):
        if (candidate / "adapter.md").is_file():
            return candidate
    raise HfSteerError(f"model card templates are missing from {here / 'model_cards'}: reinstall hf_steer")


# -- reading the folder --------------------------------------------------------------------------


def detect_artifact(folder: Path, meta: dict) -> str:
    """``adapter``, ``merged_model``, ``custom_code_model`` or ``custom_generate``, from the folder's files
    (and ``hf_steer.json``)."""
    has_adapter = (folder / "adapter_config.json").is_file()
    has_config = (folder / "config.json").is_file()
    if not has_adapter and not has_config and (folder / CUSTOM_GENERATE_FILE).is_file():
        return "custom_generate"  # a decoding method alone, for any model
    if not has_adapter and not has_config:
        raise HfSteerError(
            f"folder {folder} has neither config.json nor adapter_config.json (nor {CUSTOM_GENERATE_FILE}): push a "
            "folder written by save_pretrained (or by hf-steer drugs export)"
        )
    if has_adapter:
        found = "adapter"
    else:
        found = "custom_code_model" if read_json_object(folder / "config.json", "config").get("auto_map") else "merged_model"
    declared = meta.get("artifact")
    if declared and (declared == "adapter") != (found == "adapter"):
        raise HfSteerError(
            f"{folder / METADATA_FILE} says artifact {declared!r} but the folder holds a {_ARTIFACT_NAMES[found]}: fix it"
        )
    return declared or found


def _files_to_upload(folder: Path) -> Iterator[tuple[str, Path]]:
    """``(path in repo, local path)`` for everything worth publishing.

    Left out, like ``Trainer.push_to_hub`` does: hidden files and folders (``.git``, ``.cache``...),
    ``__pycache__`` and intermediate ``checkpoint-*`` folders. ``README.md`` is replaced by the card.
    """
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        parts = relative.parts
        if not path.is_file() or relative.as_posix() == "README.md":
            continue
        if any(p.startswith(".") or p == "__pycache__" for p in parts) or parts[0].startswith("checkpoint-"):
            continue
        if path.suffix == ".pyc":
            continue
        yield relative.as_posix(), path


# -- rendering the card --------------------------------------------------------------------------


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, (list, tuple)):
        text = ", ".join(_format_value(v) for v in value)
    elif isinstance(value, dict):
        text = json.dumps(value, sort_keys=True)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured markdown table (values formatted, ``|`` escaped)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_format_value(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def metrics_table(metrics: dict[str, Any]) -> str:
    """Benchmark figures as a table.

    ``{"before": {"p_elara": 0.3}, "after": {"p_elara": 0.01}}`` becomes one row per metric and one
    column per condition; a flat ``{"p_elara": 0.01}`` becomes ``metric | value`` rows.
    """
    if not metrics:
        return ""
    if all(isinstance(v, dict) for v in metrics.values()):
        names = list(dict.fromkeys(k for v in metrics.values() for k in v))
        rows = [[name, *(metrics[col].get(name, "") for col in metrics)] for name in names]
        return markdown_table(["metric", *metrics], rows)
    return markdown_table(["metric", "value"], [[k, v] for k, v in metrics.items()])


def _framework_versions() -> list[list[str]]:
    from importlib.metadata import PackageNotFoundError, version

    rows = []
    for name in ("hf_steer", "transformers", "peft", "torch", "huggingface_hub"):
        with contextlib.suppress(PackageNotFoundError):
            rows.append([name, version(name)])
    return rows


def render_card(folder: str | os.PathLike, repo_id: str, card_overrides: dict | None = None) -> ModelCard:
    """The :class:`huggingface_hub.ModelCard` for ``folder`` as it would be pushed to ``repo_id``.

    ``card_overrides`` updates the ``hf_steer.json`` fields (``description``, ``metrics``...) and may
    add card metadata such as ``license``, ``language`` or extra ``tags``.
    """
    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(folder)
    meta = {**read_metadata(folder), **(card_overrides or {})}
    artifact = detect_artifact(folder, meta)
    config_name = "adapter_config.json" if artifact == "adapter" else "config.json"
    config = read_json_object(folder / config_name, "config") if artifact != "custom_generate" else {}

    base_model = meta.get("base_model") or config.get("base_model_name_or_path")
    base_model_id = hub_model_id(base_model)
    # A local base path is shown by its folder name only: the full path says nothing to readers.
    base_model_shown = base_model_id or (Path(base_model).name if base_model else None)

    method = meta.get("method")
    tags = ["hf-steer"]
    if method:
        tags.append(method)
    if artifact == "adapter":
        tags.append(str(config.get("peft_type", "lora")).lower())
    if artifact == "custom_code_model":
        tags.append("custom_code")
    if artifact == "custom_generate":
        tags.append("custom_generate")  # the Hub lists custom generation methods by this tag
    tags += [t for t in meta.get("tags") or [] if t not in tags]

    datasets = meta.get("datasets") or []
    datasets = [datasets] if isinstance(datasets, str) else [str(d) for d in datasets]
    # The Hub only links to dataset repo ids; local files are listed by name only (no home paths).
    dataset_ids = [d for d in datasets if hub_model_id(d) == d and Path(d).suffix not in _DATA_FILE_SUFFIXES]
    datasets = [d if d in dataset_ids else Path(d).name for d in datasets]

    # Plots are uploaded with the folder, so the card embeds them by relative path.
    plots = meta.get("plots")
    if plots is None:
        plots = sorted(p.name for p in folder.glob("*.png"))
    plots = [p for p in plots if (folder / p).is_file() and (folder / p).resolve().is_relative_to(folder.resolve())]
    has_tokenizer = any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json"))

    card_data = ModelCardData(
        base_model=base_model_id,
        library_name="peft" if artifact == "adapter" else "transformers",
        tags=tags,
        datasets=dataset_ids or None,
        pipeline_tag=meta.get("pipeline_tag", "text-generation"),
        license=meta.get("license"),
        language=meta.get("language"),
        model_name=repo_id.split("/")[-1],
    )
    hyperparameters = meta.get("hyperparameters") or {}
    auto_map = config.get("auto_map") or {}
    target_modules = config.get("target_modules")
    peft_type = str(config.get("peft_type") or "PEFT")
    card = ModelCard.from_template(
        card_data,
        template_path=str(templates_dir() / f"{artifact}.md"),
        repo_id=repo_id,
        model_name=repo_id.split("/")[-1],
        method=method,
        description=meta.get("description"),
        base_model=base_model_shown,
        base_model_id=base_model_id,
        base_model_link=f"https://huggingface.co/{base_model_id}" if base_model_id else "#usage",
        bundled_base=base_model_id == BUNDLED_HUB_ID,
        tokenizer_source=repo_id if has_tokenizer else (base_model_id or "<base model folder or id>"),
        adapter_kind=_PEFT_NAMES.get(peft_type, peft_type),
        adapter_rank=config.get("r"),
        target_modules=", ".join(sorted(target_modules)) if isinstance(target_modules, list) else target_modules,
        architectures=", ".join(config.get("architectures") or []),
        auto_map_table=markdown_table(
            ["Auto class", "code in this repo"],
            [[k, v if isinstance(v, str) else ", ".join(x for x in v if x)] for k, v in auto_map.items()],
        )
        if auto_map
        else "",
        datasets=datasets,
        hyperparameters_table=markdown_table(["hyperparameter", "value"], list(hyperparameters.items()))
        if hyperparameters
        else "",
        metrics_table=metrics_table(meta.get("metrics") or {}),
        plots=plots,
        versions_table=markdown_table(["library", "version"], _framework_versions()),
    )
    # The templates keep one block per line for readability; optional blocks leave blank runs behind.
    return ModelCard(re.sub(r"\n{3,}", "\n\n", str(card)).strip() + "\n")


# -- pushing --------------------------------------------------------------------------------------


def _check_custom_code(folder: Path) -> None:
    """A custom-code model is useless on the Hub without the modules its ``auto_map`` names."""
    auto_map = read_json_object(folder / "config.json", "config").get("auto_map") or {}
    for value in auto_map.values():
        for reference in [value] if isinstance(value, str) else value:
            if not reference or "--" in reference:  # "--" points at code in another repo
                continue
            module = reference.rsplit(".", 1)[0]
            if not (folder / f"{module}.py").is_file():
                raise HfSteerError(
                    f"folder {folder} misses {module}.py named by auto_map in config.json: save the model code beside it"
                )


def _commit_operations(folder: Path, card: ModelCard) -> list:
    """One ``CommitOperationAdd`` per file to publish, plus the card as ``README.md``."""
    from huggingface_hub import CommitOperationAdd

    operations = []
    for path_in_repo, local_path in _files_to_upload(folder):
        content: str | bytes = str(local_path)  # read from disk by huggingface_hub, never modified
        if path_in_repo == "adapter_config.json" and card.data.base_model:
            # A local (or missing) base path in the adapter config means nothing to others; the Hub id lets
            # `AutoPeftModelForCausalLM.from_pretrained(repo_id)` find the base model. Upload only.
            adapter_config = read_json_object(local_path, "adapter config")
            recorded = adapter_config.get("base_model_name_or_path")
            if not recorded or hub_model_id(recorded) != recorded:
                adapter_config["base_model_name_or_path"] = card.data.base_model
                content = (json.dumps(adapter_config, indent=2, sort_keys=True) + "\n").encode()
        operations.append(CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=content))
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode()))
    return operations


@contextlib.contextmanager
def _explain_hub_errors(repo_id: str) -> Iterator[None]:
    """Turn what the Hub client raises into one :class:`HfSteerError` line."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    try:
        yield
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status == 401:
            raise HfSteerError(f"the Hub refused the credentials for {repo_id}: {LOGIN_HINT}") from None
        if status == 403:
            raise HfSteerError(
                f"your token cannot write to {repo_id}: push to your own namespace, or log in with a token that can"
                " write there (`hf auth login` or HF_TOKEN)"
            ) from None
        if status == 404:
            raise HfSteerError(f"repo {repo_id} was not found or is not yours: check the repo id and token") from None
        reason = " ".join((e.server_message or str(e).strip().splitlines()[0]).split())
        raise HfSteerError(f"the Hub rejected the push to {repo_id} ({status}: {reason}): fix that and retry") from None
    except ValueError as e:
        # create_commit has the Hub validate README.md's metadata first and raises a plain ValueError.
        if not str(e).startswith("Invalid metadata in README.md"):
            raise
        reason = " ".join(str(e).split())
        raise HfSteerError(f"the Hub rejected the card of {repo_id} ({reason}): fix hf_steer.json or card_overrides") from None
    except (httpx2.ConnectError, httpx2.TimeoutException):
        raise HfSteerError(f"could not reach the Hub at {constants.ENDPOINT}: check the network (or HF_ENDPOINT)") from None


def push_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    card_overrides: dict | None = None,
) -> str:
    """Push an adapter, merged model or custom-code model folder with a rendered model card.

    Everything (the folder's files and the card as ``README.md``) goes in one commit; the folder itself
    is not modified. The repo is created if needed (``private`` applies only then, like
    ``huggingface_hub.create_repo(exist_ok=True)``).

    Args:
        folder: a folder written by ``save_pretrained`` (optionally with ``hf_steer.json``).
        repo_id: ``"user/name"`` (or ``"name"`` for your own namespace).
        private: create the repo as private.
        token: a Hub token; default: the one ``huggingface_hub`` finds (``HF_TOKEN``, ``hf auth login``).
        commit_message: default ``"Upload <artifact> with hf_steer"``.
        card_overrides: fields that update ``hf_steer.json`` for the card (see :func:`render_card`).

    Returns:
        The URL of the repo.
    """
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise HfSteerError(f"folder {folder} does not exist: pass the output folder of a run")
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise HfSteerError(f"repo id {repo_id!r} is not valid: use 'user/name' (letters, digits, '-', '_', '.')") from None

    # Render (and so check) everything local before touching the network.
    card = render_card(folder, repo_id, card_overrides)
    artifact = detect_artifact(folder, {**read_metadata(folder), **(card_overrides or {})})
    if artifact == "custom_code_model":
        _check_custom_code(folder)
    if artifact == "custom_generate" and "def generate(" not in (folder / CUSTOM_GENERATE_FILE).read_text(errors="replace"):
        raise HfSteerError(f"{folder / CUSTOM_GENERATE_FILE} defines no generate(model, ...): transformers would not "
                           "find the method; export the folder again")
    if token is None and get_token() is None:
        raise HfSteerError(f"not logged in to the Hugging Face Hub: {LOGIN_HINT}")

    api = HfApi(token=token)  # built now, so it picks up the current endpoint (HF_ENDPOINT)
    with _explain_hub_errors(repo_id):
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if repo_url.repo_id != repo_id:  # "name" alone: the Hub put it in the user's namespace
            card = render_card(folder, repo_url.repo_id, card_overrides)
        api.create_commit(
            repo_id=repo_url.repo_id,
            operations=_commit_operations(folder, card),
            commit_message=commit_message or f"Upload {_ARTIFACT_NAMES[artifact]} with hf_steer",
            repo_type="model",
        )
    _record_push(folder, repo_url.repo_id)
    return str(repo_url)


# -- which local folders went to the Hub ------------------------------------------------------------
# LoRA memory's ``forget`` must tell a user that a merged copy holding a forgotten chunk was published:
# the Hub copy is out of hf_steer's reach. The record lives in the hf_steer cache, not in the pushed
# folder (push never modifies the folder it publishes).


def _pushes_file() -> Path:
    from .models import cache_dir

    return cache_dir() / "pushes.json"


def _record_push(folder: Path, repo_id: str) -> None:
    from .utils import atomic_write_json

    path = _pushes_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    repos = data.setdefault(str(Path(folder).resolve()), [])
    if repo_id not in repos:
        repos.append(repo_id)
    try:
        atomic_write_json(path, data)
    except OSError:
        pass  # the push itself succeeded; the record is a courtesy


def pushes_of(folder: str | os.PathLike) -> list[str]:
    """Hub repos that ``hf-steer push`` published ``folder`` to from this machine (newest last)."""
    try:
        data = json.loads(_pushes_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    repos = data.get(str(Path(folder).resolve()), []) if isinstance(data, dict) else []
    return [r for r in repos if isinstance(r, str)]


# -- CLI ------------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hf-steer push FOLDER REPO_ID``."""
    parser = subparsers.add_parser(
        "push",
        help="push an adapter / merged / custom-code model folder with a model card to the Hub",
        description="Push a folder written by an hf_steer run to the Hugging Face Hub, with a model card "
        f"rendered from its {METADATA_FILE}. The token comes from `hf auth login` or HF_TOKEN.",
    )
    parser.add_argument("folder", help="the folder to push (has adapter_config.json or config.json)")
    parser.add_argument("repo_id", help="target repo, e.g. your-name/elarablated-smollm2")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--commit-message", default=None, help="message of the commit")
    parser.set_defaults(func=_push_command)


def _push_command(args: argparse.Namespace) -> int:
    url = push_to_hub(args.folder, args.repo_id, private=args.private, commit_message=args.commit_message)
    print(url)
    return 0
