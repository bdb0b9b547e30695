"""Write the tokenizer files an exported folder needs: the HF tokenizer's own files (so transformers can load
the folder) plus a ``tokenizer.json`` for the torch-free runtime (converted from SentencePiece for SigLIP)."""

from __future__ import annotations

from pathlib import Path


def save_runtime_tokenizer(hf_tokenizer, folder: Path) -> Path:
    folder = Path(folder)
    hf_tokenizer.save_pretrained(str(folder))
    path = folder / "tokenizer.json"
    if not path.is_file():
        _sentencepiece_to_json(hf_tokenizer).save(str(path))
    return path


def _sentencepiece_to_json(hf_tokenizer):
    """A `tokenizers` Unigram tokenizer equivalent to a slow SentencePiece tokenizer, EOS appended."""
    from tokenizers import AddedToken, processors
    from transformers.convert_slow_tokenizer import SpmConverter

    tokenizer = SpmConverter(hf_tokenizer).converted()
    specials = [str(t) for t in (hf_tokenizer.eos_token, hf_tokenizer.pad_token, hf_tokenizer.unk_token) if t]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in dict.fromkeys(specials)])
    eos = hf_tokenizer.eos_token
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, hf_tokenizer.eos_token_id)]
    )
    return tokenizer
