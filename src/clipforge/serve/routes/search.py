"""``POST /v1/search`` (with ``--db``): a text and/or image query -> ids, paths and scores; ``GET
/v1/images/{id}`` and ``/v1/images/{id}/thumbnail`` serve only files the index holds (ids, never paths)."""

from __future__ import annotations

import functools
import math
import os

import numpy as np
from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, Response

from clipforge.runtime.scoring import l2_normalize
from clipforge.serve.decoding import b64_bytes, decode_thumbnail
from clipforge.serve.deps import ready_service, require_json, require_key
from clipforge.serve.errors import ApiError
from clipforge.serve.routes.common import check_text, first_error
from clipforge.serve.schemas import SearchHit, SearchRequest, SearchResponse
from clipforge.serve.service import Service

router = APIRouter(tags=["search"], dependencies=[Depends(require_key)])


def _index(svc: Service):
    if svc.index is None:
        raise ApiError(404, "path", "this server has no index; start it with --db to search")
    return svc.index


@router.post("/v1/search", response_model=SearchResponse, dependencies=[Depends(require_json)])
async def search(body: SearchRequest, svc: Service = Depends(ready_service)) -> SearchResponse:
    index = _index(svc)
    if body.text is None and body.image is None:
        raise ApiError(422, "text", "send a text query, an image query (base64) or both")
    if body.k > svc.settings.max_k:
        raise ApiError(422, "k", f"k is {str(body.k)[:30]}; the limit is {svc.settings.max_k}")
    if body.min_score is not None and not math.isfinite(body.min_score):
        raise ApiError(422, "min_score", f"min_score is {body.min_score}; send a finite number (cosine, -1 to 1)")
    for name in ("text", "negative"):
        if getattr(body, name) is not None:
            check_text(getattr(body, name), name, svc.settings)
    image = b64_bytes(body.image, "image") if body.image is not None else None
    hits = await svc.within_timeout(_run_search(svc, index, body, image))
    return SearchResponse(model=svc.model_name, results=[
        SearchHit(id=h.id, path=str(h.path), score=float(h.score), image_url=f"/v1/images/{h.id}",
                  thumbnail_url=f"/v1/images/{h.id}/thumbnail") for h in hits])


async def _run_search(svc: Service, index, body: SearchRequest, image: bytes | None):
    """Embed the query's parts through the batchers, combine them as ``Index.query_vector`` does (mean of the
    positives minus the mean of the negatives, normalised), and search the back-end by vector."""
    parts = [svc.embed_text(body.text, "text")] if body.text is not None else []
    parts += [svc.embed_image(image, "image")] if image is not None else []
    parts += [svc.embed_text(body.negative, "negative")] if body.negative is not None else []
    rows = await first_error(parts)
    positives = rows[:len(rows) - (body.negative is not None)]
    query = np.mean(positives, axis=0)
    if body.negative is not None:
        query = query - rows[-1]
    hits = await svc.in_model_thread(index.backend.search, l2_normalize(query.astype(np.float32)), body.k)
    return [h for h in hits if body.min_score is None or h.score >= body.min_score]


async def _indexed_file(svc: Service, image_id: int) -> str:
    path = await svc.in_decode_thread(_index(svc).path_of, image_id)
    if path is None:
        raise ApiError(404, "id", f"no image with id {image_id} in the index")
    if not os.path.isfile(path):
        raise ApiError(404, "id", f"image {image_id} is indexed but its file is gone; re-index the folder")
    return path


@router.get("/v1/images/{image_id}", response_class=FileResponse)
async def image(image_id: int, svc: Service = Depends(ready_service)) -> FileResponse:
    return FileResponse(await _indexed_file(svc, image_id), headers={"Cache-Control": "private, max-age=3600"})


@router.get("/v1/images/{image_id}/thumbnail")
async def thumbnail(image_id: int, svc: Service = Depends(ready_service)) -> Response:
    path = await _indexed_file(svc, image_id)
    stat = os.stat(path)
    try:
        data = await svc.in_decode_thread(_thumbnail, path, stat.st_mtime_ns, stat.st_size, svc.settings.thumbnail_size)
    except Exception as exc:  # noqa: BLE001 - an indexed file that no longer decodes
        raise ApiError(404, "id", f"image {image_id} cannot be decoded any more ({exc})") from exc
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@functools.lru_cache(maxsize=512)
def _thumbnail(path: str, mtime_ns: int, size_bytes: int, size: int) -> bytes:
    return decode_thumbnail(path, size)
