"""Does ``min_score="auto"`` say "no match" when the library holds nothing of what was asked, and find the images
when it does? Measured on the trained shapes fixture (tiny CLIP and SigLIP trained on 20 coloured-shape classes)
with some classes held out of the index, over several random held-out splits.

    python benchmarks/bench_relevance.py [--family clip] [--splits 8] [--held 5] [--k 10]

Library: the test split (10 unseen images per class) minus the held-out classes. Queries: every class name in
the 10 training caption templates and bare ("red circle"), 220 per split; a query of a held-out class is
*absent* (the right answer is no match), the others *present*. Per method, over all splits:

- match precision: of the queries answered with hits, the share that were present;
- match recall: of the present queries, the share answered with hits;
- absent->none: of the absent queries, the share answered "no match";
- hit precision / recall: among the top k of present queries, the kept hits of the query's class / all of them.

Candidates (each a per-query cutoff on the cosine; hits below it are dropped):

- ``z 2.5``: robust z-score of the top hit over the library's scores for the query (median, 1.4826 MAD) >= 2.5;
- ``z vocab``: the same z, its threshold split from the z-scores of the generic vocabulary's captions;
- ``gap 0.3``: the largest drop among the top fifth of sorted scores >= 0.3 x (top - median), cut at the drop;
- ``compete``: a hit is kept when the query scores it at least as high as any vocabulary caption does;
- ``vocab split`` (chosen, ``clipforge.index.relevance``): one cutoff per library, the two-group split of the
  vocabulary captions' best scores in the library;
- ``split+compete``: both.

The ``Index auto`` row runs the real path (``Index.search(text, min_score="auto")`` on a SQLite index of the same
images) and must equal ``vocab split``. Set ``CLIPFORGE_FIXTURE_CACHE`` to reuse the trained checkpoints."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import WORK  # before clipforge: the torchvision import guard, offline mode

from clipforge.export import ExportOptions, export_model
from clipforge.index import Index
from clipforge.index.relevance import split_scores
from clipforge.runtime.model import ZeroShotModel
from clipforge.testing.corpus import NOUNS, TEMPLATES
from clipforge.testing.shapes import shapes_dataset
from clipforge.testing.trained import split_files, trained_checkpoint
from clipforge.zeroshot.vocabulary import captions as vocabulary

COLUMNS = ("match prec", "match rec", "absent->none", "hit prec", "hit rec")


def load(family: str, work: Path) -> ZeroShotModel:
    out = work / f"{family}-onnx"
    if not (out / "manifest.json").is_file():
        export_model(trained_checkpoint(family), out, ExportOptions(validate=False), show_progress=False)
    return ZeroShotModel.from_onnx(out, threads=1)


def robust(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: median and 1.4826 x median absolute deviation (the normal-consistent spread)."""
    med = np.median(scores, 1)
    return med, 1.4826 * np.median(np.abs(scores - med[:, None]), 1) + 1e-6


def candidates(scores: np.ndarray, vocab_scores: np.ndarray) -> dict[str, np.ndarray]:
    """Method -> kept mask [queries, images] (``scores``: queries x images; ``vocab_scores``: captions x images)."""
    med, mad = robust(scores)
    z = (scores.max(1) - med) / mad
    vmed, vmad = robust(vocab_scores)
    z_cut = split_scores((vocab_scores.max(1) - vmed) / vmad)[0]
    cutoff = split_scores(vocab_scores.max(1))[0]
    ranked = -np.sort(-scores, 1)
    m = max(3, scores.shape[1] // 5)
    drops = ranked[:, : m - 1] - ranked[:, 1:m]
    at = drops.argmax(1)
    gap_ok = drops.max(1) >= 0.3 * (ranked[:, 0] - med)
    gap_cut = np.where(gap_ok, ranked[np.arange(len(scores)), at], np.inf)
    compete = scores >= vocab_scores.max(0)[None, :]
    return {
        "z 2.5": scores >= (med + 2.5 * mad)[:, None],
        "z vocab": (z >= z_cut)[:, None] & (scores >= (med + z_cut * mad)[:, None]),
        "gap 0.3": scores >= gap_cut[:, None],
        "compete": compete,
        "vocab split": scores >= cutoff,
        "split+compete": (scores >= cutoff) & compete,
    }


def measure(kept: np.ndarray, scores: np.ndarray, query_class, image_class, absent, k: int) -> np.ndarray:
    """The five figures of one split (see the module doc), from the top ``k`` hits of each query."""
    top = np.argsort(-scores, 1, kind="stable")[:, :k]
    kept = np.take_along_axis(kept, top, 1)
    right = image_class[top] == query_class[:, None]
    answered, present = kept.any(1), ~absent
    on_present = kept & present[:, None]
    return np.array(
        [
            (answered & present).sum() / max(1, answered.sum()),
            (answered & present).sum() / max(1, present.sum()),
            (~answered & absent).sum() / max(1, absent.sum()),
            (on_present & right).sum() / max(1, on_present.sum()),
            (on_present & right).sum() / max(1, (right & present[:, None]).sum()),
        ]
    )


def index_auto(model, paths, embeddings, texts, k: int, work: Path) -> np.ndarray:
    """Kept mask [queries, images] from ``Index.search(text, min_score="auto")`` on a SQLite index."""
    with tempfile.TemporaryDirectory(dir=work) as tmp, Index(Path(tmp) / "lib.db", model) as idx:
        idx.upsert([(str(p), 1, 0.0, f"{i:064x}", e) for i, (p, e) in enumerate(zip(paths, embeddings))])
        row = {str(p): i for i, p in enumerate(paths)}
        kept = np.zeros((len(texts), len(paths)), bool)
        for q, text in enumerate(texts):
            for hit in idx.search(text, k=k, min_score="auto"):
                kept[q, row[hit.path]] = True
        return kept


def run_family(family: str, args, work: Path) -> None:
    start = time.perf_counter()
    model = load(family, work)
    dataset = shapes_dataset()
    files = split_files(dataset, "test")
    paths = [p for p, _ in files]
    labels = np.array([label for _, label in files])
    images = model.embed_images([str(p) for p in paths])
    names = dataset.class_names
    forms = [*TEMPLATES, "{}"]
    texts = [f.format(n) for f in forms for n in names]
    query_class = np.tile(np.arange(len(names)), len(forms))
    queries = model.embed_texts(texts)
    vocab = model.embed_texts(vocabulary())
    nouns = model.embed_texts([TEMPLATES[0].format(n) for n in NOUNS])
    rng = np.random.default_rng(args.seed)
    figures: dict[str, list[np.ndarray]] = {}
    nouns_none, cutoffs = [], []
    for _ in range(args.splits):
        held = rng.choice(len(names), args.held, replace=False)
        keep = ~np.isin(labels, held)
        lib, lib_class = images[keep], labels[keep]
        scores, vocab_scores = queries @ lib.T, vocab @ lib.T
        absent = np.isin(query_class, held)
        methods = candidates(scores, vocab_scores)
        methods["Index auto"] = index_auto(model, [paths[i] for i in np.flatnonzero(keep)], lib, texts, args.k, work)
        for name, kept in methods.items():
            figures.setdefault(name, []).append(measure(kept, scores, query_class, lib_class, absent, args.k))
        cutoff = split_scores(vocab_scores.max(1))[0]
        cutoffs.append(cutoff)
        nouns_none.append(float(((nouns @ lib.T).max(1) < cutoff).mean()))
    print(
        f"\n{family}: {args.splits} splits, {args.held} of {len(names)} classes held out, library "
        f"{int((~np.isin(labels, held)).sum())} images, {len(texts)} queries per split, top {args.k}; "
        f"auto cutoff {min(cutoffs):.3f}..{max(cutoffs):.3f} ({time.perf_counter() - start:.0f} s)"
    )
    print(f"{'method':<15}" + "".join(f"{c:>14}" for c in COLUMNS))
    for name, rows in figures.items():
        print(f"{name:<15}" + "".join(f"{100 * v:>13.1f}%" for v in np.mean(rows, 0)))
    print(
        f"untrained words ('{TEMPLATES[0].format(NOUNS[0])}', ... {len(NOUNS)} nouns the model never saw in a "
        f"caption): vocab split answers no match for {100 * np.mean(nouns_none):.1f}%"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=("clip", "siglip"), action="append", help="default: both")
    parser.add_argument("--splits", type=int, default=8, help="random held-out splits")
    parser.add_argument("--held", type=int, default=5, help="classes held out of the index in each split")
    parser.add_argument("--k", type=int, default=10, help="hits per query")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = WORK / "relevance"
    work.mkdir(parents=True, exist_ok=True)
    for family in args.family or ("clip", "siglip"):
        run_family(family, args, work)


if __name__ == "__main__":
    main()
