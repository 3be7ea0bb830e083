"""Press Ctrl-C on ``spherenet compare`` many times, at random moments; report what went wrong.

Each trial starts ``python -m spherenet compare`` in its own process group, as
a terminal does, sends SIGINT to the whole group (parent and workers) at a
random moment — before the first run is submitted, while runs are in flight,
right when a run file appears (a worker is then often sending its result) —
and checks what a user is promised:

* the command ends within ``--timeout`` seconds with exit code 130 and the one
  line that says how many runs are saved and how to resume;
* that many run files are there, each whole, and no temporary file is left;
* (every ``--resume-every`` trials) the same command run again reads the saved
  runs back and runs only the rest.

A trial that hangs has the Python stacks of all its processes dumped
(``faulthandler`` on SIGUSR1) into the report before it is killed.

Run from the repository root, e.g.::

    python bench/ctrl_c.py --trials 200 --executor processes
    python bench/ctrl_c.py --trials 50 --executor threads
    python bench/ctrl_c.py --trials 100 --moment "first file" --root ../other-checkout

(``--root``: the spherenet to run, e.g. an older checkout to compare with.) A
Ctrl-C during Python's imports, before spherenet can handle it, ends with
Python's own traceback; such trials are counted apart, not as failures. It prints one line per failed trial and a tally; the exit code is 1 if any
trial failed. This is a stress test, not a benchmark: nothing is timed.
"""

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Long enough that runs are in flight for a while, short enough for many trials.
GRID = ["compare", "--problem", "rayleigh", "--strategies", "riemannian,projection",
        "--seeds", "6", "--budget", "3000", "--set", "lr=1e-4", "--no-progress", "--no-plots"]
ITERATIONS = 3001
TOTAL = 12

# The child dumps every thread's stack on SIGUSR1 (a hang's diagnosis), and touches
# the file "started" once spherenet is imported (a Ctrl-C before that is Python's own
# business: a traceback from whichever import it interrupts).
LAUNCH = ("import faulthandler, signal, sys, runpy, pathlib; "
          "faulthandler.register(signal.SIGUSR1, all_threads=True); "
          "import spherenet.cli; pathlib.Path('started').touch(); "
          "sys.argv = ['spherenet'] + sys.argv[1:]; "
          "runpy.run_module('spherenet', run_name='__main__', alter_sys=True)")


def _children(pid):
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _start(argv, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", LAUNCH, *argv], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=env)


def _check(code, stderr, argv, runs, folder):
    """What is wrong with an interrupted trial's outcome ("" if nothing)."""
    saved = sorted(runs.glob("*.json")) if runs.exists() else []
    temporaries = [p for p in folder.rglob(".*") if ".tmp-" in p.name]
    if temporaries:
        return f"temporary files left: {[p.name for p in temporaries]}"
    for path in saved:
        try:
            cost = json.loads(path.read_text())["columns"]["cost"]
        except (OSError, ValueError, KeyError) as err:
            return f"{path.name} unreadable: {err}"
        if len(cost) != ITERATIONS:
            return f"{path.name} has {len(cost)} iterations, not {ITERATIONS}"
    if code == 0 and len(saved) == TOTAL:
        return ""  # the interrupt came after the grid finished
    if code != 130:
        return f"exit code {code}: {stderr[-2000:]!r}"
    again = "spherenet " + " ".join(argv)
    counted = re.fullmatch(r"spherenet compare: interrupted; (\d+) of (\d+) runs are saved in "
                           r"grid/runs\. To resume \(the saved runs are read back, not run "
                           r"again\): (.*)\n", stderr)
    if counted:
        if int(counted[1]) != len(saved) or int(counted[2]) != TOTAL or counted[3] != again:
            return f"says {counted[1]} of {counted[2]} saved, {len(saved)} on disk: {stderr!r}"
        return ""
    early = ("spherenet compare: interrupted; the finished runs are saved. To resume (they are "
             f"read back, not run again): {again}\n")
    if stderr == early and not saved:
        return ""
    return f"unexpected message {stderr[-2000:]!r}"


def _resume(argv, cwd, runs, timeout):
    """Run the command again: it must read every saved run back and finish."""
    before = len(list(runs.glob("*.json"))) if runs.exists() else 0
    done = subprocess.run([sys.executable, "-m", "spherenet", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if done.returncode != 0:
        return f"resume exited {done.returncode}: {done.stderr[-2000:]!r}"
    head = done.stdout.splitlines()[0]
    expected = f"{TOTAL} runs ({TOTAL - before} run now, {before} read back"
    if not head.startswith(expected):
        return f"resume says {head!r}, expected {expected!r}"
    return ""


MOMENTS = ("start-up", "before the runs", "in flight", "first file", "later file")


def trial(rng, executor, timeout, resume, moments=MOMENTS):
    """One interrupted run; returns (moment, problem) with problem "" when all is well."""
    with tempfile.TemporaryDirectory(prefix="spherenet-ctrl-c-") as tmp:
        folder = Path(tmp)
        runs = folder / "grid" / "runs"
        argv = GRID + ["--out", "grid", "--executor", executor, "--workers", "2"]
        process = _start(argv, folder)
        moment = rng.choice(list(moments))
        started = time.monotonic()
        if moment == "start-up":
            time.sleep(rng.uniform(0.0, 2.0))  # imports, maybe already the grid
        elif moment in ("before the runs", "in flight"):
            while (process.poll() is None and time.monotonic() - started < timeout
                   and not (folder / "started").exists()):
                time.sleep(0.002)
            # grid building, pool start, first submits; or later, runs in flight
            time.sleep(rng.uniform(0.0, 0.3) if moment == "before the runs"
                       else rng.uniform(0.3, 1.5))
        else:
            want = 1 if moment == "first file" else rng.randint(2, TOTAL - 2)
            while (process.poll() is None and time.monotonic() - started < timeout
                   and len(list(runs.glob("*.json")) if runs.exists() else []) < want):
                time.sleep(0.002)
            time.sleep(rng.choice([0.0, rng.uniform(0.0, 0.05)]))
        moment += f" ({time.monotonic() - started:.2f} s)"
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for pid in [process.pid, *_children(process.pid)]:
                try:
                    os.kill(pid, signal.SIGUSR1)
                except ProcessLookupError:
                    pass
            time.sleep(1.0)
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            return moment, f"HUNG for {timeout} s; stacks:\n{stderr}"
        if (process.returncode == -signal.SIGINT and not (folder / "started").exists()
                and stderr.endswith("KeyboardInterrupt\n")):
            return moment, "STARTUP"  # interrupted while Python imported spherenet
        problem = _check(process.returncode, stderr, argv, runs, folder)
        if not problem and resume:
            problem = _resume(argv, folder, runs, timeout * 4)
        return moment, problem


def main():
    global ROOT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--executor", choices=["processes", "threads", "serial"],
                        default="processes")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds a trial may take after the SIGINT before it counts as hung")
    parser.add_argument("--resume-every", type=int, default=10,
                        help="check resuming after every n-th trial (0: never)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--moment", choices=MOMENTS, action="append",
                        help="only these moments (repeatable; default: all, at random)")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="the checkout whose spherenet is run (default: this one)")
    args = parser.parse_args()
    ROOT = args.root.resolve()
    rng = random.Random(args.seed)
    failures = startup = 0
    for i in range(args.trials):
        resume = args.resume_every > 0 and i % args.resume_every == args.resume_every - 1
        moment, problem = trial(rng, args.executor, args.timeout, resume,
                                args.moment or MOMENTS)
        if problem == "STARTUP":
            startup += 1
        elif problem:
            failures += 1
            print(f"trial {i} (Ctrl-C {moment}): {problem}", flush=True)
        elif (i + 1) % 10 == 0:
            print(f"{i + 1} trials, {failures} failed", flush=True)
    print(f"{args.executor}: {failures} of {args.trials} trials failed ({startup} interrupted "
          "the imports, before spherenet could handle Ctrl-C: not counted)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
