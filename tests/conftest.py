"""Shared fixtures: tiny checkpoints built locally (no hub), exported folders, offline mode."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest  # noqa: E402

from clipforge._torchvision import ensure_torchvision  # noqa: E402

ensure_torchvision()  # before any test imports transformers (which imports torchvision once it is installed)

from clipforge.registry import get_family, list_families  # noqa: E402


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """One tiny random-weight checkpoint folder per registered family, built once per session."""
    root = tmp_path_factory.mktemp("tiny")
    return {name: get_family(name).save_tiny_checkpoint(root / name) for name in list_families()}


HF_FAMILIES = ("clip", "siglip")  # transformers-format families; open_clip has its own tests (test_openclip.py)


@pytest.fixture(scope="session")
def hf_checkpoints(tiny_checkpoints):
    """The tiny checkpoints of the families in transformers' format (tokenizer/processor files, config.json)."""
    return {name: tiny_checkpoints[name] for name in HF_FAMILIES}


@pytest.fixture(scope="session")
def tiny_clip(tiny_checkpoints):
    return tiny_checkpoints["clip"]


@pytest.fixture(scope="session")
def tiny_siglip(tiny_checkpoints):
    return tiny_checkpoints["siglip"]


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
