"""Built-in model families; importing this package registers them."""

from clipforge.families import clip, openclip, siglip  # noqa: F401
