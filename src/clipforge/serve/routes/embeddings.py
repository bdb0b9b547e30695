"""``POST /v1/embeddings``: texts or images -> L2-normalised embeddings, one batcher item each."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from clipforge.serve.decoding import b64_bytes
from clipforge.serve.deps import ready_service, require_json, require_key
from clipforge.serve.routes.common import check_count, check_texts, embed_images, embed_texts
from clipforge.serve.schemas import Embedding, EmbeddingsRequest, EmbeddingsResponse
from clipforge.serve.service import Service

router = APIRouter(tags=["embeddings"], dependencies=[Depends(require_key)])


@router.post("/v1/embeddings", response_model=EmbeddingsResponse, dependencies=[Depends(require_json)])
async def embeddings(body: EmbeddingsRequest, svc: Service = Depends(ready_service)) -> EmbeddingsResponse:
    items = [body.input] if isinstance(body.input, str) else body.input
    if body.modality == "text":
        check_texts(items, "input", svc.settings, svc.settings.max_texts)
        rows = await svc.within_timeout(embed_texts(svc, items, "input"))
    else:
        check_count(items, "input", svc.settings.max_images)
        blobs = [b64_bytes(v, f"input[{i}]") for i, v in enumerate(items)]
        rows = await svc.within_timeout(embed_images(svc, blobs, "input"))
    data = [Embedding(embedding=row.tolist(), index=i) for i, row in enumerate(rows)]
    return EmbeddingsResponse(data=data, model=svc.model_name)
