"""The command line: ``spherenet demo``, ``spherenet compare``, ``spherenet check``,
``python -m spherenet``."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spherenet import cli
from spherenet.cli import main


def _table_rows(out, first_column):
    return [line for line in out.splitlines() if line.startswith(first_column)]


def _cells(row):
    return [c.strip() for c in row.split("|")]


# --- spherenet demo -------------------------------------------------------------------------


def test_demo_compares_retraction_and_projection(tmp_path, capsys):
    from spherenet.experiments.networks import network_available

    assert main(["demo", "--seeds", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "retraction or by projection" in out and "Keras unit_norm()" in out
    rows = [_cells(r) for r in out.splitlines()
            if r.startswith(("rsgd (lr=0.5)", "radam (lr=0.1)", "cg "))]
    assert len(rows) == 9
    table = {(row[0].split()[0], row[1]): row for row in rows}
    assert {s for _, s in table} == {"riemannian", "projection", "reparam"}
    for (optimizer, strategy), row in table.items():
        reached, runs = map(int, row[2].split("/"))
        assert runs == 2 and 0 <= reached <= 2
        violation = float(row[-1].split()[0])
        assert violation <= 1e-15  # every strategy here keeps ||x|| = 1 to rounding
    # The answer is known and the Riemannian runs reach it.
    for optimizer in ("rsgd", "cg"):
        assert table[(optimizer, "riemannian")][2] == "2/2"
        assert float(table[(optimizer, "riemannian")][5].split()[0]) < 1e-6
    assert "Fastest to distance 1e-6 first" in out
    # The seed network, if spherenet.nn and its data are there.
    available, why = network_available("seed_network")
    network = [r for r in out.splitlines() if r.startswith(("rsgd (lr=0.1", "radam (lr=0.01"))]
    if available:
        assert len(network) == 6
        assert all(0.5 <= float(_cells(r)[4].split()[0]) <= 1.0 for r in network)  # accuracy
    else:
        assert not network and f"seed network is skipped: {why}" in out
    # The plots, whose paths the demo prints.
    printed = [Path(line.strip()) for line in out.splitlines() if line.strip().endswith(".png")]
    assert printed[0] == tmp_path / "rayleigh.png"
    assert len(printed) == (2 if available else 1)
    for path in printed:
        assert path.stat().st_size > 20_000 and path.with_suffix(".svg").stat().st_size > 20_000


def test_demo_without_plots(tmp_path, capsys):
    assert main(["demo", "--seeds", "1", "--no-plots", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Plots:" not in out and "1/1" in out
    assert not list(tmp_path.iterdir())


def test_demo_says_why_the_network_is_skipped(monkeypatch, capsys):
    from spherenet.experiments import networks

    monkeypatch.setattr(networks, "network_available",
                        lambda name=None: (False, "spherenet.nn is not importable (test)"))
    assert main(["demo", "--seeds", "1", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "2. The seed network is skipped: spherenet.nn is not importable (test)." in out
    assert "cg             | riemannian | 1/1" in out


def test_geometry_tour_prints_the_tables_and_succeeds(capsys):
    assert main(["demo", "--geometry"]) == 0
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


def test_geometry_tour_steps_option(capsys):
    assert main(["demo", "--geometry", "--steps", "10", "--seed", "3"]) == 0
    assert "after 10 small exp steps" in capsys.readouterr().out


# --- spherenet compare ------------------------------------------------------------------------

COMPARE = ["compare", "--problem", "rayleigh", "--strategies", "riemannian,projection",
           "--optimizer", "rsgd", "--seeds", "2", "--budget", "30", "--executor", "serial",
           "--no-progress"]


def test_compare_writes_csv_plots_and_run_files(tmp_path, capsys):
    assert main(COMPARE + ["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "4 runs (4 run now, 0 read back" in out
    rows = {_cells(r)[2]: _cells(r) for r in out.splitlines() if r.startswith("rayleigh ")}
    assert set(rows) == {"riemannian", "projection"} and rows["riemannian"][1] == "rsgd"
    with open(tmp_path / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 4 * 31  # 2 strategies x 2 seeds x (30 iterations + the start)
    assert {r["strategy"] for r in table} == {"riemannian", "projection"}
    assert {r["seed"] for r in table} == {"0", "1"}
    assert len((tmp_path / "summary.csv").read_text().splitlines()) == 3
    for suffix in ("png", "svg"):
        assert (tmp_path / "plots" / f"rayleigh.{suffix}").stat().st_size > 20_000
    assert len(list((tmp_path / "runs").glob("*.json"))) == 4
    for name in ("results.csv", "summary.csv", "plots/rayleigh.png"):
        assert str(tmp_path / name) in out
    # Again: everything is read back, nothing runs.
    assert main(COMPARE + ["--out", str(tmp_path), "--no-plots"]) == 0
    assert "4 runs (0 run now, 4 read back" in capsys.readouterr().out


def test_compare_problem_parameters_and_optimizer_options(tmp_path, capsys):
    argv = ["compare", "--problem", "rayleigh,karcher_mean", "--strategies", "reparam",
            "--optimizer", "rsgd,cg", "--seeds", "1", "--budget", "5", "--param", "n=8",
            "--set", "lr=0.02", "--set", "momentum=0.5", "--out", str(tmp_path), "--no-plots",
            "--executor", "serial", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    labels = {(_cells(r)[0], _cells(r)[1]) for r in out.splitlines()
              if r.startswith(("rayleigh", "karcher"))}
    # n goes to both problems; lr and momentum to rsgd only (cg takes neither)
    assert labels == {(p, o) for p in ("rayleigh(n=8)", "karcher_mean(n=8)")
                      for o in ("rsgd(lr=0.02, momentum=0.5)", "cg")}


def test_compare_list(capsys):
    assert main(["compare", "--list"]) == 0
    out = capsys.readouterr().out
    assert "rayleigh: " in out and "n=50, gap=0.2, instance=0" in out and "seed_network" in out
    assert "  riemannian: retraction, transport" in out and "  penalty: mu" in out


STRATEGIES_WITH_OPTIONS = "riemannian,riemannian:retraction=projection,projection,penalty:mu=10"
LABELS = ["riemannian", "riemannian(retraction='projection')", "projection", "penalty(mu=10)"]


def test_compare_strategies_with_options(tmp_path, capsys):
    argv = ["compare", "--problem", "rayleigh", "--strategies", STRATEGIES_WITH_OPTIONS,
            "--optimizer", "cg", "--seeds", "2", "--budget", "20", "--executor", "serial",
            "--no-progress", "--no-plots", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "8 runs (8 run now, 0 read back" in out
    rows = [_cells(r) for r in out.splitlines() if r.startswith("rayleigh ")]
    assert [row[2] for row in rows] == LABELS
    with open(tmp_path / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(dict.fromkeys(r["strategy"] for r in table)) == LABELS
    starts = {r["strategy"]: r["cost"] for r in table if r["seed"] == "0" and r["iteration"] == "1"}
    assert starts[LABELS[0]] != starts[LABELS[1]]  # the exp map and the retraction part ways
    assert len(list((tmp_path / "runs").glob("*.json"))) == 8
    # Again, with one more penalty weight (and ';' between options): only it runs.
    argv[4] = (STRATEGIES_WITH_OPTIONS
               + ",penalty:mu=100,riemannian:retraction=exp;transport=parallel")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "12 runs (4 run now, 8 read back" in out
    assert {_cells(r)[2] for r in out.splitlines() if r.startswith("rayleigh ")} == {
        *LABELS, "penalty(mu=100)", "riemannian(retraction='exp', transport='parallel')"}


def test_compare_with_a_process_pool_through_python_dash_m(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "spherenet", *COMPARE[:-3], "--executor", "processes",
         "--workers", "2", "--out", str(tmp_path), "--no-plots"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "4 runs (4 run now" in done.stdout
    assert len((tmp_path / "results.csv").read_text().splitlines()) == 1 + 4 * 31


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
        (["demo", "--seeds", "-1"], "expected a positive integer"),
        (["compare", "--problem", "rayleight"],
         "unknown problem 'rayleight'; choose from rayleigh, block_rayleigh"),
        (["compare", "--strategies", "riemannian,retraction"],
         "unknown strategy 'retraction'; choose from riemannian, projection"),
        (["compare", "--optimizer", "adam"], "unknown optimizer 'adam'; choose from"),
        (["compare", "--strategies", "riemannian,riemannian"], "a strategy is repeated"),
        (["compare", "--seeds", "0"], "expected a positive integer"),
        (["compare", "--budget", "ten"], "expected a positive integer"),
        (["compare", "--tol", "-1"], "expected a positive number"),
        (["compare", "--param", "n"], "expected KEY=VALUE"),
        (["compare", "--param", "size=3"], "no chosen problem takes the parameter(s) ['size']"),
        (["compare", "--set", "beta_rule=FR"], "no chosen optimizer takes the option(s)"),
        (["compare", "--param", "n=1", "--no-progress"], "problem rayleigh(n=1): n must be"),
        (["compare", "--set", "momentum=2", "--no-progress"], "momentum must be in [0, 1)"),
        (["compare", "--executor", "cluster"], "invalid choice: 'cluster'"),
        (["compare", "--strategies", "riemannian:retraction=geodesic"],
         "strategy riemannian(retraction='geodesic'): retraction must be one of ['exp', "),
        (["compare", "--strategies", "projection,riemannian:mu=10"],
         "unknown option(s) ['mu'] of strategy 'riemannian'; it takes ['retraction', 'transport']"),
        (["compare", "--strategies", "reparam:epsilon=0.1"],
         "unknown option(s) ['epsilon'] of strategy 'reparam'; it takes no options"),
        (["compare", "--strategies", "penalty:mu=-1"],
         "strategy penalty(mu=-1): mu must be positive"),
        (["compare", "--strategies", "penalty:mu"], "strategy 'penalty:mu': expected KEY=VALUE"),
        (["compare", "--strategies", "penalty:mu=1+mu=2"], "option 'mu' is given twice"),
        (["compare", "--strategies", "retraction:mu=1"],
         "unknown strategy 'retraction'; choose from"),
        (["compare", "--strategies", "penalty:mu=10,penalty:mu=1e+1"], "a strategy is repeated"),
    ],
)
def test_bad_arguments_exit_with_code_two_and_a_one_line_error(argv, message, capsys, tmp_path,
                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)  # compare's default output directory is ./results
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0]
    assert not list(tmp_path.iterdir())  # nothing ran, nothing was written


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["compare", "--help"],
                                  ["check", "--help"]])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: spherenet")
    expected = {"--help": ["demo", "compare", "check"],
                "demo": ["--seeds", "--out", "--geometry", "--steps", "--seed"],
                "compare": ["--problem", "--strategies", "--optimizer", "--seeds", "--budget",
                            "--param", "--set", "--out", "--executor", "--list",
                            "riemannian:retraction=projection", "penalty:mu=10"],
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
    assert done.stdout.startswith("usage: spherenet")
    assert all(command in done.stdout for command in ("demo", "compare", "check"))


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
