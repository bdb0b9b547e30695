"""Running clipforge on distributed engines. Only ``ray.py`` imports Ray; ``records.py`` holds the engine-independent
work (encoded files in, embedding records out) that the engine's workers call."""
