"""``export_pipeline``: a checkpoint (or exported folder) -> ``PREFIX_img.onnx`` (encoded image bytes ->
``embedding`` [1, D]), ``PREFIX_img_hwc.onnx`` (decoded uint8 HWC pixels -> [1, D]) and ``PREFIX_txt.onnx``
(strings [N] -> ``embedding`` [N, D]), pre-processing and tokenizer inside the graph, validated."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import clipforge
from clipforge._io import check_output, sha256, temp_dir
from clipforge.errors import InputError
from clipforge.export import onnx_export
from clipforge.hub import looks_like_openclip
from clipforge.models import model_folder
from clipforge.pipeline import checks
from clipforge.pipeline._formats import SUFFIXES
from clipforge.pipeline.compose import embedding_model, load_encoder, set_metadata
from clipforge.pipeline.image_graph import image_model
from clipforge.pipeline.presets import IMAGE_INPUTS, PipelineConfig, known_family
from clipforge.pipeline.text_graph import OPENCLIP_NOT_IN_GRAPH, text_model
from clipforge.progress import steps
from clipforge.registry import family_for_checkpoint
from clipforge.specs import IMAGE_ROLE, TEXT_ROLE, Manifest

KIND_OF_INPUT = {"bytes": "image", "pixels": "image_pixels"}
RECORD_SUFFIX = "_pipeline.json"


@dataclass
class PipelineResult:
    paths: dict[str, Path]
    config: PipelineConfig
    validation: dict = field(default_factory=dict)


def output_paths(prefix: str | Path, config: PipelineConfig | None) -> dict[str, Path]:
    prefix = Path(prefix)
    if not prefix.name or prefix.name.endswith(".onnx"):
        raise InputError(
            f"-o {prefix} should be a prefix such as out/clip (gives out/clip_img.onnx, "
            "out/clip_txt.onnx), not a file name"
        )
    kinds = ["text"] + [KIND_OF_INPUT[i] for i in (config.image_inputs if config else IMAGE_INPUTS)]
    return {k: prefix.with_name(prefix.name + SUFFIXES[k]) for k in sorted(kinds)}


def export_pipeline(
    model: str | Path, prefix: str | Path, preset: str | None = None, *, force: bool = False, show_progress: bool = True
) -> PipelineResult:
    """Export ``model`` (hub id, checkpoint folder or exported folder) as pipeline graphs named after ``prefix``;
    ``preset`` overrides the one of the model's family."""

    config = resolve_config(model, preset)
    paths = output_paths(prefix, config)  # config None (family not known yet): every possible output
    for path in [*paths.values(), record_path(prefix)]:
        check_output(path, force)
    with steps(show_progress, total=4) as step:
        step("export encoders")
        folder = exported_folder(model)
        manifest = Manifest.load(folder)
        config = config or PipelineConfig.for_model(str(model), manifest.family)
        config.check_family(str(model), manifest.family)
        paths = output_paths(prefix, config)
        step("build graphs")
        graphs = build_graphs(folder, manifest, config)
        with staging(paths) as staged:
            step("save")
            for kind, graph in graphs.items():
                onnx_export.save_onnx(graph, staged[kind])
            step("validate")
            report = checks.validate_pipeline(staged, folder, manifest, text_spec(manifest, config))
            write_record(staged, record_path(prefix), manifest, config, report)
    return PipelineResult(paths, config, report)


def record_path(prefix: str | Path) -> Path:
    prefix = Path(prefix)
    return prefix.with_name(prefix.name + RECORD_SUFFIX)


def write_record(
    staged: dict[str, Path], final: Path, manifest: Manifest, config: PipelineConfig, report: dict
) -> None:
    """``PREFIX_pipeline.json`` beside the graphs (staged with them): what was exported from what, the validation
    figures and the sha256 of every file, for machines and audits."""
    import json

    folder = next(iter(staged.values())).parent
    record = {
        "family": manifest.family,
        "source": manifest.source,
        "revision": manifest.revision,
        "preset": config.preset,
        "config": json.loads(config.to_json()),
        "files": {p.name: sha256(p) for p in sorted(folder.iterdir())},
        "validation": report,
        "clipforge_version": clipforge.__version__,
    }
    (folder / final.name).write_text(json.dumps(record, indent=2, default=float) + "\n", encoding="utf-8")


@contextlib.contextmanager
def staging(paths: dict[str, Path]):
    """Yield kind -> path in a hidden folder beside the outputs; when the block succeeds every file written there
    (graphs and any external-data files) is renamed into place, else the folder goes away with all of it."""
    parent = next(iter(paths.values())).parent
    parent.mkdir(parents=True, exist_ok=True)
    stage = temp_dir(parent, "pipeline")
    try:
        yield {k: stage / p.name for k, p in paths.items()}
        for item in sorted(stage.iterdir()):
            os.replace(item, parent / item.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def exported_folder(model: str | Path) -> Path:
    """``model`` itself when it is an exported folder (dynamic shapes), else its cached validated fp32 export."""
    path = model_folder(model, show_progress=False)
    manifest = Manifest.load(path)
    if manifest.static:
        raise InputError(f"{path} is a static=True export; pipelines need dynamic shapes, export without static=True")
    if manifest.image.naflex:
        raise InputError(f"{path} {NAFLEX_REFUSAL}")
    return path


NAFLEX_REFUSAL = (
    "is SigLIP 2 NaFlex (a patch budget per image): in-graph pre-processing takes fixed-size images only; use the "
    "Python runtime (classify, embed, index, serve) for it"
)


def resolve_config(model: str | Path, preset: str | None) -> PipelineConfig | None:
    """The pipeline config, before any export, when the family is known: from an exported folder's manifest, a
    local checkpoint's config.json or the well-known checkpoints; otherwise None (decided after the export)."""

    path = Path(model)
    if (path / "manifest.json").is_file():
        manifest = Manifest.load(path)
        if manifest.image.naflex:
            raise InputError(f"{model} {NAFLEX_REFUSAL}")
        return PipelineConfig.for_model(manifest.source, manifest.family, preset)
    if looks_like_openclip(model):  # known before the export: multimodal_openclip
        family = "openclip"
    else:
        family = family_for_checkpoint(path).name if (path / "config.json").is_file() else known_family(str(model))
    if family == "siglip2":
        raise InputError(f"{model} {NAFLEX_REFUSAL}")
    return PipelineConfig.for_model(str(model), family, preset)


def text_spec(manifest: Manifest, config: PipelineConfig):
    """The manifest's text spec with the preset's padding (a family that needs a fixed length keeps it)."""
    if manifest.text.padding == "max_length":
        return manifest.text
    return replace(manifest.text, padding=config.text_padding)


def build_graphs(folder: Path, manifest: Manifest, config: PipelineConfig) -> dict:
    """kind -> ModelProto for every graph the config asks for."""

    dim, graphs = manifest.embed_dim, {}
    text_encoder = load_encoder(folder / manifest.encoders[TEXT_ROLE])
    joins = [i.name for i in text_encoder.graph.input]
    graphs["text"] = embedding_model(
        text_model(folder, text_spec(manifest, config)),
        text_encoder,
        joins,
        text_encoder.graph.output[0].name,
        dim,
        config.normalize,
    )
    image_encoder = load_encoder(folder / manifest.encoders[IMAGE_ROLE])
    for choice in config.image_inputs:  # onnx's merge copies its inputs, so one encoder serves every variant
        pre = image_model(manifest.image, encoded=choice == "bytes")
        graphs[KIND_OF_INPUT[choice]] = embedding_model(
            pre, image_encoder, ["pixel_values"], image_encoder.graph.output[0].name, dim, config.normalize
        )
    for kind, graph in graphs.items():
        set_metadata(graph, _metadata(kind, manifest, config))
    return graphs


def _metadata(kind: str, manifest: Manifest, config: PipelineConfig) -> dict:
    from importlib import metadata

    meta = {
        "clipforge_pipeline": kind,
        "family": manifest.family,
        "source": manifest.source,
        "preset": config.preset,
        "config": config.to_json(),
        "embed_dim": manifest.embed_dim,
        "logit_scale": manifest.logit_scale,
        "logit_bias": manifest.logit_bias,
        "clipforge_version": clipforge.__version__,
        "custom_ops": "onnxruntime-extensions " + metadata.version("onnxruntime-extensions"),
    }
    if kind == "text":
        meta["text_spec"] = manifest.text.__dict__
        if manifest.text.kind == "openclip":
            meta["tokenizer_limits"] = OPENCLIP_NOT_IN_GRAPH
    else:
        meta["image_spec"] = manifest.image.__dict__
        meta["reference_pillow"] = metadata.version("pillow")
    return meta
