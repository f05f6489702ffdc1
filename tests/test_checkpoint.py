"""Long runs: checkpoints and resume (even after SIGKILL), warm starts, Ctrl-C and divergence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import KFold

from gradmatch import DivergenceError, GradientMatchingCondenser
from gradmatch.checkpoint import FORMAT

pytestmark = pytest.mark.usefixtures("torch_single_thread")

#: Small but real: the ConvNet, three matching steps with network steps in between.
SETTINGS = dict(ipc=2, matching_steps=3, network_steps=2, schedule="fixed", batch_real=16,
                random_state=0, device="cpu")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def uninterrupted(digits):
    X, y = digits
    return GradientMatchingCondenser(iterations=6, **SETTINGS).fit(X, y)


def test_resume_from_a_checkpoint_gives_the_uninterrupted_set(digits, uninterrupted, tmp_path):
    X, y = digits
    first = GradientMatchingCondenser(iterations=3, checkpoint=tmp_path, checkpoint_every=1, **SETTINGS)
    first.fit(X, y)
    files = list(tmp_path.glob("gradmatch-*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    resumed = GradientMatchingCondenser(iterations=6, checkpoint=tmp_path, **SETTINGS).fit(X, y)
    np.testing.assert_array_equal(resumed.X_syn_, uninterrupted.X_syn_)
    assert resumed.n_iter_ == 6 and len(resumed.history_["loss"]) == 6
    # The history carried over is the first run's.
    assert resumed.history_["loss"][:3] == first.history_["loss"]


def test_resume_after_sigkill(digits, uninterrupted, tmp_path):
    X, y = digits
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    script = textwrap.dedent(f"""
        import sys, numpy as np, torch
        torch.set_num_threads(1)
        from gradmatch import GradientMatchingCondenser
        X, y = np.load(sys.argv[1]), np.load(sys.argv[2])
        def report(i, record):
            print("done", i, flush=True)
        GradientMatchingCondenser(iterations=10**6, checkpoint=sys.argv[3], checkpoint_every=1,
                                  callback=report, **{SETTINGS!r}).fit(X, y)
    """)
    ckpt = tmp_path / "ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "X.npy"),
                             str(tmp_path / "y.npy"), str(ckpt)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 300
        done = 0
        while done < 3:  # let it finish (and checkpoint) a few iterations
            line = proc.stdout.readline()
            assert line, proc.stderr.read()[-2000:]
            if line.startswith("done"):
                done += 1
            assert time.monotonic() < deadline, "the child made no progress"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    # Resuming with the same data and settings continues from the last checkpoint
    # (iteration 3 or a little later) and ends exactly where an uninterrupted run does.
    resumed = GradientMatchingCondenser(iterations=6, checkpoint=ckpt, **SETTINGS).fit(X, y)
    np.testing.assert_array_equal(resumed.X_syn_, uninterrupted.X_syn_)


def test_warm_start_continues_exactly(digits, uninterrupted):
    X, y = digits
    est = GradientMatchingCondenser(iterations=2, **SETTINGS).fit(X, y)
    est.set_params(iterations=4, warm_start=True).fit(X, y)
    est.set_params(iterations=6).fit(X, y)
    np.testing.assert_array_equal(est.X_syn_, uninterrupted.X_syn_)
    assert est.n_iter_ == 6
    with pytest.warns(UserWarning, match="nothing to run"):
        est.fit(X, y)
    np.testing.assert_array_equal(est.X_syn_, uninterrupted.X_syn_)


def test_warm_start_refuses_other_classes(digits):
    X, y = digits
    est = GradientMatchingCondenser(iterations=1, warm_start=True, **SETTINGS).fit(X, y)
    keep = y < 5
    with pytest.raises(ValueError, match="warm_start=True continues the previous synthetic set"):
        est.set_params(iterations=2).fit(X[keep], y[keep])


def test_without_warm_start_a_refit_starts_over(digits):
    X, y = digits
    est = GradientMatchingCondenser(iterations=1, **SETTINGS).fit(X, y)
    first = est.X_syn_.copy()
    est.fit(X, y)
    np.testing.assert_array_equal(est.X_syn_, first)
    assert est.n_iter_ == 1


def test_ctrl_c_keeps_the_set_checkpoints_and_reraises(digits, uninterrupted, tmp_path):
    X, y = digits

    def interrupt(iteration, record):
        if iteration == 2:
            raise KeyboardInterrupt

    est = GradientMatchingCondenser(iterations=6, checkpoint=tmp_path, checkpoint_every=100,
                                    callback=interrupt, **SETTINGS)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y)
    assert est.partial_ is True
    assert est.n_iter_ == 3 and est.X_syn_.shape == uninterrupted.X_syn_.shape
    X_partial, _ = est.transform()
    assert np.isfinite(X_partial).all()
    # The checkpoint (written on Ctrl-C even though the interval is 100) resumes exactly.
    assert len(list(tmp_path.glob("gradmatch-*.npz"))) == 1
    est.set_params(callback=None).fit(X, y)
    assert est.partial_ is False
    np.testing.assert_array_equal(est.X_syn_, uninterrupted.X_syn_)


def test_divergence_stops_with_a_message_and_keeps_the_last_finite_set(digits, tmp_path):
    X, y = digits
    est = GradientMatchingCondenser(ipc=1, iterations=6, lr_syn=1e30, distance="sse", batch_real=16,
                                    model="mlp", random_state=0, checkpoint=tmp_path)
    with pytest.raises(DivergenceError, match=r"diverged in iteration \d+.*lr_syn=1e\+30") as info:
        est.fit(X, y)
    assert est.partial_ is True and np.isfinite(est.X_syn_).all()
    assert est.n_iter_ == info.value.iteration
    with np.load(next(tmp_path.glob("gradmatch-*.npz")), allow_pickle=False) as ckpt:
        assert np.isfinite(ckpt["syn"]).all()
        assert int(ckpt["iteration"]) == info.value.iteration


def test_different_data_and_cv_clones_use_different_files(digits, tmp_path):
    X, y = digits
    est = GradientMatchingCondenser(iterations=1, checkpoint=tmp_path, **SETTINGS)
    for train, _ in KFold(n_splits=3, shuffle=True, random_state=0).split(X):
        clone(est).fit(X[train], y[train])
    assert len(list(tmp_path.glob("gradmatch-*.npz"))) == 3
    # Other settings that change the result: another file too.
    clone(est).set_params(lr_syn=0.05).fit(X, y)
    clone(est).fit(X, y)
    assert len(list(tmp_path.glob("gradmatch-*.npz"))) == 5


@pytest.mark.parametrize("corruption", ["truncated", "foreign", "pickled", "garbage"])
def test_a_bad_checkpoint_is_a_clear_error(digits, tmp_path, corruption):
    X, y = digits
    est = GradientMatchingCondenser(iterations=1, checkpoint=tmp_path, **SETTINGS).fit(X, y)
    path = next(tmp_path.glob("gradmatch-*.npz"))
    if corruption == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif corruption == "foreign":
        np.savez(path, weights=np.zeros(3))
    elif corruption == "pickled":
        # An object array needs pickle to load: it must be refused, never unpickled.
        np.savez(path, format=np.array(FORMAT), syn=np.array([object()], dtype=object))
    else:
        path.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match=f"(?s){path.name}.*delete .* to start over"):
        est.set_params(iterations=2).fit(X, y)
