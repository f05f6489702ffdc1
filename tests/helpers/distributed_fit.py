"""Run by tests/test_distributed.py under ``torchrun``: fit condensers class-sharded.

Usage: torchrun --nproc-per-node N distributed_fit.py CONFIG.json OUT_DIR

CONFIG.json: {"X": path to .npy, "y": path to .npy, "fits": {name: params}}; a fit's
``method`` is "gm" (GradientMatchingCondenser, the default) or "dm"
(DistributionMatchingCondenser).
Each fit's X_syn_ is saved as OUT_DIR/<name>-rank<r>.npy, with its n_ranks_.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from gradmatch import DistributionMatchingCondenser, GradientMatchingCondenser

ESTIMATORS = {"gm": GradientMatchingCondenser, "dm": DistributionMatchingCondenser}


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    try:
        X, y = np.load(config["X"]), np.load(config["y"])
        for name, params in config["fits"].items():
            if isinstance(params.get("ipc"), dict):  # JSON made the class keys strings
                params["ipc"] = {int(k): v for k, v in params["ipc"].items()}
            data = X
            if params.pop("as_dataset", False):  # a torch Dataset, streamed through index pools
                data = torch.utils.data.TensorDataset(torch.as_tensor(X), torch.as_tensor(y))
            estimator = ESTIMATORS[params.pop("method", "gm")]
            cond = estimator(**params).fit(data, None if data is not X else y)
            np.save(out / f"{name}-rank{rank}.npy", cond.X_syn_)
            (out / f"{name}-rank{rank}.json").write_text(json.dumps(
                {"n_ranks": cond.n_ranks_, "loss": cond.history_["loss"], "n_iter": cond.n_iter_}))
    except BaseException:
        # Print before anything else: tearing the group down while the other
        # rank waits in a collective can abort the process, and the traceback
        # would be lost. torchrun then stops the other rank.
        print(f"distributed_fit: error on rank {rank}", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    # Leave together: one rank destroying its group while the other still
    # talks to it is a teardown race in gloo.
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
