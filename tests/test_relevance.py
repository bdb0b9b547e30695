"""``min_score="auto"`` (``clipforge.index.relevance``): the cutoff's arithmetic and input parsing (fast), and on
the trained shapes fixture with classes held out of the index: absent classes mostly answer "no match", present
ones their images, through ``Index.search``, ``clipforge search --min-score auto`` and ``POST /v1/search``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from clipforge.cli.main import main
from clipforge.errors import InputError
from clipforge.index import Index
from clipforge.index.relevance import (
    AUTO,
    Relevance,
    calibrate,
    model_key,
    parse_min_score,
    split_scores,
    vocabulary_embeddings,
)

FORMS = ["a photo of a {}.", "a drawing of a {}", "{}"]  # a training template, another, and the bare name
SPLITS, HELD = 3, 5


# --- fast: arithmetic and parsing -----------------------------------------------------------------------------
def test_split_falls_between_two_groups():
    rng = np.random.default_rng(0)
    low, high = rng.normal(0.2, 0.02, 150), rng.normal(0.3, 0.02, 40)
    cutoff, low_median, high_median = split_scores(np.concatenate([high, low]))
    assert low.max() < cutoff < high.min()
    assert low_median == pytest.approx(np.median(low)) and high_median == pytest.approx(np.median(high))


def test_split_of_degenerate_scores():
    assert split_scores([0.4, 0.4, 0.4]) == (0.4, 0.4, 0.4)
    assert split_scores([0.7]) == (0.7, 0.7, 0.7)
    assert split_scores([])[0] == 1.0  # an empty library: nothing can pass
    assert split_scores([0.1, 0.9])[0] == pytest.approx(0.5)


def test_calibration_is_cached_per_image_count():
    calls = []

    def embed(texts):
        calls.append(len(texts))
        return np.eye(len(texts), 4, dtype=np.float32)

    relevance = Relevance(["a", "b", "c", "d"])
    best = {0: 0.1, 1: 0.12, 2: 0.5, 3: 0.52}
    score = lambda v: best[int(np.argmax(v))]  # noqa: E731
    first = relevance.calibration(embed, score, 10)
    assert relevance.calibration(embed, score, 10) is first and calls == [4]
    assert first.cutoff == pytest.approx(0.31) and (first.images, first.captions) == (10, 4)
    assert relevance.calibration(embed, score, 11).images == 11 and calls == [4, 4]
    assert calibrate(embed, lambda v: None, 0, ["a", "b"]).cutoff == 1.0
    assert (
        first.reason()
        == "no match: nothing in this library stands out for this query (auto cutoff 0.310, learnt from 10 images)"
    )


def test_vocabulary_embeddings_are_cached_per_model(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPFORGE_CACHE", str(tmp_path))
    calls = []

    def embed(texts):
        calls.append(len(texts))
        return np.full((len(texts), 3), len(calls), np.float32)

    first = vocabulary_embeddings(embed, ["a", "b"], "k" * 64)
    again = vocabulary_embeddings(embed, ["a", "b"], "k" * 64)
    assert calls == [2] and np.array_equal(first, again)
    assert vocabulary_embeddings(embed, ["a", "b"], "j" * 64)[0, 0] == 2  # another model
    assert vocabulary_embeddings(embed, ["a", "c"], "k" * 64)[0, 0] == 3  # another vocabulary
    for cached in (tmp_path / "relevance").glob("kkkk*"):
        cached.write_bytes(b"not an array")
    assert vocabulary_embeddings(embed, ["a", "b"], "k" * 64)[0, 0] == 4 and calls == [2, 2, 2, 2]
    assert vocabulary_embeddings(embed, ["a", "b"], None)[0, 0] == 5  # no key: not cached
    assert [p.name for p in (tmp_path / "relevance").iterdir() if p.name.startswith(".")] == []


def test_a_fresh_process_reads_the_stored_calibration(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPFORGE_CACHE", str(tmp_path))
    embed = lambda texts: np.eye(len(texts), 4, dtype=np.float32)  # noqa: E731
    scores = {0: 0.1, 1: 0.12, 2: 0.5, 3: 0.52}
    searched = lambda v: scores[int(np.argmax(v))]  # noqa: E731

    def not_searched(vector):
        raise AssertionError("the stored calibration was not used")

    first = Relevance(["a", "b", "c", "d"], "m" * 64, "/lib.db").calibration(embed, searched, 10)
    again = Relevance(["a", "b", "c", "d"], "m" * 64, "/lib.db").calibration(embed, not_searched, 10)
    assert again == first
    with pytest.raises(AssertionError, match="not used"):  # another library, or this one with more images
        Relevance(["a", "b", "c", "d"], "m" * 64, "/other.db").calibration(embed, not_searched, 10)
    with pytest.raises(AssertionError, match="not used"):
        Relevance(["a", "b", "c", "d"], "m" * 64, "/lib.db").calibration(embed, not_searched, 11)


def test_model_key_follows_the_text_encoder(tmp_path):
    (tmp_path / "text-encoder").mkdir()
    onnx = tmp_path / "text-encoder" / "model.onnx"
    onnx.write_bytes(b"1")
    key = model_key(tmp_path, "a" * 64)
    assert key == model_key(tmp_path, "a" * 64) and key != model_key(tmp_path, "b" * 64)
    onnx.write_bytes(b"22")
    assert model_key(tmp_path, "a" * 64) != key
    assert model_key(tmp_path, "unknown") is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, None), ("auto", AUTO), (" Auto ", AUTO), ("0.25", 0.25), (0.25, 0.25), (-1, -1.0), ("-0.5", -0.5)],
)
def test_min_score_parses(given, expected):
    assert parse_min_score(given) == expected


@pytest.mark.parametrize("given", ["nan", "inf", "-Infinity", "", "autox", "0.3x", True, [0.2], {"a": 1}, float("nan")])
def test_hostile_min_score_is_refused_naming_it(given):
    with pytest.raises(InputError, match="min_score="):
        parse_min_score(given)


# --- slow: the held-out shapes fixture ------------------------------------------------------------------------
def _held_out_index(shapes_index, loaded_model, held: set[str], db: Path) -> Index:
    """A new index of the shapes test split without the classes ``held`` (vectors copied, not re-encoded)."""
    _, paths, matrix = shapes_index.backend.vectors()
    idx = Index(db, loaded_model)
    rows = [
        (p, 1, 0.0, f"{i:064x}", v) for i, (p, v) in enumerate(zip(paths, matrix)) if Path(p).parent.name not in held
    ]
    idx.upsert(rows)
    return idx


def _figures(idx: Index, names: list[str], held: set[str]) -> np.ndarray:
    """(absent queries answered no match, present queries answered, kept hits of the asked class) as shares."""
    absent_none, answered, right, kept = [], [], 0, 0
    for name in names:
        for form in FORMS:
            hits = idx.search(form.format(name), k=10, min_score="auto")
            if name in held:
                absent_none.append(not hits)
            else:
                answered.append(bool(hits))
                right += sum(Path(h.path).parent.name == name for h in hits)
                kept += len(hits)
    return np.array([np.mean(absent_none), np.mean(answered), right / max(1, kept)])


def test_auto_on_held_out_classes(shapes_index, loaded_model, shapes_dataset, tmp_path):
    """Measured by ``benchmarks/bench_relevance.py`` (trained CLIP, 8 splits of 5 held-out classes, 220 queries
    each): absent -> no match 82.0%, present answered 100%, hit precision 98.8% (z-score 2.5: 56.6% / 39.3%).
    Here 3 splits x 60 queries measured 84.4% / 100% / 98.8% with the fixture trained on an AVX-512 EPYC, and
    57.8% absent -> no match with the one trained on an AVX2 EPYC (same seed, other numerics; its 8-split bench:
    67.3% / 100% / 97.1%). The bars sit below both, and above what keeping every hit gives (0% no match) or a
    z-score does (it answers 35-39% of present queries)."""
    names = shapes_dataset.class_names
    rng = np.random.default_rng(0)
    figures = []
    for split in range(SPLITS):
        held = {names[i] for i in rng.choice(len(names), HELD, replace=False)}
        with _held_out_index(shapes_index, loaded_model, held, tmp_path / f"split{split}.db") as idx:
            figures.append(_figures(idx, names, held))
            cutoff = idx.relevance().cutoff
            assert idx.search("a photo of a red circle.", k=10, min_score=cutoff) == idx.search(
                "a photo of a red circle.", k=10, min_score="auto"
            )
    absent_none, answered, hit_precision = np.mean(figures, 0)
    print(f"auto: absent->none {absent_none:.3f}, present answered {answered:.3f}, hit precision {hit_precision:.3f}")
    assert absent_none >= 0.5
    assert answered >= 0.95
    assert hit_precision >= 0.95


@pytest.fixture
def no_red(shapes_index, loaded_model, tmp_path):
    """The shapes test split without any red shape: a red circle is absent, blue squares are there."""
    reds = {"red circle", "red square", "red triangle", "red cross"}
    with _held_out_index(shapes_index, loaded_model, reds, tmp_path / "no-red.db") as idx:
        yield idx


def test_auto_index_search(no_red):
    assert no_red.search("a photo of a red circle.", k=10, min_score="auto") == []
    hits = no_red.search("a photo of a blue square.", k=10, min_score="auto")  # the library holds 10
    assert len(hits) >= 5 and {Path(h.path).parent.name for h in hits} == {"blue square"}
    assert len(no_red.search("a photo of a red circle.", k=10)) == 10  # without auto: the closest, matching or not
    calibration = no_red.relevance()
    assert calibration.images == 160 and calibration.low < calibration.cutoff < calibration.high


def test_auto_with_negatives_and_example_images(no_red, shapes_dataset):
    """Negatives: judged on the query's texts alone, then the moved ranking uncut; an example image: uncut."""
    absent = {"text": "a photo of a red circle.", "negative": "a photo of a blue circle."}
    assert no_red.search(k=10, min_score="auto", **absent) == []
    present = {"text": "a photo of a blue square.", "negative": "a photo of a green square."}
    assert no_red.search(k=10, min_score="auto", **present) == no_red.search(k=10, **present) != []
    example = next((shapes_dataset.root / "test" / "green cross").iterdir()).read_bytes()
    assert no_red.search(image=example, k=10, min_score="auto") == no_red.search(image=example, k=10)
    assert no_red.cutoff("auto", image=[np.zeros(16)]) is None and no_red.cutoff(0.3) == 0.3
    assert no_red.cutoff("auto") == no_red.relevance().cutoff


def test_auto_cli(no_red, index_model, capsys):
    db = str(no_red.backend.path)
    code = main(["search", "--db", db, "-m", str(index_model), "a photo of a red circle.", "--min-score", "auto"])
    out, err = capsys.readouterr()
    assert code == 0 and out == ""
    assert err.count("\n") == 1 and err.startswith("no match: nothing in this library stands out")
    code = main(["search", "--db", db, "a photo of a red circle.", "--min-score", "AUTO", "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and json.loads(out) == [] and err.startswith("no match:")
    code = main(["search", "--db", db, "a photo of a blue square.", "--min-score", "auto", "--json", "-k", "5"])
    out, _ = capsys.readouterr()
    assert code == 0 and {Path(h["path"]).parent.name for h in json.loads(out)} == {"blue square"}
    code = main(["search", "--db", db, "a photo of a blue square.", "--min-score", "high"])
    out, err = capsys.readouterr()
    assert code != 0 and out == "" and err.count("\n") == 1 and "--min-score high" in err and "auto" in err


def test_auto_api(no_red, loaded_model, shapes_dataset):
    import base64

    from fastapi.testclient import TestClient

    from clipforge.serve import ServeSettings, create_app

    b64 = base64.b64encode(next((shapes_dataset.root / "test" / "green cross").iterdir()).read_bytes()).decode()
    with TestClient(create_app(loaded_model, no_red, ServeSettings())) as client:
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert no_red._relevance._cached is not None  # learnt before ready, not by the first search
        absent = client.post("/v1/search", json={"text": "a photo of a red circle.", "min_score": "auto"})
        assert absent.status_code == 200, absent.text
        body = absent.json()
        assert body["results"] == [] and body["reason"].startswith("no match:")
        assert body["cutoff"] == pytest.approx(no_red.relevance().cutoff)
        present = client.post("/v1/search", json={"text": "a photo of a blue square.", "k": 5, "min_score": "auto"})
        body = present.json()
        assert present.status_code == 200 and body["reason"] is None and len(body["results"]) == 5
        assert {Path(r["path"]).parent.name for r in body["results"]} == {"blue square"}
        with_image = client.post("/v1/search", json={"image": b64, "k": 4, "min_score": "auto"}).json()
        assert len(with_image["results"]) == 4 and with_image["cutoff"] is None and with_image["reason"] is None
        plain = client.post("/v1/search", json={"text": "a photo of a red circle.", "k": 3}).json()
        assert len(plain["results"]) == 3 and plain["cutoff"] is None and plain["reason"] is None
        numeric = client.post("/v1/search", json={"text": "a photo of a red circle.", "min_score": 2}).json()
        assert numeric["results"] == [] and numeric["cutoff"] == 2 and numeric["reason"] is None
        for hostile in ["AUTO!", "", "none", True, [0.1], {"auto": 1}, "nan"]:
            reply = client.post("/v1/search", json={"text": "a", "min_score": hostile})
            assert reply.status_code == 422, (hostile, reply.text)
            assert "min_score" in reply.text


def test_auto_on_postgres_agrees_with_sqlite(no_red, loaded_model, pg_url):
    """The cutoff comes from the back-end's own searches: PostgreSQL + pgvector gives the SQLite figures."""
    from clipforge.testing.postgres import fresh_database

    _, paths, matrix = no_red.backend.vectors()
    with Index(fresh_database(pg_url), loaded_model) as pg:
        pg.upsert([(p, 1, 0.0, f"{i:064x}", v) for i, (p, v) in enumerate(zip(paths, matrix))])
        assert pg.relevance().cutoff == pytest.approx(no_red.relevance().cutoff, abs=1e-5)
        assert pg.search("a photo of a red circle.", k=10, min_score="auto") == []
        blue = pg.search("a photo of a blue square.", k=10, min_score="auto")
        expected = no_red.search("a photo of a blue square.", k=10, min_score="auto")
        assert blue and [h.path for h in blue] == [h.path for h in expected]
