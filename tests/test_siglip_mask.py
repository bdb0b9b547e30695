"""SigLIP and the text attention mask: transformers 5's SiglipTokenizer returns a mask that
SiglipModel applies, SigLIP was trained without one. The default export follows the trained model and warns when
given a padding mask; ``--text-attention-mask`` exports the masked variant, validated against the masked model."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from clipforge.errors import InputError, TextMaskWarning
from clipforge.export import ExportOptions
from clipforge.models import ZeroShotModel
from clipforge.specs import Manifest
from clipforge.testing.siglip_mask import LABELS, hf_pipeline, sample_images, score_diff, text_cosines

PARITY = 1e-4  # the bound for matching references
# The masked and unmasked PyTorch models must differ by far more than PARITY on short prompts for the warning to
# matter; measured on the tiny fixture: score diff ~0.08, text cosine down to ~-0.3 (benchmarks/siglip_mask.py).
CLEARLY_DIFFERENT = 1e-2


@pytest.fixture(scope="module")
def masked(tiny_siglip, tmp_path_factory):
    """The tiny SigLIP exported through the CLI with the opt-in flag."""
    from clipforge.cli.main import main

    out = tmp_path_factory.mktemp("masked") / "siglip"
    assert main(["export", str(tiny_siglip), "-o", str(out), "--text-attention-mask", "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def torch_model(tiny_siglip):
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(tiny_siglip)).eval()


@pytest.fixture(scope="module")
def torch_pipes(torch_model, tiny_siglip):
    """PyTorch pipelines fed by a tokenizer without (False) and with (True) the attention mask."""
    return {mask: hf_pipeline(torch_model, tiny_siglip, mask) for mask in (False, True)}


def _onnx_pipe(folder, checkpoint, mask):
    return hf_pipeline(ZeroShotModel.from_onnx(folder), checkpoint, mask)


def test_default_export_matches_unmasked_pytorch(exported_tiny, tiny_siglip, torch_pipes, recwarn):
    pipe = _onnx_pipe(exported_tiny["siglip"], tiny_siglip, mask=False)
    assert score_diff(torch_pipes[False], pipe, sample_images(2)) <= PARITY
    assert not [w for w in recwarn if issubclass(w.category, TextMaskWarning)]


def test_default_export_warns_once_and_differs_from_masked_pytorch(
    exported_tiny, tiny_siglip, torch_pipes, torch_model
):
    model = ZeroShotModel.from_onnx(exported_tiny["siglip"])
    pipe = hf_pipeline(model, tiny_siglip, mask=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        diff = score_diff(torch_pipes[True], pipe, sample_images(2))
        cosine = text_cosines(torch_model, model, tiny_siglip, mask=True).min()
    mask_warnings = [w for w in caught if issubclass(w.category, TextMaskWarning)]
    assert len(mask_warnings) == 1, "warn once per model, not per call"
    message = str(mask_warnings[0].message)
    assert "trained" in message and "transformers 5" in message and "--text-attention-mask" in message
    assert "\n" not in message
    assert diff > CLEARLY_DIFFERENT and cosine < 0.9, (diff, cosine)


def test_no_warning_without_padding_or_for_other_families(exported_tiny):
    siglip, clip = ZeroShotModel.from_onnx(exported_tiny["siglip"]), ZeroShotModel.from_onnx(exported_tiny["clip"])
    ids = siglip.tokenizer.encode(["cat"]).input_ids
    with warnings.catch_warnings():
        warnings.simplefilter("error", TextMaskWarning)
        siglip(input_ids=ids, attention_mask=np.ones_like(ids))  # a mask without padding changes nothing
        siglip(input_ids=ids)
        clip(**dict(zip(("input_ids", "attention_mask"), clip.tokenizer.encode(["cat", "a longer prompt"]))))


def test_masked_export_matches_masked_pytorch(masked, tiny_siglip, torch_pipes, torch_model, recwarn):
    manifest = Manifest.load(masked)
    assert manifest.family == "siglip" and manifest.text.uses_attention_mask
    assert [c["input_shape"][0] for c in manifest.validation["text-encoder"]["cases"]] == [1, 3, 4]
    assert manifest.validation["text-encoder"]["max_abs_diff"] <= PARITY
    model = ZeroShotModel.from_onnx(masked)
    assert model.text_encoder.input_names == ["input_ids", "attention_mask"]
    assert score_diff(torch_pipes[True], hf_pipeline(model, tiny_siglip, True), sample_images(2)) <= PARITY
    assert text_cosines(torch_model, model, tiny_siglip, mask=True).min() > 0.9999
    # no mask given (transformers 4 tokenizer): all ones, i.e. the unmasked model, as SiglipModel does
    assert score_diff(torch_pipes[False], hf_pipeline(model, tiny_siglip, False), sample_images(1)) <= PARITY
    assert not [w for w in recwarn if issubclass(w.category, TextMaskWarning)]


def test_masked_export_fast_path_applies_the_runtime_tokenizer_mask(masked, tiny_siglip, torch_model):
    """``embed_texts`` (runtime/text.py's ids and mask) equals masked PyTorch on HF's tokenization."""
    import torch

    from clipforge.testing.siglip_mask import TEMPLATE, hf_tokenizer

    texts = [TEMPLATE.format(label) for label in LABELS]
    inputs = hf_tokenizer(tiny_siglip, mask=True)(texts, padding="max_length", return_tensors="pt")
    with torch.no_grad():
        want = torch.nn.functional.normalize(torch_model.get_text_features(**inputs).pooler_output).numpy()
    np.testing.assert_allclose(ZeroShotModel.from_onnx(masked).embed_texts(texts), want, atol=PARITY)


def test_manifest_round_trips_the_option_and_old_manifests_load(masked, exported_tiny, tmp_path):
    data = json.loads((masked / "manifest.json").read_text())
    assert data["text"]["uses_attention_mask"] is True
    assert Manifest.from_dict(json.loads(Manifest.load(masked).to_json())) == Manifest.load(masked)
    old = json.loads((exported_tiny["siglip"] / "manifest.json").read_text())
    old.pop("schema_version")  # schema v1: no version, no towers, strip_punctuation as the tokenizer switch
    old.pop("towers")
    old["text"] = {k: v for k, v in old["text"].items() if k != "kind"} | {"strip_punctuation": True}
    loaded = Manifest.from_dict(old)
    assert loaded.text.kind == "sentencepiece" and loaded.text.uses_attention_mask is False


def test_resolver_keys_and_checks_the_option(masked, exported_tiny, tiny_siglip):
    from clipforge.folders import cache_key, check_folder_matches
    from clipforge.models import model_folder

    assert cache_key(str(tiny_siglip), None, {"text_attention_mask": True}) != cache_key(str(tiny_siglip), None, {})
    model = ZeroShotModel.from_pretrained(tiny_siglip, text_attention_mask=True, show_progress=False)
    assert model.manifest.text.uses_attention_mask
    assert model.folder.name == cache_key(str(tiny_siglip), None, {"text_attention_mask": True})
    assert model_folder(masked, options={"text_attention_mask": True}) == masked
    with pytest.raises(InputError, match="text_attention_mask"):
        check_folder_matches(exported_tiny["siglip"], {"text_attention_mask": True})
    with pytest.raises(InputError, match="text_attention_mask"):
        check_folder_matches(masked, {"text_attention_mask": False})
    check_folder_matches(exported_tiny["clip"], {"text_attention_mask": True})  # CLIP always takes its mask


def test_option_errors():
    from clipforge.registry import get_family

    with pytest.raises(InputError, match="text_attention_mask"):
        ExportOptions(text_attention_mask="yes")
    with pytest.raises(InputError, match="SigLIP"):
        get_family("openclip").with_text_mask()
    assert get_family("clip").with_text_mask() is get_family("clip")


def test_pipeline_graph_of_masked_export_emits_the_mask(masked, tmp_path):
    """The single-file text graph feeds its tokenizer's attention_mask to the masked encoder (validated inside
    export_pipeline against ZeroShotModel.embed_texts)."""
    import onnx

    from clipforge.pipeline import export_pipeline
    from clipforge.pipeline._graph import extensions_session

    result = export_pipeline(masked, tmp_path / "p", "multimodal_siglip", show_progress=False)
    text_graph = onnx.load(str(result.paths["text"]))
    assert "tok/attention_mask" in {n.name for n in text_graph.graph.node}
    model = ZeroShotModel.from_onnx(masked)
    got = extensions_session(text_graph).run(None, {"text": np.array(LABELS, dtype=object)})[0]
    np.testing.assert_allclose(got, model.embed_texts(LABELS), atol=PARITY)


def test_build_keeps_the_mask(masked, tiny_siglip, tmp_path):
    from clipforge.builder import build_composite

    result = build_composite(
        tiny_siglip, tmp_path / "b", quantize="int8-dynamic", text_attention_mask=True, show_progress=False
    )
    model = ZeroShotModel.from_onnx(result.path)
    assert model.manifest.text.uses_attention_mask
    assert model.text_encoder.input_names == ["input_ids", "attention_mask"]
    text = result.report["roles"]["text-encoder"]["stages"][-1]["parity"]
    assert text["min_cosine"] > 0.99, text


def test_eval_torch_baseline_follows_the_export(masked, tiny_siglip):
    """``clipforge eval --baseline torch`` on a masked export compares with the masked PyTorch text tower."""
    from clipforge.evaluation.baseline_torch import TorchZeroShot

    texts = [f"a photo of {label}" for label in LABELS]
    want = ZeroShotModel.from_onnx(masked).embed_texts(texts)
    np.testing.assert_allclose(
        TorchZeroShot(str(tiny_siglip), text_attention_mask=True).embed_texts(texts), want, atol=PARITY
    )
    unmasked = TorchZeroShot(str(tiny_siglip)).embed_texts(texts)  # the default: the trained, unmasked model
    assert float((unmasked * want).sum(axis=1).min()) < 0.9
