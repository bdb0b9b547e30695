"""``POST /v1/search`` (with ``--db``): a text and/or image query -> ids, paths and scores; ``GET
/v1/images/{id}`` and ``/v1/images/{id}/thumbnail`` serve only files the index holds (ids, never paths)."""

from __future__ import annotations

import functools
import math
from pathlib import PurePath

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from clipforge._fspath import display
from clipforge.errors import InputError
from clipforge.index import FilterError, Hit, Index, SearchFilter
from clipforge.index.relevance import AUTO, no_match
from clipforge.serve.decoding import b64_bytes, decode_rendering, decode_thumbnail
from clipforge.serve.deps import ready_service, require_json, require_key
from clipforge.serve.errors import ApiError
from clipforge.serve.indexed_images import (
    IMAGE_HEADERS,
    ThumbnailCache,
    media_type,
    parse_id,
    read_indexed,
)
from clipforge.serve.routes.common import check_text, first_error
from clipforge.serve.schemas import SearchHit, SearchRequest, SearchResponse
from clipforge.serve.service import Service

router = APIRouter(tags=["search"], dependencies=[Depends(require_key)])


def _index(svc: Service) -> Index:
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
    if isinstance(body.min_score, float) and not math.isfinite(body.min_score):
        raise ApiError(422, "min_score", f"min_score is {body.min_score}; send a finite number (cosine, -1 to 1)")
    for name in ("text", "negative"):
        if getattr(body, name) is not None:
            check_text(getattr(body, name), name, svc.settings)
    filters = _filters(body)
    image = b64_bytes(body.image, "image") if body.image is not None else None
    hits, cutoff = await svc.within_timeout(_run_search(svc, index, body, image, filters))
    info = await svc.in_decode_thread(index.metadata, [h.id for h in hits])
    return SearchResponse(
        model=svc.model_name,
        cutoff=cutoff,
        reason=no_match(cutoff) if body.min_score == AUTO and cutoff is not None and not hits else None,
        results=[
            SearchHit(
                id=h.id,
                path=display(str(h.path)),
                score=float(h.score),
                image_url=f"/v1/images/{h.id}",
                thumbnail_url=f"/v1/images/{h.id}/thumbnail",
                taken=info[h.id].taken if h.id in info else None,
                taken_from=info[h.id].taken_from if h.id in info else None,
                camera=(info[h.id].camera or None) if h.id in info else None,
            )
            for h in hits
        ],
    )


def _filters(body: SearchRequest) -> SearchFilter | None:
    """The request's filter fields as a ``SearchFilter`` (None without any); 422 naming a bad field."""
    given = {name: getattr(body, name) for name in ("after", "before", "folder", "camera", "near")}
    if all(v is None for v in given.values()) and body.sort == "score":
        return None
    try:
        return SearchFilter.parse(**given, sort=body.sort)
    except FilterError as exc:
        raise ApiError(422, exc.field, str(exc)) from exc


async def _run_search(
    svc: Service, index: Index, body: SearchRequest, image: bytes | None, filters: SearchFilter | None
) -> tuple[list[Hit], float | None]:
    """Embed the query's parts through the batchers, then ``Index.query`` combines and searches them; with the
    score cutoff the query was judged by (``min_score``, or the one ``"auto"`` learnt)."""
    parts = [svc.embed_text(body.text, "text")] if body.text is not None else []
    parts += [svc.embed_image(image, "image")] if image is not None else []
    parts += [svc.embed_text(body.negative, "negative")] if body.negative is not None else []
    rows = await first_error(parts)
    text, rows = rows[: body.text is not None], rows[body.text is not None :]
    image_rows, negative = rows[: image is not None], rows[image is not None :]
    query = functools.partial(
        index.query, text=text, image=image_rows, negative=negative, k=body.k, min_score=body.min_score, filters=filters
    )
    hits = await svc.in_model_thread(query)
    return hits, await svc.in_model_thread(functools.partial(index.cutoff, body.min_score, image=image_rows))


async def _indexed_file(svc: Service, image_id: str) -> tuple[int, bytes, str, str]:
    """(id, bytes, sha256, suffix) of the indexed image ``image_id``, checked to be the file that was indexed."""
    number = parse_id(image_id)
    found = await svc.in_decode_thread(_index(svc).file_of, number)
    if found is None:
        raise ApiError(404, "id", f"no image with id {number} in the index")
    path, stored = found
    data = await svc.in_decode_thread(read_indexed, number, path, stored)
    return number, data, stored.sha256, PurePath(path).suffix


@router.get("/v1/images/{image_id}")
async def image(image_id: str, svc: Service = Depends(ready_service)) -> Response:
    number, data, _, suffix = await _indexed_file(svc, image_id)
    kind = media_type(number, data, suffix)
    if kind is None:  # HEIC/HEIF or camera RAW: a JPEG rendering
        try:
            data = await svc.in_decode_thread(
                decode_rendering, data, f"id {number}", svc.settings.image_policy(), suffix
            )
        except InputError as exc:
            raise ApiError(404, "id", f"image {number} cannot be decoded any more ({exc})") from exc
        kind = "image/jpeg"
    return Response(data, media_type=kind, headers=IMAGE_HEADERS)


@router.get("/v1/images/{image_id}/thumbnail")
async def thumbnail(image_id: str, svc: Service = Depends(ready_service)) -> Response:
    number, data, sha256, suffix = await _indexed_file(svc, image_id)
    key = (sha256, svc.settings.thumbnail_size)
    jpeg = _thumbnails.get(key)
    if jpeg is None:
        try:
            jpeg = await svc.in_decode_thread(
                decode_thumbnail, data, f"id {number}", svc.settings.thumbnail_size, svc.settings.image_policy(), suffix
            )
        except InputError as exc:  # an indexed file that no longer decodes under this server's policy
            raise ApiError(404, "id", f"image {number} cannot be decoded any more ({exc})") from exc
        _thumbnails.put(key, jpeg)
    return Response(jpeg, media_type="image/jpeg", headers=IMAGE_HEADERS)


_thumbnails = ThumbnailCache()
