"""``ZeroShotModel.save_pretrained``: the loaded model as one exported folder (export's layout), atomically."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from clipforge._io import atomic_dir, check_output, file_hashes
from clipforge.runtime import optimized
from clipforge.specs import ROLES

SKIP = {"manifest.json", "model.onnx", "model.onnx.data"}


def save_folder(model, out: Path, force: bool = False) -> Path:
    """Encoders to ``OUT/<encoder>/model.onnx`` (with their external-data file), the tokenizer/processor files and
    ``build.json`` of the manifest's folder, and a manifest whose ``encoders`` and ``files`` describe the copy."""
    check_output(out, force)
    with atomic_dir(out, force) as tmp:
        for encoder in ROLES:
            src = Path(model.paths[encoder])
            (tmp / encoder).mkdir()
            shutil.copy2(src, tmp / encoder / "model.onnx")
            data = src.with_name(src.name + ".data")
            if data.is_file():
                shutil.copy2(data, tmp / encoder / data.name)
            saved = optimized.paths(src) if src.name == "model.onnx" else ()  # the build's optimised graph + key
            for extra in (p for p in saved if p.is_file()):
                shutil.copy2(extra, tmp / encoder / extra.name)
        for item in model.folder.iterdir():
            if item.is_file() and item.name not in SKIP and optimized.SUFFIX not in item.name:
                shutil.copy2(item, tmp / item.name)
        manifest = dataclasses.replace(model.manifest, encoders={r: f"{r}/model.onnx" for r in ROLES})
        manifest.files = file_hashes(tmp)
        (tmp / "manifest.json").write_text(manifest.to_json())
    return out
