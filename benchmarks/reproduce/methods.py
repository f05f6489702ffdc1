"""The methods a reproduction cell names, and the estimator settings each stands for.

A condensing method maps to keyword arguments of
:class:`gradmatch.GradientMatchingCondenser`; the paper's variants (``dc``,
``m``, ``md``, ``mdo``, ``mda``) are the library's own
:data:`gradmatch.condenser.VARIANTS`. Distribution matching (``dm``) maps to
keyword arguments of :class:`gradmatch.DistributionMatchingCondenser`. The
selectors are the library's ``RandomCoreset`` and ``Herding``. This module
imports nothing from the rest of the package, so that other scripts can load
it by its file path.
"""

from __future__ import annotations

from gradmatch.augment import DSA_STRATEGY
from gradmatch.condenser import VARIANTS

#: Condenser settings of each named method (the paper's Tables 1-3 and the additions).
CONDENSERS = {
    **VARIANTS,
    "inter": dict(VARIANTS["dc"], match="inter"),
    "interleaved": dict(VARIANTS["dc"], match="interleaved"),
    # Beyond the paper (issue 7): DSA in the matching steps and the network steps.
    **{f"{name}+dsa": dict(VARIANTS[name], augment="dsa") for name in ("dc", "md", "mda")},
    # Issue 8: MD with the real-gradient pass in bfloat16.
    "md-bf16": dict(VARIANTS["md"], precision="bf16"),
    # Issue 24: the network steps in bfloat16 too (they are about half an ipc-10 iteration).
    "md-bf16-net": dict(VARIANTS["md"], precision="bf16", network_precision="bf16"),
    # Beyond the paper (issue 22): multi-formation (IDC: factor 2, mix initialisation),
    # representative real batches (DREAM: k-means every 10 matching steps), and both.
    "md-f2": dict(VARIANTS["md"], factor=2, init="mix"),
    "md-rep": dict(VARIANTS["md"], real_sampling="representative"),
    "md-f2-rep": dict(VARIANTS["md"], factor=2, init="mix", real_sampling="representative"),
    # Table 2: multi-level matching with each distance (fixed schedule).
    **{f"m-{label}": dict(VARIANTS["m"], distance=spec) for label, spec in
       [("l2", "l2"), ("sse", "sse"), ("100mse", "100*mse"), ("cos+sse", "cos+sse"),
        ("cos+100mse", "cos+100*mse")]},
}
#: Methods that select real samples instead of condensing.
SELECTORS = ("random", "herding")
#: Distribution-matching methods: keyword arguments of
#: :class:`gradmatch.DistributionMatchingCondenser` besides ``ipc``, ``iterations``
#: and the seed, which the cell gives. ``dm`` is DM's published setting (Zhao and
#: Bilen, WACV 2023): real initialisation, DSA with the full strategy (flips
#: included, as DSA and DM use for Fashion-MNIST), image learning rate 1.0 with
#: momentum 0.5, 256 real images per class.
DISTRIBUTION_MATCHING = {
    "dm": dict(init="real", augment=DSA_STRATEGY, lr_syn=1.0, momentum_syn=0.5, batch_real=256),
}
