"""SigLIP and the text attention mask (issue 17): clipforge's default export and its --text-attention-mask export
against transformers' SiglipModel, both run through transformers.pipeline("zero-shot-image-classification"),
with a tokenizer that returns the attention mask (transformers 5's default for SiglipTokenizer) and one that does
not (transformers 4; the trained model). Prints, per pair, the largest score difference (5 labels, 4 images) and
the lowest text-embedding cosine (the pipeline's prompts, model(**tokenizer outputs)).

    python benchmarks/siglip_mask.py [--trained] [--base] [--json out.json]

Models: the tiny random SigLIP of the tests (always); --trained: the tiny SigLIP trained on the shapes set (cached
in $CLIPFORGE_FIXTURE_CACHE, ~1 min to train when absent); --base: a random-weight SigLIP with transformers'
default (base) config, 12-layer 768-wide encoders (~1 min to export twice). Accuracy figures only, no timings.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

from _common import WORK


def checkpoints(trained: bool, base: bool) -> dict[str, Path]:
    from clipforge.registry import get_family

    family, found = get_family("siglip"), {}
    found["tiny-random"] = _once(WORK / "siglip-tiny-random", lambda p: family.save_tiny_checkpoint(p))
    if trained:
        from clipforge.testing.trained import trained_checkpoint

        found["tiny-trained"] = trained_checkpoint("siglip", os.environ.get("CLIPFORGE_FIXTURE_CACHE", WORK))
    if base:
        found["base-random"] = _once(
            WORK / "siglip-base-random", lambda p: family.save_tiny_checkpoint(p, shape="base")
        )
    return found


def _once(folder: Path, make) -> Path:
    if not (folder / "model.safetensors").is_file():
        make(folder)
    return folder


def exports(name: str, checkpoint: Path) -> dict[str, Path]:
    from clipforge.export import ExportOptions, export_model

    out = {}
    for variant, masked in (("default", False), ("--text-attention-mask", True)):
        folder = WORK / f"siglip-mask-{name}-{'masked' if masked else 'default'}"
        if not (folder / "manifest.json").is_file():
            export_model(checkpoint, folder, ExportOptions(text_attention_mask=masked), force=True, show_progress=False)
        out[variant] = folder
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trained", action="store_true", help="also the trained tiny SigLIP")
    parser.add_argument("--base", action="store_true", help="also a random base-size SigLIP")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()

    import clipforge  # noqa: F401  (import guard before transformers)

    # isort: split
    import transformers

    from clipforge.testing.siglip_mask import measure, sample_images

    images, rows = sample_images(4), []
    print(f"transformers {transformers.__version__}; reference = SiglipModel through the zero-shot pipeline")
    print(
        f"{'model':<12} {'clipforge export':<22} {'reference tokenizer':<32} {'max score diff':>15} "
        f"{'min text cos':>13}"
    )
    for name, checkpoint in checkpoints(args.trained, args.base).items():
        for variant, folder in exports(name, checkpoint).items():
            for mask in (False, True):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the default export's TextMaskWarning is expected here
                    figures = measure(checkpoint, folder, mask, images)
                reference = "input_ids + attention_mask (v5)" if mask else "input_ids only (v4, trained)"
                rows.append({"model": name, "export": variant, "reference_mask": mask, **figures})
                print(
                    f"{name:<12} {variant:<22} {reference:<32} {figures['max_score_diff']:>15.2e} "
                    f"{figures['min_text_cosine']:>13.7f}"
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
