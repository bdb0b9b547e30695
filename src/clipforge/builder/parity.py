"""Compare a built encoder with the fp32 export on real inputs: cosine, zero-shot top-1 agreement, accuracy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipforge.builder.calibration import CalibrationSet
from clipforge.export.validate import cosine_rows
from clipforge.runtime.encoders import Encoder, fit_length
from clipforge.runtime.model import ZeroShotModel
from clipforge.runtime.patches import Patches
from clipforge.runtime.scoring import l2_normalize
from clipforge.runtime.sessions import SessionConfig, make_session
from clipforge.specs import IMAGE_ROLE, TEXT_ROLE

OTHER = {IMAGE_ROLE: TEXT_ROLE, TEXT_ROLE: IMAGE_ROLE}


@dataclass
class Probe:
    """Inputs and fp32 reference embeddings for both encoders."""

    pixels: np.ndarray | Patches
    ids: np.ndarray
    mask: np.ndarray
    reference: dict[str, np.ndarray]
    calibration: CalibrationSet


def _probe_pixels(fp32: ZeroShotModel, images: list) -> np.ndarray | Patches:
    """The calibration images pre-processed; a NaFlex model's at its budget and at a half and a quarter of it
    (one batch, padded to the budget): static int8 ranges taken at one budget alone drift at smaller ones (cosine
    0.87 at 16 patches for ranges taken at 64, on the tiny test model), and parity is then measured at all three."""
    spec = fp32.manifest.image
    if not spec.naflex:
        return fp32.preprocess(images)
    budgets = sorted({max(1, spec.max_patches // 4), max(1, spec.max_patches // 2), spec.max_patches})
    return Patches.concat([fp32.preprocess(images, max_patches=budget) for budget in budgets])


def make_probe(fp32: ZeroShotModel, calib: CalibrationSet) -> Probe:
    pixels = _probe_pixels(fp32, calib.images)
    enc = fp32.tokenizer.encode(calib.prompts)
    ids, mask = enc.input_ids, enc.attention_mask
    if fp32.text_encoder.static_length:
        ids, mask = fit_length(ids, mask, fp32.text_encoder.static_length, fp32.manifest.text)
    reference = {
        IMAGE_ROLE: l2_normalize(fp32.encode_pixels(pixels)),
        TEXT_ROLE: l2_normalize(fp32.encode_tokens(ids, mask)),
    }
    return Probe(pixels, ids, mask, reference, calib)


def feeds(probe: Probe, encoder: str, runner: Encoder, batch: int = 8) -> list[dict]:
    """Batches for calibration, shaped for ``runner`` (fixed batch for static graphs)."""
    size = runner.static_batch or batch
    if encoder == IMAGE_ROLE:  # a NaFlex probe is a Patches batch: its three inputs
        data = probe.pixels.feed() if isinstance(probe.pixels, Patches) else {"pixel_values": probe.pixels}
    else:
        data = {"input_ids": probe.ids, "attention_mask": probe.mask}
    data = {k: v for k, v in data.items() if k in runner.input_names}
    n = len(next(iter(data.values())))
    out = []
    for i in range(0, n - size + 1 if runner.static_batch else n, size):
        out.append({k: v[i : i + size] for k, v in data.items()})
    return out or [{k: np.repeat(v[:1], size, axis=0) for k, v in data.items()}]


def embed(
    model_path: Path, encoder: str, probe: Probe, fp32: ZeroShotModel, session: SessionConfig = SessionConfig()
) -> np.ndarray:
    """Embeddings of the probe through ``model_path`` (on the backend/precision ``session`` says)."""
    runner = Encoder(make_session(model_path, session), encoder)
    probe_model = ZeroShotModel(
        fp32.manifest, {encoder: runner, OTHER[encoder]: _encoder(fp32, OTHER[encoder])}, fp32.folder
    )
    if encoder == IMAGE_ROLE:
        return l2_normalize(probe_model.encode_pixels(probe.pixels))
    return l2_normalize(probe_model.encode_tokens(probe.ids, probe.mask))


def _encoder(model: ZeroShotModel, encoder: str) -> Encoder:
    return model.image_encoder if encoder == IMAGE_ROLE else model.text_encoder


def parity(
    model_path: Path, encoder: str, probe: Probe, fp32: ZeroShotModel, session: SessionConfig = SessionConfig()
) -> dict:
    emb = embed(model_path, encoder, probe, fp32, session)
    ref, other = probe.reference[encoder], probe.reference[OTHER[encoder]]
    cos = cosine_rows(emb, ref)
    agree = float(np.mean((emb @ other.T).argmax(1) == (ref @ other.T).argmax(1)))
    return {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()), "top1_agreement": agree}


def zero_shot_top1(image_emb: np.ndarray, text_emb: np.ndarray, labels: list[int]) -> float:
    """Top-1 accuracy (percent) of images against one prompt per class."""
    return 100.0 * float(np.mean((image_emb @ text_emb.T).argmax(1) == np.asarray(labels)))
