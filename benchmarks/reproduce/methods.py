"""The methods a reproduction cell names, and the estimator settings each stands for.

A condensing method maps to keyword arguments of
:class:`gradmatch.GradientMatchingCondenser`; the paper's variants (``dc``,
``m``, ``md``, ``mdo``, ``mda``) are the library's own
:data:`gradmatch.condenser.VARIANTS`. The selectors are the library's
``RandomCoreset`` and ``Herding``. This module imports nothing from the rest
of the package, so that other scripts can load it by its file path.
"""

from __future__ import annotations

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
    # Table 2: multi-level matching with each distance (fixed schedule).
    **{f"m-{label}": dict(VARIANTS["m"], distance=spec) for label, spec in
       [("l2", "l2"), ("sse", "sse"), ("100mse", "100*mse"), ("cos+sse", "cos+sse"),
        ("cos+100mse", "cos+100*mse")]},
}
#: Methods that select real samples instead of condensing.
SELECTORS = ("random", "herding")
