"""The README's commands and its taste of the API are what CI and users run."""

import contextlib
import io
import pathlib
import re

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    commands = [line for block in _blocks("bash") for line in block.splitlines() if line]
    demo = [c for c in commands if c.endswith("spherenet demo")]
    tests = [c for c in commands if "pytest" in c]
    assert len(demo) == 1 and len(tests) == 1
    assert "pip install" in demo[0] and "pip install" in tests[0]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests[0] in ci_lines


def test_readme_taste_runs_and_prints_what_it_says():
    taste, network, port = _blocks("python")
    out = io.StringIO()
    namespace = {}
    with contextlib.redirect_stdout(out):
        exec(compile(taste, "README.md", "exec"), namespace)
    lines = out.getvalue().splitlines()
    assert float(lines[0]) == np.pi
    assert "slope" in lines[1].lower()
    assert abs(abs(namespace["res"].x[0]) - 1.0) < 1e-6  # projection + rsgd found e1 too
    assert np.allclose(np.linalg.norm(namespace["w"], axis=0), 1.0, atol=1e-15)
    exec(compile(network, "README.md", "exec"), namespace)
    kernel = namespace["model"].get_weights()[0]
    assert kernel.shape == (2, 500)
    assert np.allclose(np.linalg.norm(kernel, axis=0), 1.0, atol=1e-6)
    exec(compile(port, "README.md", "exec"), namespace)
    assert namespace["res"].success and abs(abs(namespace["res"].x[0]) - 1.0) < 1e-6
