"""The library names parameters in its errors; the CLI shows the flag that sets each one."""

from __future__ import annotations

import pytest

from clipforge.cli.main import main
from clipforge.cli.wording import FLAGS, as_flags
from clipforge.errors import InputError
from clipforge.evaluation.run import EvalRequest


@pytest.mark.parametrize(
    ("library", "cli"),
    [
        ("pass force=True to replace it", "pass --force to replace it"),
        ("x is a static=True export; export without static=True", "x is a --static export; export without --static"),
        ("use quantize='none' or quantize='int8-dynamic'", "use --quantize none or --quantize int8-dynamic"),
        ("baseline='torch' needs model_id= (the checkpoint)", "--baseline torch needs --model-id (the checkpoint)"),
        ("samples=5 is larger than the split", "--samples 5 is larger than the split"),
        ("re-export it with opset=18", "re-export it with --opset 18"),
        ("(columns={'input_column': 'img'}) not found", "(--column input_column=img) not found"),
        ("resplit=3 and force_all=True are no parameters", "resplit=3 and force_all=True are no parameters"),
    ],
)
def test_parameters_become_flags(library, cli):
    assert as_flags(library) == cli


def test_every_flag_is_the_parameter_spelled_with_dashes():
    assert all(flag == "--" + name.replace("_", "-") for name, flag in FLAGS.items())


def test_the_library_names_the_parameter_and_the_cli_the_flag(tmp_path, capsys):
    with pytest.raises(InputError, match=r"^batch_size= must be at least 1, got 0$"):
        EvalRequest(models=str(tmp_path), dataset=str(tmp_path), batch_size=0).check()
    assert main(["eval", "-m", str(tmp_path), "--dataset", str(tmp_path), "--batch-size", "0", "-q"]) == 2
    assert "error: --batch-size must be at least 1, got 0" in capsys.readouterr().err
