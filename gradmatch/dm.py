"""DistributionMatchingCondenser: the scikit-learn face of distribution matching."""

from __future__ import annotations

from ._learned import LearnedSetReducer
from .distribution import DistributionMatchingLoop, DistributionSettings

__all__ = ["DistributionMatchingCondenser"]


class DistributionMatchingCondenser(LearnedSetReducer):
    """Condense a labelled training set by matching mean embeddings (distribution matching, DM).

    Zhao and Bilen, "Dataset Condensation with Distribution Matching" (WACV
    2023). Each iteration draws a freshly initialised network, freezes it, and
    moves the synthetic images of every class so that their mean embedding
    (the features before the network's classifier) comes closer to that of a
    real batch of the class. With no network steps and no second-order
    gradients an iteration costs a fraction of a gradient-matching one, which
    is what makes larger budgets (ipc 10, 50) affordable. The defaults are
    the method's published ones: real initialisation, DSA on both sides,
    20,000 iterations, an image learning rate of 1.0 with momentum 0.5, real
    batches of 256 per class.

    It shares everything else with
    :class:`~gradmatch.GradientMatchingCondenser`: the input and output
    contract, normalisation, ``random_state``, checkpoints, warm starts,
    divergence handling, Ctrl-C, progress bar, ``history_``, ``save_set``,
    pipelines, per-class ``ipc``, class sharding under ``torchrun`` and the
    multi-formation ``factor``.

    Parameters
    ----------
    ipc : int or dict, default=1
        Synthetic images per class, or ``{class: count}`` naming every class.
    iterations : int, default=20000
        Outer iterations, each with a fresh random network and one update.
    lr_syn : float, default=1.0
        Learning rate of the synthetic images (SGD).
    momentum_syn : float, default=0.5
        Momentum of the synthetic images' SGD, in [0, 1).
    batch_real : int, default=256
        Real images per class per iteration (the whole class if smaller).
    init : {"real", "noise", "mix"}, default="real"
        Start from random real images of each class (DM's choice), noise, or
        ``factor**2`` real images shrunk into the parts of each stored image.
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
        clusterings (DREAM's interval; an iteration of DM is one step);
        the batch is kept in between.
    augment : None, "dsa", str or gradmatch.augment.DSA, default="dsa"
        Differentiable siamese augmentation, one draw per class and iteration
        applied alike to the real batch and the synthetic images. ``"dsa"``
        includes flips: for digits and characters give a strategy without
        ``flip``, e.g. ``"color_crop_cutout_scale_rotate"``. None matches
        un-augmented embeddings. Needs images.
    model : str or callable, default="auto"
        The embedding network: the ConvNet for images, the MLP for flat
        features, any registered name, or a factory whose network has an
        ``embed`` method. A BatchNorm network embeds all classes jointly.
    input_shape : tuple (C, H, W), default=None
        Treat flat ``X`` of ``C*H*W`` features as images.
    normalization : "auto", None or (mean, std), default="auto"
    device : str, default="auto"
    random_state : int, RandomState or None, default=None
        Seeds everything; the same value gives the same set on the CPU.
    verbose : int, default=0
        ``> 0`` shows a progress bar with the loss.
    callback : callable, default=None
        ``callback(iteration, record)`` after every iteration (``record`` has
        ``loss`` and ``seconds``); a true answer stops the fit.
    checkpoint : str or path, default=None
        A folder for checkpoints, as for the gradient-matching condenser.
    checkpoint_every : int, default=100
        Iterations between checkpoints (an iteration is short).
    warm_start : bool, default=False
        Continue the previous fit up to ``iterations`` in total.
    in_memory : bool or "auto", default="auto"
        For a torch ``Dataset`` X: stack it in memory or stream real batches.
    distributed : {"auto", False}, default="auto"
        Shard the classes over a ``torch.distributed`` process group when one
        is up (not with a BatchNorm network, which embeds classes jointly).
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
    X_syn_, y_syn_ : ndarray
        The synthetic images (the input's layout and scale) and their labels.
    classes_, n_features_in_, input_shape_, normalization_, class_weights_
        As for the gradient-matching condenser.
    sampling_strategy_ : dict
        ``{class: synthetic images made}``.
    history_ : dict of lists
        Per iteration: ``loss`` (the mean-embedding loss) and ``seconds``.
    n_iter_ : int
        Iterations run in total (across warm starts and resumes).
    partial_ : bool
        True when the fit was interrupted or diverged.
    X_stored_, y_stored_ : ndarray
        The stored set (``ipc`` images per class) and its labels; equal to
        ``X_syn_``, ``y_syn_`` when ``factor_`` is 1.
    factor_ : int
        The multi-formation factor the set decodes with.

    See Also
    --------
    GradientMatchingCondenser : gradient matching, stronger per image at ipc 1.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from gradmatch import DistributionMatchingCondenser
    >>> X, y = load_digits(return_X_y=True)
    >>> dm = DistributionMatchingCondenser(ipc=2, iterations=20, input_shape=(1, 8, 8),
    ...                                    augment="crop_scale_rotate", random_state=0)
    >>> X_syn, y_syn = dm.fit_resample(X, y)
    >>> X_syn.shape, dm.n_iter_
    ((20, 64), 20)
    """

    _loop_class = DistributionMatchingLoop

    def __init__(
        self,
        ipc=1,
        *,
        iterations=20000,
        lr_syn=1.0,
        momentum_syn=0.5,
        batch_real=256,
        init="real",
        factor=1,
        real_sampling="random",
        recluster_every=10,
        augment="dsa",
        model="auto",
        input_shape=None,
        normalization="auto",
        device="auto",
        random_state=None,
        verbose=0,
        callback=None,
        checkpoint=None,
        checkpoint_every=100,
        warm_start=False,
        in_memory="auto",
        distributed="auto",
        keep_freed_memory=True,
        n_threads=None,
    ):
        self.ipc = ipc
        self.iterations = iterations
        self.lr_syn = lr_syn
        self.momentum_syn = momentum_syn
        self.batch_real = batch_real
        self.init = init
        self.factor = factor
        self.real_sampling = real_sampling
        self.recluster_every = recluster_every
        self.augment = augment
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

    def _loop_settings(self, plan: dict) -> DistributionSettings:
        return DistributionSettings(iterations=self.iterations, lr_syn=float(self.lr_syn),
                                    momentum_syn=float(self.momentum_syn), batch_real=self.batch_real,
                                    augment=plan["augment"], factor=self.factor)
