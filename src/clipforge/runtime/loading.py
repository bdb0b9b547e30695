"""Find the encoders and manifest of an exported folder, and the keywords the loaders accept."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from clipforge.errors import InputError
from clipforge.specs import ROLES, Manifest

TASKS = ("zero-shot-image-classification",)


@dataclass(frozen=True)
class LoadOptions:
    """The keywords ``from_onnx`` and ``from_pretrained`` accept for running a model. This is the one place
    they are listed: a new keyword is a new field here (plus where it is used); anything else is an error."""

    task: str = "zero-shot-image-classification"
    hf_config: Any = None  # returned as ``model.config`` (the HF pipeline reads it); a light stand-in if None
    device: str = "cpu"
    threads: int | None = None
    spinning: bool = False
    backend: str = "auto"  # onnxruntime | openvino | auto (what the build recorded; onnxruntime otherwise)
    precision: str | None = None  # fp32 | bf16 (OpenVINO: float parts in bf16); None: what the build recorded
    lazy: bool = False  # open each encoder's session on first use
    arena: bool = True  # onnxruntime's CPU memory arena (off: less peak memory, a little more CPU per run)
    max_patches: int | None = None  # SigLIP 2 NaFlex: the patch budget per image (None: the manifest's)

    def __post_init__(self):
        if self.task not in TASKS:
            raise InputError(f"task {self.task!r} is not supported by ZeroShotModel; supported: {', '.join(TASKS)}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def split(cls, kwargs: dict, where: str, others: tuple[str, ...] = ()) -> tuple[LoadOptions, dict]:
        """(LoadOptions from the keywords it knows, the keywords in ``others``); any other keyword is an error
        naming every accepted one."""
        unknown = sorted(set(kwargs) - set(cls.names()) - set(others))
        if unknown:
            accepted = ", ".join([*cls.names(), *others])
            raise InputError(f"{where}() got unknown keyword(s) {unknown}; accepted: {accepted}")
        mine = {k: v for k, v in kwargs.items() if k in cls.names()}
        return cls(**mine), {k: v for k, v in kwargs.items() if k in others}


def role_paths(paths) -> dict[str, Path]:
    """``paths``: an exported folder, or a dict encoder -> model.onnx; returns encoder -> model.onnx."""
    if isinstance(paths, (str, Path)):
        folder = Path(paths)
        manifest = Manifest.load(folder)
        missing = [encoder for encoder in ROLES if encoder not in manifest.encoders]
        if missing:
            raise InputError(
                f"{folder} holds only {', '.join(manifest.encoders)}; pass both encoders as "
                f"{{'image-encoder': path, 'text-encoder': path}}"
            )
        return {encoder: folder / manifest.encoders[encoder] for encoder in ROLES}
    unknown = sorted(set(paths) - set(ROLES))
    missing = sorted(set(ROLES) - set(paths))
    if unknown or missing:
        raise InputError(
            f"encoder roles {sorted(paths)} are wrong (unknown: {unknown or 'none'}, missing: {missing or 'none'}); "
            f"valid roles: {', '.join(ROLES)}"
        )
    return {encoder: Path(p) for encoder, p in paths.items()}


def manifest_folder(paths, manifest) -> Path:
    """Where manifest.json and the tokenizer/processor files live."""
    if isinstance(manifest, (str, Path)):
        return Path(manifest) if Path(manifest).is_dir() else Path(manifest).parent
    if isinstance(paths, (str, Path)):
        return Path(paths)
    resolved = role_paths(paths)
    if manifest is not None:
        return next(iter(resolved.values())).parent.parent
    return _common_folder(resolved)


def _common_folder(paths: dict[str, Path]) -> Path:
    """The export folder that holds both encoders (``OUT/<encoder>/model.onnx``), where manifest.json lives."""
    for path in paths.values():
        for parent in (path.parent, path.parent.parent):
            if (parent / "manifest.json").is_file():
                return parent
    raise InputError(
        f"no manifest.json found beside {', '.join(str(p) for p in paths.values())}; pass manifest= "
        "(the manifest.json of the export the encoders came from)"
    )
