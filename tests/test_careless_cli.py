"""``spherenet compare --lr`` given carelessly: repeated, or with odd strings.

A repeated ``--lr`` extends the sweep (it used to keep only the last list,
dropping the first without a word); odd strings exit with status 2 and a
message naming the string.
"""

import pytest

from spherenet.cli import main


def _parse_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("value, match", [
    ("nan", "got 'nan'"),
    ("inf", "got 'inf'"),
    ("1e400", "got '1e400'"),  # overflows to inf
    ("1e-400", "got '1e-400'"),  # underflows to 0
    ("0.1 0.2", "'0.1 0.2' is not a number"),
    ("0.1;0.2", "'0.1;0.2' is not a number"),
    ("", "'' is not a number"),
    ("0.1,", "'' is not a number"),
    ("0x1p-3", "'0x1p-3' is not a number"),
])
def test_odd_step_size_strings_exit_2_naming_them(value, match, capsys, tmp_path):
    err = _parse_error(["compare", "--lr", value, "--out", str(tmp_path)], capsys)
    assert "--lr" in err and match in err


def test_a_repeated_lr_extends_the_sweep(tmp_path, capsys):
    argv = ["compare", "--strategies", "riemannian", "--seeds", "1", "--budget", "5",
            "--lr", "0.1", "--lr", "0.2,0.3", "--executor", "serial", "--no-progress",
            "--no-plots", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for lr in ("0.1", "0.2", "0.3"):
        assert f"rsgd(lr={lr})" in out


def test_a_step_size_repeated_across_lr_options_exits_2(capsys, tmp_path):
    err = _parse_error(["compare", "--lr", "0.1,0.2", "--lr", "0.10", "--out", str(tmp_path)],
                       capsys)
    assert "argument --lr: step size 0.1 is given twice" in err
