"""Mutation testing of the core modules with mutmut 3, module by module.

Too slow for CI: run by hand and commit the result (``tests/MUTATION.md``).
Each module is mutated in its own scratch copy of the project, and every
mutant runs only the tests that exercise it: the test files mapped to the
module in :data:`TESTS` (mutmut then keeps, per mutated function, the tests
that call it), with ``-x -q -p no:cacheprovider``, two hypothesis examples
per test (``SPHERENET_TEST_EXAMPLES=2``) and without the ``slow`` tests.
The end-to-end tests (digits, CLI, docs, experiments, README) are never used.

The scope (the keys of :data:`TESTS`): ``spherenet/manifolds`` (but
``_kernels.py``), every module of ``spherenet/optim`` (the solvers, step
rules, schedules, ``spectrum.py``, and the finite-sum modules
``finite_sum.py``, ``stochastic.py`` and ``decoupled.py``),
``spherenet/strategies.py`` and ``spherenet/nn/losses.py``, ``model.py``,
``layers.py``.

Usage (from the project root; needs ``pip install -e ".[mutation]"``)::

    python bench/mutation.py                       # every module of the scope
    python bench/mutation.py --module spherenet/optim/cg.py --max-mutants 20
    python bench/mutation.py --module spherenet/optim/cg.py --write --table before
    python bench/mutation.py --module spherenet/optim/cg.py --write --table after --since before
    python bench/mutation.py --render              # rewrite MUTATION.md from the stored results

``--max-mutants N`` tests every k-th mutant (N of them, spread over the
module). ``--since TABLE`` runs again only TABLE's survivors and the mutants
it did not reach ("not checked"), and every mutant of a function edited
since (compared by mutmut's function hashes); it counts the others as
killed (the suite has only grown since) but its timeouts, which stay
timeouts unless their function changed. Results written
before the timeouts and unreached mutants were stored by name have only
their count: then ``--since`` runs every mutant again if there were
timeouts, and refuses unreached mutants unless ``--rerun FUNCTION`` names
the functions whose mutants are run again in full.

Mutants run under ``nice -n 19`` with one worker by default (``--jobs``).
The table printed (and written into ``tests/MUTATION.md`` between the
``<!-- mutation:TABLE:start/end -->`` markers with ``--write``) lists per
module the mutants generated, killed, survived, timed out, the score
killed / (killed + survived + timeout) and the wall time; the raw results
(with the diff of every survivor) go to ``tests/mutation-TABLE.json``.
Surviving mutants are listed below the table with the note given in
``tests/mutation-notes.txt`` (``<mutant name> | <reason>``), or as
unclassified.

``spherenet/manifolds/_kernels.py`` is excluded: its functions are compiled
with ``numba.njit`` at run time, and mutmut replaces every function by a
Python trampoline that numba cannot compile (and a mutant compiled with
``cache=True`` would poison the on-disk kernel cache). Its NumPy twins are
checked against the compiled kernels in ``tests/test_kernels.py``. The
callers in ``sphere.py`` are mutated and tested with numba enabled, as in
the normal suite. ``_momentum.py`` defines two kernels itself and jits them
on first use: they are left unmutated (see :data:`NO_MUTATE`), the rest of
the module is mutated and tested with numba enabled.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MANIFOLD_TESTS = [
    "tests/test_ref_manifolds.py",
    "tests/test_conformance.py",
    "tests/test_stability.py",
    "tests/test_validation.py",
    "tests/test_kernels.py",
    "tests/test_interop.py",
    "tests/test_input_policy.py",
    "tests/test_ref_kernels.py",
    "tests/test_kernels_layouts.py",
    "tests/test_ref_sphere_maps.py",
    "tests/test_ref_fused_step.py",
    "tests/test_ref_loop_speed.py",
    "tests/test_input_checks_fused.py",
    "tests/test_step_fused_checks.py",
    "tests/test_lean_paths.py",
    "tests/test_mut_sphere.py",
]
SOLVER_TESTS = [
    "tests/test_ref_cg.py", "tests/test_ref_line_search.py", "tests/test_ref_trust_regions.py",
    "tests/test_ref_lbfgs.py", "tests/test_ref_bb.py", "tests/test_ref_qn.py",
    "tests/test_solver_overhead.py", "tests/test_maxfev.py", "tests/test_minimize.py",
    "tests/test_problems.py", "tests/test_telemetry.py", "tests/test_ref_problem.py",
    "tests/test_ref_solver.py", "tests/test_ref_sd.py", "tests/test_ref_batch.py",
    "tests/test_ref_loop.py", "tests/test_ref_qn_edges.py", "tests/test_ref_trust_regions_edges.py",
    "tests/test_ref_line_search_edges.py", "tests/test_ref_cg_edges.py",
    "tests/test_ref_loop_speed.py", "tests/test_ref_sd_paths.py",
    "tests/test_ref_solver_paths.py", "tests/test_fixed_costs.py", "tests/test_lean_paths.py",
    "tests/test_history_deferred.py", "tests/test_batch_kernel.py",
]
RULE_TESTS = [
    "tests/test_ref_rules.py", "tests/test_ref_rules_options.py", "tests/test_ref_strategies.py",
    "tests/test_rules.py",
    "tests/test_nn_fused_momentum.py", "tests/test_strategies.py",
]
NN_TESTS = [
    "tests/test_ref_nn_losses.py", "tests/test_ref_nn_training.py", "tests/test_nn_parts.py",
    "tests/test_nn_model.py", "tests/test_nn_io.py", "tests/test_nn_safety.py",
    "tests/test_ref_nn_sample_weight.py", "tests/test_ref_nn_layers.py",
    "tests/test_ref_nn_model.py", "tests/test_careless_nn.py",
    "tests/test_nn_compile_checks_and_saving.py", "tests/test_loss_inputs.py",
]
FINITE_SUM_TESTS = [
    "tests/test_ref_finite_sum.py", "tests/test_ref_stochastic_mutants.py",
    "tests/test_finite_sum.py", "tests/test_careless_optim.py", "tests/test_careless_problems.py",
]

#: Module -> the test files whose tests may kill its mutants, in the default
#: order of a full run (small and central first). Missing files are skipped.
TESTS = {
    "spherenet/optim/cg.py": SOLVER_TESTS,
    "spherenet/optim/line_search.py": SOLVER_TESTS + ["tests/test_mut_line_search.py"],
    "spherenet/optim/trust_regions.py": SOLVER_TESTS + ["tests/test_careless_optim.py",
                                                       "tests/test_minimize_input.py"],
    "spherenet/optim/rules.py": RULE_TESTS + ["tests/test_nn_model.py", "tests/test_careless_optim.py"],
    "spherenet/strategies.py": ["tests/test_ref_strategies.py", "tests/test_ref_strategy_parts.py",
                                "tests/test_strategies.py", "tests/test_rules.py",
                                "tests/test_nn_model.py", "tests/test_solver_overhead.py"],
    "spherenet/nn/losses.py": NN_TESTS,
    "spherenet/manifolds/_reduce.py": MANIFOLD_TESTS,
    "spherenet/manifolds/euclidean.py": MANIFOLD_TESTS,
    "spherenet/manifolds/oblique.py": MANIFOLD_TESTS,
    "spherenet/manifolds/product.py": MANIFOLD_TESTS,
    "spherenet/manifolds/sphere.py": MANIFOLD_TESTS,
    "spherenet/manifolds/base.py": MANIFOLD_TESTS + ["tests/test_diagnostics.py"],
    "spherenet/optim/sd.py": SOLVER_TESTS,
    "spherenet/optim/_lean.py": SOLVER_TESTS,
    "spherenet/optim/_loop.py": SOLVER_TESTS,
    "spherenet/optim/_solver.py": SOLVER_TESTS,
    "spherenet/optim/_problem.py": SOLVER_TESTS,
    "spherenet/optim/schedules.py": ["tests/test_ref_schedules.py", "tests/test_rules.py",
                                     "tests/test_careless_optim.py", "tests/test_ref_finite_sum.py",
                                     "tests/test_nn_model.py"],
    "spherenet/optim/_momentum.py": RULE_TESTS + ["tests/test_kernels.py", "tests/test_ref_kernels.py",
                                                 "tests/test_ref_momentum_state.py",
                                                 "tests/test_ref_momentum_jit.py"],
    "spherenet/optim/spectrum.py": ["tests/test_ref_spectrum_edges.py", "tests/test_spectrum.py"],
    "spherenet/optim/_batch.py": SOLVER_TESTS,
    "spherenet/optim/lbfgs.py": SOLVER_TESTS + ["tests/test_careless_optim.py"],
    "spherenet/optim/bb.py": SOLVER_TESTS + ["tests/test_careless_optim.py"],
    # the kernel-layer base (_KernelLayer) is shared with Conv1D/Conv2D: their tests call it too;
    # layer(x) (alone or on a model's layer), layer states and regularizers: the model's files
    "spherenet/nn/layers.py": NN_TESTS + ["tests/test_nn_conv.py", "tests/test_ref_keras_conv.py",
                                          "tests/test_ref_model_mutants.py", "tests/test_nn_normalization.py",
                                          "tests/test_nn_cosine_regularizers.py", "tests/test_nn_angular.py",
                                          "tests/test_nn_keras_parity.py", "tests/test_nn_fused_momentum.py"],
    # model(x), layer(x) on a model's layer, layer states and regularizers: tested there
    "spherenet/nn/model.py": NN_TESTS + ["tests/test_nn_fused_momentum.py", "tests/test_nn_normalization.py",
                                         "tests/test_nn_cosine_regularizers.py", "tests/test_nn_angular.py",
                                         "tests/test_nn_keras_parity.py", "tests/test_nn_conv.py",
                                         "tests/test_ref_model_mutants.py"],
    "spherenet/optim/decoupled.py": ["tests/test_ref_decoupled.py",
                                     "tests/test_nn_compile_checks_and_saving.py",
                                     "tests/test_nn_cosine_regularizers.py",
                                     "tests/test_nn_keras_parity.py"],
    "spherenet/optim/finite_sum.py": FINITE_SUM_TESTS,
    "spherenet/optim/stochastic.py": FINITE_SUM_TESTS,
}

#: The reference tests of the round after the speed work, one file for the
#: modules outside the solver core (mutmut keeps, per mutated function, only
#: the tests that call it).
CLOSE_TESTS = ["tests/test_ref_mutants_close.py"]
SOLVER_CORE = {f"spherenet/optim/{name}.py"
               for name in ("_problem", "_solver", "_loop", "sd", "cg", "line_search", "_lean")}
TESTS = {module: tests if module in SOLVER_CORE else tests + CLOSE_TESTS for module, tests in TESTS.items()}

#: Functions left as they are (no mutants, no trampoline) by a pragma added in
#: the scratch copy: ``_momentum.py`` compiles these two with numba on first
#: use, and numba cannot compile mutmut's trampoline (the clean run fails).
#: Their NumPy twin ``_numpy_step`` is mutated, and the kernels are checked
#: against it by ``tests/test_ref_kernels.py``.
NO_MUTATE = {
    "spherenet/optim/_momentum.py": ("_lead_coefs", "_momentum_lead"),
}

#: Excluded from the scope, with the reason (see the module docstring).
EXCLUDED = {
    "spherenet/manifolds/_kernels.py": "numba-jitted at run time; trampolines cannot be compiled",
}

STATUS = {  # mutmut's exit codes, grouped as in the table
    1: "killed", 3: "killed", 0: "survived", 36: "timeout", 24: "timeout", -24: "timeout",
    152: "timeout", 255: "timeout", 5: "no tests", 33: "no tests", 34: "skipped", None: "not checked",
}

PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "-m", "not slow", "--no-header"]


def _toml_list(items):
    return "[" + ", ".join(json.dumps(str(i)) for i in items) + "]"


def prepare(root, module, workdir, timeout_multiplier=None):
    """Copy the project into ``workdir`` with a mutmut configuration for ``module``.

    ``timeout_multiplier``: mutmut's (15 by default); a mutant may use
    2 x multiplier x (its tests' clean duration + 1 s) of CPU time.
    """
    shutil.copytree(root / "spherenet", workdir / "spherenet", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(root / "tests", workdir / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(root / "setup.cfg", workdir / "setup.cfg")
    for name in NO_MUTATE.get(module, ()):
        path = workdir / module
        source, count = re.subn(rf"^(def {name}\(.*\):)$", r"\1  # pragma: no mutate block",
                                path.read_text(), flags=re.M)
        if count != 1:
            raise RuntimeError(f"{module}: no one-line definition of {name} to leave unmutated")
        path.write_text(source)
    tests = [t for t in TESTS[module] if (root / t).exists()]
    pyproject = (root / "pyproject.toml").read_text()
    pyproject += (
        "\n[tool.mutmut]\n"
        'source_paths = ["spherenet"]\n'
        f"only_mutate = {_toml_list([module])}\n"
        f"pytest_add_cli_args = {_toml_list(PYTEST_ARGS)}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(tests)}\n"
        "use_git_change_detection = false\n"
    )
    if timeout_multiplier is not None:
        pyproject += f"timeout_multiplier = {float(timeout_multiplier)}\n"
    (workdir / "pyproject.toml").write_text(pyproject)
    return tests


def _mutmut(workdir, args, jobs, log):
    env = dict(os.environ, SPHERENET_TEST_EXAMPLES="2", PYTHONDONTWRITEBYTECODE="1")
    env.pop("HYPOTHESIS_PROFILE", None)
    cmd = ["nice", "-n", "19", sys.executable, "-m", "mutmut", *args]
    if args[0] == "run":
        cmd[cmd.index("run") + 1 : cmd.index("run") + 1] = ["--max-children", str(jobs)]
    with open(log, "a") as out:
        return subprocess.run(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT).returncode


def _meta(workdir, module):
    return json.loads((workdir / "mutants" / (module + ".meta")).read_text())


def _mutant_names(workdir, module):
    """All mutant names of ``module`` (generated with a run over no mutant)."""
    return sorted(_meta(workdir, module)["exit_code_by_key"], key=_natural)


def _function_of(name):
    """The mangled function name of a mutant ('pkg.mod.xǁClassǁmethod__mutmut_3' -> 'xǁClassǁmethod')."""
    return name.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[-1]


_GENERATE = """
import os, mutmut.__main__ as m
os.makedirs("mutants", exist_ok=True)
m.set_mutant_under_test("mutant_generation")
m.copy_src_dir(); m.copy_also_copy_files(); m.setup_source_paths(); m.store_lines_covered_by_tests()
m.create_mutants(1)
"""


def function_hashes(root, module):
    """mutmut's hash of every mutated function of ``module`` in the tree ``root`` (no test is run)."""
    with tempfile.TemporaryDirectory(prefix="spherenet-mutation-hashes-") as tmp:
        workdir = Path(tmp)
        prepare(root, module, workdir)
        subprocess.run([sys.executable, "-c", _GENERATE], cwd=workdir, check=True, capture_output=True)
        return _meta(workdir, module)["hash_by_function_name"]


def _natural(name):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def mangled(function):
    """mutmut's name of a function: 'Class.method' -> 'xǁClassǁmethod', 'name' -> 'x_name'."""
    if function.startswith(("x_", "xǁ")):
        return function
    if "." in function:
        cls, _, meth = function.rpartition(".")
        return f"xǁ{cls}ǁ{meth}"
    return f"x_{function}"


def run_module(root, module, max_mutants, jobs, keep, since=None, rerun=(), timeout_multiplier=None):
    """Mutate ``module``, run its tests against every mutant; a dict of counts and survivors.

    ``since``: the stored result of an earlier run of the module, with the
    mutmut hashes of its functions (``"function_hashes"``). Only its
    survivors and the mutants of functions changed since are run again;
    the others were killed by a test suite that has only grown since, and
    are counted as killed ("carried over"). Its unreached mutants (stored by
    name) are run again too, and every mutant of the functions in ``rerun``
    (mangled names, see :func:`mangled`); its timeouts (stored by name) of
    unchanged functions stay timeouts, not run again.
    """
    workdir = Path(tempfile.mkdtemp(prefix="spherenet-mutation-"))
    log = workdir / "mutmut.log"
    start = time.monotonic()
    try:
        tests = prepare(root, module, workdir, timeout_multiplier)
        names = []
        carried, carried_timeouts = [], []
        if max_mutants is not None or since is not None:
            # a pattern matching no mutant: generates the mutants and the stats, tests none
            _mutmut(workdir, ["run", "no-such-mutant-*"], jobs, log)
            names = _mutant_names(workdir, module)
        sampled = None
        if since is not None:
            hashes = _meta(workdir, module)["hash_by_function_name"]
            old = since["function_hashes"]
            changed = {f for f, h in hashes.items() if old.get(f) != h} | set(rerun)
            # the earlier run's sample (all its mutants if it had none); changed functions in full
            base = set(since.get("sampled") or names)
            again = set(since["survivors"]) | set(since.get("not_checked", ()))
            todo = [n for n in names if _function_of(n) in changed or (n in base and n in again)]
            # a timeout of an unchanged function stays a timeout (run again, it would hang again)
            timed_out = set(since.get("timeouts", ()))
            carried_timeouts = [n for n in names if n in base and n not in todo and n in timed_out]
            carried = [n for n in names if n in base and n not in todo and n not in timed_out]
            names = todo
            if since.get("sampled"):
                sampled = sorted(set(todo) | set(carried) | set(carried_timeouts), key=_natural)
        elif max_mutants is not None and max_mutants < len(names):
            # evenly spread over the module, so that every function is represented
            names = sampled = [names[(i * len(names)) // max_mutants] for i in range(max_mutants)]
        code = _mutmut(workdir, ["run", *names], jobs, log) if names or (since is None and not sampled) else 0
        meta = workdir / "mutants" / (module + ".meta")
        if not meta.exists():
            raise RuntimeError(f"mutmut produced no results for {module} (exit {code}); log: {log}")
        exit_codes = _meta(workdir, module)["exit_code_by_key"]
        if names or since is not None:
            exit_codes = {k: v for k, v in exit_codes.items() if k in names}
        if exit_codes and all(v is None for v in exit_codes.values()):
            keep = True  # e.g. a test that fails on the unmutated code: see the log
            raise RuntimeError(f"mutmut tested no mutant of {module} (exit {code}); log: {log}")
        exit_codes.update({n: "carried" for n in carried})
        exit_codes.update({n: "carried timeout" for n in carried_timeouts})
        counts = {}
        survivors = {}
        unresolved = {"timeout": [], "not checked": []}
        for name, exit_code in sorted(exit_codes.items(), key=lambda kv: _natural(kv[0])):
            status = {"carried": "killed", "carried timeout": "timeout"}.get(exit_code) or STATUS.get(
                exit_code, "suspicious")
            counts[status] = counts.get(status, 0) + 1
            if status in ("survived", "no tests", "suspicious"):
                survivors[name] = {"status": status}
            elif status in unresolved:
                unresolved[status].append(name)
        diffs = _diffs(workdir, module, list(survivors))
        for name in survivors:
            survivors[name]["diff"] = _short_diff(diffs[name])
        wall = time.monotonic() - start
        return {"module": module, "tests": tests, "mutants": len(exit_codes), "counts": counts,
                "survivors": survivors, "wall_s": round(wall, 1), "mutmut_exit": code,
                "function_hashes": _meta(workdir, module)["hash_by_function_name"],
                "carried_over": len(carried) + len(carried_timeouts),
                "run": len(exit_codes) - len(carried) - len(carried_timeouts),
                "sampled": sampled, "generated": len(_mutant_names(workdir, module)),
                "timeouts": unresolved["timeout"], "not_checked": unresolved["not checked"]}
    finally:
        if keep:
            print(f"  kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


_DIFFS = """
import json, sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
import mutmut.__main__  # noqa: F401  (sets up mutmut's state)
path, names = sys.argv[1], json.loads(sys.stdin.read())
print(json.dumps({n: get_diff_for_mutant(n, path=path) for n in names}))
"""


def _diffs(workdir, module, names):
    """mutmut's diff of every mutant in ``names`` (one process for all)."""
    if not names:
        return {}
    out = subprocess.run(
        [sys.executable, "-c", _DIFFS, module], cwd=workdir, input=json.dumps(names),
        capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out)


def _short_diff(diff):
    """The changed lines of a mutmut diff, '-old' / '+new', stripped."""
    lines = [ln for ln in diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    return [ln[0] + " " + ln[1:].strip() for ln in lines]


def score(entry):
    c = entry["counts"]
    killed = c.get("killed", 0)
    tried = killed + c.get("survived", 0) + c.get("timeout", 0) + c.get("suspicious", 0)
    return 100.0 * killed / tried if tried else float("nan")


def table(results):
    """The per-module table, as Markdown lines."""
    rows = [
        "| module | mutants | killed | survived | timeout | no tests | score | wall time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for module in sorted(results, key=lambda m: list(TESTS).index(m) if m in TESTS else 99):
        e = results[module]
        c = e["counts"]
        rows.append(
            f"| `{module}` | {e['mutants']}{' of ' + str(e['generated']) if e.get('sampled') else ''} | {c.get('killed', 0)} | {c.get('survived', 0)} | "
            f"{c.get('timeout', 0)} | {c.get('no tests', 0)} | {score(e):.1f} % | {e['wall_s'] / 60:.1f} min"
            + (f" ({e['run']} run, {e['carried_over']} carried over)" if e.get("carried_over") else "") + " |"
        )
    if len(results) > 1:  # the whole table: the counts summed, the score of the sums
        c = {k: sum(e["counts"].get(k, 0) for e in results.values())
             for k in ("killed", "survived", "timeout", "no tests", "suspicious")}
        total = {"counts": c}
        rows.append(
            f"| all {len(results)} modules | {sum(e['mutants'] for e in results.values())} | {c['killed']} | "
            f"{c['survived']} | {c['timeout']} | {c['no tests']} | {score(total):.1f} % | "
            f"{sum(e['wall_s'] for e in results.values()) / 60:.0f} min |"
        )
    return rows


def read_notes(path):
    notes = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "|" in line and not line.lstrip().startswith("#"):
                name, note = line.split("|", 1)
                notes[name.strip()] = note.strip()
    return notes


def survivor_lines(results, notes, later=None):
    """The survivors of ``results`` by module, each with its note.

    ``later``: the results of a later run (e.g. "after" for "before"); a
    survivor that the later run of its module killed (matched by function
    and change, since mutant numbers move when a function is edited) is
    marked as killed by the tests added since.
    """
    lines = []
    for module in sorted(results, key=lambda m: list(TESTS).index(m) if m in TESTS else 99):
        surv = results[module]["survivors"]
        if not surv:
            continue
        still = {}
        if later and module in later:
            still = {(_function_of(n), tuple(s["diff"])): n for n, s in later[module]["survivors"].items()}
        lines.append(f"\n#### `{module}` ({len(surv)})\n")
        for name, s in surv.items():
            short = name.split(".")[-1]
            change = " / ".join(f"`{d}`" for d in s["diff"]) or "(no diff)"
            note = notes.get(name, "unclassified")
            if later and module in later:
                now = still.get((_function_of(name), tuple(s["diff"])))
                note = notes.get(now, "unclassified") if now else "killed by the tests added since (see after)"
            tag = "" if s["status"] == "survived" else f" [{s['status']}]"
            lines.append(f"- `{short}`{tag}: {change} — {note}")
    return lines


def write_markdown(md_path, name, results, notes, later=None):
    """Replace the table and survivor blocks of ``name`` in ``md_path`` (atomically)."""
    text = md_path.read_text()
    block = "\n".join(
        table(results) + ["", f"Surviving mutants ({name}):"] + survivor_lines(results, notes, later)
    )
    start, end = f"<!-- mutation:{name}:start -->", f"<!-- mutation:{name}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{md_path} has no {start} ... {end} markers for the table {name!r}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    _atomic_write(md_path, head + start + "\n" + block + "\n" + end + tail)


def _atomic_write(path, text):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--module", action="append", help="module path (repeatable); default: the whole scope")
    parser.add_argument(
        "--max-mutants", type=int, default=None,
        help="test at most N mutants per module, evenly spread over it (every k-th mutant)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="mutmut workers (default 1)")
    parser.add_argument("--write", action="store_true", help="update tests/MUTATION.md and the JSON results")
    parser.add_argument("--table", default="after", help="which table of MUTATION.md to update (before/after)")
    parser.add_argument("--root", type=Path, default=ROOT, help="project tree to mutate (default: this one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories")
    parser.add_argument(
        "--since", metavar="TABLE",
        help="run again only the survivors of TABLE's stored results and the mutants of changed functions",
    )
    parser.add_argument(
        "--since-root", type=Path, default=None,
        help="the tree TABLE was measured on, to hash its functions when TABLE's results lack the hashes",
    )
    parser.add_argument(
        "--rerun", action="append", default=[], metavar="FUNCTION",
        help="with --since: run every mutant of FUNCTION again ('name' or 'Class.method'; repeatable)",
    )
    parser.add_argument(
        "--timeout-multiplier", type=float, default=None,
        help="mutmut's timeout_multiplier (default 15): CPU limit 2 x it x (clean test time + 1 s)",
    )
    parser.add_argument("--show", action="store_true", help="only print the stored table of --table")
    parser.add_argument(
        "--render", action="store_true",
        help="only rewrite the before/after blocks of tests/MUTATION.md from the stored results and notes",
    )
    args = parser.parse_args(argv)

    modules = args.module or list(TESTS)
    for m in modules:
        if m not in TESTS:
            reason = EXCLUDED.get(m, "not in the scope")
            parser.error(f"--module expects one of {sorted(TESTS)}; got {m!r} ({reason})")
    if args.max_mutants is not None and args.max_mutants < 1:
        parser.error(f"--max-mutants expects a positive integer; got {args.max_mutants}")
    if args.rerun and not args.since:
        parser.error("--rerun needs --since")
    if args.timeout_multiplier is not None and not args.timeout_multiplier > 0:
        parser.error(f"--timeout-multiplier expects a positive number; got {args.timeout_multiplier}")
    if args.jobs < 1:
        parser.error(f"--jobs expects a positive integer; got {args.jobs}")

    json_path = ROOT / "tests" / f"mutation-{args.table}.json"
    stored = json.loads(json_path.read_text()) if json_path.exists() else {}
    notes = read_notes(ROOT / "tests" / "mutation-notes.txt")
    if args.render:
        md = ROOT / "tests" / "MUTATION.md"
        done = {t: json.loads((ROOT / "tests" / f"mutation-{t}.json").read_text())
                for t in ("before", "after") if (ROOT / "tests" / f"mutation-{t}.json").exists()}
        for t, results in done.items():
            write_markdown(md, t, results, notes, later=done.get("after") if t == "before" else None)
        return 0
    if args.show:
        print("\n".join(table(stored) + survivor_lines(stored, notes)))
        return 0

    results = {}
    for module in modules:
        print(f"{module}: mutating ...", flush=True)
        since = None
        if args.since:
            since = dict(json.loads((ROOT / "tests" / f"mutation-{args.since}.json").read_text())[module])
            counts = since.get("counts", {})
            if counts.get("timeout") and "timeouts" not in since:
                print(f"  {module}: {args.since} has timeouts (not stored by name): running every mutant")
                since = None
            elif counts.get("not checked") and "not_checked" not in since and not args.rerun:
                parser.error(f"{args.since} has {counts['not checked']} unreached mutants of {module}, not "
                             "stored by name: give the functions to run again in full with --rerun")
            elif "function_hashes" not in since:
                if args.since_root is None:
                    parser.error(f"{args.since} stores no function hashes for {module}: give --since-root")
                since["function_hashes"] = function_hashes(args.since_root.resolve(), module)
        rerun = [mangled(f) for f in args.rerun]
        entry = run_module(args.root.resolve(), module, args.max_mutants, args.jobs, args.keep, since, rerun,
                           args.timeout_multiplier)
        if args.max_mutants is not None:
            entry["max_mutants"] = args.max_mutants
        results[module] = entry
        print("\n".join(table({module: entry})[2:]), flush=True)
        if args.write:  # after each module, so that a long run keeps what it has done
            # read again: a run of other modules may have written meanwhile
            stored = json.loads(json_path.read_text()) if json_path.exists() else {}
            stored[module] = entry
            _atomic_write(json_path, json.dumps(stored, indent=1, sort_keys=True) + "\n")
            # the before table marks the survivors that the after run killed (as --render does)
            after = ROOT / "tests" / "mutation-after.json"
            later = (json.loads(after.read_text()) if args.table == "before" and after.exists()
                     else None)
            write_markdown(ROOT / "tests" / "MUTATION.md", args.table, stored, notes, later=later)
            if args.since:  # the earlier table's survivors: which ones the new tests killed
                earlier = json.loads((ROOT / "tests" / f"mutation-{args.since}.json").read_text())
                write_markdown(ROOT / "tests" / "MUTATION.md", args.since, earlier, notes, later=stored)
    print()
    print("\n".join(table(results) + survivor_lines(results, notes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
