"""Zero-shot retrieval on image-caption pairs: image->text and text->image recall@1/5/10."""

from __future__ import annotations

import numpy as np

from clipforge.evaluation.classify_eval import embed_dataset
from clipforge.evaluation.metrics import recall_at_k


def evaluate_retrieval(model, images: list, captions: list[str], batch_size: int = 32, show: bool = True) -> dict:
    """Pair i is (images[i], captions[i]); identical images share their captions as correct answers."""
    image_emb, kept, failures = embed_dataset(model, images, batch_size, show)
    captions = [captions[i] for i in kept]
    text_emb = model.embed_texts(captions)
    sim = image_emb @ text_emb.T
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(captions):
        groups.setdefault(c, []).append(i)
    i2t = recall_at_k(sim, [groups[c] for c in captions])
    t2i = recall_at_k(sim.T, [groups[c] for c in captions])
    return {"image_to_text": i2t, "text_to_image": t2i, "pairs": len(kept), "unreadable": len(failures)}
