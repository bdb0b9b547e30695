"""Find the encoders and manifest of an exported folder; export into the cache on first use."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from clipforge.errors import InputError
from clipforge.specs import ROLES, Manifest


def cache_root() -> Path:
    return Path(os.environ.get("CLIPFORGE_CACHE", Path.home() / ".cache" / "clipforge"))


def role_paths(paths) -> dict[str, Path]:
    """``paths``: an exported folder, or a dict role -> model.onnx; returns role -> model.onnx."""
    if isinstance(paths, (str, Path)):
        folder = Path(paths)
        manifest = Manifest.load(folder)
        missing = [role for role in ROLES if role not in manifest.encoders]
        if missing:
            raise InputError(f"{folder} holds only {', '.join(manifest.encoders)}; pass both encoders as "
                             f"{{'image-encoder': path, 'text-encoder': path}}")
        return {role: folder / manifest.encoders[role] for role in ROLES}
    unknown = sorted(set(paths) - set(ROLES))
    missing = sorted(set(ROLES) - set(paths))
    if unknown or missing:
        raise InputError(
            f"encoder roles {sorted(paths)} are wrong (unknown: {unknown or 'none'}, missing: {missing or 'none'}); "
            f"valid roles: {', '.join(ROLES)}"
        )
    return {role: Path(p) for role, p in paths.items()}


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
    """The export folder that holds both encoders (``OUT/<role>/model.onnx``), where manifest.json lives."""
    for path in paths.values():
        for parent in (path.parent, path.parent.parent):
            if (parent / "manifest.json").is_file():
                return parent
    raise InputError(
        f"no manifest.json found beside {', '.join(str(p) for p in paths.values())}; pass manifest= "
        "(the manifest.json of the export the encoders came from)"
    )


def is_exported_folder(model) -> bool:
    return isinstance(model, (str, Path)) and (Path(model) / "manifest.json").is_file()


def cache_key(model: str, revision: str | None, options: dict) -> str:
    """Key by source, revision, options, clipforge version and, for local folders, the weights' stat."""
    from clipforge import __version__

    parts = {"model": str(model), "revision": revision, "options": options, "version": __version__}
    folder = Path(model)
    if folder.is_dir():
        parts["files"] = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in folder.iterdir()
                                if p.is_file())
        parts["model"] = str(folder.resolve())
        model = folder.resolve().name
    elif folder.is_file():  # an open_clip weights file
        parts["files"] = [(folder.name, folder.stat().st_size, int(folder.stat().st_mtime))]
        parts["model"] = str(folder.resolve())
        model = folder.name
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
    name = str(model).rstrip("/").replace("/", "--").replace("\\", "--")[-60:]
    return f"{name}-{digest}"
