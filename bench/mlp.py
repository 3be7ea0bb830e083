"""Training throughput of a 784-512-512-10 ReLU network: spherenet.nn against its floor and peers.

One training step (forward, backward, SGD with momentum) on a batch of 256
float32 samples of synthetic data (Gaussian inputs, random labels of 10
classes, softmax cross-entropy), measured in the same run for:

* the GEMM floor: the matrix products alone, three forward and five backward
  (no input gradient for the first layer), into preallocated outputs;
* hand-written NumPy forward/backward with in-place momentum SGD, plain, and
  with the kernels on ``Oblique`` (unit columns) stepped by spherenet's fused
  ``gradient_step`` with an ambient momentum buffer (m <- mu m + g,
  w <- R_w(-lr P_w m));
* spherenet.nn: ``Dense`` (no constraint), and ``Dense(...,
  kernel_constraint=unit_norm())`` under the riemannian and projection
  strategies, ``compile(optimizer=RSGD(lr, momentum))``, ``fit(...,
  shuffle=False)``;
* PyTorch ``nn.Linear``/``SGD(momentum)`` and PyTorch with geoopt's
  ``RiemannianSGD`` on ``ManifoldParameter`` weights of ``geoopt.Sphere``
  (each row of torch's (out, in) weight on the sphere: the same constraint),
  where installed.

Every method trains on the same contiguous batches. A round is ``--steps``
batches; methods are interleaved round by round and each reports its best of
``--repeat`` rounds (the machine may be shared). Results are samples/s and
multiples of the GEMM floor's time. Run ``python bench/mlp.py [--threads 1]
[--steps 20] [--repeat 7] [--no-numba] [--profile]``; ``--profile`` adds a
cProfile of the spherenet.nn riemannian step.
"""

import argparse
import os
import sys


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", default="1",
                        help="BLAS and torch threads, set before NumPy loads (default 1)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--sizes", default="784,512,512,10")
    parser.add_argument("--steps", type=int, default=20, help="batches per timed round")
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds per method (best of)")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--no-numba", action="store_true",
                        help="use the NumPy paths of the fused steps even if numba is installed")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the spherenet.nn riemannian training step")
    return parser.parse_args()


ARGS = parse_args()
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = ARGS.threads

import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from spherenet import Oblique  # noqa: E402
from spherenet.manifolds import _kernels  # noqa: E402
from spherenet.nn import Dense, Sequential, unit_norm  # noqa: E402
from spherenet.optim import RSGD, _momentum  # noqa: E402

if ARGS.no_numba:  # what a NumPy-only install (no ``fast`` extra) runs
    _kernels._STATE["numba"] = False
    _momentum._STATE["kernel"] = False

F32 = np.float32
SIZES = [int(s) for s in ARGS.sizes.split(",")]
B = ARGS.batch
N = B * ARGS.steps


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, SIZES[0]), dtype=F32)
    y = rng.integers(0, SIZES[-1], N)
    return x, y


def init_weights(seed=1, unit=False):
    rng = np.random.default_rng(seed)
    weights = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:]):
        limit = np.sqrt(6.0 / (n_in + n_out))
        w = rng.uniform(-limit, limit, (n_in, n_out)).astype(F32)
        if unit:
            w /= np.linalg.norm(w, axis=0)
        weights += [w, np.zeros(n_out, F32)]
    return weights


# --- the floor and the hand-written baselines --------------------------------------


def make_gemm(x, y):
    ws = init_weights()
    kernels = ws[0::2]
    acts = [np.empty((B, n), F32) for n in SIZES]
    grads = [np.empty_like(k) for k in kernels]
    deltas = [np.empty((B, n), F32) for n in SIZES]

    def step(lo):
        acts[0] = x[lo:lo + B]
        for i, k in enumerate(kernels):
            np.matmul(acts[i], k, out=acts[i + 1])
        deltas[-1][...] = acts[-1]
        for i in reversed(range(len(kernels))):
            np.matmul(acts[i].T, deltas[i + 1], out=grads[i])
            if i > 0:
                np.matmul(deltas[i + 1], kernels[i].T, out=deltas[i])

    return step


def make_numpy(x, y, oblique=False):
    ws = init_weights(unit=oblique)
    bufs = [np.zeros_like(w) for w in ws]
    n_layers = len(SIZES) - 1
    manifolds = [Oblique(*w.shape) for w in ws[0::2]]
    lr, mu = F32(ARGS.lr), F32(ARGS.momentum)
    rows = np.arange(B)

    def step(lo):
        xb, yb = x[lo:lo + B], y[lo:lo + B]
        hs = [xb]
        for i in range(n_layers):
            z = hs[-1] @ ws[2 * i]
            z += ws[2 * i + 1]
            if i < n_layers - 1:
                np.maximum(z, 0, out=z)
            hs.append(z)
        logits = hs[-1]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[rows, yb] -= 1
        p *= F32(1.0 / B)
        delta = p
        grads = [None] * len(ws)
        for i in reversed(range(n_layers)):
            grads[2 * i] = hs[i].T @ delta
            grads[2 * i + 1] = delta.sum(axis=0)
            if i > 0:
                delta = delta @ ws[2 * i].T
                delta *= hs[i] > 0
        for j, (w, g, m) in enumerate(zip(ws, grads, bufs)):
            m *= mu
            m += g
            if oblique and j % 2 == 0:
                ws[j] = manifolds[j // 2].unchecked.gradient_step(w, m, ARGS.lr)
            else:
                m_lr = m * lr
                w -= m_lr

    return step


# --- spherenet.nn -------------------------------------------------------------------------


def make_spherenet(x, y, constraint=None, strategy="riemannian"):
    model = Sequential(seed=1)
    for i, n_out in enumerate(SIZES[1:]):
        last = i == len(SIZES) - 2
        kwargs = {"input_dim": SIZES[0]} if i == 0 else {}
        model.add(Dense(n_out, activation="softmax" if last else "relu",
                        kernel_constraint=None if last else constraint, **kwargs))
    model.compile(optimizer=RSGD(lr=ARGS.lr, momentum=ARGS.momentum),
                  loss="sparse_categorical_crossentropy", strategy=strategy)
    model.fit(x[:B], y[:B], epochs=1, batch_size=B, verbose=0, shuffle=False, seed=0)

    def run_round():
        model.fit(x, y, epochs=1, batch_size=B, verbose=0, shuffle=False, seed=0)

    run_round.model = model
    return run_round


# --- PyTorch and geoopt -------------------------------------------------------------------


def import_torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(int(ARGS.threads))
    return torch


def import_geoopt():
    try:
        import scipy.optimize._linesearch as _ls

        # geoopt 0.5.0 imports scipy.optimize.linesearch, removed in SciPy 1.14
        sys.modules.setdefault("scipy.optimize.linesearch", _ls)
        import geoopt
    except ImportError:
        return None
    return geoopt


def make_torch(x, y, torch, geoopt=None):
    torch.manual_seed(0)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        lin = torch.nn.Linear(n_in, n_out)
        if geoopt is not None and i < len(SIZES) - 2:
            w = lin.weight.detach()
            lin.weight = geoopt.ManifoldParameter(w / w.norm(dim=1, keepdim=True),
                                                  manifold=geoopt.Sphere())
        layers.append(lin)
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    if geoopt is None:
        opt = torch.optim.SGD(net.parameters(), lr=ARGS.lr, momentum=ARGS.momentum)
    else:
        opt = geoopt.optim.RiemannianSGD(net.parameters(), lr=ARGS.lr, momentum=ARGS.momentum)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step(lo):
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(net(xt[lo:lo + B]), yt[lo:lo + B])
        loss.backward()
        opt.step()

    step.net = net
    return step


# --- timing -------------------------------------------------------------------------------


def per_round(step):
    def run_round():
        for lo in range(0, N, B):
            step(lo)
    return run_round


def main():
    x, y = data()
    torch = import_torch()
    geoopt = import_geoopt() if torch is not None else None
    methods = [
        ("GEMM floor (matrix products only)", per_round(make_gemm(x, y))),
        ("NumPy by hand, plain", per_round(make_numpy(x, y))),
        ("NumPy by hand, Oblique kernels + gradient_step", per_round(make_numpy(x, y, True))),
        ("spherenet.nn Dense", make_spherenet(x, y)),
        ("spherenet.nn unit_norm, riemannian", make_spherenet(x, y, unit_norm())),
        ("spherenet.nn unit_norm, projection", make_spherenet(x, y, unit_norm(), "projection")),
    ]
    if torch is not None:
        methods.append(("PyTorch", per_round(make_torch(x, y, torch))))
        if geoopt is not None:
            methods.append(("PyTorch + geoopt RiemannianSGD (Sphere rows)",
                            per_round(make_torch(x, y, torch, geoopt))))
    best = {name: np.inf for name, _ in methods}
    for _, run in methods:  # warm up (numba compilation, allocator, caches)
        run()
    for _ in range(ARGS.repeat):
        for name, run in methods:
            t = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - t)
    floor = best[methods[0][0]]
    versions = [f"numpy {np.__version__}"]
    if torch is not None:
        versions.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    if geoopt is not None:
        versions.append(f"geoopt {geoopt.__version__}")
    print(f"{'-'.join(map(str, SIZES))} MLP, batch {B}, float32, SGD momentum {ARGS.momentum}, "
          f"{ARGS.steps} batches a round, best of {ARGS.repeat}; BLAS threads {ARGS.threads}; "
          f"numba kernels {'on' if _kernels.available() else 'off'}; " + ", ".join(versions))
    width = max(len(name) for name, _ in methods)
    print(f"{'method':<{width}}  {'ms/batch':>9}  {'samples/s':>10}  {'x GEMM floor':>12}")
    for name, _ in methods:
        t = best[name]
        print(f"{name:<{width}}  {1e3 * t / ARGS.steps:9.3f}  {N / t:10.0f}  {t / floor:12.2f}")
    if torch is None:
        print("PyTorch: not installed")
    elif geoopt is None:
        print("geoopt: not installed")
    if ARGS.profile:
        profile(x, y)


def profile(x, y):
    import cProfile
    import pstats

    run = make_spherenet(x, y, unit_norm())
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(5):
        run()
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
