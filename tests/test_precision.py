"""precision="bf16": the real-gradient pass in bfloat16, everything else float32."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gradmatch.runtime as runtime
from gradmatch import GradientMatchingCondenser
from gradmatch.engine import class_gradients
from gradmatch.runtime import cpu_has_bf16, resolve_precision

pytestmark = pytest.mark.usefixtures("torch_single_thread")

needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no bf16 hardware")


def _fit(X, y, fast, **params):
    return GradientMatchingCondenser(**{**fast, "model": "convnet", "matching_steps": 2,
                                        "network_steps": 1, **params}).fit(X, y)


# Two CPUs of one model name as virtual machines expose them (abridged /proc/cpuinfo).
CPUINFO_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx avx2 fma
processor\t: 1
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx avx2 fma
"""
CPUINFO_BF16 = CPUINFO_AVX2.replace("avx2 fma", "avx2 fma avx512f avx512_bf16")


def test_cpuinfo_parsing_and_description():
    name, flags = runtime.parse_cpuinfo(CPUINFO_AVX2)
    assert name == "AMD EPYC" and "avx2" in flags and "avx512f" not in flags
    assert runtime.describe_cpu(name, flags) == "AMD EPYC (avx2)"
    assert runtime.describe_cpu(*runtime.parse_cpuinfo(CPUINFO_BF16)) == "AMD EPYC (avx512_bf16)"
    # ARM kernels say "Features" and may give no model name.
    name, flags = runtime.parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd\n")
    assert name is None and flags == {"fp", "asimd"}
    assert runtime.describe_cpu(name, flags).endswith("(no AVX2)")


@pytest.mark.parametrize("text, expected", [(CPUINFO_AVX2, False), (CPUINFO_BF16, True)])
def test_cpu_has_bf16_reads_the_flags(monkeypatch, text, expected):
    monkeypatch.setattr(runtime, "_read_cpuinfo", lambda: runtime.parse_cpuinfo(text))
    assert runtime.cpu_has_bf16() is (expected and torch.backends.mkldnn.is_available())
    monkeypatch.setattr(runtime, "_read_cpuinfo", lambda: None)  # no /proc/cpuinfo: never bf16
    assert runtime.cpu_has_bf16() is False


def test_unknown_precision_lists_the_valid_ones(digits, fast):
    X, y = digits
    message = r"The 'precision' parameter of \w+ must be a str among \{('float32', 'bf16'|'bf16', 'float32')\}"
    with pytest.raises(ValueError, match=message):
        GradientMatchingCondenser(precision="fp16", **fast).fit(X, y)


def test_without_bf16_hardware_it_warns_and_runs_float32(digits, fast, monkeypatch):
    X, y = digits
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    with pytest.warns(UserWarning, match="no bf16 hardware.*running in float32"):
        low = _fit(X, y, fast, precision="bf16")
    assert low.precision_ == "float32"
    np.testing.assert_array_equal(low.X_syn_, _fit(X, y, fast).X_syn_)


def test_float32_is_the_default_and_does_not_warn(digits, fast):
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cond = _fit(X, y, fast)
    assert cond.precision_ == "float32"
    assert resolve_precision("float32", torch.device("cpu")) == ("float32", None)


@needs_bf16
def test_bf16_real_gradients_are_close_to_float32(digits):
    """Per weight tensor (what the distances compare), bf16 gradients point the same way."""
    from gradmatch.engine import CondensationLoop
    from gradmatch.networks import build_model

    X, y = digits
    torch.manual_seed(0)
    net = build_model("convnet", (1, 8, 8), 10)
    params = [p for p in net.parameters() if p.requires_grad]
    x = torch.as_tensor(X[:64], dtype=torch.float32).unsqueeze(1)
    x = (x - x.mean()) / x.std()
    labels = torch.as_tensor(y[:64])
    before = [p.detach().clone() for p in params]

    class Stub:  # the loop's real-gradient pass needs only its settings and device
        settings = type("S", (), {"precision": "bf16", "compile": False})()
        pools = type("P", (), {"device": torch.device("cpu")})()

    loop = Stub()
    low = CondensationLoop.low_precision(loop, net)
    assert all(p.dtype == torch.bfloat16 for p in low[1])
    got = CondensationLoop.real_gradients(loop, net, params, x, labels, low)
    want = class_gradients(net, params, x, labels, create_graph=False)
    for g, w, p, b in zip(got, want, params, before):
        assert g.dtype == torch.float32 and g.shape == w.shape
        assert torch.equal(p, b)  # the float32 network is untouched
        if w.dim() >= 2:
            assert F.cosine_similarity(g.flatten(), w.flatten(), dim=0) > 0.99
            assert not torch.equal(g, w)  # really computed in bf16


@needs_bf16
def test_bf16_fit_is_reproducible_and_differs_from_float32(digits, fast):
    X, y = digits
    a = _fit(X, y, fast, precision="bf16")
    b = _fit(X, y, fast, precision="bf16")
    f = _fit(X, y, fast)
    assert a.precision_ == "bf16"
    np.testing.assert_array_equal(a.X_syn_, b.X_syn_)
    assert not np.array_equal(a.X_syn_, f.X_syn_)
    assert a.X_syn_.dtype == f.X_syn_.dtype and np.all(np.isfinite(a.X_syn_))


def test_the_precision_that_runs_identifies_the_run(fast):
    est = GradientMatchingCondenser(**fast)
    assert est._run_settings({"precision": "float32"}, seed=0)["precision"] == "float32"
    fell_back = {"precision": "float32"}
    assert est.set_params(precision="bf16")._run_settings(fell_back, seed=0)["precision"] == "float32"
    assert est._run_settings({"precision": "bf16"}, seed=0)["precision"] == "bf16"


def test_a_bf16_fit_that_fell_back_checkpoints_as_the_float32_run_it_is(digits, fast, monkeypatch, tmp_path):
    # Its iterations are float32 iterations: a float32 fit may resume from them,
    # and a bf16-capable machine must not (it would mix the two arithmetics).
    X, y = digits
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    with pytest.warns(UserWarning, match="no bf16 hardware"):
        _fit(X, y, fast, precision="bf16", checkpoint=tmp_path, checkpoint_every=1)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert len(written) == 1
    _fit(X, y, fast, checkpoint=tmp_path / "f32", checkpoint_every=1)
    assert sorted(p.name for p in (tmp_path / "f32").iterdir()) == written


def test_compile_must_be_a_bool(digits, fast):
    X, y = digits
    with pytest.raises(TypeError, match="The 'compile' parameter of \\w+ must be an instance of 'bool'"):
        GradientMatchingCondenser(compile="yes", **fast).fit(X, y)


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="torch.compile needs a C compiler on the CPU")
def test_compiled_real_pass_gives_the_same_set_up_to_rounding(digits, fast):
    """compile=True changes how the real-gradient pass is computed, not what it computes."""
    X, y = digits
    params = {**fast, "model": "mlp", "iterations": 2, "matching_steps": 2, "network_steps": 1,
              "lr_syn": 0.01}
    plain = GradientMatchingCondenser(**params).fit(X, y)
    compiled = GradientMatchingCondenser(compile=True, **params).fit(X, y)
    np.testing.assert_allclose(compiled.X_syn_, plain.X_syn_, rtol=0, atol=1e-4 * np.abs(plain.X_syn_).max())
    other_seed = GradientMatchingCondenser(**{**params, "random_state": 1}).fit(X, y)
    assert not np.array_equal(compiled.X_syn_, other_seed.X_syn_)


# ----------------------------------------------------------- network_precision
def test_network_forward_runs_under_bf16_autocast_and_returns_float32():
    """The network steps' forward pass: convolutions in bfloat16, float32 logits and weights."""
    from gradmatch.engine import CondensationLoop
    from gradmatch.networks import build_model

    torch.manual_seed(0)
    net = build_model("convnet", (1, 8, 8), 10)
    seen = []
    net.apply(lambda m: m.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
              if isinstance(m, torch.nn.Conv2d) else None)
    x = torch.randn(4, 1, 8, 8)

    class Stub:
        settings = type("S", (), {"network_precision": "bf16"})()

    out = CondensationLoop.network_forward(Stub(), net, x)
    assert out.dtype == torch.float32 and seen and set(seen) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in net.parameters())
    seen.clear()
    Stub.settings.network_precision = "float32"
    assert torch.equal(CondensationLoop.network_forward(Stub(), net, x), net(x)) and set(seen) == {torch.float32}
    assert (out - net(x)).abs().max() < 0.1 and not torch.equal(out, net(x))


def test_network_precision_is_checked_and_falls_back_with_its_own_name(digits, fast, monkeypatch):
    X, y = digits
    with pytest.raises(ValueError, match="'network_precision' parameter"):
        GradientMatchingCondenser(network_precision="fp16", **fast).fit(X, y)
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    with pytest.warns(UserWarning, match="network_precision='bf16' asked for.*running in float32"):
        low = _fit(X, y, fast, network_precision="bf16")
    assert low.network_precision_ == "float32" and low.precision_ == "float32"
    np.testing.assert_array_equal(low.X_syn_, _fit(X, y, fast).X_syn_)


def test_network_precision_identifies_the_run_only_when_bf16(fast):
    est = GradientMatchingCondenser(**fast)
    # At its default it is left out, so checkpoints written before it existed still resume.
    assert "network_precision" not in est._run_settings({"network_precision": "float32"}, seed=0)
    fell_back = est.set_params(network_precision="bf16")._run_settings({"network_precision": "float32"}, seed=0)
    assert "network_precision" not in fell_back
    assert est._run_settings({"network_precision": "bf16"}, seed=0)["network_precision"] == "bf16"


@needs_bf16
def test_bf16_network_steps_are_reproducible_and_change_the_set(digits, fast):
    X, y = digits
    a = _fit(X, y, fast, network_precision="bf16")
    b = _fit(X, y, fast, network_precision="bf16")
    f = _fit(X, y, fast)
    assert a.network_precision_ == "bf16" and a.precision_ == "float32"
    np.testing.assert_array_equal(a.X_syn_, b.X_syn_)
    assert not np.array_equal(a.X_syn_, f.X_syn_) and np.all(np.isfinite(a.X_syn_))
