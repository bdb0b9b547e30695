"""Zero-shot retrieval on image-caption data: image->text and text->image recall@1/5/10.

image->text: for each image, is any of its captions among the k most similar captions; text->image: for each
caption, is its image among the k most similar images. Unreadable images are counted and dropped together with
their captions."""

from __future__ import annotations

import time

from clipforge.evaluation.classify_eval import check_some_read, embed_dataset
from clipforge.evaluation.retrieval_data import RetrievalData
from clipforge.evaluation.scores import recall_at_k


def evaluate_retrieval(model, data: RetrievalData, batch_size: int = 32, show: bool = True) -> dict:
    start = time.perf_counter()
    image_emb, kept, failures = embed_dataset(model, data.images, batch_size, show)
    check_some_read(data.images, failures, kept)
    position = {row: i for i, row in enumerate(kept)}
    pairs = [(text, position[row]) for text, row in zip(data.captions, data.caption_image) if row in position]
    text_emb = model.embed_texts([text for text, _ in pairs])
    owner = [image for _, image in pairs]
    similarity = image_emb @ text_emb.T
    captions_of: list[set[int]] = [set() for _ in kept]
    for t, image in enumerate(owner):
        captions_of[image].add(t)
    return {
        "image_to_text": recall_at_k(similarity, captions_of),
        "text_to_image": recall_at_k(similarity.T, [{image} for image in owner]),
        "images": len(kept),
        "captions": len(pairs),
        "samples": len(data.images),
        "unreadable": len(failures),
        "failures": failures,
        "seconds": time.perf_counter() - start,
    }
