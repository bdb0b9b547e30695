"""``clipforge serve``: an HTTP API (embeddings, zero-shot classification, search) with dynamic batching and a
web page. Needs ``pip install 'clipforge[serve]'``."""

from clipforge.serve.app import create_app
from clipforge.serve.settings import ServeSettings

__all__ = ["create_app", "ServeSettings"]
