"""Manifest schema: v1 manifests (strip_punctuation as the tokenizer switch, no towers, dead text fields) load
and run like the current ones; a newer schema is refused by name."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from clipforge.errors import BuildError, InputError
from clipforge.models import model_folder
from clipforge.runtime.model import ZeroShotModel
from clipforge.specs import MANIFEST_SCHEMA_VERSION, Manifest


def _as_v1(data: dict) -> dict:
    """What clipforge wrote before schema_version 2."""
    old = {k: v for k, v in data.items() if k not in ("schema_version", "towers")}
    text = {k: v for k, v in data["text"].items() if k != "kind"}
    text.update(strip_punctuation=data["text"]["kind"] == "sentencepiece", bos_id=None, pooling="eos")
    return dict(old, text=text)


def test_v1_manifest_loads_and_embeds_like_v2(tiny_checkpoint, tmp_path):
    family, checkpoint = tiny_checkpoint
    folder = model_folder(checkpoint, show_progress=False)
    v1 = tmp_path / "v1"
    shutil.copytree(folder, v1)
    data = json.loads((folder / "manifest.json").read_text())
    (v1 / "manifest.json").write_text(json.dumps(_as_v1(data)))
    manifest = Manifest.load(v1)
    assert manifest.schema_version == MANIFEST_SCHEMA_VERSION and manifest.towers == {}
    assert manifest.text.kind == ("sentencepiece" if family == "siglip" else "bpe")
    texts = ["A Photo, of THE red circle!", "dog"]
    np.testing.assert_array_equal(
        ZeroShotModel.from_onnx(v1).embed_texts(texts), ZeroShotModel.from_onnx(folder).embed_texts(texts)
    )
    from clipforge.builder.roles import encoder_shape

    with pytest.raises(BuildError, match="re-export"):
        encoder_shape(manifest, "image-encoder")


def test_newer_schema_and_bad_kind_are_refused(tiny_clip, tmp_path):
    folder = model_folder(tiny_clip, show_progress=False)
    data = json.loads((folder / "manifest.json").read_text())
    for change, message in (
        (dict(schema_version=MANIFEST_SCHEMA_VERSION + 1), "newer than this clipforge"),
        (dict(text=dict(data["text"], kind="wordpiece")), "text.kind 'wordpiece'"),
    ):
        (tmp_path / "manifest.json").write_text(json.dumps(dict(data, **change)))
        with pytest.raises(InputError, match=message):
            Manifest.load(tmp_path)


def test_current_manifest_has_no_dead_fields(tiny_clip):
    data = json.loads((model_folder(tiny_clip, show_progress=False) / "manifest.json").read_text())
    assert not {"bos_id", "pooling", "strip_punctuation"} & set(data["text"])
    assert data["towers"]["image-encoder"] == {"arch": "transformer", "num_heads": 4, "hidden_size": 32}
