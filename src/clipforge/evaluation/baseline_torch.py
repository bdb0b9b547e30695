"""The original PyTorch model (transformers) on the same samples and prompts, for side-by-side reports.

The only evaluation module that imports torch/transformers, and only when ``--baseline torch`` asks for it. It
uses the checkpoint's own HF tokenizer and image processor (not clipforge's pre-processing), so a difference
between the two columns of a report measures the whole ONNX path, pre-processing included.
"""

from __future__ import annotations

import time

import numpy as np

from clipforge.data.labelled import EvalData
from clipforge.evaluation.classify_eval import check_some_read, finish, prepared_batches
from clipforge.export.cases import tokenize
from clipforge.export.checkpoint import load_checkpoint, with_kept_case, with_text_mask
from clipforge.runtime.scoring import l2_normalize


class TorchZeroShot:
    """A transformers CLIP/SigLIP checkpoint with the zero-shot steps of the HF pipeline, batched."""

    def __init__(self, model_id: str, text_attention_mask: bool = False, keep_case: bool = False):
        """``text_attention_mask``: run SigLIP's text encoder with the padding mask, as the export being compared
        does when it was exported with that option (its manifest's ``text.uses_attention_mask``). ``keep_case``:
        feed texts as they are where the checkpoint's default lower-cases them (SigLIP 2), as the export being
        compared does when it was exported with that option (its manifest's ``text.lowercase_texts`` false)."""

        self.ckpt = load_checkpoint(model_id)
        if text_attention_mask:
            self.ckpt = with_text_mask(self.ckpt)
        if keep_case and self.ckpt.text.lowercase_texts:
            self.ckpt = with_kept_case(self.ckpt)
        self.ckpt.model.eval()

    def embed_texts(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        import torch

        chunks = []
        for i in range(0, len(texts), batch_size):
            enc = tokenize(self.ckpt.tokenizer, texts[i : i + batch_size], self.ckpt.text)
            feed = {"input_ids": torch.from_numpy(enc["input_ids"])}
            if self.ckpt.text.uses_attention_mask:
                feed["attention_mask"] = torch.from_numpy(enc["attention_mask"])
            with torch.inference_mode():
                chunks.append(_features(self.ckpt.model.get_text_features(**feed)))
        return l2_normalize(np.concatenate(chunks))

    def label_embeddings(self, class_names: list[str], templates: list[str]) -> np.ndarray:
        """Per class, the mean of the normalised prompt embeddings, normalised (OpenAI's ensembling)."""
        emb = self.embed_texts([t.format(c) for c in class_names for t in templates])
        return l2_normalize(emb.reshape(len(class_names), len(templates), -1).mean(axis=1))

    def pixel_values(self, images: list):
        """The processor's ``pixel_values``; for SigLIP 2 NaFlex, with the patches' mask and grid shapes."""
        out = self.ckpt.processor(images=images, return_tensors="pt")
        if self.ckpt.image.naflex:
            return {name: out[name] for name in ("pixel_values", "pixel_attention_mask", "spatial_shapes")}
        return out["pixel_values"]

    def encode_pixels(self, pixels) -> np.ndarray:
        import torch

        inputs = pixels if isinstance(pixels, dict) else {"pixel_values": pixels}
        with torch.inference_mode():
            return l2_normalize(_features(self.ckpt.model.get_image_features(**inputs)))

    def logits(self, image: np.ndarray, text: np.ndarray) -> np.ndarray:
        scale, bias = self.ckpt.family.logit_params(self.ckpt.model)
        return scale * image @ text.T + (bias or 0.0)


def _features(output) -> np.ndarray:
    """transformers 5 returns a model output whose ``pooler_output`` is the embedding; older ones a tensor."""
    tensor = getattr(output, "pooler_output", output)
    return tensor.float().numpy()


def evaluate_torch(
    model_id: str,
    data: EvalData,
    templates: list[str],
    batch_size: int = 32,
    show: bool = True,
    text_attention_mask: bool = False,
    keep_case: bool = False,
) -> dict:
    """The same metrics as ``evaluate_classification``, computed with the PyTorch model."""
    start = time.perf_counter()
    model = TorchZeroShot(model_id, text_attention_mask, keep_case)
    text = model.label_embeddings(data.class_names, templates)
    chunks, kept, failures = [], [], []
    for batch in prepared_batches(data.images, batch_size, model.pixel_values, show, what="images (PyTorch)"):
        failures += batch.failures
        if batch.indices:
            chunks.append(model.encode_pixels(batch.pixels))
            kept += batch.indices
    check_some_read(data.images, failures, kept)
    image = np.concatenate(chunks) if chunks else np.zeros((0, text.shape[1]), np.float32)
    return finish(model.logits(image, text), data, kept, failures, start)
