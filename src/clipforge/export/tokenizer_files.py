"""Write the tokenizer files an exported folder needs: the HF tokenizer's own files (so transformers can still load
the folder) plus a ``tokenizer.json`` for the torch-free runtime.

A fast HF tokenizer (CLIP) already is a ``tokenizers`` pipeline and saves its ``tokenizer.json``. A slow
SentencePiece one (SigLIP's ``spiece.model``) is converted here from the *loaded* model (so HF's own edits to the
proto, such as ``legacy=False`` turning off the dummy prefix, are kept):

- model: ``Unigram`` with every piece and score, in SentencePiece's id order;
- normalizer: ``Precompiled`` (the SentencePiece character map) and, when ``remove_extra_whitespaces`` is set,
  ``Strip`` + ``Replace(" {2,}", " ")``; pre-tokenizer: ``Metaspace``, prepend scheme "always" when
  ``add_dummy_prefix`` is set, else "never" (``runtime.text`` reads these flags back);
- added tokens: SentencePiece's control pieces (special) and user-defined pieces, then HF's added tokens with HF's
  lstrip/rstrip flags; post-processor: ``$A </s>``.

Used as is, this file tokenizes plain text as the slow tokenizer does; ``runtime.text`` adds the rules only Python
can express (canonicalisation, HF's split on added tokens, the exact SentencePiece normaliser).
"""

from __future__ import annotations

from pathlib import Path

from clipforge.errors import ExportError

_CONTROL, _USER_DEFINED = 3, 4  # SentencePiece piece types


def save_runtime_tokenizer(hf_tokenizer, folder: str | Path) -> Path:
    """Save ``hf_tokenizer`` into ``folder`` and make sure ``folder/tokenizer.json`` exists; returns its path."""
    from tokenizers import Tokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hf_tokenizer.save_pretrained(str(folder))
    path = folder / "tokenizer.json"
    backend = getattr(hf_tokenizer, "backend_tokenizer", None)
    if backend is not None:
        if not path.is_file():
            backend.save(str(path))
    elif getattr(hf_tokenizer, "sp_model", None) is not None:
        sentencepiece_to_tokenizers(hf_tokenizer).save(str(path))
    else:
        raise ExportError(
            f"cannot write a tokenizer.json for {type(hf_tokenizer).__name__}: it is neither a fast "
            "tokenizer nor a SentencePiece one; open an issue with the checkpoint name"
        )
    Tokenizer.from_file(str(path))  # fail here, not at inference time
    return path


def sentencepiece_to_tokenizers(hf_tokenizer):
    """A ``tokenizers.Tokenizer`` equivalent to a slow SentencePiece (Unigram) HF tokenizer."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import Unigram

    proto = _model_proto(hf_tokenizer)
    spec, trainer = proto.normalizer_spec, proto.trainer_spec
    if trainer.model_type != 1 or not spec.escape_whitespaces or trainer.treat_whitespace_as_suffix:
        raise ExportError(
            f"{type(hf_tokenizer).__name__}: only SentencePiece Unigram models that escape spaces "
            f"as a '▁' prefix are supported (model type {trainer.model_type}); open an issue"
        )
    tokenizer = Tokenizer(
        Unigram([(p.piece, p.score) for p in proto.pieces], unk_id=trainer.unk_id, byte_fallback=trainer.byte_fallback)
    )
    tokenizer.normalizer = _normalizer(spec)
    scheme = "always" if spec.add_dummy_prefix else "never"
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme=scheme)
    _add_tokens(tokenizer, proto, hf_tokenizer)
    _append_eos(tokenizer, hf_tokenizer)
    return tokenizer


def _model_proto(hf_tokenizer):
    from transformers.convert_slow_tokenizer import import_protobuf

    return import_protobuf().ModelProto.FromString(hf_tokenizer.sp_model.serialized_model_proto())


def _normalizer(spec):
    from tokenizers import Regex, normalizers

    parts = [normalizers.Precompiled(spec.precompiled_charsmap)] if spec.precompiled_charsmap else []
    if spec.remove_extra_whitespaces:
        parts += [normalizers.Strip(left=True, right=True), normalizers.Replace(Regex(" {2,}"), " ")]
    return normalizers.Sequence(parts)


def _add_tokens(tokenizer, proto, hf_tokenizer) -> None:
    """SentencePiece's control/user-defined pieces, then HF's added tokens (their flags win), at HF's ids."""
    from tokenizers import AddedToken

    tokens = {
        p.piece: (i, AddedToken(p.piece, special=p.type == _CONTROL, normalized=False))
        for i, p in enumerate(proto.pieces)
        if p.type in (_CONTROL, _USER_DEFINED)
    }
    for i, t in hf_tokenizer.added_tokens_decoder.items():
        tokens[t.content] = (
            i,
            AddedToken(
                t.content,
                single_word=t.single_word,
                lstrip=t.lstrip,
                rstrip=t.rstrip,
                normalized=False,
                special=t.special,
            ),
        )
    for i, token in sorted(tokens.values(), key=lambda item: item[0]):
        (tokenizer.add_special_tokens if token.special else tokenizer.add_tokens)([token])
        if tokenizer.token_to_id(token.content) != i:
            raise ExportError(
                f"added token {token.content!r} has id {i} in the HF tokenizer but "
                f"{tokenizer.token_to_id(token.content)} in tokenizer.json; open an issue"
            )


def _append_eos(tokenizer, hf_tokenizer) -> None:
    from tokenizers import processors

    eos = str(hf_tokenizer.eos_token)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, hf_tokenizer.eos_token_id)]
    )
