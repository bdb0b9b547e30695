"""The original PyTorch model (transformers) on the same samples and prompts. The only evaluation module that
imports torch; it is imported only for ``--baseline torch``."""

from __future__ import annotations

import time

import numpy as np

from clipforge.evaluation.classify_eval import load_batches
from clipforge.evaluation.datasets import EvalData
from clipforge.evaluation.metrics import classification_metrics


class TorchZeroShot:
    def __init__(self, model_id: str):
        from clipforge.export.checkpoint import load_checkpoint

        self.ckpt = load_checkpoint(model_id)

    def text_embeddings(self, class_names: list[str], templates: list[str]) -> np.ndarray:
        import torch

        from clipforge.export.cases import tokenize

        prompts = [t.format(c) for c in class_names for t in templates]
        enc = tokenize(self.ckpt.tokenizer, prompts, self.ckpt.text)
        feed = {"input_ids": torch.from_numpy(enc["input_ids"])}
        if self.ckpt.text.uses_attention_mask:
            feed["attention_mask"] = torch.from_numpy(enc["attention_mask"])
        with torch.no_grad():
            emb = self.ckpt.model.get_text_features(**feed).pooler_output.numpy()
        emb = _norm(emb).reshape(len(class_names), len(templates), -1).mean(axis=1)
        return _norm(emb)

    def image_embeddings(self, images: list) -> np.ndarray:
        import torch

        pixels = self.ckpt.processor(images=images, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            return _norm(self.ckpt.model.get_image_features(pixel_values=pixels).pooler_output.numpy())

    def logits(self, image: np.ndarray, text: np.ndarray) -> np.ndarray:
        scale, bias = self.ckpt.family.logit_params(self.ckpt.model)
        return scale * image @ text.T + (bias or 0.0)


def _norm(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def evaluate_torch(model_id: str, data: EvalData, templates: list[str], batch_size: int = 32,
                   show: bool = True) -> dict:
    start = time.perf_counter()
    model = TorchZeroShot(model_id)
    text = model.text_embeddings(data.class_names, templates)
    chunks, kept, failures = [], [], []
    for (idx, pil), failures in load_batches(data.images, batch_size, show):
        if idx:
            chunks.append(model.image_embeddings(pil))
            kept += idx
    scores = model.logits(np.concatenate(chunks), text) if chunks else np.zeros((0, len(text)))
    result = classification_metrics(scores, np.asarray(data.labels)[kept], data.class_names)
    result.update({"samples": len(data.images), "evaluated": len(kept), "unreadable": len(failures),
                   "seconds": time.perf_counter() - start})
    return result
