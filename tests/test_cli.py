"""The command line: ``spherenet demo``, ``spherenet check``, ``python -m spherenet``."""

import subprocess
import sys

import numpy as np
import pytest

from spherenet import cli
from spherenet.cli import main


def _table_rows(out, first_column):
    return [line for line in out.splitlines() if line.startswith(first_column)]


def test_demo_prints_the_tables_and_succeeds(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "gradient slope" in out and "Hessian slope" in out and "retraction slope" in out
    rows = _table_rows(out, "Sphere(50)") + _table_rows(out, "Oblique(10, 20)")
    assert len(rows) == 4
    for row in rows:
        cells = [c.strip() for c in row.split("|")]
        assert cells[2] == "2.00" and cells[3] == "3.00"
        assert cells[4] == ("exact" if cells[1] == "exp" else "3.00")
        assert cells[-1] == "yes"
    assert "twice too large on Sphere(50): slope 1.00, passed: NO" in out
    # arccos gives 0 for points 1e-9 apart; spherenet's distance is exact.
    (near,) = _table_rows(out, "1e-9 apart")
    cells = [c.strip() for c in near.split("|")]
    assert float(cells[2]) == 1e-9 and cells[3] == "0" and float(cells[4]) == 0.0
    # After 100000 steps spherenet keeps the norms to an ulp, the textbook exp does not.
    assert "after 100000 small exp steps" in out
    for dtype in ("float32", "float64"):
        (row,) = _table_rows(out, dtype)
        _, ours, textbook, eps = (float(c) if i else c for i, c in enumerate(row.split("|")))
        assert ours <= eps < textbook


def test_demo_steps_option(capsys):
    assert main(["demo", "--steps", "10", "--seed", "3"]) == 0
    assert "after 10 small exp steps" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--manifold", "oblique", "--shape", "3,4"],
        ["check"],
        ["check", "--manifold", "sphere", "--shape", "5", "--retraction", "projection",
         "--dtype", "float32", "--autograd", "--seed", "2"],
    ],
)
def test_check_succeeds_and_prints_three_passing_rows(argv, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = [_table_rows(out, name) for name in ("gradient ", "Hessian ", "retraction ")]
    assert all(len(r) == 1 and r[0].rstrip().endswith("| yes") for r in rows)


def test_check_names_the_manifold_and_dtype(capsys):
    main(["check", "--manifold", "oblique", "--shape", "3,4", "--retraction", "projection",
          "--dtype", "float32"])
    out = capsys.readouterr().out
    assert out.startswith("Oblique(shape=(3, 4), axis=0, retraction='projection'")
    assert "float32 point" in out
    (row,) = _table_rows(out, "retraction ")
    assert row.split("|")[1].strip() == "3.00"  # the projection is second order


def test_check_exit_code_is_one_when_a_check_fails(monkeypatch, capsys):
    right = cli.rayleigh

    def wrong(manifold, rng):
        cost, egrad, ehess = right(manifold, rng)
        return cost, (lambda x: -egrad(x)), ehess

    monkeypatch.setattr(cli, "rayleigh", wrong)
    assert main(["check"]) == 1
    (row,) = _table_rows(capsys.readouterr().out, "gradient ")
    assert row.split("|")[1].strip() == "1.00" and row.rstrip().endswith("NO")


def test_check_saves_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "checks.png"
    assert main(["check", "--shape", "4", "--plot", str(path)]) == 0
    assert path.stat().st_size > 1000
    assert f"plots saved to {path}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "required: command"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["check", "--manifold", "torus"], "invalid choice: 'torus'"),
        (["check", "--shape", "3,x"], "positive integers separated by commas"),
        (["check", "--shape", "0,4"], "positive integers separated by commas"),
        (["check", "--dtype", "float16"], "invalid choice: 'float16'"),
        (["demo", "--steps", "0"], "expected a positive integer"),
        (["demo", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_exit_with_code_two_and_a_one_line_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0]


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["check", "--help"]])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: spherenet")
    expected = {"--help": ["demo", "check"], "demo": ["--steps", "--seed"],
                "check": ["--manifold", "--shape", "--retraction", "--dtype"]}[argv[0]]
    assert all(word in out for word in expected)


def test_version(capsys):
    import spherenet

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"spherenet {spherenet.__version__}"


def test_python_dash_m_spherenet():
    done = subprocess.run(
        [sys.executable, "-m", "spherenet", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: spherenet") and "demo" in done.stdout


def test_rayleigh_derivatives_match_autograd():
    import autograd

    from spherenet import Oblique, Sphere

    rng = np.random.default_rng(0)
    for manifold in (Sphere(3, 4), Oblique(3, 4)):
        cost, egrad, ehess = cli.rayleigh(manifold, rng)
        x, u = rng.standard_normal((2, 3, 4))
        np.testing.assert_allclose(egrad(x), autograd.grad(cost)(x), rtol=1e-12)
        hvp, _ = autograd.make_hvp(cost)(x)
        np.testing.assert_allclose(ehess(x, u), hvp(u), rtol=1e-12)
