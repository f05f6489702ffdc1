"""Nothing lost, nothing resumed that does not fit the run, every failure named before work.

Regression tests found by testing as a careful user: a checkpoint with a
negative iteration or a foreign device's random state was resumed; a callback
that raised lost every iteration since the last save; a checkpoint folder that
could not be written failed only at the first save; a failed final save threw
a finished set away.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import gradmatch.checkpoint as checkpoint
from gradmatch import GradientMatchingCondenser

pytestmark = pytest.mark.usefixtures("torch_single_thread")

FAST = dict(ipc=1, matching_steps=1, network_steps=0, schedule="fixed", batch_real=8, model="mlp",
            device="cpu", random_state=0)


def only_checkpoint(folder):
    files = list(folder.glob("gradmatch-*.npz"))
    assert len(files) == 1, files
    return files[0]


def arrays_of(path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def tamper(path, **entries):
    """Rewrite the .npz at ``path`` with ``entries`` replaced or added."""
    np.savez(path, **{**arrays_of(path), **entries})


# ------------------------------------------------------------------ callbacks
def test_a_callback_that_raises_checkpoints_the_last_whole_iteration(digits, tmp_path):
    X, y = digits

    def fail_at_third(iteration, record):
        if iteration == 2:
            raise RuntimeError("my callback broke")

    est = GradientMatchingCondenser(**FAST, iterations=6, checkpoint=tmp_path, checkpoint_every=100,
                                    callback=fail_at_third)
    with pytest.raises(RuntimeError, match="my callback broke"):
        est.fit(X, y)
    assert not hasattr(est, "X_syn_")  # a failed call leaves the estimator as it was
    with np.load(only_checkpoint(tmp_path), allow_pickle=False) as npz:
        assert int(npz["iteration"]) == 3
    resumed = est.set_params(callback=None).fit(X, y)
    whole = GradientMatchingCondenser(**FAST, iterations=6).fit(X, y)
    np.testing.assert_array_equal(resumed.X_syn_, whole.X_syn_)


# ------------------------------------------------------------------ checkpoint contents
@pytest.mark.parametrize("entries, problem", [
    (dict(iteration=np.array(-5)), "iteration counter is -5"),
    (dict(history=np.array('{"loss": [1.0], "seconds": [1.0], "network_steps": [0]}')), "history holds"),
    (dict(history=np.array('{"loss": [1.0, 2.0]}')), "history has the entries"),
    (dict(generator=np.zeros(16, np.uint8)), "another kind of device"),
    (dict(syn=np.zeros((3, 64), np.float32)), "synthetic set has shape"),
    (dict(syn=np.full((10, 1, 8, 8), np.nan, np.float32)), "not all finite"),
    (dict(momentum=np.zeros((2, 8, 8), np.float32)), "momentum has shape"),
], ids=["negative-iteration", "history-length", "history-keys", "cuda-generator", "shape", "nan", "momentum"])
def test_a_checkpoint_that_does_not_fit_the_run_is_refused_naming_it(digits, tmp_path, entries, problem):
    X, y = digits
    GradientMatchingCondenser(**FAST, iterations=2, checkpoint=tmp_path).fit(X, y)
    path = only_checkpoint(tmp_path)
    tamper(path, **entries)
    est = GradientMatchingCondenser(**FAST, iterations=3, checkpoint=tmp_path)
    with pytest.raises(ValueError, match=f"(?s)cannot resume from checkpoint {path}: .*{problem}.*delete {path}"):
        est.fit(X, y)
    assert not hasattr(est, "X_syn_")


def test_a_warm_start_from_another_device_is_refused_clearly(digits):
    X, y = digits
    est = GradientMatchingCondenser(**FAST, iterations=1).fit(X, y)
    est._state = {**est._state, "generator": np.zeros(16, np.uint8)}  # as a CUDA fit leaves it
    with pytest.raises(ValueError, match=r"previous fit's state \(warm_start=True\).*another kind of device.*"
                                         "set warm_start=False"):
        est.set_params(iterations=2, warm_start=True).fit(X, y)


# ------------------------------------------------------------------ the checkpoint folder
def test_a_checkpoint_path_that_is_a_file_fails_before_any_work(digits, tmp_path):
    X, y = digits
    blocker = tmp_path / "ckpt"
    blocker.write_text("not a folder")
    seen = []
    est = GradientMatchingCondenser(**FAST, iterations=3, checkpoint=blocker,
                                    callback=lambda i, r: seen.append(i))
    with pytest.raises(OSError, match=f"checkpoint folder {blocker} cannot be written"):
        est.fit(X, y)
    assert seen == [] and blocker.read_text() == "not a folder"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_checkpoint_folder_fails_before_any_work(digits, tmp_path):
    X, y = digits
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OSError, match=f"checkpoint folder {folder} cannot be written"):
            GradientMatchingCondenser(**FAST, iterations=2, checkpoint=folder).fit(X, y)
    finally:
        folder.chmod(0o700)


def test_a_failed_save_keeps_the_previous_checkpoint_and_names_it(digits, tmp_path, monkeypatch):
    X, y = digits
    saves = []
    real = checkpoint.save_checkpoint

    def full_disk_after_first(path, state, key):
        saves.append(state["iteration"])
        if len(saves) >= 2:
            raise OSError(28, "No space left on device")
        real(path, state, key)

    monkeypatch.setattr(checkpoint, "save_checkpoint", full_disk_after_first)
    est = GradientMatchingCondenser(**FAST, iterations=4, checkpoint=tmp_path, checkpoint_every=1)
    with pytest.raises(OSError, match="could not save checkpoint .*No space left on device.*previous checkpoint"):
        est.fit(X, y)
    with np.load(only_checkpoint(tmp_path), allow_pickle=False) as npz:
        assert int(npz["iteration"]) == 1


def test_a_failed_final_save_keeps_the_finished_set(digits, tmp_path, monkeypatch):
    X, y = digits
    real = checkpoint.save_checkpoint

    def fail_at_the_end(path, state, key):
        if state["iteration"] == 2:
            raise OSError(28, "No space left on device")
        real(path, state, key)

    monkeypatch.setattr(checkpoint, "save_checkpoint", fail_at_the_end)
    est = GradientMatchingCondenser(**FAST, iterations=2, checkpoint=tmp_path, checkpoint_every=100)
    with pytest.raises(OSError, match="The fit itself finished: its set is on the estimator"):
        est.fit(X, y)
    assert est.partial_ is False and est.n_iter_ == 2
    whole = GradientMatchingCondenser(**FAST, iterations=2).fit(X, y)
    np.testing.assert_array_equal(est.X_syn_, whole.X_syn_)


def test_a_checkpoint_that_is_a_text_file_never_suggests_unsafe_loading(digits, tmp_path):
    X, y = digits
    GradientMatchingCondenser(**FAST, iterations=1, checkpoint=tmp_path).fit(X, y)
    path = only_checkpoint(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("just some notes\n" * 10)
    path.unlink()
    path.symlink_to(text)
    with pytest.raises(ValueError, match=f"checkpoint {path} is not an .npz archive") as info:
        GradientMatchingCondenser(**FAST, iterations=2, checkpoint=tmp_path).fit(X, y)
    assert "allow_pickle" not in str(info.value)


# ------------------------------------------------------------------ set files
def _fitted(digits):
    from gradmatch import RandomCoreset

    X, y = digits
    return RandomCoreset(ipc=1, random_state=0).fit(X, y)


def test_save_set_refuses_a_non_finite_set_naming_the_file(digits, tmp_path):
    from gradmatch import save_set

    est = _fitted(digits)
    est.X_syn_ = est.X_syn_.copy()
    est.X_syn_[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match=f"cannot save to {tmp_path / 's.npz'}: the set holds 1 NaN or infinite"):
        save_set(tmp_path / "s.npz", est)
    assert not (tmp_path / "s.npz").exists()


def test_load_set_refuses_a_non_finite_set_naming_the_file(digits, tmp_path):
    from gradmatch import load_set, save_set

    path = save_set(tmp_path / "s.npz", _fitted(digits))
    X = arrays_of(path)["X"].copy()
    X[1, 2, 3] = np.nan
    tamper(path, X=X)
    with pytest.raises(ValueError, match=f"{path}: X holds NaN or infinite values"):
        load_set(path)


def test_load_set_refuses_an_entry_that_inflates_before_reading_it(digits, tmp_path):
    import zipfile

    from gradmatch import load_set, save_set

    path = save_set(tmp_path / "s.npz", _fitted(digits))
    arrays = arrays_of(path)
    arrays["X"] = np.zeros((len(arrays["y"]), 4000, 4000))  # 1.3 GB of zeros, a few MB compressed
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, value in arrays.items():
            if name == "X":
                continue
            with zf.open(name + ".npy", "w") as fh:
                np.lib.format.write_array(fh, value)
        with zf.open("X.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_2_0(fh, {"descr": "<f8", "fortran_order": False,
                                                      "shape": arrays["X"].shape})
            block = bytes(2**24)
            for _ in range(arrays["X"].nbytes // len(block)):
                fh.write(block)
    with pytest.raises(ValueError, match=f"{bomb}: entry 'X' inflates from \\d+ to \\d+ bytes"):
        load_set(bomb)


def test_load_set_names_a_too_deep_meta_entry(digits, tmp_path):
    from gradmatch import load_set, save_set

    path = save_set(tmp_path / "s.npz", _fitted(digits))
    tamper(path, meta=np.array("[" * 100000 + "]" * 100000))
    with pytest.raises(ValueError, match=f"{path}: the meta entry is nested too deeply"):
        load_set(path)


def test_load_set_names_an_oversized_header(digits, tmp_path):
    from gradmatch import load_set, save_set

    path = save_set(tmp_path / "s.npz", _fitted(digits))
    arrays = arrays_of(path)
    import zipfile

    odd = tmp_path / "odd.npz"
    with zipfile.ZipFile(odd, "w") as zf:
        for name, value in arrays.items():
            with zf.open(name + ".npy", "w") as fh:
                if name == "classes":
                    header = {"descr": value.dtype.str, "fortran_order": False, "shape": value.shape,
                              "padding": "x" * 20000}
                    np.lib.format.write_array_header_2_0(fh, header)
                    fh.write(value.tobytes())
                else:
                    np.lib.format.write_array(fh, value)
    with pytest.raises(ValueError, match=f"{odd}: entry 'classes' has a header larger than numpy reads safely"):
        load_set(odd)


# ------------------------------------------------------------------ messages
def detached_distance(g_syn, g_real):
    return ((g_syn - g_real) ** 2).sum().detach()


def test_a_detached_distance_callable_is_named(digits):
    X, y = digits
    with pytest.raises(ValueError, match="distance callable returned a tensor that carries no gradient"):
        GradientMatchingCondenser(**{**FAST, "distance": detached_distance}, iterations=1).fit(X, y)


def parameterless(input_shape, n_classes):
    import torch

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return x.reshape(len(x), -1)[:, :n_classes] * 1.0

    return Fixed()


def test_a_network_without_parameters_is_named(digits):
    X, y = digits
    with pytest.raises(ValueError, match=r"network \(Fixed\) has no trainable parameters"):
        GradientMatchingCondenser(**{**FAST, "model": parameterless}, iterations=1).fit(X, y)


@pytest.mark.parametrize("answer", [True, np.True_, 1])
def test_a_truthy_callback_answer_stops_the_fit(digits, answer):
    X, y = digits
    est = GradientMatchingCondenser(**FAST, iterations=4, callback=lambda i, r: answer).fit(X, y)
    assert est.n_iter_ == 1


# ------------------------------------------------------------------ dtypes
def test_float16_input_too_close_to_its_range_is_refused_before_work(digits):
    """Regression: float16 input of 0-64000 gave 105 of 640 values as inf, saved by save_set."""
    X, y = digits
    wide = (X / 16 * 64000).astype(np.float16)
    with pytest.raises(ValueError, match=r"X is float16 with values up to 64000.*pass X as float32"):
        GradientMatchingCondenser(**FAST, iterations=1).fit(wide, y)
    import torch

    with pytest.raises(ValueError, match="X is float16 with values up to 64000"):
        GradientMatchingCondenser(**FAST, iterations=1).fit(torch.from_numpy(wide), y)
    ok = GradientMatchingCondenser(**FAST, iterations=1).fit(X.astype(np.float16), y)
    assert ok.X_syn_.dtype == np.float16 and np.isfinite(ok.X_syn_).all()


def test_a_set_beyond_the_output_dtype_is_an_error_not_inf():
    import torch

    from gradmatch.validation import InputLayout, to_output_images

    layout = InputLayout((1, 2, 2), (1, 2, 2), "float16", "numpy")
    with pytest.raises(ValueError, match="beyond what the input's dtype \\(float16\\) holds"):
        to_output_images(torch.full((1, 1, 2, 2), 1e5), layout, np.array([0.0]), np.array([1.0]))


def test_a_long_run_says_so_after_its_first_iteration(digits, monkeypatch, capsys):
    import gradmatch.engine as engine

    X, y = digits
    monkeypatch.setattr(engine, "LONG_RUN_SECONDS", 0.0)
    GradientMatchingCondenser(**FAST, iterations=3, verbose=1).fit(X, y)
    err = capsys.readouterr().err
    assert "the first iteration took" in err and "the remaining 2 will take about" in err
    GradientMatchingCondenser(**FAST, iterations=3, verbose=0).fit(X, y)
    assert "first iteration took" not in capsys.readouterr().err


def test_a_checkpoint_written_on_cuda_is_refused_on_the_cpu(tmp_path):
    """A real CUDA-written checkpoint (an H200 run of these settings on digits, 2026-12-04)."""
    from pathlib import Path

    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X.reshape(-1, 8, 8)
    params = dict(ipc=1, matching_steps=1, schedule="fixed", batch_real=16, random_state=0, device="cpu",
                  checkpoint=tmp_path)
    GradientMatchingCondenser(**params, iterations=1).fit(X, y)  # learns this run's file name and key
    path = only_checkpoint(tmp_path)
    key = arrays_of(path)["key"]
    cuda = Path(__file__).parent / "data" / "cuda-written-checkpoint.npz"
    arrays = arrays_of(cuda)
    assert arrays["generator"].shape == (16,)  # a CUDA generator's state
    arrays["key"] = key  # the same settings, were the key scheme to change
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="written on another kind of device; delete"):
        GradientMatchingCondenser(**params, iterations=3).fit(X, y)
