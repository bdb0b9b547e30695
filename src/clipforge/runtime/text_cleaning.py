"""open_clip's text cleaning (``open_clip.tokenizer``), reproduced for the torch-free runtime.

Every mode starts with ``basic_clean``: ftfy's ``fix_text``, HTML unescaped twice, stripped. Then
``"whitespace"``: runs of whitespace (Python's ``str.split``) to one space; ``"lower"``: the same, lower-cased
(``SimpleTokenizer``'s default); ``"canonicalize"``: ``_`` to a space, ASCII punctuation removed, lower-cased,
whitespace runs to one space (big_vision's ``canonicalize_text``, SigLIP in open_clip format). open_clip's
``HFTokenizer`` applies one of these before the Hugging Face tokenizer (``clean`` in ``tokenizer_kwargs``,
"whitespace" by default); the manifest records it as ``text.clean``.
"""

from __future__ import annotations

import html
import string

from clipforge.specs import CLEAN_MODES

_PUNCTUATION = str.maketrans("", "", string.punctuation)


def basic_clean(text: str) -> str:
    """ftfy's ``fix_text`` (its mojibake repair is heuristics over its own tables, so ftfy itself runs here rather
    than a partial copy), HTML unescaped twice, stripped."""
    import ftfy

    return html.unescape(html.unescape(ftfy.fix_text(text))).strip()


def openclip_clean(text: str, mode: str = "lower") -> str:
    """``text`` cleaned as open_clip's ``get_clean_fn(mode)`` cleans it."""
    text = basic_clean(text)
    if mode == "canonicalize":
        text = text.replace("_", " ").translate(_PUNCTUATION).lower()
    elif mode not in ("whitespace", "lower"):
        raise ValueError(f"text.clean {mode!r} is not one of {', '.join(CLEAN_MODES)}")
    text = " ".join(text.split())
    return text.lower() if mode == "lower" else text
