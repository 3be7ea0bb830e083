"""The command line: ``spherenet demo``, ``spherenet compare``, ``spherenet check``,
``python -m spherenet``."""

import csv
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
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
        (["check", "--shape", "1"], "argument --shape: a sphere of shape 1 is two points"),
        (["check", "--shape", "1,1,1"], "argument --shape: a sphere of shape 1,1,1 is two points"),
        (["check", "--manifold", "oblique", "--shape", "1,4"],
         "argument --shape: the columns of an oblique point of shape 1,4 have 1 entry"),
        (["check", "--shape", "100,101"],
         "argument --shape: 100,101 is too large for the checks: the cost's matrix A is "
         "10100 x 10100; give at most 10000 entries and 10000000 entries in all"),
        (["check", "--manifold", "oblique", "--shape", "10,1000001"],
         "argument --shape: 10,1000001 is too large for the checks"),
        (["check", "--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
        (["check", "--seed", "1.5"], "argument --seed: expected an integer >= 0, got '1.5'"),
        (["demo", "--seed", "-3"], "argument --seed: expected an integer >= 0, got '-3'"),
        (["check", "--plot", "missing/checks.png"],
         "argument --plot: no folder '{tmp}/missing' to save 'checks.png' in; create it first"),
        (["check", "--plot", "checks.docx"],
         "argument --plot: cannot save a figure as 'docx' ('checks.docx'); end the file name "
         "with one of ."),
        (["check", "--plot", "."], "argument --plot: '.' is a folder; expected a file name"),
        (["compare", "--param", "n=1", "--out", "new/folder"], "problem rayleigh(n=1): n must be"),
    ],
)
def test_bad_arguments_exit_with_code_two_and_a_one_line_error(argv, message, capsys, tmp_path,
                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)  # compare's default output directory is ./results
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message.format(tmp=tmp_path) in errors[0]
    assert err.startswith("usage: spherenet ") and "Traceback" not in err
    assert out == ""  # checked before any work
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


# --- output folders: checked up front, written atomically, shared safely ----------------------


def _error_lines(err):
    return [line for line in err.splitlines() if "error:" in line]


def _temporaries(folder):
    """Temporary files of atomic writes (and of the writability probe) left under folder."""
    return [p for p in Path(folder).rglob(".*") if ".tmp-" in p.name or "write-test" in p.name]


@pytest.mark.parametrize("argv", [
    ["compare", "--no-progress", "--out", "{target}"],
    ["demo", "--seeds", "1", "--out", "{target}"],
    ["check", "--plot", "{target}/checks.png"],
])
@pytest.mark.parametrize("how", ["under a file", "refused", "read-only folder"])
def test_an_unwritable_output_is_an_argument_error(argv, how, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if how == "under a file":
        (tmp_path / "a_file").write_text("keep")
        target, reason = tmp_path / "a_file" / "out", f"not a folder ({tmp_path / 'a_file'})"
    elif how == "refused":  # what a read-only file system or folder answers, even to root
        from spherenet import _atomic

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(_atomic.tempfile, "mkstemp", refuse)
        target, reason = tmp_path, f"Permission denied ({tmp_path})"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes in read-only folders")
        target = tmp_path / "locked"
        target.mkdir(mode=0o555)
        reason = f"Permission denied ({target})"
    argv = [a.format(target=target) for a in argv]
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    option = "--plot" if argv[0] == "check" else "--out"
    (line,) = _error_lines(err)
    if option == "--plot" and how == "under a file":  # --plot wants an existing folder
        assert line == (f"spherenet check: error: argument --plot: no folder '{target}' to save "
                        "'checks.png' in; create it first")
    else:
        assert line.startswith(f"spherenet {argv[0]}: error: argument {option}: cannot write "
                               f"in '{target}': ")
        assert line.endswith(reason)
    assert out == "" and "Traceback" not in err  # nothing ran
    assert sorted(tmp_path.rglob("*")) == before  # nothing was written


def test_demo_writes_a_fresh_folder_by_default_and_prints_tables_first(
        tmp_path, monkeypatch, capsys):
    from spherenet.experiments import compare
    from spherenet.experiments import demo

    tiny = compare("rayleigh", "riemannian", "rsgd", seeds=1, budget=5, executor="serial",
                   progress=False)
    monkeypatch.setattr(demo, "demo_grids", lambda seeds, first_seed: (["TABLE"], [tiny]))
    printed_before_plots = []

    def plots(results, directory):
        printed_before_plots.append(capsys.readouterr().out)
        return real_plots(results, directory)

    real_plots = demo.demo_plots
    monkeypatch.setattr(demo, "demo_plots", plots)
    monkeypatch.setattr(cli.time, "strftime", lambda fmt: "20261127-131415")  # the same second
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0 and main(["demo"]) == 0
    assert all(out.rstrip().endswith("TABLE") for out in printed_before_plots)
    folders = sorted(tmp_path.iterdir())
    assert len(folders) == 2
    for folder in folders:
        assert re.fullmatch(r"spherenet-demo-20261127-131415-\w+", folder.name)
        assert sorted(p.name for p in folder.iterdir()) == ["rayleigh.png", "rayleigh.svg"]


def _run_files_parse(out):
    import xml.etree.ElementTree as ElementTree

    from matplotlib.image import imread

    runs = sorted((out / "runs").glob("*.json"))
    for path in runs:
        assert "columns" in json.loads(path.read_text())
    tables = {}
    for name in ("results.csv", "summary.csv"):
        with open(out / name, newline="") as handle:
            tables[name] = list(csv.reader(handle))
        assert len({len(row) for row in tables[name]}) == 1  # every row whole
    ElementTree.parse(out / "plots" / "rayleigh.svg")  # well-formed XML
    assert imread(out / "plots" / "rayleigh.png").shape[2] == 4  # a whole RGBA image
    return runs, tables


def test_two_writers_of_one_folder(tmp_path):
    """Two compare processes writing the same folder at the same moment both succeed
    and leave only whole files (a shared temporary name made one of them crash)."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "shared"
    argv = [sys.executable, "-m", "spherenet", *COMPARE, "--out", str(out)]
    writers = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    for writer in writers:
        stdout, stderr = writer.communicate(timeout=180)
        assert writer.returncode == 0, stderr
        assert "Traceback" not in stderr
    runs, tables = _run_files_parse(out)
    assert len(runs) == 4 and len(tables["results.csv"]) == 1 + 4 * 31
    assert len(tables["summary.csv"]) == 3
    assert not _temporaries(tmp_path)


def test_a_write_that_fails_midway_is_one_line_and_exit_code_one(tmp_path, monkeypatch, capsys):
    from spherenet.experiments import results as results_module

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results_module.RunStore, "save", full)
    assert main(COMPARE + ["--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err == "spherenet compare: [Errno 28] No space left on device\n"


# --- Ctrl-C -------------------------------------------------------------------------------------

SLOW_COMPARE = ["compare", "--problem", "rayleigh", "--strategies", "riemannian,projection",
                "--seeds", "40", "--budget", "3000", "--set", "lr=1e-4", "--no-progress",
                "--no-plots"]


def _interrupt(argv, cwd, ready, timeout=120):
    """Start ``python -m spherenet argv`` in its own process group, wait until
    ``ready(process)``, then press Ctrl-C (SIGINT to the whole group, workers
    included, as a terminal does); returns (exit code, stdout, stderr)."""
    process = subprocess.Popen([sys.executable, "-m", "spherenet", *argv], cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True,
                               env=dict(os.environ, PYTHONPATH=str(Path(cli.__file__).parents[1])))
    try:
        deadline = time.monotonic() + timeout
        while not ready(process):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    return process.returncode, stdout, stderr


@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_ctrl_c_during_compare_says_what_is_saved_and_how_to_resume(executor, tmp_path):
    argv = SLOW_COMPARE + ["--out", "grid", "--executor", executor, "--workers", "2"]
    runs = tmp_path / "grid" / "runs"
    code, stdout, stderr = _interrupt(argv, tmp_path, lambda _: any(runs.glob("*.json")))
    assert code == 130, stderr
    saved = sorted(runs.glob("*.json"))
    assert stderr == (f"spherenet compare: interrupted; {len(saved)} of 80 runs are saved in "
                      f"grid/runs. To resume (the saved runs are read back, not run again): "
                      f"spherenet {shlex.join(argv)}\n")  # one line, from the parent alone
    assert 1 <= len(saved) < 80 and stdout == ""
    for path in saved:
        assert len(json.loads(path.read_text())["columns"]["cost"]) == 3001
    assert not _temporaries(tmp_path)


def test_ctrl_c_during_the_demo(tmp_path):
    code, stdout, stderr = _interrupt(["demo", "--seeds", "20"], tmp_path,
                                      lambda process: process.stdout.readline())
    assert code == 130
    assert stderr == ("spherenet demo: interrupted; the demo saves no runs (it takes a few "
                      "seconds): run it again to start over: spherenet demo --seeds 20\n")
    assert not list(tmp_path.iterdir())  # its fresh folder, still empty, is removed


# --- a sweep of malformed values ----------------------------------------------------------------


def _is_int(text, low):
    try:
        return int(text) >= low
    except ValueError:
        return False


def _is_positive_float(text):
    try:
        return float(text) > 0
    except ValueError:
        return False


def _bad_int(low):
    return st.one_of(st.integers(max_value=low - 1).map(str),
                     st.sampled_from(["", " ", "1.5", "1e3", "ten", "0x10", "-", "1,2"]),
                     st.text(max_size=8).filter(lambda t: not _is_int(t, low)))


def _bad_positive_float():
    return st.one_of(st.sampled_from(["0", "-0.0", "-1e-300", "nan", "-inf", "", "1/2", "1e"]),
                     st.floats(max_value=0.0).map(repr),
                     st.text(max_size=8).filter(lambda t: not _is_positive_float(t)))


def _bad_names(valid, parse=lambda item: item):
    """Comma-separated names of which at least one is not in ``valid``, or none at all."""
    def bad(text):
        items = [parse(item.strip()) for item in text.split(",") if item.strip()]
        return not items or any(item not in valid for item in items)

    return st.one_of(st.sampled_from(["", ",", " , "]),
                     st.text(max_size=12).filter(bad),
                     st.lists(st.sampled_from(list(valid)), min_size=1, max_size=2).map(
                         lambda names: ",".join(names + ["x" + names[0]])))


def _bad_shape():
    return st.one_of(
        st.lists(st.integers(max_value=0), min_size=1, max_size=3).map(
            lambda ns: ",".join(map(str, ns))),
        st.sampled_from(["1", "1,1", "", ",", "3,", "3,,4", "3;4", "3 4x"]),
        st.text(alphabet="0123456789,-x ", max_size=6).filter(
            lambda t: not all(_is_int(p, 1) for p in t.split(",")) or t.strip() in ("1", "1,1")))


def _bad_choice(choices):
    return st.text(max_size=10).filter(lambda t: t not in choices)


from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from spherenet.experiments import EXECUTORS, OPTIMIZERS, PROBLEMS, STRATEGY_NAMES  # noqa: E402

#: Safe settings given before the bad value: if a bad value were taken, the command
#: would run (a test failure), briefly, and write nowhere.
_SAFE = {"demo": ["--seeds", "1", "--no-plots", "--geometry", "--steps", "1"],
         "compare": ["--seeds", "1", "--budget", "1", "--executor", "serial", "--no-plots",
                     "--no-progress", "--out", "out"],
         "check": []}
_BAD_VALUES = [
    ("demo", "--seeds", _bad_int(1)), ("demo", "--seed", _bad_int(0)),
    ("demo", "--steps", _bad_int(1)),
    ("check", "--seed", _bad_int(0)), ("check", "--shape", _bad_shape()),
    ("check", "--manifold", _bad_choice(("sphere", "oblique"))),
    ("check", "--retraction", _bad_choice(("exp", "projection"))),
    ("check", "--dtype", _bad_choice(("float64", "float32"))),
    ("compare", "--seeds", _bad_int(1)), ("compare", "--budget", _bad_int(1)),
    ("compare", "--epochs", _bad_int(1)), ("compare", "--workers", _bad_int(1)),
    ("compare", "--maxtime", _bad_positive_float()), ("compare", "--tol", _bad_positive_float()),
    ("compare", "--problem", _bad_names(PROBLEMS)),
    ("compare", "--optimizer", _bad_names(OPTIMIZERS)),
    ("compare", "--strategies", _bad_names(STRATEGY_NAMES, lambda i: i.partition(":")[0])),
    ("compare", "--param", st.text(max_size=8).filter(lambda t: "=" not in t)),
    ("compare", "--set", st.text(max_size=8).filter(lambda t: "=" not in t)),
    ("compare", "--executor", _bad_choice(EXECUTORS)),
]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(range(len(_BAD_VALUES))).flatmap(
    lambda i: st.tuples(st.just(_BAD_VALUES[i][:2]), _BAD_VALUES[i][2])))
def test_malformed_values_are_one_line_errors(case, monkeypatch, capsys):
    (command, option), value = case
    # argparse takes "--opt=--" for the option left out (its default): not ours to refuse.
    assume(value != "--")
    capsys.readouterr()  # what an earlier example printed
    with tempfile.TemporaryDirectory() as folder:
        monkeypatch.chdir(folder)
        with pytest.raises(SystemExit) as exit_info:
            main([command, *_SAFE[command], f"{option}={value}"])
        written = list(Path(folder).iterdir())
        monkeypatch.undo()
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2, (out, err)
    assert err.startswith(f"usage: spherenet {command} ") and "Traceback" not in err
    (line,) = _error_lines(err)
    assert line.startswith(f"spherenet {command}: error: argument {option}")
    assert err.endswith(line + "\n") and out == ""
    assert not written  # nothing written, not even a folder
