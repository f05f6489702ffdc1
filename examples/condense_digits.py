"""Condense scikit-learn's digits to a few images per class and look at them.

Usage::

    python examples/condense_digits.py --ipc 3 --iterations 50

Writes ``condensed_digits.png`` (one row per class) and prints how the matching
loss went down. Compare methods with ``python -m gradmatch.demo``.
"""

import argparse

import numpy as np

from gradmatch import GradientMatchingCondenser
from gradmatch.datasets import load_digits_images
from gradmatch.plotting import plot_image_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ipc", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--out", default="condensed_digits.png")
    args = parser.parse_args()

    (X, y), _ = load_digits_images()
    cond = GradientMatchingCondenser(ipc=args.ipc, iterations=args.iterations, random_state=0, verbose=1)
    X_syn, y_syn = cond.fit_resample(X, y)
    loss = np.asarray(cond.history_["loss"])
    print(f"{len(X_syn)} synthetic images; matching loss {loss[0]:.0f} -> {loss[-5:].mean():.0f}; "
          f"{sum(cond.history_['seconds']):.0f} s")
    plot_image_grid(X_syn, y_syn, title=f"digits, {args.ipc} per class", path=args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
