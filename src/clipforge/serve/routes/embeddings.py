"""``POST /v1/embeddings``: texts or images -> L2-normalised embeddings, one batcher item each, in OpenAI's
request and response shapes (``encoding_format`` float or base64, ``dimensions``, ``user``, token ``usage``)."""

from __future__ import annotations

import base64

import numpy as np
from fastapi import APIRouter, Depends, Request

from clipforge.serve.decoding import b64_bytes
from clipforge.serve.deps import ready_service, require_json, require_key
from clipforge.serve.errors import ApiError
from clipforge.serve.routes.common import check_count, check_texts, embed_images, embed_texts
from clipforge.serve.schemas import Embedding, EmbeddingsRequest, EmbeddingsResponse, Usage
from clipforge.serve.service import Service

router = APIRouter(tags=["embeddings"], dependencies=[Depends(require_key)])


@router.post("/v1/embeddings", response_model=EmbeddingsResponse, dependencies=[Depends(require_json)])
async def embeddings(
    body: EmbeddingsRequest, request: Request, svc: Service = Depends(ready_service)
) -> EmbeddingsResponse:
    items = _items(body, svc)
    if body.modality == "text":
        check_texts(items, "input", svc.settings, svc.settings.max_texts)
        tokens = sum(await svc.in_decode_thread(svc.token_counts, items))
        rows = await svc.within_timeout(embed_texts(svc, items, "input"), request)
    else:
        check_count(items, "input", svc.settings.max_images)
        blobs = [b64_bytes(v, f"input[{i}]") for i, v in enumerate(items)]
        tokens = 0
        rows = await svc.within_timeout(embed_images(svc, blobs, "input", body.max_patches), request)
    data = [Embedding(embedding=_encode(row, body.encoding_format), index=i) for i, row in enumerate(rows)]
    return EmbeddingsResponse(data=data, model=svc.model_name, usage=Usage(prompt_tokens=tokens, total_tokens=tokens))


def _items(body: EmbeddingsRequest, svc: Service) -> list[str]:
    """``input`` as a list of strings; token ids and a ``dimensions`` other than the model's are refused."""
    width = svc.model.manifest.embed_dim
    if body.dimensions is not None and body.dimensions != width:
        raise ApiError(
            422,
            "dimensions",
            f"dimensions is {body.dimensions}, but this model's embeddings have {width}; leave it out or send {width}",
        )
    items = [body.input] if isinstance(body.input, str) else body.input
    if any(not isinstance(item, str) for item in items):
        raise ApiError(
            422,
            "input",
            "token-id arrays are not accepted: this server tokenizes itself; send "
            "texts as strings (or images as base64 with modality 'image')",
        )
    return items


def _encode(row: np.ndarray, encoding_format: str) -> list[float] | str:
    """float32 values as JSON numbers, or base64 of their little-endian bytes (what OpenAI clients decode)."""
    row = np.asarray(row, dtype="<f4")
    if encoding_format == "base64":
        return base64.b64encode(row.tobytes()).decode("ascii")
    return row.tolist()
