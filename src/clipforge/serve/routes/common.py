"""Checks and helpers shared by the routers."""

from __future__ import annotations

from clipforge.serve.errors import ApiError
from clipforge.serve.service import Service, first_error
from clipforge.serve.settings import ServeSettings

__all__ = ["check_count", "check_text", "check_texts", "embed_images", "embed_texts", "first_error"]


def check_count(items: list, field: str, limit: int) -> None:
    if not items:
        raise ApiError(422, field, "the list is empty; send at least one item")
    if len(items) > limit:
        raise ApiError(413, field, f"{len(items)} items; the limit is {limit} per request")


def check_text(text: str, field: str, settings: ServeSettings) -> None:
    if not text.strip():
        raise ApiError(422, field, "the text is empty")
    if len(text) > settings.max_text_chars:
        raise ApiError(422, field, f"the text has {len(text)} characters; the limit is {settings.max_text_chars}")


def check_texts(texts: list[str], field: str, settings: ServeSettings, limit: int) -> None:
    check_count(texts, field, limit)
    for i, text in enumerate(texts):
        check_text(text, f"{field}[{i}]", settings)


async def embed_images(svc: Service, blobs: list[bytes], field: str, max_patches: int | None = None) -> list:
    svc.image_spec(max_patches)  # a budget the model refuses: one 422 before any image is decoded
    return await first_error([svc.embed_image(b, f"{field}[{i}]", max_patches) for i, b in enumerate(blobs)])


async def embed_texts(svc: Service, texts: list[str], field: str) -> list:
    return await svc.embed_texts(texts, field)
