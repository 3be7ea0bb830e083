"""Ctrl-C during a grid on a pool: it ends, says what is saved, leaves whole files, resumes.

Every scenario runs in a child Python process with a timeout, so that a
regression that hangs (a pool's manager thread blocked for ever, which the
interpreter's exit waits for) fails the test instead of the suite. The child
is its own process group, as a command started from a terminal is: a SIGINT
to the group reaches the parent and the pool's workers, as Ctrl-C does.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import spherenet

ROOT = Path(spherenet.__file__).parents[1]
ITERATIONS = 1000
TOTAL = 6  # rayleigh x (riemannian, projection) x 3 seeds


def _child(script, cwd, timeout=180):
    """Run ``script`` in a fresh Python, its own process group; (stdout, stderr)."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          start_new_session=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


def _whole_run_files(out):
    """The run files under ``out``, each checked whole; no temporary file may be left."""
    assert not [p for p in Path(out).rglob(".*") if ".tmp-" in p.name]
    files = sorted((Path(out) / "runs").glob("*.json"))
    for path in files:
        assert len(json.loads(path.read_text())["columns"]["cost"]) == ITERATIONS + 1
    return files


GRID = f"""
import os, signal
from spherenet.experiments import GridInterrupted, compare
from spherenet.experiments import results

def grid(executor, out):
    return compare("rayleigh", ["riemannian", "projection"], ("rsgd", {{"lr": 1e-4}}), seeds=3,
                   budget={ITERATIONS}, executor=executor, out=out, progress=False, workers=2)

def interrupted(executor, out):
    try:
        grid(executor, out)
    except GridInterrupted as stop:
        return stop.saved
    raise AssertionError("not interrupted")
"""


@pytest.mark.parametrize("executor", ["processes", "threads"])
def test_ctrl_c_while_a_result_is_written_keeps_it_whole_and_the_grid_resumes(executor, tmp_path):
    # Ctrl-C (SIGINT to the whole group: parent and workers) in the middle of writing the
    # first run file; then the grid is run again and reads the saved runs back.
    stdout, _ = _child(GRID + f"""
        write = results.atomic_write

        def write_while_interrupted(path, content):
            os.killpg(os.getpgid(0), signal.SIGINT)
            return write(path, content)

        results.atomic_write = write_while_interrupted
        saved = interrupted({executor!r}, "grid")
        results.atomic_write = write
        again = grid({executor!r}, "grid")
        print(saved, again.executed, again.reused, len(again.runs))
    """.replace("\n        ", "\n"), tmp_path)
    saved, executed, reused, runs = map(int, stdout.split())
    assert saved >= 1  # the run being written when Ctrl-C came is kept
    assert (reused, executed, runs) == (saved, TOTAL - saved, TOTAL)
    assert len(_whole_run_files(tmp_path / "grid")) == TOTAL


@pytest.mark.parametrize("when", [0, 3])
def test_ctrl_c_to_the_parent_alone_while_runs_are_submitted(when, tmp_path):
    # ``kill -INT <parent>``: the workers do not get the signal from the terminal; the
    # parent stops them. Before the first run is submitted, after three.
    stdout, _ = _child(GRID + f"""
        from concurrent.futures import ProcessPoolExecutor
        submit, count = ProcessPoolExecutor.submit, [0]

        def submit_then_interrupt(self, *args, **kwargs):
            if count[0] == {when}:
                os.kill(os.getpid(), signal.SIGINT)
            count[0] += 1
            return submit(self, *args, **kwargs)

        ProcessPoolExecutor.submit = submit_then_interrupt
        print(interrupted("processes", "grid"))
    """.replace("\n        ", "\n"), tmp_path)
    files = _whole_run_files(tmp_path / "grid")
    assert int(stdout) == len(files) < TOTAL


def test_a_worker_interrupted_while_it_sends_its_result_still_delivers_it(tmp_path):
    # The moment that used to hang: the pool's manager thread is receiving a large result
    # when Ctrl-C reaches the worker. A worker killed there (terminate) left a partial
    # message that the manager thread waited on for ever, and the interpreter's exit with it.
    stdout, _ = _child("""
        import os, signal, sys, time
        from spherenet.experiments.executors import (RunStopped, make_executor, stop_executor,
                                                     stoppable_run)

        SIZE = 30_000_000

        def payload(n):
            with stoppable_run():
                data = b"x" * n
            return data

        def spin(marker):
            with stoppable_run():
                open(marker, "w").close()
                while True:
                    pass

        def receiving(pool):
            frame = sys._current_frames().get(pool._executor_manager_thread.ident)
            while frame is not None:
                if frame.f_code.co_name == "_recv":
                    return True
                frame = frame.f_back
            return False

        pool, owned = make_executor("processes", 2, workers=1)
        assert pool.submit(payload, 1).result() == b"x"
        (worker,) = pool._processes.values()
        for attempt in range(50):
            future = pool.submit(payload, SIZE)
            while not (future.done() or receiving(pool)):
                time.sleep(0.0002)
            if not future.done():
                break
        else:
            raise AssertionError("never caught the result on its way")
        os.kill(worker.pid, signal.SIGINT)
        # a Ctrl-C there is not acted on: the result arrives whole, the worker lives on
        assert len(future.result(timeout=60)) == SIZE and worker.is_alive()
        # in a run it stops the run, and the runs after it do not start
        stopped = pool.submit(payload, 1)
        try:
            stopped.result(timeout=60)
        except RunStopped as err:
            print("next:", err)
        stop_executor(pool, [], owned)
        assert not worker.is_alive()

        pool, owned = make_executor("processes", 2, workers=1)
        running = pool.submit(spin, "spinning")
        while not os.path.exists("spinning"):
            time.sleep(0.001)
        stop_executor(pool, [running], owned)  # sends SIGINT to the worker itself
        try:
            running.result(timeout=60)
        except RunStopped as err:
            print("spin:", err)
    """.replace("\n        ", "\n"), tmp_path)
    assert stdout == "next: interrupted before it started\nspin: interrupted\n"
