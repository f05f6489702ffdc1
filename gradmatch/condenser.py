"""GradientMatchingCondenser: the scikit-learn face of the condensation loop."""

from __future__ import annotations

from collections.abc import Mapping

from ._learned import INITS, LearnedSetReducer
from .distances import make_distance
from .engine import CondensationLoop, LoopSettings
from .matching import MATCH_RULES
from .parameters import NON_NEGATIVE, POSITIVE, Count, DistanceSpec, StrOptions
from .runtime import PRECISIONS, resolve_precision
from .schedules import SCHEDULES, default_loops, make_schedule
from .validation import PreparedData, warn_user

__all__ = ["GradientMatchingCondenser", "INITS", "VARIANTS"]

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


class GradientMatchingCondenser(LearnedSetReducer):
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
    init : {"noise", "real", "mix"}, default="noise"
        Start from Gaussian noise (the paper), from random real images, or
        (``"mix"``) from ``factor**2`` random real images of the class shrunk
        into the parts of each stored image (IDC's initialisation; with
        ``factor=1`` the same as ``"real"``).
    factor : int, default=1
        Multi-formation (Kim et al., ICML 2022): each stored image is cut
        into a ``factor`` x ``factor`` grid of parts and each part is resized
        (bilinear) back to the input size, so the same storage, ``ipc``
        images per class, trains networks on ``ipc * factor**2`` images.
        Matching, network steps and evaluation all see the decoded images;
        ``transform()``, ``fit_resample()`` and ``X_syn_`` return them and
        ``X_stored_`` holds the stored ones (``save_set`` keeps those with
        the factor). When a side does not divide by ``factor`` the first
        ``side % factor`` parts are one pixel longer. Needs images, with
        ``factor <= min(H, W)``; 1 is the plain method.
    real_sampling : {"random", "representative"}, default="random"
        Where each matching step's real batch of a class comes from:
        ``batch_real`` random images (the paper), or, with
        ``"representative"`` (DREAM: Liu et al., ICCV 2023), the images
        nearest the centres of a k-means clustering of the class into
        ``batch_real`` clusters in the current network's embedding (the
        features before its classifier; at most 2,000 images of a class are
        clustered, a fresh seeded subsample each time). The seconds spent
        clustering are recorded in ``history_["sampling_seconds"]``.
    recluster_every : int, default=10
        With ``real_sampling="representative"``: matching steps between two
        clusterings (DREAM's interval); the batch is kept in between.
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
    network_precision : {"float32", "bf16"}, default="float32"
        Arithmetic of the network steps, which train the network on the
        synthetic set between matching steps (about half an ipc-10
        iteration): ``"float32"`` (the paper's setting) or ``"bf16"`` (their
        forward passes, and the adaptive schedule's held-out loss, under
        bfloat16 autocast; the weights, their gradients, the optimiser and
        the augmentation stay float32). Independent of ``precision``; the
        same hardware rule and fallback. It changes the set (its own
        checkpoints). Measured at ipc 10 on a 2-core CPU: 0.79x the time of a
        float32 iteration, but 1.7 points lower accuracy in the one set made
        so far (see the performance page), so it is for speed experiments,
        not yet for results. No effect at ipc 1, where an iteration has no
        network step.
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
    keep_freed_memory : bool, default=True
        On Linux with glibc and the CPU, keep memory freed during the fit in
        the process for reuse instead of mapping every large tensor afresh
        (:func:`gradmatch.memory.keep_freed_memory`): a float32 matching step
        took 0.6-0.8x its time on the development machines (see the
        performance guide), with the same results. Its price is memory: the
        process's peak can nearly double while the fit runs; the settings
        come back and the memory is handed back when it ends. False leaves
        ``malloc`` as it is. No effect elsewhere.
    n_threads : int, default=None
        torch's intra-op threads during the fit, the caller's count restored
        afterwards; None keeps the current count (torch's default: one per
        core), the fastest on an idle machine. On a CPU shared with another
        job, 1 avoids threads waiting for each other: beside a torch job with
        a thread per core, a Fashion-MNIST iteration took 53 s with 2 threads
        against 13.6 s with 1 (5.2 s alone; 2-core AMD EPYC, see the
        performance page). The count is not chosen from the load because it
        changes float rounding, hence the set; instead a CPU fit measures
        other processes' share of the cores during its first iteration and,
        when they crowd its threads, says so (beside the progress bar, or as
        a warning when ``verbose=0``).

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
    network_precision_ : str
        The network steps' precision used (likewise).
    X_stored_, y_stored_ : ndarray
        The stored set (``ipc`` images per class) and its labels; equal to
        ``X_syn_``, ``y_syn_`` when ``factor_`` is 1.
    factor_ : int
        The multi-formation factor the set decodes with.

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

    _parameter_constraints: dict = {
        **LearnedSetReducer._parameter_constraints,
        "match": [StrOptions(set(MATCH_RULES))],
        "lam": [NON_NEGATIVE, None],
        "distance": [DistanceSpec(), callable],
        "schedule": [StrOptions(set(SCHEDULES)), callable],
        "matching_steps": [Count(1), None],
        "network_steps": [Count(0), None],
        "lr_net": [POSITIVE],
        "batch_train": [Count(1)],
        "precision": [StrOptions(set(PRECISIONS))],
        "network_precision": [StrOptions(set(PRECISIONS))],
        "compile": ["boolean"],
    }

    _ADDED_LATER: dict = {**LearnedSetReducer._ADDED_LATER, "network_precision": "float32"}

    _loop_class = CondensationLoop

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
        factor=1,
        real_sampling="random",
        recluster_every=10,
        augment=None,
        precision="float32",
        network_precision="float32",
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
        keep_freed_memory=True,
        n_threads=None,
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
        self.factor = factor
        self.real_sampling = real_sampling
        self.recluster_every = recluster_every
        self.augment = augment
        self.precision = precision
        self.network_precision = network_precision
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
        self.keep_freed_memory = keep_freed_memory
        self.n_threads = n_threads

    # ------------------------------------------------------------------ settings
    def _resolve_method_settings(self, device) -> dict:
        """Gradient matching's data-free settings: schedule, loop lengths, distance, precision."""
        if self.network_steps is not None and not (isinstance(self.schedule, str) and self.schedule == "fixed"):
            raise ValueError(
                f"network_steps={self.network_steps} applies only to schedule='fixed'; schedule="
                f"{self.schedule!r} decides the network steps itself. Leave network_steps=None or "
                "use schedule='fixed'.")
        budget = max(self.ipc.values()) if isinstance(self.ipc, Mapping) else self.ipc
        default_t, default_zeta = default_loops(int(budget))  # unequal budgets: the largest
        precision, fallback = resolve_precision(self.precision, device)
        network_precision, network_fallback = resolve_precision(self.network_precision, device,
                                                                name="network_precision")
        for message in (fallback, network_fallback):
            if message:
                warn_user(message)
        return dict(
            precision=precision, network_precision=network_precision, distance=make_distance(self.distance),
            schedule=make_schedule(self.schedule, default_zeta if self.network_steps is None
                                   else self.network_steps),
            matching_steps=default_t if self.matching_steps is None else self.matching_steps,
        )

    def _check_params_vs_input(self, data: PreparedData, plan: dict) -> dict:
        plan = super()._check_params_vs_input(data, plan)
        return {**plan, "lam": float(data.n_classes) if self.lam is None else float(self.lam)}

    def _fitted_extras(self, plan: dict) -> dict:
        return {"precision_": plan["precision"], "network_precision_": plan["network_precision"]}

    def _loop_settings(self, plan: dict) -> LoopSettings:
        return LoopSettings(
            iterations=self.iterations, matching_steps=plan["matching_steps"], schedule=plan["schedule"],
            distance=plan["distance"], match=self.match, lam=plan["lam"],
            class_weights=plan["class_weights"].tolist(), lr_syn=float(self.lr_syn),
            momentum_syn=float(self.momentum_syn), lr_net=float(self.lr_net), batch_real=self.batch_real,
            batch_train=self.batch_train, augment=plan["augment"], precision=plan["precision"],
            network_precision=plan["network_precision"], compile=bool(self.compile), factor=self.factor)


    # ------------------------------------------------------------------ fit steps








