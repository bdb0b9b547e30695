"""A generic vocabulary of what photos show (data only): ``min_score="auto"`` (``clipforge.index.relevance``)
searches the library for each of these captions to learn, for this model and this library, the score that
separates captions that find their subject in the library from captions that do not.

Common photo subjects (people, animals, things, places, scenes), colours and simple shapes; nothing here is
chosen for a test set. Each entry becomes one caption through ``CAPTION``."""

from __future__ import annotations

CAPTION = "a photo of a {}."

SUBJECTS = [
    # people
    "person", "man", "woman", "child", "baby", "family", "crowd", "face", "hand", "selfie",
    "wedding", "birthday party", "concert", "football match", "runner", "swimmer",
    # animals
    "dog", "cat", "bird", "horse", "cow", "sheep", "pig", "chicken", "duck", "fish",
    "butterfly", "bee", "spider", "snake", "frog", "turtle", "rabbit", "mouse", "deer", "bear",
    "lion", "tiger", "elephant", "giraffe", "zebra", "monkey", "whale", "dolphin", "insect",
    # vehicles
    "car", "truck", "bus", "train", "bicycle", "motorcycle", "boat", "ship", "plane", "helicopter",
    "tractor", "taxi", "scooter",
    # things
    "chair", "table", "sofa", "bed", "lamp", "clock", "book", "cup", "bottle", "glass of wine",
    "plate", "knife", "phone", "laptop", "computer screen", "keyboard", "camera", "television", "guitar",
    "piano", "ball", "toy", "teddy bear", "umbrella", "bag", "shoe", "hat", "shirt", "dress",
    "watch", "ring", "key", "door", "window", "stairs", "bridge", "fence", "flag", "sign",
    "poster", "painting", "statue", "candle", "balloon", "gift", "box", "tool", "pen",
    # food
    "food", "apple", "banana", "orange", "pizza", "cake", "bread", "sandwich", "salad", "coffee",
    "ice cream", "vegetables", "fruit", "meal",
    # plants and nature
    "tree", "flower", "rose", "grass", "leaf", "forest", "garden", "mountain", "hill", "river",
    "lake", "sea", "beach", "waterfall", "desert", "snow", "cloud", "sky", "sunset", "sunrise",
    "rain", "rainbow", "moon", "star", "field", "rock", "island", "cave", "volcano",
    # places and scenes
    "city", "street", "road", "house", "building", "skyscraper", "church", "castle", "tower",
    "lighthouse", "windmill", "farm", "village", "park", "playground", "market", "shop", "restaurant",
    "kitchen", "bathroom", "bedroom", "living room", "office", "classroom", "library", "museum",
    "airport", "station", "harbour", "stadium", "swimming pool", "parking lot", "night", "fireworks",
    # documents and screens
    "document", "receipt", "screenshot", "map", "diagram", "chart", "text", "drawing", "cartoon", "logo",
    # colours and simple shapes
    "red object", "green object", "blue object", "yellow object", "purple object", "orange object",
    "white object", "black object", "pink object", "brown object", "grey object",
    "circle", "square", "triangle", "cross", "star shape", "heart shape", "line", "pattern", "texture",
]  # fmt: skip


def captions() -> list[str]:
    """The vocabulary as captions, in a fixed order."""
    return [CAPTION.format(s) for s in SUBJECTS]
