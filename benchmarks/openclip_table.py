"""The architecture table of docs/openclip.md: every ``open_clip.list_models()`` architecture with random
weights, saved in open_clip's hub layout and exported + validated by clipforge, one subprocess per architecture
(with a timeout). Results are appended to a JSON-lines file as they come, so an interrupted run keeps its rows;
``--markdown`` renders the table from that file.

    python benchmarks/openclip_table.py --out table.jsonl [--timeout 240] [--max-params-m 200] [--only RN50,...]
    python benchmarks/openclip_table.py --out table.jsonl --markdown > table.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER = r"""
import json, shutil, sys, tempfile, time
from pathlib import Path
arch, root = sys.argv[1], Path(sys.argv[2])
row = {"arch": arch}
try:
    from clipforge.testing.tiny_openclip import random_model, save_hub_layout
    from clipforge.export.openclip_io import import_open_clip
    open_clip = import_open_clip()
    config = open_clip.get_model_config(arch)
    model = random_model(config)
    row["params_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 1)
    folder = save_hub_layout(model, config, root / "ckpt")
    del model
    from clipforge.export import export_model
    start = time.perf_counter()
    result = export_model(folder, root / "out", show_progress=False)
    row["export_seconds"] = round(time.perf_counter() - start, 1)
    v = result.manifest.validation
    row["max_abs_diff"] = max(v["image-encoder"]["max_abs_diff"], v["text-encoder"]["max_abs_diff"])
    row["towers"] = {r: t.get("arch") for r, t in result.manifest.towers.items()}
    row["exports"] = True
except BaseException as exc:
    row["exports"] = False
    row["reason"] = (type(exc).__name__ + ": " + (str(exc).strip().splitlines() or [""])[0])[:240]
print("ROW " + json.dumps(row))
"""


def estimated_params_m(config: dict) -> float:
    """A rough size from the config alone (12 * layers * width^2 per transformer encoder), to skip huge ones
    before building them."""
    total = 0.0
    for key in ("vision_cfg", "text_cfg"):
        cfg = config.get(key, {})
        layers, width = cfg.get("layers", 12), cfg.get("width", 768)
        layers = sum(layers) if isinstance(layers, (list, tuple)) else layers
        total += 12 * layers * width * width
        if "timm_model_name" in cfg or "hf_model_name" in cfg:
            total = max(total, 1e8)
    return total / 1e6


def run_arch(arch: str, timeout: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, "-c", WORKER, arch, tmp], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return {"arch": arch, "exports": False, "reason": f"not measured: over the {timeout} s timeout"}
        rows = [line[4:] for line in proc.stdout.splitlines() if line.startswith("ROW ")]
        if not rows:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:240]
            return {"arch": arch, "exports": False, "reason": f"worker died (code {proc.returncode}): {tail}"}
        return {**json.loads(rows[0]), "wall_seconds": round(time.perf_counter() - start, 1)}


def markdown(rows: list[dict]) -> str:
    lines = [
        "| architecture | exports | image / text encoder | max abs diff | export s | params (M) | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["arch"].lower()):
        towers = r.get("towers") or {}
        arches = " / ".join(str(towers.get(k, "")) for k in ("image-encoder", "text-encoder")) if towers else ""
        diff = f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else ""
        exports = {True: "yes", False: "no", None: "?"}[r["exports"]]
        lines.append(
            f"| {r['arch']} | {exports} | {arches} | {diff} | "
            f"{r.get('export_seconds', '')} | {r.get('params_m', '')} | {r.get('reason', '')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--timeout", type=int, default=240)
    parser.add_argument("--max-params-m", type=float, default=200.0)
    parser.add_argument("--only", default=None)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--static-only", action="store_true", help="only the rows known without an export")
    args = parser.parse_args()
    done = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.is_file() else []
    from clipforge.export.openclip_io import import_open_clip

    open_clip = import_open_clip()
    if args.markdown:
        seen = {r["arch"] for r in done}
        missing = [
            {"arch": a, "exports": None, "reason": "not measured in this run (time on 2 shared cores)"}
            for a in open_clip.list_models()
            if a not in seen
        ]
        print(markdown(done + missing))
        return
    seen = {r["arch"] for r in done}
    archs = args.only.split(",") if args.only else open_clip.list_models()
    for arch in [a for a in archs if a not in seen]:
        config = open_clip.get_model_config(arch) or {}
        size = estimated_params_m(config)
        hf_tokenizer = config.get("text_cfg", {}).get("hf_tokenizer_name")
        if hf_tokenizer:  # refused by clipforge before any export (export.openclip_io), no need to build it
            row = {
                "arch": arch,
                "exports": False,
                "reason": f"not supported yet: its tokenizer is HF's {hf_tokenizer} (only open_clip's CLIP BPE "
                "is reproduced without torch)",
            }
        elif args.static_only:
            continue
        elif size > args.max_params_m:
            row = {
                "arch": arch,
                "exports": False,
                "reason": f"skipped: ~{size:.0f}M parameters estimated, over the {args.max_params_m:.0f}M limit "
                "of this run (2 shared cores, timeout per architecture)",
            }
        else:
            row = run_arch(arch, args.timeout)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(arch, "yes" if row["exports"] else f"no: {row.get('reason')}", flush=True)


if __name__ == "__main__":
    main()
