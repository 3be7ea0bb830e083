"""Training time per epoch of a small CNN on the digits: spherenet.nn against PyTorch on the CPU.

The network of ``tests/test_nn_conv_digits.py`` -- Conv2D(32, 3, same, relu),
Conv2D(32, 3, same, relu), MaxPooling2D(2), Flatten, Dense(128, relu),
Dense(10, softmax) -- trained on the 1348 training images (8x8, one channel)
of scikit-learn's digits, float32, batches of 128 (11 a epoch, the last
one partial), SGD with momentum 0.9 and softmax cross-entropy, without
shuffling, in:

* spherenet.nn without constraints;
* spherenet.nn with every filter (and hidden Dense column) on its unit
  sphere, ``unit_norm(axis=[0, 1, 2])``, under the riemannian and the
  projection strategies;
* PyTorch (``nn.Conv2d``, ``nn.MaxPool2d``, ``nn.Linear``, ``optim.SGD``),
  the same architecture on the same data (NCHW);
* PyTorch with the same constraint kept Keras's way: every filter and
  hidden column divided by its norm after each step.

For each thread count (``--threads 1,2``: BLAS threads through threadpoolctl,
``torch.set_num_threads``) the methods are interleaved epoch by epoch and each
reports its best of ``--repeat`` epochs (the machine may be shared); the
table gives ms per epoch and the ratio to PyTorch's. Run
``python bench/cnn.py [--threads 1,2] [--repeat 7] [--profile]``;
``--profile`` adds a cProfile of the spherenet riemannian epoch (one thread).
"""

import argparse
import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from spherenet.nn import Conv2D, Dense, Flatten, MaxPooling2D, Sequential, unit_norm  # noqa: E402
from spherenet.optim import RSGD  # noqa: E402

F32 = np.float32


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", default="1,2", help="thread counts to compare (default 1,2)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=7, help="timed epochs per method (best of)")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the spherenet.nn riemannian epoch")
    return parser.parse_args()


ARGS = parse_args()


def data():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.images[..., None] / 16.0).astype(F32), digits.target
    order = np.random.default_rng(0).permutation(len(x))
    n_train = int(round(len(x) * 0.75))
    return np.ascontiguousarray(x[order][:n_train]), y[order][:n_train]


def make_spherenet(x, y, constrained=False, strategy="riemannian"):
    filters = unit_norm(axis=[0, 1, 2]) if constrained else None
    model = Sequential([
        Conv2D(32, 3, padding="same", activation="relu", kernel_constraint=filters,
               input_shape=(8, 8, 1)),
        Conv2D(32, 3, padding="same", activation="relu", kernel_constraint=filters),
        MaxPooling2D(2),
        Flatten(),
        Dense(128, activation="relu", kernel_constraint=unit_norm() if constrained else None),
        Dense(10, activation="softmax"),
    ], seed=0)
    model.compile(optimizer=RSGD(lr=ARGS.lr, momentum=ARGS.momentum),
                  loss="sparse_categorical_crossentropy", strategy=strategy)

    def epoch():
        model.fit(x, y, epochs=1, batch_size=ARGS.batch, verbose=0, shuffle=False)

    return epoch


def make_torch(x, y, torch, constrained=False):
    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(512, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )
    constrained_weights = [net[0].weight, net[2].weight, net[6].weight]
    opt = torch.optim.SGD(net.parameters(), lr=ARGS.lr, momentum=ARGS.momentum)
    loss_fn = nn.CrossEntropyLoss()
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    yt = torch.from_numpy(y)
    n, b = len(x), ARGS.batch

    def normalize():
        with torch.no_grad():
            for w in constrained_weights:  # torch's layout: one filter / unit per row
                dims = tuple(range(1, w.dim()))
                w.div_(1e-7 + torch.sqrt(torch.sum(w * w, dim=dims, keepdim=True)))

    if constrained:
        normalize()

    def epoch():
        for lo in range(0, n, b):
            opt.zero_grad(set_to_none=False)
            loss = loss_fn(net(xt[lo:lo + b]), yt[lo:lo + b])
            loss.backward()
            opt.step()
            if constrained:
                normalize()

    return epoch


def import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def run(threads, x, y, torch):
    methods = [
        ("spherenet.nn Conv2D", make_spherenet(x, y)),
        ("spherenet.nn unit-norm filters, riemannian", make_spherenet(x, y, True)),
        ("spherenet.nn unit-norm filters, projection", make_spherenet(x, y, True, "projection")),
    ]
    if torch is not None:
        methods += [("PyTorch", make_torch(x, y, torch)),
                    ("PyTorch, filters normalized after each step", make_torch(x, y, torch, True))]
    best = {name: np.inf for name, _ in methods}
    with threadpool_limits(threads, user_api="blas"):
        if torch is not None:
            torch.set_num_threads(threads)
        for _, epoch in methods:  # warm up (numba compilation, allocator, caches)
            epoch()
        for _ in range(ARGS.repeat):
            for name, epoch in methods:
                t = time.perf_counter()
                epoch()
                best[name] = min(best[name], time.perf_counter() - t)
    return methods, best


def main():
    x, y = data()
    torch = import_torch()
    thread_counts = [int(t) for t in ARGS.threads.split(",")]
    results = [(t, *run(t, x, y, torch)) for t in thread_counts]
    versions = [f"numpy {np.__version__}"]
    if torch is not None:
        versions.append(f"torch {torch.__version__}")
    print(f"digits CNN (32-32 conv, pool, 128, 10), {len(x)} images a epoch, batch {ARGS.batch}, "
          f"float32, SGD momentum {ARGS.momentum}, best of {ARGS.repeat} epochs; "
          + ", ".join(versions))
    names = [name for name, _ in results[0][1]]
    width = max(len(name) for name in names)
    header = f"{'method':<{width}}" + "".join(
        f"  {f'{t} thr ms':>10}  {'x torch':>7}" for t, _, _ in results)
    print(header)
    for name in names:
        row = f"{name:<{width}}"
        for _, _, best in results:
            ratio = best[name] / best["PyTorch"] if "PyTorch" in best else float("nan")
            row += f"  {1e3 * best[name]:10.1f}  {ratio:7.2f}"
        print(row)
    if torch is None:
        print("PyTorch: not installed (pip install -e '.[bench]')")
    if ARGS.profile:
        profile(x, y)


def profile(x, y):
    import cProfile
    import pstats

    epoch = make_spherenet(x, y, True)
    with threadpool_limits(1, user_api="blas"):
        epoch()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(5):
            epoch()
        prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
