"""Shared fixtures: tiny checkpoints built locally (no hub), exported folders, offline mode."""

from __future__ import annotations

import os
from collections.abc import Mapping

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest  # noqa: E402

import clipforge  # noqa: E402,F401  (installs the import guard that applies the torchvision workaround)
from clipforge.registry import list_families  # noqa: E402
from clipforge.testing.checkpoints import save_tiny_checkpoint  # noqa: E402

# Session fixtures that cost from seconds to minutes: the one-minute training of the tiny CLIP/SigLIP on the shapes
# set (and everything built on it: index_model, loaded_model, shapes_index, the servers) and a private PostgreSQL
# server. A test that requests one, directly or through another fixture, is slow, so `-m "not slow"` never builds
# them. Tests that reach one through request.getfixturevalue carry their own marker.
SLOW_FIXTURES = frozenset({"trained_clip", "trained_siglip", "trained_multilingual", "pg_url"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Mark ``slow`` every test whose fixture closure holds one of SLOW_FIXTURES (before ``-m`` deselects)."""
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def clipforge_cache(tmp_path_factory):
    """The resolver's cache (exports of checkpoints) in a session tmp folder, also for subprocesses."""
    folder = tmp_path_factory.mktemp("clipforge-cache")
    old = os.environ.get("CLIPFORGE_CACHE")
    os.environ["CLIPFORGE_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("CLIPFORGE_CACHE", None)
    else:
        os.environ["CLIPFORGE_CACHE"] = old


class BuiltOnFirstUse(Mapping):
    """A read-only mapping from names to folders that builds each folder on first use (``build(name)``), so a
    session pays only for the families its selected tests ask for."""

    def __init__(self, names, build):
        self._names, self._build, self._built = tuple(names), build, {}

    def __getitem__(self, name):
        if name not in self._names:
            raise KeyError(name)
        if name not in self._built:
            self._built[name] = self._build(name)
        return self._built[name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """One tiny random-weight checkpoint folder per registered family, each built once per session when first
    used."""
    root = tmp_path_factory.mktemp("tiny")
    return BuiltOnFirstUse(list_families(), lambda name: save_tiny_checkpoint(name, root / name))


HF_FAMILIES = ("clip", "siglip")  # transformers-format families; open_clip has its own tests (test_openclip.py)


@pytest.fixture(scope="session")
def hf_checkpoints(tiny_checkpoints):
    """The tiny checkpoints of the families in transformers' format (tokenizer/processor files, config.json)."""
    return {name: tiny_checkpoints[name] for name in HF_FAMILIES}


@pytest.fixture(scope="session")
def exported_tiny(tiny_checkpoints, tmp_path_factory):
    """Each tiny checkpoint exported once with default options (validated) when first used, shared read-only by
    the test modules that only need a loadable folder; tests that write next to it use their own tmp_path."""
    from clipforge.export import export_model

    root = tmp_path_factory.mktemp("exported")
    return BuiltOnFirstUse(
        tiny_checkpoints, lambda name: export_model(tiny_checkpoints[name], root / name, show_progress=False).path
    )


@pytest.fixture(scope="session")
def clip_folder(exported_tiny):
    """The tiny CLIP's exported folder (exported once per session)."""
    return exported_tiny["clip"]


@pytest.fixture(scope="session")
def tiny_clip(tiny_checkpoints):
    return tiny_checkpoints["clip"]


@pytest.fixture(scope="session")
def tiny_siglip(tiny_checkpoints):
    return tiny_checkpoints["siglip"]


@pytest.fixture(scope="session")
def tiny_siglip2(tmp_path_factory):
    """A tiny SigLIP 2-style checkpoint (fixed resolution): ``SiglipModel`` with a Gemma-style BPE tokenizer."""
    from clipforge.testing.tiny import save_siglip_checkpoint

    return save_siglip_checkpoint(tmp_path_factory.mktemp("tiny") / "siglip2", tokenizer="gemma")


@pytest.fixture(scope="session", params=["clip", "siglip"])
def tiny_checkpoint(request, tiny_checkpoints):
    """(family name, folder), parametrised over the families."""
    return request.param, tiny_checkpoints[request.param]


@pytest.fixture(scope="session")
def fixture_cache(tmp_path_factory):
    """Where the synthetic dataset and trained checkpoints are cached: $CLIPFORGE_FIXTURE_CACHE or a tmp dir."""
    return os.environ.get("CLIPFORGE_FIXTURE_CACHE") or tmp_path_factory.mktemp("fixtures")


@pytest.fixture(scope="session")
def shapes_dataset(fixture_cache):
    from clipforge.testing.shapes import shapes_dataset as build

    return build(fixture_cache)


@pytest.fixture(scope="session")
def trained_clip(fixture_cache, shapes_dataset):
    from clipforge.testing.trained import trained_checkpoint

    return trained_checkpoint("clip", fixture_cache)


@pytest.fixture(scope="session")
def trained_siglip(fixture_cache, shapes_dataset):
    from clipforge.testing.trained import trained_checkpoint

    return trained_checkpoint("siglip", fixture_cache)


@pytest.fixture(scope="session")
def pg_url():
    """URL of a private PostgreSQL 16 + pgvector server (pgserver wheel) started once per session and stopped
    at the end; skipped when the ``index`` extra is missing. Use ``fresh_database(pg_url)`` per test."""
    pytest.importorskip("pgserver")
    pytest.importorskip("psycopg")
    from clipforge.testing.postgres import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def db(request, tmp_path):
    """An empty index location on each back-end: a SQLite file, or a fresh PostgreSQL database (slow)."""
    if request.param == "sqlite":
        return str(tmp_path / "photos.db")
    from clipforge.testing.postgres import fresh_database

    return fresh_database(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="session")
def trained_multilingual(fixture_cache, shapes_dataset):
    """The multilingual fixture: a tiny MetaCLIP 2-style model (XLM-R-style Unigram tokenizer) trained on the shapes
    set with English, German and Spanish captions."""
    from clipforge.testing.trained import trained_checkpoint

    return trained_checkpoint("metaclip2", fixture_cache)


@pytest.fixture(scope="session")
def index_model(trained_clip, tmp_path_factory):
    """The trained tiny CLIP, exported once (export validation is covered by test_export)."""
    from clipforge.export import ExportOptions, export_model

    out = tmp_path_factory.mktemp("index-model") / "clip"
    return export_model(trained_clip, out, ExportOptions(validate=False), show_progress=False).path


@pytest.fixture(scope="session")
def loaded_model(index_model):
    from clipforge.runtime.model import ZeroShotModel

    return ZeroShotModel.from_onnx(index_model, threads=1)


@pytest.fixture(scope="session")
def shapes_index(index_model, loaded_model, shapes_dataset, tmp_path_factory):
    """The shapes test split (200 images, 20 classes) indexed into SQLite with the exported trained CLIP."""
    from clipforge.index import Index

    idx = Index(tmp_path_factory.mktemp("shapes-db") / "shapes.db", loaded_model)
    summary = idx.add(shapes_dataset.root / "test")
    assert summary.added == 200, summary
    yield idx
    idx.close()


@pytest.fixture
def fake_cpu(tmp_path, monkeypatch):
    """``fake_cpu("avx2 fma ...")`` points the CPU probe (clipforge.runtime.cpu) at a fake /proc/cpuinfo."""
    from clipforge.runtime import cpu

    def make(flags: str, model: str = "Test CPU"):
        path = tmp_path / "cpuinfo"
        path.write_text(f"model name\t: {model}\nflags\t\t: {flags}\n")
        monkeypatch.setenv("CLIPFORGE_CPUINFO", str(path))
        cpu._cpuinfo.cache_clear()

    yield make
    cpu._cpuinfo.cache_clear()


@pytest.fixture
def geo_photos(shapes_dataset, tmp_path):
    """(root, {path: PhotoInfo}): the shapes test split written as JPEGs with EXIF dates, GPS and cameras."""
    from clipforge.testing.photos import geo_library

    root = tmp_path / "library"
    return root, geo_library(root, shapes_dataset.folder("test"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def photo_db(request, tmp_path):
    """A fresh database location: a SQLite file, or a fresh PostgreSQL database (slow)."""
    if request.param == "sqlite":
        return str(tmp_path / "photos.db")
    from clipforge.testing.postgres import fresh_database

    return fresh_database(request.getfixturevalue("pg_url"))
