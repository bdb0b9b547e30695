"""Build the manifest for an exported folder."""

from __future__ import annotations

from dataclasses import replace
from importlib import metadata

from clipforge import __version__
from clipforge.specs import ROLES, Manifest

TRACKED_PACKAGES = ("torch", "transformers", "onnx", "onnxruntime", "tokenizers", "numpy")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def make_manifest(ckpt, image_spec, opts, validation: dict, sequence_length: int | None) -> Manifest:

    scale, bias = ckpt.family.logit_params(ckpt.model)
    text = ckpt.text
    if opts.static and sequence_length:
        text = replace(text, context_length=sequence_length, padding="max_length")
    return Manifest(
        family=ckpt.family.name,
        source=ckpt.source,
        revision=ckpt.revision,
        embed_dim=ckpt.embed_dim,
        logit_scale=scale,
        logit_bias=bias,
        image=image_spec,
        text=text,
        opset=opts.opset,
        static=opts.static,
        versions=package_versions(),
        validation=validation,
        build={"static_batch_size": opts.batch_size} if opts.static else {},
        towers={encoder: ckpt.family.encoder_info(ckpt.model, encoder) for encoder in ROLES},
        clipforge_version=__version__,
    )
