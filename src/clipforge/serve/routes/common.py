"""Checks and helpers shared by the routers."""

from __future__ import annotations

import asyncio

from clipforge.serve.errors import ApiError
from clipforge.serve.service import Service
from clipforge.serve.settings import ServeSettings


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


async def first_error(coros: list) -> list:
    """Await all; raise the first failure in input order, else return the results in order."""
    outcomes = await asyncio.gather(*coros, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes


async def embed_images(svc: Service, blobs: list[bytes], field: str) -> list:
    return await first_error([svc.embed_image(b, f"{field}[{i}]") for i, b in enumerate(blobs)])


async def embed_texts(svc: Service, texts: list[str], field: str) -> list:
    return await first_error([svc.embed_text(t, f"{field}[{i}]") for i, t in enumerate(texts)])
