"""``POST /v1/classify``: images (multipart upload or base64 JSON) + labels (+ templates) -> per image the HF
zero-shot pipeline's ``[{"label", "score"}]``, best first. Each label x template prompt is one text-batcher item
(labels x templates is capped by ``max_prompts``), and label embeddings are cached per templates + label."""

from __future__ import annotations

import json
import re

import numpy as np
from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from clipforge.errors import InputError
from clipforge.runtime import scoring
from clipforge.runtime.labels import DEFAULT_TEMPLATE, check_labels, check_templates
from clipforge.serve.decoding import b64_bytes
from clipforge.serve.deps import ready_service, require_key
from clipforge.serve.errors import ApiError, field_name
from clipforge.serve.routes.common import (
    check_count,
    check_text,
    check_texts,
    embed_images,
)
from clipforge.serve.schemas import ClassifyRequest, ClassifyResponse
from clipforge.serve.service import Service

router = APIRouter(tags=["classify"], dependencies=[Depends(require_key)])

_BODY_DOC = {
    "requestBody": {
        "content": {
            "application/json": {"schema": ClassifyRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "images": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "labels": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "repeat, or comma-separated",
                        },
                        "templates": {"type": "array", "items": {"type": "string"}},
                        "top_k": {"type": "integer"},
                        "max_patches": {"type": "integer"},
                    },
                    "required": ["images", "labels"],
                }
            },
        },
        "required": True,
    }
}


@router.post("/v1/classify", response_model=ClassifyResponse, openapi_extra=_BODY_DOC)
async def classify(request: Request, svc: Service = Depends(ready_service)) -> ClassifyResponse:
    blobs, labels, templates, top_k, max_patches = await _parse(request, svc)
    labels, templates = _check_labels(labels, templates, svc)
    check_count(blobs, "images", svc.settings.max_images)
    svc.image_spec(max_patches)

    async def work():
        text = await svc.label_embeddings(labels, templates)
        rows = await embed_images(svc, blobs, "images", max_patches)
        return svc.model.scores(svc.model.logits(np.stack(rows), text))

    probs = await svc.within_timeout(work(), request)
    k = top_k or len(labels)
    return ClassifyResponse(results=[scoring.top_k(row, labels, k) for row in probs], model=svc.model_name)


async def _parse(request: Request, svc: Service):
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        return _parse_json(await request.body())
    if kind == "multipart/form-data":
        return await _parse_form(request, svc)
    raise ApiError(
        415, "Content-Type", f"expected application/json or multipart/form-data, got {kind or 'no content type'}"
    )


def _parse_json(raw: bytes):
    try:
        body = ClassifyRequest.model_validate(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise ApiError(400, "body", f"the body is not valid JSON ({exc.msg} at position {exc.pos})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ApiError(422, field_name(first["loc"]), first["msg"]) from exc
    except (ValueError, RecursionError) as exc:  # a number over Python's 4300-digit limit, deep nesting
        raise ApiError(400, "body", f"the body cannot be parsed ({str(exc)[:120]})") from exc
    blobs = [b64_bytes(v, f"images[{i}]") for i, v in enumerate(body.images)]
    return blobs, body.labels, body.templates, body.top_k, body.max_patches


async def _parse_form(request: Request, svc: Service):
    limit = svc.settings.max_labels + svc.settings.max_images + 16
    form = await request.form(max_files=svc.settings.max_images + 1, max_fields=limit)
    blobs = []
    for i, part in enumerate(form.getlist("images")):
        if not isinstance(part, UploadFile):
            raise ApiError(422, f"images[{i}]", "expected a file upload, got a text field")
        blobs.append(await part.read())
    labels = [p.strip() for v in _text_fields(form, "labels") for p in v.split(",")]
    templates = _text_fields(form, "templates") or None
    top_k, max_patches = _positive(form, "top_k"), _positive(form, "max_patches")
    return blobs, labels, templates, top_k, max_patches


def _positive(form, name: str) -> int | None:
    """The last value of an optional positive-integer text field."""
    values = _text_fields(form, name)
    if values and not _POSITIVE_INT.fullmatch(values[-1]):
        raise ApiError(422, name, f"expected a positive integer (at most 9 digits), got {values[-1][:20]!r}")
    return int(values[-1]) if values else None


_POSITIVE_INT = re.compile(r"0*[1-9][0-9]{0,8}")  # ASCII digits only: str.isdigit() accepts '²', int() does not


def _text_fields(form, name: str) -> list[str]:
    """The text values of a multipart field; a file sent under a text field's name is refused (its
    ``str()`` is a description such as 'UploadFile(filename=..., size=3)', not the text)."""
    values = form.getlist(name)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise ApiError(422, f"{name}[{i}]", "expected a text field, got a file upload; send it without a filename")
    return values


def _check_labels(labels: list[str], templates, svc: Service) -> tuple[list[str], list[str]]:
    check_texts(labels, "labels", svc.settings, svc.settings.max_labels)
    try:
        labels = check_labels(labels)
    except InputError as exc:
        raise ApiError(422, "labels", str(exc)) from exc
    limits = svc.settings
    if isinstance(templates, list) and len(templates) > limits.max_templates:
        raise ApiError(413, "templates", f"{len(templates)} templates; the limit is {limits.max_templates}")
    try:
        templates = check_templates(templates if templates is not None else DEFAULT_TEMPLATE)
    except InputError as exc:
        raise ApiError(422, "templates", str(exc)) from exc
    for i, template in enumerate(templates):
        check_text(template, f"templates[{i}]", svc.settings)
    if len(labels) * len(templates) > limits.max_prompts:
        raise ApiError(
            413,
            "labels",
            f"{len(labels)} labels x {len(templates)} templates = "
            f"{len(labels) * len(templates)} prompts to embed; the limit is "
            f"{limits.max_prompts} per request: send fewer labels or templates",
        )
    return labels, templates
