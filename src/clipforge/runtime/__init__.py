"""Torch-free inference: sessions, numpy/Pillow pre-processing, `tokenizers` tokenization, the composite model."""
