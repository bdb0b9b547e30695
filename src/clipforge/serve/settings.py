"""Server settings: batching, limits and auth, as one validated dataclass (the CLI fills it from options)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from clipforge.errors import InputError
from clipforge.runtime.image_policy import ImagePolicy
from clipforge.serve.validation import check_api_key

API_KEY_ENV = "CLIPFORGE_API_KEY"


@dataclass
class ServeSettings:
    """Everything ``create_app`` needs besides the model and the index."""

    max_batch: int = 32  # items per encoder run
    max_wait_ms: float = 5.0  # how long the first item of a batch waits for company
    api_key: str | None = None  # Bearer token for every endpoint but the health checks
    max_body_bytes: int = 32 * 1024 * 1024
    max_images: int = 64  # per request
    max_texts: int = 256  # per request
    max_labels: int = 1000
    max_templates: int = 100  # per classify request
    max_prompts: int = 1000  # labels x templates per classify request (~6 s of fp32 ViT-B/32 text on 2 cores)
    max_text_chars: int = 2000  # per text or label
    # the runtime's image policy (CLIPFORGE_MAX_IMAGE_PIXELS / CLIPFORGE_MIN_IMAGE_SIDE give the defaults)
    max_image_pixels: int = dataclasses.field(default_factory=lambda: ImagePolicy.from_env().max_pixels)
    min_image_side: int = dataclasses.field(default_factory=lambda: ImagePolicy.from_env().min_side)
    max_k: int = 1000
    request_timeout_s: float = 60.0
    body_timeout_s: float = 30.0  # a body still arriving after this gets 408
    max_queue: int = 4096  # items waiting for the encoders; beyond this, 503
    decode_threads: int = 2  # image decoding and pre-processing, off the event loop
    thumbnail_size: int = 256
    model_name: str | None = None  # reported in responses (default: the model folder's name)

    def __post_init__(self) -> None:
        problems = [
            f"{f.name} must be > 0 (got {getattr(self, f.name)})"
            for f in dataclasses.fields(self)
            if f.type in ("int", "float") and getattr(self, f.name) <= 0 and f.name != "max_wait_ms"
        ]
        if self.max_wait_ms < 0:
            problems.append(f"max_wait_ms must be >= 0 (got {self.max_wait_ms})")
        if problems:
            raise InputError("bad serve settings: " + "; ".join(problems))
        if self.api_key is None:
            self.api_key = os.environ.get(API_KEY_ENV)
        check_api_key(self.api_key)

    def image_policy(self) -> ImagePolicy:
        """The runtime's image policy with this server's pixel and side limits."""
        return ImagePolicy.from_env(max_pixels=self.max_image_pixels, min_side=self.min_image_side)
