"""The architecture table of docs/openclip.md: every ``open_clip.list_models()`` architecture with random
weights, saved in open_clip's hub layout and exported + validated by clipforge in worker processes (several
architectures each, imports paid once; a timeout per architecture, after which a new worker goes on). Rows are
appended to a JSON-lines file as they come, so an interrupted run keeps its rows (the last row of an architecture
wins); ``--markdown`` renders the table from that file.

Depth is capped (``--max-depth``, default 2): every transformer, ResNet stage list, timm trunk and CoCa decoder
keeps its real widths, heads, patch size, image size, tokenizer and pre-processing (that of the architecture's
first open_clip pretrained tag) but at most ``--max-depth`` blocks per stack/stage. Each row says what was capped
(``layers_capped``: real -> measured) and both parameter counts (``params_m`` measured, ``params_m_full`` real).
Batch norms and layer scales get random values of order one (``tiny_fastvit.randomize_train_state``), so a wrong
fold or a dropped branch cannot hide behind identity statistics.

    nice -n 10 python benchmarks/openclip_table.py --out docs/openclip_table.jsonl --no-hf --keep --jobs 2
    python benchmarks/openclip_table.py --out docs/openclip_table.jsonl --only-hf    # the HF-tokenizer rows
    python benchmarks/openclip_table.py --out docs/openclip_table.jsonl --only RN50,ViT-B-32 --max-depth 0
    python benchmarks/openclip_table.py --out docs/openclip_table.jsonl --markdown > table.md
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

WORKER_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # one torch thread per worker: the run shares a few cores
STAGE_KWARGS = ("depths", "layers")  # timm's per-stage depth argument (ConvNeXt/Swin, FastViT)


def is_hf_text(config: dict) -> bool:
    text = config.get("text_cfg", {})
    return bool(text.get("hf_tokenizer_name") or text.get("hf_model_name"))


def _cap(depth, limit: int):
    if isinstance(depth, (list, tuple)):
        return [min(d, limit) for d in depth]
    return min(depth, limit)


def cap_config(config: dict, limit: int) -> tuple[dict, dict]:
    """``config`` with every open_clip-built stack at most ``limit`` deep, and {"tower": "real -> capped"}.
    timm trunks are capped in the worker (``capped_timm``), since their depth is not a config field."""
    config, caps = copy.deepcopy(config), {}
    if limit <= 0:
        return config, caps
    for key in ("vision_cfg", "text_cfg", "multimodal_cfg"):
        cfg = config.get(key)
        if not cfg or "layers" not in cfg or cfg.get("timm_model_name") or cfg.get("hf_model_name"):
            continue
        capped = _cap(cfg["layers"], limit)
        if capped != cfg["layers"]:
            caps[key.removesuffix("_cfg")] = f"{cfg['layers']} -> {capped}"
            cfg["layers"] = capped
    return config, caps


def capped_timm(name: str, limit: int) -> tuple[str, str] | None:
    """Register in timm (this process only) ``name`` with at most ``limit`` blocks per stack/stage; returns
    (registered name, "real -> capped") or None when it is shallow enough already."""
    import timm
    import torch
    from timm.models import register_model

    with torch.device("meta"):
        trunk = timm.create_model(name)
    if hasattr(trunk, "blocks"):
        real, kwargs = len(trunk.blocks), {"depth": min(len(trunk.blocks), limit)}
    else:
        stages = getattr(trunk, "stages", None) or trunk.layers
        real = [len(s.blocks) for s in stages]
        arg = next(k for k in STAGE_KWARGS if k in type(trunk).__init__.__code__.co_varnames)
        kwargs = {arg: tuple(_cap(real, limit))}
    capped = next(iter(kwargs.values()))
    capped = list(capped) if isinstance(capped, tuple) else capped
    if capped == real:
        return None
    new_name = f"{name}_capped{limit}"

    def entry(pretrained=False, **kw):
        return timm.create_model(name, pretrained=pretrained, **{**kwargs, **kw})

    entry.__name__ = new_name
    if not timm.is_model(new_name):
        register_model(entry)
    return new_name, f"{name} {real} -> {capped}"


def _preprocess(open_clip, arch: str) -> dict:
    """The pre-processing of the architecture's first pretrained tag (open_clip's defaults without one)."""
    tags = open_clip.list_pretrained_tags_by_model(arch)
    cfg = open_clip.get_pretrained_cfg(arch, tags[0]) if tags else {}
    return {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}


def _params_m(model) -> float:
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 1)


def _full_params_m(open_clip, arch: str) -> float | None:
    import torch

    try:
        with torch.device("meta"):
            return _params_m(open_clip.create_model(arch, pretrained_text=False, device="meta"))
    except Exception:  # a size for the row only; the export below says whether the architecture works
        return None


def _build(open_clip, arch: str, limit: int, root: Path, row: dict) -> Path:
    """A random-weight hub-layout folder for ``arch``, capped to ``limit`` blocks per stack."""
    import torch

    from clipforge.testing.hf_stand_ins import offline_config
    from clipforge.testing.tiny_fastvit import randomize_train_state
    from clipforge.testing.tiny_openclip import save_hub_layout

    config, caps = cap_config(open_clip.get_model_config(arch), limit)
    text = config.get("text_cfg", {})
    if {"hf_model_name", "hf_tokenizer_name"} & set(text):  # no hub here: local stand-ins, real dimensions
        row["hf_stand_in"] = {k: text[k] for k in ("hf_model_name", "hf_tokenizer_name") if k in text}
        config = offline_config(config)
        if "hf_model_name" in config["text_cfg"]:
            config["text_cfg"]["hf_model_pretrained"] = False
            if limit > 0:  # a HF text encoder too big for this machine's memory (mT5-XL) is capped too
                _cap_hf_text(config["text_cfg"], limit, root / "text-model", caps)
    vision = config["vision_cfg"]
    if limit > 0 and vision.get("timm_model_name"):
        capped = capped_timm(vision["timm_model_name"], limit)
        if capped:
            vision["timm_model_name"], caps["vision"] = capped
    if caps:
        row["layers_capped"] = caps
    folder = root / "ckpt"
    save_hub_layout_config(folder, config, _preprocess(open_clip, arch))
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{folder}", load_weights=False, pretrained_text=False).eval()
    randomize_train_state(model)
    row["params_m"] = _params_m(model)
    save_hub_layout(model, config, folder, json.loads((folder / "open_clip_config.json").read_text())["preprocess_cfg"])
    return folder


HF_TEXT_MAX_PARAMS = 6e8
HF_DEPTH_KEYS = ("num_hidden_layers", "num_layers", "encoder_layers", "num_decoder_layers", "decoder_layers")


def _cap_hf_text(text_cfg: dict, limit: int, folder: Path, caps: dict) -> None:
    """Point ``text_cfg.hf_model_name`` at a copy of its (stand-in) config with at most ``limit`` layers, when its
    transformer blocks alone hold over HF_TEXT_MAX_PARAMS (12 * width^2 per layer)."""
    source = Path(text_cfg["hf_model_name"])
    hf = json.loads((source / "config.json").read_text())
    real = {k: hf[k] for k in HF_DEPTH_KEYS if isinstance(hf.get(k), int) and hf[k] > limit}
    width = hf.get("hidden_size") or hf.get("d_model") or 0
    if not real or 12 * width**2 * max(real.values()) <= HF_TEXT_MAX_PARAMS:
        return
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({**hf, **dict.fromkeys(real, limit)}))
    text_cfg["hf_model_name"] = str(folder)
    caps["text"] = ", ".join(f"{k} {v} -> {limit}" for k, v in real.items())


def save_hub_layout_config(folder: Path, config: dict, preprocess: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pre = {"size": config["vision_cfg"].get("image_size", 224), **preprocess}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": pre}))


def worker(arch: str, root: Path, limit: int) -> dict:
    """Build, export and validate one architecture in this process; the row (never raises)."""
    row: dict = {"arch": arch}
    try:
        from clipforge.export import export_model
        from clipforge.families.openclip_io import import_open_clip

        open_clip = import_open_clip()
        row["params_m_full"] = _full_params_m(open_clip, arch)
        folder = _build(open_clip, arch, limit, root, row)
        start = time.perf_counter()
        result = export_model(folder, root / "out", show_progress=False)
        row["export_seconds"] = round(time.perf_counter() - start, 1)
        v = result.manifest.validation
        row["max_abs_diff"] = max(v["image-encoder"]["max_abs_diff"], v["text-encoder"]["max_abs_diff"])
        row["towers"] = {r: t.get("arch") for r, t in result.manifest.towers.items()}
        row["exports"] = True
    except BaseException as exc:  # the row records any failure, the parent process goes on
        row["exports"] = False
        row["reason"] = (type(exc).__name__ + ": " + (str(exc).strip().splitlines() or [""])[0])[:300]
    return row


def run_chunk(archs: list[str], timeout: int, limit: int, emit) -> None:
    """Measure ``archs`` in one worker process (imports paid once), calling ``emit(row)`` as each row comes;
    an architecture over ``timeout`` seconds, or one that kills the worker, gets its row and the rest go on in a
    new worker."""
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "stderr", "w+") as err:
        cmd = [sys.executable, __file__, "--worker", ",".join(archs), tmp, "--max-depth", str(limit)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=WORKER_ENV)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
        for i, arch in enumerate(archs):
            row, alive = _next_row(lines, proc, arch, timeout, err)
            emit({**row, "max_depth": limit})
            if not alive:
                proc.kill()
                proc.wait()
                if archs[i + 1 :]:
                    run_chunk(archs[i + 1 :], timeout, limit, emit)
                return
        proc.wait()


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _next_row(lines: queue.Queue, proc, arch: str, timeout: int, err) -> tuple[dict, bool]:
    """The worker's row for ``arch`` and whether the worker goes on, or a row saying why it stopped."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            return {"arch": arch, "exports": False, "reason": f"over the {timeout} s timeout of this run"}, False
        if line is None:
            proc.wait()
            err.seek(0)
            tail = (err.read().strip().splitlines() or ["no output"])[-1][:240]
            return {"arch": arch, "exports": False, "reason": f"worker died (code {proc.returncode}): {tail}"}, False
        if line.startswith("ROW "):
            return json.loads(line[4:]), True


def _depth_note(r: dict) -> str:
    if r.get("max_depth") == 0:
        return "none (real depth)"
    caps = r.get("layers_capped") or {}
    return "; ".join(f"{k} {v}" for k, v in caps.items())


def markdown(rows: list[dict]) -> str:
    lines = [
        "| architecture | exports | image / text encoder | max abs diff | export s | params (M) measured / real "
        "| depth capped (real -> measured) | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["arch"].lower()):
        towers = r.get("towers") or {}
        arches = " / ".join(str(towers.get(k, "")) for k in ("image-encoder", "text-encoder")) if towers else ""
        diff = f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else ""
        exports = {True: "yes", False: "no", None: "?"}[r["exports"]]
        params = " / ".join(str(r[k]) for k in ("params_m", "params_m_full") if r.get(k) is not None)
        lines.append(
            f"| {r['arch']} | {exports} | {arches} | {diff} | {r.get('export_seconds', '')} | {params} | "
            f"{_depth_note(r)} | {r.get('reason', '')} |"
        )
    yes = [r for r in rows if r["exports"] is True]
    real = sum(r.get("max_depth") == 0 for r in yes)
    lines.append("")
    lines.append(
        f"{len(yes)} of {len(rows)} architectures export and validate ({100 * len(yes) / len(rows):.1f}%): "
        f"{real} at their real depth, {len(yes) - real} with depth capped."
    )
    return "\n".join(lines)


def read_rows(path: Path) -> dict[str, dict]:
    """The last row of each architecture."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    return {r["arch"]: r for r in rows}


def _cost(open_clip, arch: str) -> tuple:
    """A rough order, cheap ones first (from the config alone): image size, then text width."""
    config = open_clip.get_model_config(arch) or {}
    vision, text = config.get("vision_cfg", {}), config.get("text_cfg", {})
    return vision.get("image_size", 224), text.get("width", 0), arch


def _retry(row: dict) -> bool:
    """A row that says nothing about the architecture (the run's timeout, a killed worker)."""
    return row.get("reason", "").startswith(("over the", "worker died"))


def _select(open_clip, args) -> list[str]:
    archs = args.only.split(",") if args.only else open_clip.list_models()
    hf = {a for a in archs if is_hf_text(open_clip.get_model_config(a) or {})}
    if args.only_hf:
        return [a for a in archs if a in hf]
    if args.no_hf:
        return [a for a in archs if a not in hf]
    return archs


def _write_rows(path: Path, rows: dict[str, dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows.values()))
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path)
    parser.add_argument("--timeout", type=int, default=300)
    parser.add_argument("--max-depth", type=int, default=2, help="blocks per stack/stage at most; 0: real depth")
    parser.add_argument("--only", default=None, help="comma-separated architectures")
    parser.add_argument("--only-hf", action="store_true", help="only the architectures with a HF text tower")
    parser.add_argument("--no-hf", action="store_true", help="skip the architectures with a HF text tower")
    parser.add_argument("--keep", action="store_true", help="skip architectures with a row at this --max-depth")
    parser.add_argument("--jobs", type=int, default=1, help="architectures measured at once")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("ARCH", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        for i, arch in enumerate(args.worker[0].split(",")):
            start = time.perf_counter()
            folder = Path(args.worker[1]) / str(i)
            row = worker(arch, folder, args.max_depth)
            shutil.rmtree(folder, ignore_errors=True)  # a big architecture's files are gigabytes
            row["wall_seconds"] = round(time.perf_counter() - start, 1)
            print("ROW " + json.dumps(row), flush=True)
        return
    from clipforge.families.openclip_io import import_open_clip

    open_clip = import_open_clip()
    rows = read_rows(args.out)
    if args.markdown:
        missing = {a: {"arch": a, "exports": None, "reason": "no row"} for a in open_clip.list_models()}
        print(markdown(list({**missing, **rows}.values())))
        return
    done = {a for a, r in rows.items() if args.keep and r.get("max_depth") == args.max_depth and not _retry(r)}
    todo = sorted((a for a in _select(open_clip, args) if a not in done), key=lambda a: _cost(open_clip, a))
    lock = threading.Lock()

    def emit(row: dict) -> None:
        with lock, args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(row["arch"], "yes" if row["exports"] else f"no: {row.get('reason')}", row.get("wall_seconds"), flush=True)

    chunks = [todo[i :: args.jobs] for i in range(args.jobs)]
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda chunk: run_chunk(chunk, args.timeout, args.max_depth, emit), [c for c in chunks if c]))
    _write_rows(args.out, read_rows(args.out))


if __name__ == "__main__":
    main()
