"""Bad input gets one line and exit code 2; failures never leave a folder behind."""

from __future__ import annotations

import json

import pytest

from clipforge.cli.main import main
from clipforge.errors import ModelNotFoundError, UnsupportedModelError, ValidationError
from clipforge.export import ExportOptions, export_model
from clipforge.registry import family_for_checkpoint, get_family, list_families


def _run(capsys, *args):
    code = main(list(args))
    return code, capsys.readouterr().err.strip()


def test_missing_folder(capsys, tmp_path):
    code, err = _run(capsys, "export", str(tmp_path / "nope"), "-o", str(tmp_path / "out"))
    assert code == 2 and err.count("\n") == 0 and "does not exist" in err


def test_unsupported_model_type_lists_families(capsys, tmp_path):
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    code, err = _run(capsys, "export", str(tmp_path / "bert"), "-o", str(tmp_path / "out"))
    assert code == 2 and "'bert'" in err and "clip" in err and "siglip" in err


def test_hub_id_offline_says_pass_a_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = _run(capsys, "export", "nobody/no-such-model", "-o", str(tmp_path / "out"))
    assert code == 2 and "local checkpoint folder" in err


@pytest.mark.slow
def test_existing_output_needs_force(capsys, tiny_clip, tmp_path):
    (tmp_path / "out").mkdir()
    code, err = _run(capsys, "export", str(tiny_clip), "-o", str(tmp_path / "out"))
    assert code == 2 and "--force" in err
    assert main(["export", str(tiny_clip), "-o", str(tmp_path / "out"), "--force", "-q"]) == 0
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_unwritable_output(capsys, tiny_clip, tmp_path):
    (tmp_path / "file").write_text("x")
    code, err = _run(capsys, "export", str(tiny_clip), "-o", str(tmp_path / "file" / "out"))
    assert code == 2 and "cannot create output folder" in err


def test_debug_env_shows_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPFORGE_DEBUG", "1")
    with pytest.raises(ModelNotFoundError):
        main(["export", str(tmp_path / "nope"), "-o", str(tmp_path / "out")])


def test_validation_failure_lists_every_problem_and_leaves_nothing(tiny_clip, tmp_path):
    with pytest.raises(ValidationError) as info:
        export_model(tiny_clip, tmp_path / "out", ExportOptions(atol=1e-12, min_cosine=1.1), show_progress=False)
    assert len(info.value.failures) >= 4  # both encoders, several cases each
    assert "image-encoder" in str(info.value) and "text-encoder" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_export_leaves_nothing(tiny_clip, tmp_path, monkeypatch):
    import clipforge.export.exporter as exporter

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(exporter, "compare_encoder", boom)
    with pytest.raises(KeyboardInterrupt):
        export_model(tiny_clip, tmp_path / "out", show_progress=False)
    assert list(tmp_path.iterdir()) == []


def test_every_registered_family_has_a_tiny_fixture(tiny_checkpoints):
    assert set(tiny_checkpoints) == set(list_families())
    for name, folder in tiny_checkpoints.items():
        assert family_for_checkpoint(folder) is get_family(name)


def test_unknown_family_name_lists_valid_ones():
    with pytest.raises(UnsupportedModelError, match="clip, siglip"):
        get_family("blip")


@pytest.mark.parametrize(
    "argv,message",
    [
        (["build", "x"], "Missing option '--model'"),
        (["export"], "Missing argument 'model'"),
        (["classify", "--nope"], "No such option: --nope"),
    ],
)
def test_usage_errors_are_click_messages_not_unexpected(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "unexpected" not in err and "Traceback" not in err


def test_unexpected_error_is_one_line_with_debug_hint(capsys):
    from clipforge.cli.main import _click_or_unexpected

    assert _click_or_unexpected(RuntimeError("boom")) == 1
    err = capsys.readouterr().err
    assert err.strip() == "error: unexpected RuntimeError: boom (set CLIPFORGE_DEBUG=1 for the traceback)"
