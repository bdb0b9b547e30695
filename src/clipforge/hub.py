"""Resolve a model argument to local files: a HF hub id or ``save_pretrained`` folder, or an open_clip source.

open_clip sources (``openclip_source``; no torch needed to recognise them):
- a folder in open_clip's hub layout (``open_clip_config.json`` + ``open_clip_model.safetensors`` or
  ``open_clip_pytorch_model.bin``), or ``hf-hub:org/name`` of one (downloaded once, cached by huggingface_hub);
- a weights file (``.pt``, ``.pth``, ``.bin``, ``.safetensors``): read as an OpenAI CLIP file (TorchScript archive
  or plain state dict; the architecture is inferred from the weights, QuickGELU as OpenAI trained them);
- ``ARCH:FILE``: an open_clip architecture name and a weights file, built as
  ``open_clip.create_model(ARCH, pretrained=FILE)`` does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
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


# what AutoTokenizer.from_pretrained reads (config.json: the model type, where tokenizer_config.json names no class)
TOKENIZER_FILES = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "config.json",
]
OPENCLIP_HUB_PREFIX = "hf-hub:"
OPENCLIP_CONFIG = "open_clip_config.json"
OPENCLIP_WEIGHTS = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
# repos of open_clip models with a Hugging Face tokenizer (SigLIP's timm/... repos) ship its files beside the weights
OPENCLIP_FILES = [OPENCLIP_CONFIG, *OPENCLIP_WEIGHTS, *(f for f in TOKENIZER_FILES if f != "config.json")]
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?")
_ARCH_PREFIX = re.compile(r"^([A-Za-z0-9][\w.\-]+):(.+)$")  # two characters at least: not a Windows drive

MARKERS = ("manifest.json", "config.json", OPENCLIP_CONFIG)  # exported/built, transformers, open_clip folders
MODEL_KINDS = (
    "an exported or built folder (manifest.json), a checkpoint folder (config.json), a hub id (org/name) "
    f"or an open_clip source (a folder with {OPENCLIP_CONFIG}, hf-hub:org/name, an OpenAI .pt file, "
    "ARCH:FILE)"
)


def found_at(path: str | Path) -> str:
    """What is at ``path``, in a few words, for errors that say what was expected and what was found."""
    path = Path(path).expanduser()
    if not path.exists():
        return "nothing (no such file or folder)"
    if not path.is_dir():
        return f"a {path.suffix or 'suffix-less'} file of {path.stat().st_size} bytes"
    names = sorted(p.name for p in path.iterdir())
    if not names:
        return "an empty folder"
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    markers = [m for m in MARKERS if m in names]
    return f"a folder with {len(names)} entries ({shown}), " + (
        f"with {', '.join(markers)}" if markers else f"no {'/'.join(MARKERS)}"
    )


def not_a_model(model: str | Path) -> ModelNotFoundError:
    """The one-line error for a MODEL argument that is none of the accepted kinds."""
    return ModelNotFoundError(f"model {model}: found {found_at(model)}; pass {MODEL_KINDS}")


@dataclass(frozen=True)
class OpenClipSource:
    """Where an open_clip model comes from: a hub-layout folder, or a weights file (with ``arch`` or without:
    then an OpenAI CLIP file)."""

    path: Path
    arch: str | None = None

    @property
    def is_folder(self) -> bool:
        return self.path.is_dir()


def is_openclip_folder(path: Path) -> bool:
    return path.is_dir() and (path / OPENCLIP_CONFIG).is_file()


def is_weights_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in WEIGHT_SUFFIXES


def openclip_source(model: str | Path, revision: str | None = None) -> OpenClipSource | None:
    """The open_clip source ``model`` names, or None when it is no open_clip source (a HF checkpoint, an
    exported folder, a hub id). ``hf-hub:`` ids are downloaded here."""
    text = str(model)
    if text.startswith(OPENCLIP_HUB_PREFIX):
        return OpenClipSource(_download_openclip(text[len(OPENCLIP_HUB_PREFIX) :], revision))
    if text.startswith("local-dir:"):  # open_clip's own spelling of a hub-layout folder
        text = text[len("local-dir:") :]
        if not is_openclip_folder(Path(text).expanduser()):
            raise ModelNotFoundError(f"{model}: {text} is not a folder with {OPENCLIP_CONFIG}")
    path = Path(text).expanduser()
    if is_openclip_folder(path) or is_weights_file(path):
        return OpenClipSource(path)
    match = _ARCH_PREFIX.match(text)
    if match and not text.startswith(("http:", "https:")):
        arch, rest = match.groups()
        weights = Path(rest).expanduser()
        if not is_weights_file(weights):
            what = "does not exist" if not weights.exists() else f"is not a weights file ({', '.join(WEIGHT_SUFFIXES)})"
            raise ModelNotFoundError(f"{model}: {rest} {what}; pass ARCH:/path/to/weights.pt")
        return OpenClipSource(weights, arch)
    return None


def looks_like_openclip(model: str | Path) -> bool:
    """Whether ``model`` names an open_clip source, without downloading or loading anything."""
    text = str(model)
    if text.startswith((OPENCLIP_HUB_PREFIX, "local-dir:")):
        return True
    path = Path(text).expanduser()
    if is_openclip_folder(path) or is_weights_file(path):
        return True
    match = _ARCH_PREFIX.match(text)
    return bool(match) and is_weights_file(Path(match.group(2)).expanduser())


def _download_openclip(repo_id: str, revision: str | None) -> Path:
    if not looks_like_hub_id(repo_id):
        raise ModelNotFoundError(f"hf-hub:{repo_id} is not a hub id; pass hf-hub:org/name")
    folder, _ = _download(repo_id, revision, OPENCLIP_FILES)
    if not (folder / OPENCLIP_CONFIG).is_file():
        raise ModelNotFoundError(
            f"hf-hub:{repo_id} has no {OPENCLIP_CONFIG}; it is not an open_clip checkpoint "
            "(a transformers checkpoint is passed without the hf-hub: prefix)"
        )
    return folder


def tokenizer_folder(name: str) -> Path:
    """A folder holding the Hugging Face tokenizer ``name`` (open_clip's ``hf_tokenizer_name``): a local folder as
    is, or a hub id's tokenizer files, downloaded on first use and cached by huggingface_hub."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if not _HUB_NAME.fullmatch(name):  # "bert-base-uncased": the hub still serves ids without an organisation
        raise ModelNotFoundError(
            f"tokenizer {name!r} (text_cfg.hf_tokenizer_name) is neither a folder nor a hub id (org/name)"
        )
    try:
        folder, _ = _download(name, None, TOKENIZER_FILES)
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(
            f"cannot download tokenizer {name!r} (text_cfg.hf_tokenizer_name) from the Hugging Face hub "
            f"({type(exc.__cause__).__name__}); check your network, or set hf_tokenizer_name in "
            f"{OPENCLIP_CONFIG} to a local folder holding the tokenizer"
        ) from exc
    return folder


def looks_like_hub_id(name: str) -> bool:
    parts = str(name).split("/")
    return len(parts) == 2 and all(parts) and not str(name).startswith((".", "/", "~"))


def resolve_checkpoint(model: str | Path, revision: str | None = None) -> tuple[Path, str | None]:
    """Return (local folder, resolved revision). Hub ids download on first use and are cached by huggingface_hub."""
    source = openclip_source(model, revision)
    if source is not None:
        return source.path, revision
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise not_a_model(model)  # a file, but not a weights file
        return path, revision
    if not looks_like_hub_id(str(model)):
        raise ModelNotFoundError(
            f"model {model} does not exist (no file or folder of that name) and is not a hub id "
            f"(org/name); pass {MODEL_KINDS}"
        )
    return _download_checkpoint(str(model), revision)


def _download_checkpoint(repo_id: str, revision: str | None) -> tuple[Path, str | None]:
    """A hub id's files: a transformers checkpoint's, or open_clip's when the repo's ``config.json`` names no
    transformers model type (timm's repos of OpenAI's weights, ``timm/vit_base_patch32_clip_224.openai``: a timm
    ``config.json`` beside open_clip's files). Repos with both layouts and a transformers config (laion's) stay
    transformers checkpoints."""
    folder, _ = _download(repo_id, revision, ["config.json"])
    if not _names_model_type(folder / "config.json"):
        folder, resolved = _download(repo_id, revision, OPENCLIP_FILES)
        if (folder / OPENCLIP_CONFIG).is_file():
            return folder, resolved
    return _download(repo_id, revision)


def is_openclip_only(folder: Path) -> bool:
    """A folder of open_clip files whose ``config.json``, if any, names no transformers model type."""
    return is_openclip_folder(folder) and not _names_model_type(folder / "config.json")


def _names_model_type(config: Path) -> bool:
    try:
        return bool(json.loads(config.read_text()).get("model_type"))
    except (OSError, ValueError, AttributeError):
        return False


def _download(repo_id: str, revision: str | None, patterns: list[str] = CHECKPOINT_FILES) -> tuple[Path, str | None]:
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=patterns)
    except Exception as exc:  # offline, unknown repo, gated, network error: all end here
        reason = type(exc).__name__
        raise ModelNotFoundError(
            f"cannot download {repo_id!r} from the Hugging Face hub ({reason}); "
            "check the id and your network, or pass a local checkpoint folder (config.json), exported folder "
            f"(manifest.json) or open_clip folder ({OPENCLIP_CONFIG})"
        ) from exc
    return Path(folder), revision or Path(folder).name
