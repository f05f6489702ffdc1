"""GradientMatchingCondenser: the scikit-learn face of the condensation loop."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping

import numpy as np
import torch

from ._base import BaseReducer
from .augment import check_augment_input, make_augment
from .checkpoint import Checkpointer, NoCheckpoint, UndescribableSetting, describe_run, run_key
from .data import ClassPools, DatasetPools
from .distances import make_distance
from .engine import CondensationLoop, DivergenceError, LoopSettings
from .hooks import IterationHooks
from .matching import MATCH_RULES
from .networks import build_model, check_network_fits
from .parameters import (
    NON_NEGATIVE,
    POSITIVE,
    AugmentSpec,
    Count,
    DistanceSpec,
    Folder,
    MeanStd,
    ModelName,
    Number,
    Options,
    StrOptions,
)
from .resolve import resolve_model, resolve_normalization
from .runtime import PRECISIONS, isolated_rng, make_generator, resolve_device, resolve_precision, seed_from
from .schedules import SCHEDULES, default_loops, make_schedule
from .sharding import current_shard
from .validation import PreparedData, to_output_images, warn_user

__all__ = ["GradientMatchingCondenser", "INITS", "VARIANTS"]

#: Valid values of the ``init`` parameter.
INITS = ("noise", "real")

#: The paper's named methods as condenser settings: DC's baseline and the
#: variants of Table 3 (M: multi-level matching, D: the cos+l2 distance,
#: A: the adaptive schedule, O: network steps until overfitting).
#: ``GradientMatchingCondenser(ipc=10, **VARIANTS["mda"])``.
VARIANTS: dict[str, dict[str, str]] = {
    "dc": dict(match="intra", distance="cos", schedule="fixed"),
    "m": dict(match="multilevel", distance="cos", schedule="fixed"),
    "md": dict(match="multilevel", distance="cos+l2", schedule="fixed"),
    "mda": dict(match="multilevel", distance="cos+l2", schedule="adaptive"),
    "mdo": dict(match="multilevel", distance="cos+l2", schedule="overfit"),
}


class GradientMatchingCondenser(BaseReducer):
    """Condense a labelled training set into ``ipc`` synthetic images per class.

    Gradient-matching dataset condensation (Zhao et al., ICLR 2021) with the
    three improvements of Jiang et al., "Delving into Effective Gradient
    Matching for Dataset Condensation": multi-level matching (``match``), an
    angle+magnitude distance (``distance``) and an adaptive schedule of network
    steps (``schedule``). The defaults are the paper's method; DC's baseline is
    ``match="intra", distance="cos", schedule="fixed"``.

    Parameters
    ----------
    ipc : int or dict, default=1
        Synthetic images per class, or ``{class: count}`` naming every class
        of ``y`` (unequal budgets). With a dict, the default ``matching_steps``
        and ``network_steps`` are DC's values for the largest count.
    match : {"multilevel", "intra", "inter", "interleaved"}, default="multilevel"
        Which gradients are matched: per class (``"intra"``, paper eq. 4), the
        class-weighted mean over classes (``"inter"``), both (``"multilevel"``,
        eq. 6) or intra and inter in alternate iterations (``"interleaved"``).
    lam : float, default=None
        Weight lambda of the inter-class term; None means the number of classes.
    distance : str or callable, default="cos+l2"
        Layer-wise gradient distance: ``"+"``-joined terms ``[w*]name`` with
        names ``"cos"`` (angle, d1), ``"l2"`` (d2), ``"sse"`` (d3), ``"mse"``
        (d4), e.g. ``"cos"``, ``"cos+0.1*l2"``, ``"cos+100*mse"``; or a callable
        ``(g_syn, g_real) -> scalar tensor`` applied to each 2+-D parameter.
    schedule : {"adaptive", "fixed", "overfit"} or callable, default="adaptive"
        Network steps zeta(t) after matching step t: paper eq. 12
        (``"adaptive"``), DC's constant ``network_steps`` (``"fixed"``), until
        the loss on a held real batch rises (``"overfit"``, at most 50), or a
        callable ``t -> int``.
    iterations : int, default=1000
        Outer iterations K, each with a freshly initialised network.
    matching_steps : int, default=None
        Matching steps T per iteration; None uses DC's value for ``ipc``
        (see :func:`gradmatch.schedules.default_loops`).
    network_steps : int, default=None
        zeta of the ``"fixed"`` schedule; None uses DC's value for ``ipc``.
    lr_syn : float, default=0.1
        eta_S, learning rate of the synthetic images (SGD).
    momentum_syn : float, default=0.5
        Momentum of the synthetic images' SGD.
    lr_net : float, default=0.01
        eta_theta, learning rate of the network steps (plain SGD).
    batch_real : int, default=256
        Real images per class per matching step (the whole class if smaller).
    batch_train : int, default=256
        Minibatch size of the network steps (one step = one epoch over the set).
    init : {"noise", "real"}, default="noise"
        Start from Gaussian noise (the paper) or from random real images.
    augment : None, "dsa", str or gradmatch.augment.DSA, default=None
        Differentiable siamese augmentation (Zhao and Bilen, ICML 2021), which
        the paper's setting does not use (None). ``"dsa"`` applies DSA's
        strategy ``"color_crop_cutout_flip_scale_rotate"``: in each matching
        step, one random transformation with the same parameters to a class's
        real and synthetic batch, and random transformations of the synthetic
        set in the network steps. A strategy string picks the operations,
        e.g. ``"color_crop_cutout_scale_rotate"`` for digits and characters,
        whose mirror images are another class or none; a
        :class:`~gradmatch.augment.DSA` sets their strengths. Needs images
        (not flat features without ``input_shape``). Evaluate such sets with
        the same augmentation (``evaluate_set(..., augment=...)``).
    precision : {"float32", "bf16"}, default="float32"
        Arithmetic of the real-gradient pass, which is most of a matching
        step's work: ``"float32"`` (the paper's setting) or ``"bf16"``
        (bfloat16: a bf16 copy of the network and the real batch on the CPU,
        autocast on CUDA; the gradients come back as float32 and everything
        else stays float32). Needs bf16 hardware (AVX512-BF16 or AMX CPUs,
        CUDA GPUs from Ampere on); elsewhere it warns and runs in float32.
        See the performance page for what it gains and what it costs.
    compile : bool, default=False
        Run the real-gradient pass through ``torch.compile`` (a shadow copy of
        the network, compiled once per fit: tens of seconds, then faster
        matching steps). Needs a working C++ compiler on the CPU. It changes
        float rounding, not the algorithm.
    model : str or callable, default="auto"
        Network: DC's ConvNet for images and DC's MLP for flat features
        (``"auto"``); a name from :data:`gradmatch.networks.MODELS`
        (``"convnet"``, ``"mlp"``, ``"lenet"``, ``"alexnet"``, ``"vgg11"``,
        ``"vgg11bn"``, ``"resnet18"``, ``"resnet18bn"``); or a factory
        ``(input_shape, n_classes) -> nn.Module``.
    input_shape : tuple (C, H, W), default=None
        Treat flat ``X`` of ``C*H*W`` features as images.
    normalization : "auto", None or (mean, std), default="auto"
        Per-channel statistics of the real data (flat features: per feature),
        given values, or none. The synthetic set is learned in normalised
        space and returned in the input's scale.
    device : str, default="auto"
        ``"auto"`` picks CUDA when available, else the CPU.
    random_state : int, RandomState or None, default=None
        Seeds everything; the same value gives the same set on the CPU. The
        caller's global torch RNG is left as it was.
    verbose : int, default=0
        ``> 0`` shows a progress bar with the matching loss.
    callback : callable, default=None
        ``callback(iteration, record)`` after every iteration, ``record`` a dict
        with ``loss``, ``seconds``, ``network_steps`` and ``rule``; returning
        a true value (``True``, ``numpy.True_``, 1) stops the fit early. If it
        raises, the last whole iteration is checkpointed and the error
        propagates, leaving the estimator as it was.
    checkpoint : str or path, default=None
        A folder for checkpoints, created and probed for writing before any
        work. The run saves its state there every ``checkpoint_every``
        iterations, at the end, on Ctrl-C, on divergence and when the callback
        raises, in a file named by a key of the data, labels and a faithful
        description of the settings; a later fit with the same key resumes
        from it and gives the same set as an uninterrupted run (on the CPU).
        Settings that cannot be described (a lambda, a closure) are refused
        with a checkpoint; ``random_state=None`` is keyed by the seed drawn,
        so only a seeded run resumes.
    checkpoint_every : int, default=10
        Iterations between checkpoints.
    in_memory : bool or "auto", default="auto"
        For a torch ``Dataset`` X: stack it in memory once (True), or leave it
        where it is and read each real batch from it through per-class index
        pools (False). ``"auto"`` stacks it when its images take at most 4 GiB.
        A streamed Dataset is validated, and its normalisation estimated, on a
        seeded sample of 10,000 items; checkpoint fingerprints hash that sample
        and all labels. Arrays and tensors are always used in place.
    warm_start : bool, default=False
        Continue from the previous fit's synthetic set, optimiser and random
        state up to ``iterations`` in total (raise ``iterations`` first).
    distributed : {"auto", False}, default="auto"
        ``"auto"``: when ``torch.distributed`` is initialised with more than
        one process (e.g. under ``torchrun``), shard the classes over the
        processes: each holds and condenses only its block of classes, the
        inter-class term and the network steps go through collectives, and
        every process ends with the whole set (see :mod:`gradmatch.sharding`).
        Every process must call ``fit`` with the same data and parameters.
        False: condense the whole set in every process, ignoring the group.

    Attributes
    ----------
    X_syn_ : ndarray
        The synthetic images in the input's layout and scale.
    y_syn_ : ndarray
        Their labels, in the caller's label type.
    classes_ : ndarray
        The class labels.
    n_features_in_ : int
        Values per input sample.
    input_shape_ : tuple or None
        ``(C, H, W)`` the networks saw, None for flat features.
    normalization_ : dict
        ``{"mean": [...], "std": [...]}`` per channel (or feature), input scale.
    class_weights_ : ndarray of float
        Weights w_c of the inter-class term: each class's share of the real
        training set (its prior), in ``classes_`` order.
    history_ : dict of lists
        Per iteration: ``loss`` (mean matching loss over its matching steps),
        ``seconds`` and ``network_steps``.
    n_iter_ : int
        Iterations run in total (across warm starts and resumes).
    partial_ : bool
        True when the fit was interrupted (Ctrl-C) or diverged: ``X_syn_``
        then holds the set reached so far (the last finite one on divergence).
        A sharded run interrupted by Ctrl-C keeps only its checkpoints.
    n_ranks_ : int
        Processes the classes were sharded over (1: not sharded).
    precision_ : str
        The precision used (``"float32"`` after a fallback from ``"bf16"``).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from gradmatch import GradientMatchingCondenser
    >>> X, y = load_digits(return_X_y=True)
    >>> cond = GradientMatchingCondenser(ipc=1, iterations=2, input_shape=(1, 8, 8),
    ...                                  random_state=0)
    >>> X_syn, y_syn = cond.fit_resample(X, y)
    >>> X_syn.shape, y_syn.tolist()
    ((10, 64), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    """

    _small_class_is_error = False

    _parameter_constraints: dict = {
        **BaseReducer._parameter_constraints,
        "match": [StrOptions(set(MATCH_RULES))],
        "lam": [NON_NEGATIVE, None],
        "distance": [DistanceSpec(), callable],
        "schedule": [StrOptions(set(SCHEDULES)), callable],
        "iterations": [Count(1)],
        "matching_steps": [Count(1), None],
        "network_steps": [Count(0), None],
        "lr_syn": [POSITIVE],
        # Momentum 1 or more never forgets a step: the set grows without bound.
        "momentum_syn": [Number(0, 1, closed="left")],
        "lr_net": [POSITIVE],
        "batch_real": [Count(1)],
        "batch_train": [Count(1)],
        "init": [StrOptions(set(INITS))],
        "augment": [AugmentSpec()],
        "precision": [StrOptions(set(PRECISIONS))],
        "compile": ["boolean"],
        "model": [ModelName(), callable],
        "normalization": [StrOptions({"auto"}), None, MeanStd()],
        "device": [str, torch.device, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callback": [callable, None],
        "checkpoint": [Folder(), None],
        "checkpoint_every": [Count(1)],
        "warm_start": ["boolean"],
        "in_memory": ["boolean", StrOptions({"auto"})],
        "distributed": [StrOptions({"auto"}), Options(bool, {False})],
    }

    #: Parameters that do not change the synthetic set of a given iteration, so a
    #: checkpoint stays valid when they change (iterations: a longer run continues;
    #: a sharded run and a streamed Dataset give the single-process, in-memory set).
    _NOT_IN_RUN_KEY = ("iterations", "verbose", "callback", "checkpoint", "checkpoint_every",
                       "warm_start", "device", "in_memory", "distributed")

    def __init__(
        self,
        ipc=1,
        *,
        match="multilevel",
        lam=None,
        distance="cos+l2",
        schedule="adaptive",
        iterations=1000,
        matching_steps=None,
        network_steps=None,
        lr_syn=0.1,
        momentum_syn=0.5,
        lr_net=0.01,
        batch_real=256,
        batch_train=256,
        init="noise",
        augment=None,
        precision="float32",
        compile=False,
        model="auto",
        input_shape=None,
        normalization="auto",
        device="auto",
        random_state=None,
        verbose=0,
        callback=None,
        checkpoint=None,
        checkpoint_every=10,
        warm_start=False,
        in_memory="auto",
        distributed="auto",
    ):
        self.ipc = ipc
        self.match = match
        self.lam = lam
        self.distance = distance
        self.schedule = schedule
        self.iterations = iterations
        self.matching_steps = matching_steps
        self.network_steps = network_steps
        self.lr_syn = lr_syn
        self.momentum_syn = momentum_syn
        self.lr_net = lr_net
        self.batch_real = batch_real
        self.batch_train = batch_train
        self.init = init
        self.augment = augment
        self.precision = precision
        self.compile = compile
        self.model = model
        self.input_shape = input_shape
        self.normalization = normalization
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callback = callback
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.warm_start = warm_start
        self.in_memory = in_memory
        self.distributed = distributed

    # ------------------------------------------------------------------ settings
    def _resolve_settings(self) -> dict:
        """The rules that need no data, each applied once per fit."""
        if self.network_steps is not None and not (isinstance(self.schedule, str) and self.schedule == "fixed"):
            raise ValueError(
                f"network_steps={self.network_steps} applies only to schedule='fixed'; schedule="
                f"{self.schedule!r} decides the network steps itself. Leave network_steps=None or "
                "use schedule='fixed'.")
        budget = max(self.ipc.values()) if isinstance(self.ipc, Mapping) else self.ipc
        default_t, default_zeta = default_loops(int(budget))  # unequal budgets: the largest
        device = resolve_device(self.device)
        precision, fallback = resolve_precision(self.precision, device)
        if fallback:
            warn_user(fallback)
        if self.checkpoint is not None:
            self._run_settings(precision, seed=0)  # refuse an unidentifiable run before any work
        return dict(
            device=device, precision=precision, augment=make_augment(self.augment),
            distance=make_distance(self.distance),
            schedule=make_schedule(self.schedule, default_zeta if self.network_steps is None
                                   else self.network_steps),
            matching_steps=default_t if self.matching_steps is None else self.matching_steps,
        )

    def _check_params_vs_input(self, data: PreparedData, plan: dict) -> dict:
        """The rules that need the data: budgets, augmentation, network, statistics, warm start."""
        plan = super()._check_params_vs_input(data, plan)
        images = data.layout.image_shape is not None
        check_augment_input(plan["augment"], images)
        previous = getattr(self, "_state", None)
        if self.warm_start and previous is not None and not np.array_equal(previous["classes"], data.classes):
            raise ValueError(
                "warm_start=True continues the previous synthetic set, which was fitted on classes "
                f"{previous['classes'].tolist()!r}; these data have {data.classes.tolist()!r}. "
                "Set warm_start=False to start over.")
        counts = data.class_counts
        return {**plan,
                "model": resolve_model(self.model, data.layout.image_shape),
                "normalization": resolve_normalization(self.normalization, data),
                "class_weights": counts / counts.sum(),  # the classes' priors, on both sides
                "lam": float(data.n_classes) if self.lam is None else float(self.lam)}

    def _loop_settings(self, plan: dict) -> LoopSettings:
        return LoopSettings(
            iterations=self.iterations, matching_steps=plan["matching_steps"], schedule=plan["schedule"],
            distance=plan["distance"], match=self.match, lam=plan["lam"],
            class_weights=plan["class_weights"].tolist(), lr_syn=float(self.lr_syn),
            momentum_syn=float(self.momentum_syn), lr_net=float(self.lr_net), batch_real=self.batch_real,
            batch_train=self.batch_train, augment=plan["augment"], precision=plan["precision"],
            compile=bool(self.compile))

    def _run_settings(self, precision: str, seed: int) -> dict:
        """The settings that identify a run's checkpoints (described faithfully, or refused).

        The precision is the one that runs (a bf16 fit that fell back to float32
        computes float32 iterations), and a None random_state is the seed drawn
        for this fit, so two unseeded runs never share a checkpoint.
        """
        settings = {k: v for k, v in self.get_params(deep=False).items() if k not in self._NOT_IN_RUN_KEY}
        settings["precision"] = precision
        if settings["random_state"] is None:
            settings["random_state"] = {"drawn seed": seed}
        try:
            describe_run(settings)
        except UndescribableSetting as err:
            raise ValueError(
                f"checkpoint={os.fspath(self.checkpoint)!r} needs settings a later run can recognise, "
                f"but {err}. Give a module-level function, a functools.partial of one or an object "
                "with get_params() instead, or set checkpoint=None.") from None
        return settings

    # ------------------------------------------------------------------ fit steps
    def _fit_resample(self, data: PreparedData, plan: dict) -> dict:
        """Build the loop, restore its state (warm start or checkpoint), run it, return the result."""
        shard = self._shard(data)
        seed = seed_from(self.random_state)
        if shard is not None:
            seed = shard.broadcast_int(seed)  # every rank draws rank 0's random stream
        with isolated_rng(seed, plan["device"]):
            loop = self._build_loop(data, plan, seed, shard)
            checkpointer = self._checkpointer(data, plan, seed, shard)
            self._restore(loop, checkpointer, shard)
            return self._run(loop, checkpointer, data, plan, shard)

    def _build_loop(self, data: PreparedData, plan: dict, seed: int, shard) -> CondensationLoop:
        """Pools of real data, the initial set, and a trial network that fails early and clearly."""
        device, model, shape = plan["device"], plan["model"], data.layout.internal_shape
        owned = None if shard is None else shard.owned
        generator = make_generator(seed, device)
        if data.dataset is not None:
            pools = DatasetPools(data.dataset, data.labels, data.n_classes, plan["normalization"], device,
                                 shape, owned=owned)
        else:
            pools = ClassPools(data.images, data.labels, data.n_classes, plan["normalization"], device,
                               owned=owned)
        check_network_fits(build_model(model, shape, data.n_classes).to(device),
                           pools.take_partial(torch.arange(min(2, len(data.labels)), device=device)),
                           data.n_classes)
        syn_counts = plan["ipc"].tolist()
        return CondensationLoop(
            pools=pools, syn=self._initial_set(pools, syn_counts, shape, generator, shard),
            syn_counts=syn_counts, make_network=functools.partial(build_model, model, shape, data.n_classes),
            settings=self._loop_settings(plan), generator=generator, shard=shard)

    def _initial_set(self, pools, syn_counts: list, shape, generator, shard) -> torch.Tensor:
        if self.init == "real":
            return pools.initial_images(syn_counts, generator)
        syn = torch.randn((sum(syn_counts),) + tuple(shape), generator=generator, device=generator.device)
        if shard is None:
            return syn
        bounds = np.concatenate([[0], np.cumsum(syn_counts)])
        return syn[int(bounds[shard.owned.start]):int(bounds[shard.owned.stop])]

    def _checkpointer(self, data: PreparedData, plan: dict, seed: int, shard):
        if self.checkpoint is None:
            return NoCheckpoint()
        Checkpointer.probe(self.checkpoint)
        key = run_key(data.images, data.labels, data.classes, self._run_settings(plan["precision"], seed))
        rank, world = (0, 1) if shard is None else (shard.rank, shard.world_size)
        return Checkpointer(self.checkpoint, key, self.checkpoint_every, rank, world)

    def _restore(self, loop: CondensationLoop, checkpointer, shard) -> None:
        """Continue the previous fit (warm_start) or this run's checkpoint, if there is one."""
        previous = getattr(self, "_state", None)
        state = previous if self.warm_start and previous is not None else checkpointer.restore()
        if shard is not None and not shard.same_everywhere([-1 if state is None else state["iteration"]]):
            raise RuntimeError(
                "the ranks of this sharded run start from different iterations (their checkpoints "
                f"in {self.checkpoint} disagree): resume with the same number of processes and "
                "every rank's checkpoint, or remove them to start over")
        if state is None:
            return
        problem = loop.state_problem(state)
        if problem is not None:
            source = (f"checkpoint {checkpointer.path}" if state is not previous else
                      "the previous fit's state (warm_start=True)")
            remedy = ("set warm_start=False to start over" if state is previous else
                      f"delete {checkpointer.path} or give another checkpoint folder to start over")
            raise ValueError(f"cannot resume from {source}: {problem}; {remedy}")
        loop.restore(state)
        if loop.iteration >= self.iterations:
            warn_user(f"{loop.iteration} iterations are already done (iterations={self.iterations}); "
                      "nothing to run. Raise iterations to continue.")

    def _run(self, loop: CondensationLoop, checkpointer, data: PreparedData, plan: dict, shard) -> dict:
        """Run the loop; on divergence, Ctrl-C or a failing callback keep what was reached, then re-raise."""
        hooks = IterationHooks(checkpointer, self.callback, shard, loop.last_boundary_state)
        try:
            loop.run(progress=self.verbose > 0 and (shard is None or shard.rank == 0), callback=hooks)
        except DivergenceError as err:
            self._keep_partial(data, plan, loop, err.last_good, checkpointer)
            raise
        except KeyboardInterrupt:
            # Ctrl-C keeps the set reached; a sharded run cannot gather it here
            # (other ranks may be gone), so it keeps only its checkpoints.
            self._keep_partial(data, plan, loop, None if shard is not None else loop.synthetic, checkpointer)
            raise
        except Exception:
            # A callback (or anything else) raised: the estimator stays as it was,
            # and the last whole iteration is checkpointed.
            self._keep_partial(data, plan, loop, None, checkpointer)
            raise
        result = self._result(data, plan, loop, loop.full_synthetic(), partial=False)
        try:
            checkpointer.save(loop.last_boundary_state())
        except OSError as err:
            self._set_fitted(data, result)  # a finished set is never thrown away
            raise OSError(f"{err}. The fit itself finished: its set is on the estimator (X_syn_, "
                          "transform()); only this last checkpoint is missing") from err
        return result

    def _keep_partial(self, data, plan, loop, syn, checkpointer) -> None:
        """Checkpoint the last whole iteration and, when given, keep ``syn`` on the estimator."""
        if syn is not None:
            self._set_fitted(data, self._result(data, plan, loop, syn, partial=True))
        checkpointer.save(loop.last_boundary_state())

    def _result(self, data: PreparedData, plan: dict, loop: CondensationLoop, syn: torch.Tensor,
                partial: bool) -> dict:
        """The fitted attributes for the synthetic set ``syn`` (normalised, ordered by class)."""
        norm = plan["normalization"]
        return {
            "X_syn_": to_output_images(syn, data.layout, np.asarray(norm.mean), np.asarray(norm.std)),
            "_syn_codes": np.repeat(np.arange(data.n_classes), plan["ipc"]),
            "normalization_": norm.as_dict(), "class_weights_": plan["class_weights"],
            "precision_": plan["precision"], "history_": loop.history, "n_iter_": loop.iteration,
            "partial_": partial, "_state": {**loop.last_boundary_state(), "classes": data.classes},
            "model_": plan["model"] if isinstance(plan["model"], str) else "custom",
            "n_ranks_": 1 if loop.shard is None else loop.shard.world_size,
        }

    def _shard(self, data: PreparedData):
        """This process's class shard when ``distributed`` allows and a process group is up."""
        if self.distributed is False:
            return None
        shard = current_shard(data.n_classes)
        if shard is None:
            return None
        if not shard.same_everywhere(np.concatenate([[len(data.labels)], data.class_counts])):
            raise ValueError(
                "the ranks of this distributed run were given different training data (sizes or "
                "class counts differ): every rank must call fit with the same X and y")
        if self.warm_start and getattr(self, "n_ranks_", shard.world_size) != shard.world_size:
            raise ValueError(f"warm_start=True continues a fit made by {self.n_ranks_} process(es); "
                             f"this one runs {shard.world_size}")
        return shard
