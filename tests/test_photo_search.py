"""Filtered searches (date taken, folder, camera, place; sort by date) on photos with real EXIF dates, GPS and
camera tags: on both back-ends a filtered search returns exactly what filtering the exact search by hand returns;
the CLI and the API take the same filters and name a bad one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from clipforge.cli.main import main
from clipforge.index import FilterError, Index, SearchFilter

QUERIES = ["a photo of a red circle.", "a photo of a blue square."]


def _km(lat1, lon1, lat2, lon2) -> float:
    """Haversine, written out again here (the index's own is numpy / SQL)."""
    p1, p2, dp, dl = map(math.radians, (lat1, lat2, lat2 - lat1, lon2 - lon1))
    return (
        2
        * 6371.0088
        * math.asin(math.sqrt(math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2))
    )


def _camera(info) -> str:
    return f"{info.make or ''} {info.model or ''}".lower()


# (filter parameters, the same filter as a predicate on (path, metadata), written independently)
CASES = [
    ({"after": "2019"}, lambda p, i: i.taken >= "2019-01-01T00:00:00"),
    ({"before": "2019-06-30"}, lambda p, i: i.taken < "2019-07-01T00:00:00"),
    ({"after": "2018-06", "before": "2020-12"}, lambda p, i: "2018-06-01" <= i.taken < "2021-01-01"),
    ({"camera": "iphone"}, lambda p, i: "iphone" in _camera(i)),
    ({"camera": "CANON eos"}, lambda p, i: "canon eos" in _camera(i)),
    ({"near": "38.72,-9.14,50"}, lambda p, i: i.lat is not None and _km(38.72, -9.14, i.lat, i.lon) <= 50),
    ({"near": [41.15, -8.63]}, lambda p, i: i.lat is not None and _km(41.15, -8.63, i.lat, i.lon) <= 25),
    ({"near": "40,-8.9,250"}, lambda p, i: i.lat is not None and _km(40, -8.9, i.lat, i.lon) <= 250),
    ({"folder": "trip-a"}, lambda p, i: Path(p).parent.name == "trip-a"),
    (
        {"after": "2019", "camera": "nikon", "folder": "trip-b"},
        lambda p, i: i.taken >= "2019" and "nikon" in _camera(i) and Path(p).parent.name == "trip-b",
    ),
    ({"near": "48.85,2.35,5", "sort": "date"}, lambda p, i: i.lat is not None and _km(48.85, 2.35, i.lat, i.lon) <= 5),
    ({"sort": "date"}, lambda p, i: True),
]


def _resolved(params: dict, root: Path) -> dict:
    return {**params, "folder": str(root / params["folder"])} if "folder" in params else params


def test_filtered_search_equals_filtering_the_exact_search_by_hand(photo_db, geo_photos, loaded_model):
    root, expected = geo_photos
    with Index(photo_db, loaded_model) as idx:
        idx.add([root])
        ids, paths, matrix = idx.backend.vectors()
        for query in QUERIES:
            q = loaded_model.embed_texts([query])[0]
            scores = matrix @ (q / np.linalg.norm(q))
            ranked = sorted(range(len(ids)), key=lambda r: (-scores[r], ids[r]))  # the exact search, all rows
            for params, keep in CASES:
                passing = sum(keep(p, expected[p]) for p in paths)
                assert passing > 0 and (passing < len(paths) or params == {"sort": "date"}), params
                for k in (3, 50):
                    want = [paths[r] for r in ranked if keep(paths[r], expected[paths[r]])][:k]
                    if params.get("sort") == "date":
                        want.sort(key=lambda p: (expected[p].taken, scores[paths.index(p)]), reverse=True)
                    hits = idx.search(query, k=k, filters=SearchFilter.parse(**_resolved(params, root)))
                    assert [h.path for h in hits] == want, (query, params, k)
                    for h in hits:
                        assert h.score == pytest.approx(float(scores[paths.index(h.path)]), abs=1e-4)
        assert 0 < len(idx.search(QUERIES[0], k=50, filters=SearchFilter.parse(after="2019"))) < len(ids)


def test_filters_name_the_bad_parameter():
    for params, field in [
        ({"after": "2019-13-01"}, "after"),
        ({"before": "yesterday"}, "before"),
        ({"after": "2020", "before": "2019"}, "before"),
        ({"near": "95,10"}, "near"),
        ({"near": "10,200,5"}, "near"),
        ({"near": "10,20,-1"}, "near"),
        ({"near": "lisbon"}, "near"),
        ({"camera": " "}, "camera"),
        ({"sort": "name"}, "sort"),
    ]:
        with pytest.raises(FilterError) as caught:
            SearchFilter.parse(**params)
        assert caught.value.field == field and "\n" not in str(caught.value), params
    assert SearchFilter.parse(before="2019-12-31").before == "2020-01-01T00:00:00"  # the whole day named
    assert SearchFilter.parse(before="2019-02").before == "2019-03-01T00:00:00"
    assert SearchFilter.parse(after="2019-12").after == "2019-12-01T00:00:00"
    assert SearchFilter.parse(near="1,2").near == (1.0, 2.0, 25.0)
    for last in ("9999", "9999-12", "9999-12-31"):  # a period that ends with the calendar is still a date
        assert SearchFilter.parse(before=last).before == "9999-12-31T23:59:59"


def test_cli_search_filters(geo_photos, index_model, tmp_path, capsys):
    root, expected = geo_photos
    db = str(tmp_path / "cli.db")
    assert main(["index", str(root), "--db", db, "-m", str(index_model), "--json"]) == 0
    capsys.readouterr()
    args = ["search", "a photo of a red circle.", "--db", db, "-k", "50", "--json"]
    assert main([*args, "--camera", "iphone", "--after", "2019", "--sort", "date"]) == 0
    hits = json.loads(capsys.readouterr().out)
    want = [p for p, i in expected.items() if "iphone" in _camera(i) and i.taken >= "2019"]
    assert sorted(h["path"] for h in hits) == sorted(want) and want
    assert [h["taken"] for h in hits] == sorted((expected[p].taken for p in want), reverse=True)
    assert main([*args, "--near", "38.72,-9.14,1", "--folder", str(root / "trip-a")]) == 0
    near = json.loads(capsys.readouterr().out)
    assert {h["path"] for h in near} == {
        p for p, i in expected.items() if i.lat == 38.7223 and Path(p).parent.name == "trip-a"
    }
    assert main([*args, "--after", "2019-02-30"]) == 2
    err = capsys.readouterr().err
    assert "--after 2019-02-30 is not a date" in err and "\n" not in err.strip()
    assert main([*args, "--near", "91,0"]) == 2
    assert "near latitude 91.0 is outside -90..90" in capsys.readouterr().err


def test_api_search_filters(geo_photos, loaded_model, tmp_path):
    import time

    from fastapi.testclient import TestClient

    from clipforge.serve import ServeSettings, create_app

    root, expected = geo_photos
    idx = Index(tmp_path / "api.db", loaded_model)
    idx.add([root])
    try:
        with TestClient(create_app(loaded_model, idx, ServeSettings())) as client:
            deadline = time.monotonic() + 30
            while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.05)
            body = {"text": "a photo of a red circle.", "k": 50, "camera": "nikon", "before": "2020-06-30"}
            reply = client.post("/v1/search", json={**body, "sort": "date"})
            assert reply.status_code == 200, reply.text
            results = reply.json()["results"]
            want = [p for p, i in expected.items() if "nikon" in _camera(i) and i.taken < "2020-07-01"]
            assert sorted(r["path"] for r in results) == sorted(want) and want
            assert [r["taken"] for r in results] == sorted((expected[p].taken for p in want), reverse=True)
            assert all(r["camera"] == "NIKON CORPORATION NIKON D750" for r in results)
            assert [r["taken_from"] for r in results] == [expected[r["path"]].taken_from for r in results]
            every = client.post("/v1/search", json={"text": "x", "k": 50, "sort": "date"}).json()["results"]
            assert [(r["taken"], r["taken_from"]) for r in every] == sorted(
                ((i.taken, i.taken_from) for i in expected.values()), reverse=True
            )
            assert {r["taken_from"] for r in every} == {"exif", "mtime"}
            near = client.post("/v1/search", json={"text": "x", "k": 50, "near": [48.8566, 2.3522, 1]}).json()
            assert {r["path"] for r in near["results"]} == {p for p, i in expected.items() if i.lat == 48.8566}
            for field, value in [
                ("after", "2019-99"),
                ("before", "soon"),
                ("near", "100,0"),
                ("near", [1]),
                ("near", ["a", "b"]),
                ("sort", "name"),
                ("camera", ""),
            ]:
                reply = client.post("/v1/search", json={"text": "x", field: value})
                assert reply.status_code == 422, (field, value, reply.text)
                assert reply.json()["error"]["field"] == field, (field, value, reply.text)
    finally:
        idx.close()
