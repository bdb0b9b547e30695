"""Request and response bodies (pydantic). ``/v1/embeddings`` follows OpenAI's and Infinity's shapes; classify
answers the HF zero-shot pipeline's ``[{"label", "score"}]`` per image, best first."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clipforge.runtime.patches import MAX_PATCHES_LIMIT

MAX_PATCHES_DOC = "SigLIP 2 NaFlex models: patches per image (default: the model's budget); refused by other models."


class EmbeddingsRequest(BaseModel):
    """Every field of OpenAI's embeddings request, plus ``modality`` (the OpenAI SDK sends it with
    ``extra_body={"modality": "image"}``)."""

    model_config = ConfigDict(extra="ignore")

    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="Texts, or images as base64 strings / data URIs. Token-id arrays are refused: the server "
        "tokenizes itself."
    )
    modality: Literal["text", "image"] = "text"
    model: str | None = Field(None, description="Ignored: the server has one model; responses name it.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="'base64': each embedding as base64 of little-endian float32 bytes."
    )
    dimensions: int | None = Field(None, description="Accepted only when equal to the model's embedding width.")
    user: str | None = Field(None, description="Accepted and ignored.")
    max_patches: int | None = Field(None, ge=1, le=MAX_PATCHES_LIMIT, description=MAX_PATCHES_DOC)

    @field_validator("input", mode="wrap")
    @classmethod
    def _one_message(cls, value, handler):
        """One error naming ``input`` instead of one per member of the union."""
        try:
            return handler(value)
        except ValidationError as exc:
            raise ValueError(
                "expected a string or a list of strings (texts, or images as base64 / data URIs), "
                f"got {type(value).__name__} {str(value)[:40]!r}"
            ) from exc


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    embedding: list[float] | str
    index: int


class Usage(BaseModel):
    """Text tokens as the encoder sees them (special tokens included, before padding); images count 0."""

    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage = Usage()


class ClassifyRequest(BaseModel):
    images: list[str] = Field(description="Images as base64 strings or data URIs.")
    labels: list[str]
    templates: str | list[str] | None = Field(None, description="Prompt template(s) with '{}'; a list is averaged.")
    top_k: int | None = Field(None, ge=1, description="Labels per image (default: all).")
    max_patches: int | None = Field(None, ge=1, le=MAX_PATCHES_LIMIT, description=MAX_PATCHES_DOC)


class LabelScore(BaseModel):
    label: str
    score: float


class ClassifyResponse(BaseModel):
    results: list[list[LabelScore]]
    model: str


class SearchRequest(BaseModel):
    text: str | None = Field(None, description="Text query.")
    image: str | None = Field(None, description="Query image as base64 or a data URI.")
    negative: str | None = Field(None, description="Text to move away from.")
    k: int = Field(20, ge=1)
    min_score: float | Literal["auto"] | None = Field(
        None, description='Drop hits below this cosine; "auto": only what stands out in this library, else no match.'
    )
    after: str | None = Field(None, description="Taken on or after: YYYY, YYYY-MM, YYYY-MM-DD or an ISO date-time.")
    before: str | None = Field(None, description="Taken on or before (the whole year, month or day named).")
    folder: str | None = Field(None, description="Only images under this folder (a path on the server).")
    camera: str | None = Field(None, description="Camera make/model contains this (case-insensitive).")
    near: str | list[float] | None = Field(
        None, description='Taken near a place: "LAT,LON[,KM]" or [lat, lon, km] (km defaults to 25).'
    )
    sort: Literal["score", "date"] = Field("score", description="score: best first; date: the k best, newest first.")

    @field_validator("min_score", mode="wrap")
    @classmethod
    def _score_or_auto(cls, value, handler):
        """A number (never a boolean) or "auto", in one error naming ``min_score``."""
        try:
            if isinstance(value, bool):
                raise ValueError("a boolean")
            return handler(value)
        except (ValidationError, ValueError):
            raise ValueError(f'expected a number (cosine, -1 to 1) or "auto", got {str(value)[:40]!r}') from None


class SearchHit(BaseModel):
    id: int
    path: str
    score: float
    image_url: str
    thumbnail_url: str
    taken: str | None = Field(None, description="Date taken (EXIF, else the file's mtime), camera local time.")
    taken_from: Literal["exif", "mtime"] | None = Field(None, description="Where 'taken' comes from.")
    camera: str | None = None


class SearchResponse(BaseModel):
    results: list[SearchHit]
    model: str
    cutoff: float | None = Field(None, description="The score cutoff applied: min_score, or the one auto chose.")
    reason: str | None = Field(None, description="Why there is no result, when min_score auto found no match.")


class Info(BaseModel):
    model: str
    family: str | None
    embed_dim: int
    search: bool
    limits: dict[str, float]
