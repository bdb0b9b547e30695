"""Built-in model families; importing this package registers them."""

from clipforge.families import clip, siglip  # noqa: F401
