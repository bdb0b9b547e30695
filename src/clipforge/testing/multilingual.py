"""Captions of the coloured-shapes classes in English, German and Spanish (data), for the multilingual fixture.

Every class gets the same number of captions in each language, so the training code's caption bank stays a
rectangle ``[caption, class]``. German and Spanish phrases carry their own grammar: the adjective agrees with the
noun (``ein roter Kreis`` / ``ein rotes Kreuz``, ``un círculo rojo`` / ``una cruz roja``), so labels are written
out per class, not composed from a colour word and a shape word.
"""

from __future__ import annotations

import itertools

from clipforge.testing.shapes import COLOURS, SHAPES

LANGUAGES = ("en", "de", "es")

# noun, grammatical gender and article
_NOUNS = {
    "de": {"circle": "Kreis", "square": "Quadrat", "triangle": "Dreieck", "cross": "Kreuz"},
    "es": {"circle": "círculo", "square": "cuadrado", "triangle": "triángulo", "cross": "cruz"},
}
_GENDER = {
    "de": {"circle": "m", "square": "n", "triangle": "n", "cross": "n"},
    "es": {"circle": "m", "square": "m", "triangle": "m", "cross": "f"},
}
# adjective forms: German strong declension after "ein" (m: -er, n: -es); Spanish m/f; invariant words repeat
_ADJECTIVES = {
    "de": {
        "red": {"m": "roter", "n": "rotes"},
        "green": {"m": "grüner", "n": "grünes"},
        "blue": {"m": "blauer", "n": "blaues"},
        "yellow": {"m": "gelber", "n": "gelbes"},
        "purple": {"m": "lila", "n": "lila"},
    },
    "es": {
        "red": {"m": "rojo", "f": "roja"},
        "green": {"m": "verde", "f": "verde"},
        "blue": {"m": "azul", "f": "azul"},
        "yellow": {"m": "amarillo", "f": "amarilla"},
        "purple": {"m": "morado", "f": "morada"},
    },
}
_ARTICLES = {"en": {"": "a"}, "de": {"m": "ein", "n": "ein"}, "es": {"m": "un", "f": "una"}}
# "{}" takes the label with its article ("a red circle", "ein roter Kreis", "una cruz roja")
TEMPLATES = {
    "en": ["{}", "a photo of {}.", "This is {}.", "{} on a plain background", "there is {} in the picture"],
    "de": ["{}", "ein Foto: {}.", "Das ist {}.", "{} auf einem hellen Hintergrund", "Auf dem Bild ist {}."],
    "es": ["{}", "una foto de {}.", "Esto es {}.", "{} sobre un fondo claro", "En la imagen hay {}."],
}
SENTENCES = [
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Größe, Straße, Übung, schön, hören — Umlaute und ß.",
    "El rápido zorro marrón salta sobre el perro perezoso.",
    "¿Dónde está la niña? ¡Aquí! Mañana, pingüino, corazón.",
]


def label(colour: str, shape: str, language: str, article: bool = False) -> str:
    """The class name in ``language``: "red circle" / "roter Kreis" / "círculo rojo" (with its article when
    ``article``: "a red circle" / "ein roter Kreis" / "un círculo rojo")."""
    if language == "en":
        return f"a {colour} {shape}" if article else f"{colour} {shape}"
    gender = _GENDER[language][shape]
    adjective, noun = _ADJECTIVES[language][colour][gender], _NOUNS[language][shape]
    phrase = f"{adjective} {noun}" if language == "de" else f"{noun} {adjective}"
    return f"{_ARTICLES[language][gender]} {phrase}" if article else phrase


def class_labels(language: str) -> list[str]:
    """The shapes set's class names (in label order) in ``language``."""
    return [label(c, s, language) for c, s in itertools.product(COLOURS, SHAPES)]


def captions() -> list[list[str]]:
    """``[caption][class]``: every template of every language, filled with each class's label (with article),
    plus each class's bare label per language (the first template is the bare phrase with its article)."""
    rows = []
    for language in LANGUAGES:
        pairs = list(itertools.product(COLOURS, SHAPES))
        rows += [[t.format(label(c, s, language, article=True)) for c, s in pairs] for t in TEMPLATES[language]]
        rows.append([label(c, s, language) for c, s in pairs])
    return rows


def training_corpus() -> list[str]:
    """Text the multilingual tokenizer is trained on: every caption, the sentences, and the English corpus."""
    from clipforge.testing.corpus import training_corpus as english

    return english() + [c for row in captions() for c in row] * 4 + SENTENCES * 20
