"""Image pre-processing as an ONNX graph: encoded bytes (or decoded HWC uint8 pixels) -> ``pixel_values``
[1, 3, H, W] float32, following the checkpoint's ``ImageSpec`` as the HF PIL-backend processors do.

1. Decode (bytes variant): onnxruntime-extensions' ``DecodeImage`` (PNG via libpng, JPEG via libjpeg), RGB. A
   guard first checks the PNG signature, or a JPEG start marker *and* end-of-image marker; anything else (not an
   image, another format, a truncated JPEG) reaches ``DecodeImage`` as zero bytes, which fails with "Invalid image
   data" in a node named ``decode_image_expects_a_complete_PNG_or_JPEG_file``. Without the guard the op's libjpeg
   calls ``exit()`` on non-JPEG data and loops forever on a truncated JPEG (onnxruntime-extensions issue #1094).
2. Grey images get three channels; other channel counts (a CMYK JPEG decodes to four) fail in a node named
   ``image_needs_1_or_3_channels__convert_CMYK_to_RGB_first``. EXIF orientation is not applied (the Python
   runtime applies it).
3. Resize with ONNX ``Resize`` (opset 18): ``antialias=1``, ``exclude_outside=1``, half-pixel centres and
   ``cubic_coeff_a=-0.5`` is PIL's convolution resampler for bicubic (3) and bilinear (2). Like PIL it runs one
   axis at a time and rounds halves up to uint8 levels between the passes; like Pillow >= 13 it resizes the
   height first when the height shrinks by more than twice as many pixels as the width. PIL sums in fixed point,
   ONNX in float, so a level can differ by one where the exact value sits on a rounding boundary.
4. Centre crop (zero padding first when the image is smaller than the crop, with HF's offsets).
5. Rescale and normalise through the same 256-entry table per channel as ``clipforge.runtime.images``, so
   identical uint8 pixels give bit-identical ``pixel_values``.

open_clip checkpoints (``ImageSpec.convention == "torchvision"``) follow ``runtime.images.torchvision_resized``
instead at steps 3-5: the output size of ``shortest_edge`` as above, of ``fit_shortest``/``fit_longest``
(open_clip's ``ResizeKeepRatio``) from the float64 ratio with sides rounded half to even, of ``exact`` (squash) as
given; the same two-pass resize; torchvision's centre crop (pad with ``fill`` for ``fit_longest``, else 0,
``missing // 2`` before; offsets ``round((side - crop) / 2)`` half to even); the table computed the torchvision
way (``x / 255`` in float32). The Python runtime resizes an RGBA/P/L image in its own mode before ``convert("RGB")``
only for PIL images handed to it; bytes are decoded to RGB first there as here.
"""

from __future__ import annotations

import numpy as np

from clipforge.errors import InputError
from clipforge.pipeline._formats import JPEG_END, JPEG_START, PNG_SIGNATURE
from clipforge.pipeline._graph import DOUBLE, EXTENSIONS, FLOAT, INT32, INT64, UINT8, GraphBuilder
from clipforge.runtime.images import to_pixel_values
from clipforge.specs import ImageSpec

DECODE_NODE = "decode_image_expects_a_complete_PNG_or_JPEG_file"
CHANNELS_NODE = "image_needs_1_or_3_channels__convert_CMYK_to_RGB_first"  # a CMYK JPEG decodes to 4 channels
RESIZE_MODES = {3: "cubic", 2: "linear"}  # PIL resample code -> ONNX Resize mode
BYTES_INPUT, PIXELS_INPUT, OUTPUT = "image", "pixels", "pixel_values"
TORCHVISION_MODES = ("shortest_edge", "exact", "none", "fit_shortest", "fit_longest")  # open_clip's eval resizes


def image_model(spec: ImageSpec, encoded: bool = True, prefix: str = "pre/"):
    """The pre-processing graph alone: ``image`` uint8 [num_bytes] (``encoded``) or ``pixels`` uint8
    [height, width, channels] -> ``pixel_values`` float32 [1, 3, H, W]."""
    from onnx import helper

    check_spec(spec)
    g = GraphBuilder(prefix)
    if encoded:
        source = helper.make_tensor_value_info(BYTES_INPUT, UINT8, ["num_bytes"])
        hwc = decode(g, BYTES_INPUT)
    else:
        source = helper.make_tensor_value_info(PIXELS_INPUT, UINT8, ["height", "width", "channels"])
        hwc = PIXELS_INPUT
    pixels = preprocess(g, hwc, spec)
    g.nodes.append(helper.make_node("Identity", [pixels], [OUTPUT], name=f"{prefix}output"))
    out = helper.make_tensor_value_info(OUTPUT, FLOAT, [1, 3, *spec.output_size])
    return g.model([source], [out], doc="clipforge image pre-processing")


def check_spec(spec: ImageSpec) -> None:
    if spec.resize_mode != "none" and spec.resample not in RESIZE_MODES:
        raise InputError(
            f"the checkpoint resizes with PIL filter {spec.resample}, which ONNX Resize cannot "
            "reproduce (supported: 3 = bicubic, 2 = bilinear); use the Python runtime instead"
        )
    modes = TORCHVISION_MODES if spec.convention == "torchvision" else ("shortest_edge", "exact", "none")
    if spec.resize_mode not in modes:
        raise InputError(
            f"resize mode {spec.resize_mode!r} with the {spec.convention} convention has no in-graph "
            "pre-processing; use the pixel_values graphs or the Python runtime"
        )


# --- decoding -----------------------------------------------------------------------------------------------
def _starts_with(g: GraphBuilder, data: str, pattern: list[int], at_end: bool = False) -> str:
    """bool scalar: ``data`` begins (or ends) with ``pattern``; short data is padded with zeros first."""
    n = len(pattern)
    zeros = g.const(np.zeros(n, np.uint8))
    padded = g.op("Concat", [zeros, data] if at_end else [data, zeros], axis=0)
    start, end = ([-n], [np.iinfo(np.int64).max]) if at_end else ([0], [n])
    head = g.op("Slice", [padded, g.const(start, np.int64), g.const(end, np.int64)])
    same = g.op("Cast", [g.op("Equal", [head, g.const(np.array(pattern, np.uint8))])], to=INT32)
    return g.op("Equal", [g.op("ReduceMin", [same], keepdims=0), g.const(1, np.int32)])


def decode(g: GraphBuilder, data: str) -> str:
    """Encoded bytes -> HWC uint8 RGB, refusing anything but a complete PNG or JPEG (see the module doc)."""
    is_png = _starts_with(g, data, PNG_SIGNATURE)
    is_jpeg = g.op("And", [_starts_with(g, data, JPEG_START), _starts_with(g, data, JPEG_END, at_end=True)])
    accepted = g.op("Or", [is_png, is_jpeg])
    keep = g.op("Expand", [accepted, g.op("Shape", [data])])
    guarded = g.op("Compress", [data, keep], axis=0)
    return g.op("DecodeImage", [guarded], domain=EXTENSIONS, name=DECODE_NODE, color_space="rgb")


# --- resize, crop, normalise --------------------------------------------------------------------------------
def preprocess(g: GraphBuilder, hwc: str, spec: ImageSpec) -> str:
    """HWC uint8 (1 or 3 channels) -> [1, 3, H, W] float32 pixel values."""
    rgb = g.op("Expand", [hwc, g.const([1, 1, 3], np.int64)], name=CHANNELS_NODE)
    nchw = g.op("Unsqueeze", [g.op("Transpose", [rgb], perm=[2, 0, 1]), g.const([0], np.int64)])
    x = g.op("Cast", [nchw], to=FLOAT)  # float32 holding integer levels 0..255
    if spec.resize_mode != "none":
        x = _resize(g, x, spec)
    if spec.convention == "torchvision":
        crop = spec.crop_size or (spec.size if spec.resize_mode in ("fit_shortest", "fit_longest") else None)
        if crop:
            x = _torchvision_crop(g, x, crop, spec.fill if spec.resize_mode == "fit_longest" else 0)
    elif spec.crop_size:
        x = _center_crop(g, x, spec.crop_size)
    return _normalise(g, x, spec)


def _dims(g: GraphBuilder, x: str) -> tuple[str, str]:
    shape = g.op("Shape", [x])
    return (
        g.op("Gather", [shape, g.const(2, np.int64)], axis=0),
        g.op("Gather", [shape, g.const(3, np.int64)], axis=0),
    )


def _target_size(g: GraphBuilder, height: str, width: str, spec: ImageSpec) -> tuple[str, str]:
    """(new height, new width) int64 scalars: the spec's size, or the short side to ``size`` with the long side
    ``int(size * long / short)`` computed in float64 as Python does."""
    if spec.resize_mode == "exact":
        return g.const(spec.size[0], np.int64), g.const(spec.size[1], np.int64)
    if spec.resize_mode in ("fit_shortest", "fit_longest"):
        return _fit_size(g, height, width, spec)
    target = g.const(spec.size[0], np.int64)
    short, long = g.op("Min", [height, width]), g.op("Max", [height, width])
    as_double = [g.op("Cast", [v], to=DOUBLE) for v in (target, long, short)]
    scaled = g.op("Div", [g.op("Mul", as_double[:2]), as_double[2]])
    new_long = g.op("Cast", [g.op("Floor", [scaled])], to=INT64)
    portrait = g.op("LessOrEqual", [width, height])
    return g.op("Where", [portrait, new_long, target]), g.op("Where", [portrait, target, new_long])


def _fit_size(g: GraphBuilder, height: str, width: str, spec: ImageSpec) -> tuple[str, str]:
    """open_clip's ``ResizeKeepRatio`` as ``runtime.images.fit_size``: the short (fit_shortest) or long
    (fit_longest) side's ratio to ``spec.size`` in float64, sides rounded half to even (ONNX ``Round``, as Python's
    ``round``). A side that rounds to 0 pixels fails in ``Resize`` (the runtime refuses such images by name)."""
    h, w = (g.op("Cast", [v], to=DOUBLE) for v in (height, width))
    ratio_h = g.op("Div", [h, g.const(float(spec.size[0]), np.float64)])
    ratio_w = g.op("Div", [w, g.const(float(spec.size[1]), np.float64)])
    ratio = g.op("Max" if spec.resize_mode == "fit_longest" else "Min", [ratio_h, ratio_w])
    return tuple(g.op("Cast", [g.op("Round", [g.op("Div", [v, ratio])])], to=INT64) for v in (h, w))


def _resize(g: GraphBuilder, x: str, spec: ImageSpec) -> str:
    height, width = _dims(g, x)
    new_h, new_w = _target_size(g, height, width, spec)
    shrink_h, shrink_w = g.op("Sub", [height, new_h]), g.op("Sub", [width, new_w])
    twice_w = g.op("Mul", [shrink_w, g.const(2, np.int64)])
    height_first = g.op(
        "And", [g.op("Greater", [shrink_h, g.const(0, np.int64)]), g.op("Greater", [shrink_h, twice_w])]
    )
    mode = RESIZE_MODES[spec.resample]
    sizes = {
        2: g.op("Unsqueeze", [new_h, g.const([0], np.int64)]),
        3: g.op("Unsqueeze", [new_w, g.const([0], np.int64)]),
    }
    then_branch = _two_passes(g, x, sizes, (2, 3), mode, "then")
    else_branch = _two_passes(g, x, sizes, (3, 2), mode, "else")
    return g.op("If", [height_first], then_branch=then_branch, else_branch=else_branch)


def _two_passes(g: GraphBuilder, x: str, sizes: dict, order: tuple[int, int], mode: str, tag: str):
    """A subgraph resizing axis ``order[0]`` then ``order[1]``, rounding to uint8 levels after each pass."""
    from onnx import helper

    sub = GraphBuilder(f"{g.prefix}{tag}/")
    low, high, half = (sub.const(v, np.float32) for v in (0.0, 255.0, 0.5))
    y = x
    for axis in order:
        y = sub.op(
            "Resize",
            [y, "", "", sizes[axis]],
            mode=mode,
            axes=[axis],
            antialias=1,
            exclude_outside=1,
            cubic_coeff_a=-0.5,
            coordinate_transformation_mode="half_pixel",
        )
        rounded = sub.op("Floor", [sub.op("Add", [y, half])])  # PIL rounds halves up (fixed point + 2^21 >> 22)
        y = sub.op("Clip", [rounded, low, high])
    out = helper.make_tensor_value_info(y, FLOAT, None)
    return helper.make_graph(sub.nodes, f"{sub.prefix}graph", [], [out], sub.initializers)


def _center_crop(g: GraphBuilder, x: str, crop: tuple[int, int]) -> str:
    """HF's centre crop: zero-pad to at least the crop size (``ceil(missing / 2)`` before), then cut the middle."""
    height, width = _dims(g, x)
    zero, one, two = (g.const(v, np.int64) for v in (0, 1, 2))
    sizes = [g.const(crop[0], np.int64), g.const(crop[1], np.int64)]

    def vector(values):
        return g.op("Concat", [g.op("Unsqueeze", [v, g.const([0], np.int64)]) for v in values], axis=0)

    missing = [g.op("Max", [g.op("Sub", [c, d]), zero]) for c, d in zip(sizes, (height, width))]
    before = [g.op("Div", [g.op("Add", [m, one]), two]) for m in missing]
    after = [g.op("Sub", [m, b]) for m, b in zip(missing, before)]
    padded = g.op("Pad", [x, vector(before + after), g.const(0.0, np.float32), g.const([2, 3], np.int64)])
    new_dims = [g.op("Max", [c, d]) for c, d in zip(sizes, (height, width))]
    starts = [g.op("Div", [g.op("Sub", [d, c]), two]) for d, c in zip(new_dims, sizes)]
    ends = [g.op("Add", [s, c]) for s, c in zip(starts, sizes)]
    return g.op("Slice", [padded, vector(starts), vector(ends), g.const([2, 3], np.int64)])


def _torchvision_crop(g: GraphBuilder, x: str, crop: tuple[int, int], fill: int) -> str:
    """torchvision's ``center_crop`` as ``runtime.images.torchvision_crop``: pad a smaller image with ``fill``
    (``missing // 2`` before, the rest after), then crop at offsets ``round((side - crop) / 2)`` rounded half to
    even (0 where the padded side equals the crop)."""
    height, width = _dims(g, x)
    zero, two = g.const(0, np.int64), g.const(2, np.int64)
    sizes = [g.const(crop[0], np.int64), g.const(crop[1], np.int64)]

    def vector(values):
        return g.op("Concat", [g.op("Unsqueeze", [v, g.const([0], np.int64)]) for v in values], axis=0)

    missing = [g.op("Max", [g.op("Sub", [c, d]), zero]) for c, d in zip(sizes, (height, width))]
    before = [g.op("Div", [m, two]) for m in missing]
    after = [g.op("Sub", [m, b]) for m, b in zip(missing, before)]
    padded = g.op("Pad", [x, vector(before + after), g.const(float(fill), np.float32), g.const([2, 3], np.int64)])
    extra = [g.op("Sub", [g.op("Max", [c, d]), c]) for c, d in zip(sizes, (height, width))]
    halves = [g.op("Div", [g.op("Cast", [e], to=DOUBLE), g.const(2.0, np.float64)]) for e in extra]
    starts = [g.op("Cast", [g.op("Round", [h])], to=INT64) for h in halves]
    ends = [g.op("Add", [s, c]) for s, c in zip(starts, sizes)]
    return g.op("Slice", [padded, vector(starts), vector(ends), g.const([2, 3], np.int64)])


def lookup_table(spec: ImageSpec) -> np.ndarray:
    """[3 * 256] float32: level v of channel c at ``c * 256 + v``, computed by the Python runtime itself."""

    levels = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], 3, axis=2)  # HWC: 256 x 1 x 3
    return to_pixel_values([levels], spec)[0, :, :, 0].reshape(-1).astype(np.float32)


def _normalise(g: GraphBuilder, x: str, spec: ImageSpec) -> str:
    offsets = g.const(np.arange(3, dtype=np.int64).reshape(1, 3, 1, 1) * 256)
    index = g.op("Add", [g.op("Cast", [x], to=INT64), offsets])
    return g.op("Gather", [g.const(lookup_table(spec), hint="normalise_table"), index], axis=0)
