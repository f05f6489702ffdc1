"""The main job: condense scikit-learn's digits to one image per class and score it.

Run ``python -m gradmatch.demo``. It splits digits into a training and a test
part (75/25, stratified, seed 0), condenses the training part to ipc = 1 with
the paper's method, then trains fresh ConvNets from scratch on the condensed
set and on random selections of the same size and scores them on the test
part. The comparison is honest about noise: the condensed set is one set
scored by ``--models`` networks; Random is ``--models`` different random
selections, one network each (most of its spread comes from the selection).
It finishes in about two minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from . import GradientMatchingCondenser, RandomCoreset, __version__, memory
from .cli import add_keep_freed_memory_option
from .datasets import load_digits_images
from .evaluation import EvaluationResult, evaluate_set


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradmatch.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=100, help="outer iterations K (default 100)")
    parser.add_argument("--models", type=int, default=10, help="networks per method (default 10)")
    parser.add_argument("--epochs", type=int, default=300, help="training epochs per network (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="parallel evaluation processes (default 2)")
    parser.add_argument("--grid", default="digits_ipc1.png", help="PNG of the synthetic set ('' to skip)")
    parser.add_argument("--verbose", type=int, default=1)
    add_keep_freed_memory_option(parser)
    args = parser.parse_args(argv)
    # The demo owns its process, so it may change malloc's settings for its run.
    with memory.keep_freed_memory(enabled=args.keep_freed_memory):
        return _run(args)


def _run(args) -> int:

    (X_train, y_train), (X_test, y_test) = load_digits_images(test_size=0.25, random_state=args.seed)
    print(f"gradmatch {__version__}: scikit-learn digits, {len(X_train)} training / {len(X_test)} "
          f"test images of 8x8, 10 classes")
    print(f"condensing to 1 image per class: multilevel matching, distance cos+l2, "
          f"K={args.iterations} iterations, DC's ConvNet, seed {args.seed}")
    start = time.perf_counter()
    cond = GradientMatchingCondenser(ipc=1, iterations=args.iterations, random_state=args.seed,
                                     verbose=args.verbose)
    X_syn, y_syn = cond.fit_resample(X_train, y_train)
    seconds = time.perf_counter() - start
    loss = cond.history_["loss"]
    print(f"made {X_syn.shape[0]} synthetic images of shape {X_syn.shape[1:]} ({X_syn.dtype}) in "
          f"{seconds:.0f} s; matching loss {loss[0]:.0f} -> {np.mean(loss[-10:]):.0f} "
          f"(mean of the last 10 iterations)")
    if args.grid:
        from .plotting import plot_image_grid

        plot_image_grid(X_syn, y_syn, title="gradmatch: digits, 1 image per class", path=args.grid)
        print(f"picture of the synthetic set: {args.grid}")

    print(f"scoring: {args.models} ConvNets per method trained from scratch for {args.epochs} epochs "
          f"(SGD lr 0.01, momentum 0.9, wd 5e-4), tested on the {len(X_test)} test images")
    norm = cond.normalization_
    ours = evaluate_set(X_syn, y_syn, X_test, y_test, normalization=norm, n_models=args.models,
                        epochs=args.epochs, random_state=args.seed, n_jobs=args.jobs)
    random_accs = []
    for i in range(args.models):
        X_rand, y_rand = RandomCoreset(ipc=1, random_state=args.seed + i).fit_resample(X_train, y_train)
        random_accs += evaluate_set(X_rand, y_rand, X_test, y_test, normalization=norm, n_models=1,
                                    epochs=args.epochs, random_state=args.seed + i).accuracies
    rand = EvaluationResult(random_accs)
    diff = ours.mean - rand.mean
    se = math.sqrt(ours.std**2 / len(ours.accuracies) + rand.std**2 / len(rand.accuracies))
    verdict = "exceeds" if abs(diff) > 2 * se else "does not exceed"
    print()
    print("| training set (10 images) | test accuracy |")
    print("|---|---|")
    print(f"| condensed (gradmatch, 1 set x {args.models} networks) | {ours} |")
    print(f"| random selection ({args.models} sets x 1 network) | {rand} |")
    print()
    print(f"difference: {100 * diff:+.1f} points; it {verdict} twice its standard error "
          f"({100 * 2 * se:.1f} points). The condensed figure covers one synthetic set: "
          f"another seed gives another set.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
