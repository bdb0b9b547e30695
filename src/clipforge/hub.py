"""Resolve a model argument (hub id or local folder) to a local checkpoint folder."""

from __future__ import annotations

from pathlib import Path

from clipforge.errors import ModelNotFoundError

CHECKPOINT_FILES = [
    "config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "preprocessor_config.json",
    "processor_config.json",
]


def looks_like_hub_id(name: str) -> bool:
    parts = str(name).split("/")
    return len(parts) == 2 and all(parts) and not str(name).startswith((".", "/", "~"))


def resolve_checkpoint(model: str | Path, revision: str | None = None) -> tuple[Path, str | None]:
    """Return (local folder, resolved revision). Hub ids download on first use and are cached by huggingface_hub."""
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(f"{model} is a file; pass a checkpoint folder (with config.json) or a hub id")
        return path, revision
    if not looks_like_hub_id(str(model)):
        raise ModelNotFoundError(f"model folder {model} does not exist; pass an existing folder or a hub id")
    return _download(str(model), revision)


def _download(repo_id: str, revision: str | None) -> tuple[Path, str | None]:
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=CHECKPOINT_FILES)
    except Exception as exc:  # offline, unknown repo, gated, network error: all end here
        reason = type(exc).__name__
        raise ModelNotFoundError(
            f"cannot download {repo_id!r} from the Hugging Face hub ({reason}); "
            "check the id and your network, or pass a local checkpoint folder"
        ) from exc
    return Path(folder), revision or Path(folder).name
