"""GradientMatchingCondenser: the scikit-learn face of the condensation loop."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch

from ._base import BaseReducer
from .augment import check_augment_input, make_augment
from .checkpoint import checkpoint_path, fingerprint, load_checkpoint, save_checkpoint
from .data import ClassPools, DatasetPools, Normalization, channel_range, channel_stats
from .distances import make_distance
from .engine import CondensationLoop, DivergenceError, LoopSettings
from .matching import check_match
from .networks import build_model, check_model, check_network_fits
from .runtime import isolated_rng, make_generator, resolve_device, resolve_precision, seed_from
from .schedules import default_loops, make_schedule
from .sharding import current_shard
from .validation import (
    PreparedData,
    check_ipc,
    check_positive_float,
    check_positive_int,
    ipc_per_class,
    to_output_images,
    to_output_labels,
)

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


def resolve_normalization(normalization, data: PreparedData) -> Normalization:
    """``"auto"``: per-channel statistics of the real data; None: identity; or ``(mean, std)``."""
    channels = data.images.shape[1]
    if isinstance(normalization, str):
        if normalization != "auto":
            raise ValueError(f"unknown normalization {normalization!r}: use 'auto', None or (mean, std)")
        return channel_stats(data.images)
    if normalization is None:
        return Normalization((0.0,) * channels, (1.0,) * channels)
    try:
        mean, std = normalization
        mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), (channels,))
        std = np.broadcast_to(np.asarray(std, dtype=np.float64), (channels,))
    except (TypeError, ValueError):
        raise ValueError(
            f"normalization must be 'auto', None or a pair (mean, std) of scalars or length-{channels} "
            f"sequences, got {normalization!r}"
        ) from None
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise ValueError("normalization needs finite means and finite, positive stds")
    # The normalised data must stay finite in float32, where the networks compute.
    lo, hi = channel_range(data.images)
    reach = np.maximum(np.abs(lo - mean), np.abs(hi - mean)) / std
    if not np.all(reach < np.finfo(np.float32).max / 1e3):
        raise ValueError(
            f"normalization (mean {mean.tolist()}, std {std.tolist()}) scales the data beyond "
            "float32's range; use the data's own statistics ('auto') or a larger std"
        )
    return Normalization(tuple(mean.tolist()), tuple(std.tolist()))


def resolve_model(model, image_shape) -> object:
    """``"auto"``: the ConvNet for images, the MLP for flat features."""
    if model == "auto":
        return "convnet" if image_shape is not None else "mlp"
    check_model(model)
    if isinstance(model, str) and model != "mlp" and image_shape is None:
        raise ValueError(
            f"model={model!r} needs images: pass X as (n, H, W) or (n, C, H, W), or flat X with "
            "input_shape=(C, H, W)"
        )
    return model


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
        True stops the fit early.
    checkpoint : str or path, default=None
        A folder for checkpoints. The run saves its state there every
        ``checkpoint_every`` iterations, at the end, on Ctrl-C and on
        divergence, in a file named by a fingerprint of the data, labels and
        settings; a later fit with the same fingerprint resumes from it and
        gives the same set as an uninterrupted run (on the CPU).
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

    # ------------------------------------------------------------------ checks
    def _check_params(self, classes: np.ndarray, images: bool) -> dict:
        n_classes = len(classes)
        ipc = ipc_per_class(self.ipc, classes)
        check_match(self.match)
        # Unequal budgets: the loop lengths of the largest class budget.
        default_t, default_zeta = default_loops(int(ipc.max()))
        steps = default_t if self.matching_steps is None else check_positive_int(
            self.matching_steps, "matching_steps")
        zeta = default_zeta if self.network_steps is None else check_positive_int(
            self.network_steps, "network_steps", 0)
        if not isinstance(self.init, str) or self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}: valid values are {', '.join(map(repr, INITS))}")
        if not isinstance(self.verbose, numbers.Integral):
            raise TypeError(f"verbose must be an integer, got {self.verbose!r}")
        if self.callback is not None and not callable(self.callback):
            raise TypeError(f"callback must be callable or None, got {type(self.callback).__name__}")
        lam = float(n_classes) if self.lam is None else check_positive_float(self.lam, "lam", allow_zero=True)
        augment = check_augment_input(make_augment(self.augment), images)
        return dict(
            ipc=ipc,
            settings=LoopSettings(
                iterations=check_positive_int(self.iterations, "iterations"),
                matching_steps=steps,
                schedule=make_schedule(self.schedule, zeta),
                distance=make_distance(self.distance),
                match=self.match,
                lam=lam,
                lr_syn=check_positive_float(self.lr_syn, "lr_syn"),
                momentum_syn=check_positive_float(self.momentum_syn, "momentum_syn", allow_zero=True),
                lr_net=check_positive_float(self.lr_net, "lr_net"),
                batch_real=check_positive_int(self.batch_real, "batch_real"),
                batch_train=check_positive_int(self.batch_train, "batch_train"),
                augment=augment,
            ),
        )

    def _validate_data(self, X, y):
        # Check the parameters that need no data before touching the data.
        check_ipc(self.ipc)
        check_match(self.match)
        make_augment(self.augment)
        resolve_precision(self.precision, torch.device("cpu"))  # the name; the hardware is checked in fit
        if not isinstance(self.compile, (bool, np.bool_)):
            raise TypeError(f"compile must be True or False, got {self.compile!r}")
        make_distance(self.distance)
        make_schedule(self.schedule, 1)
        check_model(self.model) if self.model != "auto" else None
        resolve_device(self.device)
        return super()._validate_data(X, y)

    # ------------------------------------------------------------------ resume
    #: Parameters that do not change the synthetic set of a given iteration, so a
    #: checkpoint stays valid when they change (iterations: a longer run continues).
    _NOT_FINGERPRINTED = ("iterations", "verbose", "callback", "checkpoint", "checkpoint_every",
                          "warm_start", "device", "in_memory", "distributed", "compile")

    #: Parameters added after checkpoints were first written, with their defaults:
    #: left out of the fingerprint at that default, so older checkpoints stay valid.
    _ADDED_LATER = {"augment": None, "precision": "float32"}

    def _fingerprint_params(self) -> dict:
        # The precision that runs, not the one asked for: a bf16 fit that fell
        # back to float32 computes a float32 run's iterations, and a machine
        # with bf16 must not resume from them as if they were bf16.
        params = {**self.get_params(deep=False), "precision": getattr(self, "precision_", self.precision)}
        return {k: v for k, v in params.items()
                if k not in self._NOT_FINGERPRINTED
                and not (k in self._ADDED_LATER and type(v) is type(self._ADDED_LATER[k])
                         and v == self._ADDED_LATER[k])}

    def _starting_state(self, data: PreparedData, ckpt, fp) -> dict | None:
        """Where a fit starts: the previous fit (warm_start), a checkpoint, or scratch."""
        previous = getattr(self, "_state", None)
        if self.warm_start and previous is not None:
            if not np.array_equal(previous["classes"], data.classes):
                raise ValueError(
                    "warm_start=True continues the previous synthetic set, which was fitted on classes "
                    f"{previous['classes'].tolist()!r}; these data have {data.classes.tolist()!r}. "
                    "Set warm_start=False to start over."
                )
            return previous
        if ckpt is not None:
            return load_checkpoint(ckpt, fp)
        return None

    # ------------------------------------------------------------------ fit
    def _fit(self, data: PreparedData) -> None:
        n_classes = data.n_classes
        params = self._check_params(data.classes, images=data.layout.image_shape is not None)
        ipc, settings = params["ipc"], params["settings"]
        # The inter-class term weights classes by their prior in the real
        # training set, on both sides (DESIGN.md section 2).
        counts = data.class_counts
        self.class_weights_ = counts / counts.sum()
        settings.class_weights = self.class_weights_.tolist()
        model = resolve_model(self.model, data.layout.image_shape)
        device = resolve_device(self.device)
        settings.precision, fallback = resolve_precision(self.precision, device)
        if fallback:
            warnings.warn(fallback, UserWarning, stacklevel=4)
        self.precision_ = settings.precision
        settings.compile = bool(self.compile)
        norm = resolve_normalization(self.normalization, data)
        shape = data.layout.internal_shape
        seed = seed_from(self.random_state)
        syn_counts = ipc.tolist()
        shard = self._shard(data)
        if shard is not None:
            # Every rank must draw the same random stream: rank 0's seed.
            seed = shard.broadcast_int(seed)
        owned = None if shard is None else shard.owned

        with isolated_rng(seed, device):
            generator = make_generator(seed, device)
            if data.dataset is not None:
                pools = DatasetPools(data.dataset, data.labels, n_classes, norm, device, shape, owned=owned)
            else:
                pools = ClassPools(data.images, data.labels, n_classes, norm, device, owned=owned)
            # A trial network on two real samples turns a bad model/input pairing
            # into a clear error instead of a failure inside the first iteration.
            check_network_fits(build_model(model, shape, n_classes).to(device),
                               pools.take_partial(torch.arange(min(2, len(data.labels)), device=device)),
                               n_classes)
            if self.init == "noise":
                syn = torch.randn((sum(syn_counts),) + tuple(shape), generator=generator, device=device)
                if shard is not None:
                    bounds = np.concatenate([[0], np.cumsum(syn_counts)])
                    syn = syn[int(bounds[owned.start]):int(bounds[owned.stop])]
            else:
                syn = pools.initial_images(syn_counts, generator)
            loop = CondensationLoop(
                pools=pools,
                syn=syn,
                syn_counts=syn_counts,
                make_network=lambda: build_model(model, shape, n_classes),
                settings=settings,
                generator=generator,
                shard=shard,
            )
            mean, std = np.asarray(norm.mean), np.asarray(norm.std)
            self.normalization_ = norm.as_dict()
            self._syn_codes = np.repeat(np.arange(n_classes), syn_counts)
            ckpt = None
            if self.checkpoint is not None:
                fp = fingerprint(data.images, data.labels, data.classes, self._fingerprint_params())
                rank, world = (0, 1) if shard is None else (shard.rank, shard.world_size)
                ckpt = checkpoint_path(self.checkpoint, fp, rank, world)
            state = self._starting_state(data, ckpt, fp if ckpt else None)
            if shard is not None and not shard.same_everywhere([-1 if state is None else state["iteration"]]):
                raise RuntimeError(
                    "the ranks of this sharded run start from different iterations (their checkpoints "
                    f"in {self.checkpoint} disagree): resume with the same number of processes and "
                    "every rank's checkpoint, or remove them to start over")
            if state is not None:
                loop.restore(state)
            every = check_positive_int(self.checkpoint_every, "checkpoint_every")

            def save(boundary: dict) -> None:
                if ckpt is not None:
                    save_checkpoint(ckpt, boundary, fp)

            def on_iteration(iteration: int, record: dict):
                if loop.iteration % every == 0:
                    save(loop.last_boundary_state())
                stop = self.callback(iteration, record) is True if self.callback is not None else False
                if shard is not None:
                    stop = not shard.all_true(not stop)  # any rank may stop the whole run
                return stop

            def keep(syn: torch.Tensor, partial: bool) -> None:
                self.X_syn_ = to_output_images(syn, data.layout, mean, std)
                self.y_syn_ = to_output_labels(self._syn_codes, data.classes)
                self.history_ = loop.history
                self.n_iter_ = loop.iteration
                self.partial_ = partial
                self._state = {**loop.last_boundary_state(), "classes": data.classes}

            if state is not None and loop.iteration >= settings.iterations:
                warnings.warn(
                    f"{loop.iteration} iterations are already done (iterations={settings.iterations}); "
                    "nothing to run. Raise iterations to continue.", UserWarning, stacklevel=4)
            try:
                loop.run(progress=self.verbose > 0 and (shard is None or shard.rank == 0),
                         callback=on_iteration)
            except DivergenceError as err:
                # Keep the last finite set on the estimator and in the checkpoint.
                keep(err.last_good, partial=True)
                save(loop.last_boundary_state())
                raise
            except KeyboardInterrupt:
                # Ctrl-C: keep what was reached, checkpoint the last whole iteration,
                # and re-raise so an enclosing search stops too. A sharded run
                # cannot gather its set here (other ranks may be gone): only the
                # checkpoints are kept.
                if shard is None:
                    keep(loop.synthetic, partial=True)
                save(loop.last_boundary_state())
                raise
            keep(loop.full_synthetic(), partial=False)
            save(loop.last_boundary_state())
        self.model_ = model if isinstance(model, str) else "custom"
        self.n_ranks_ = 1 if shard is None else shard.world_size

    def _shard(self, data: PreparedData):
        """This process's class shard when ``distributed`` allows and a process group is up."""
        if self.distributed not in ("auto", False):
            raise ValueError(f"unknown distributed {self.distributed!r}: valid values are 'auto' and False")
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
