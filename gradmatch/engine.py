"""The condensation loop (paper Algorithm 1). Pure PyTorch: no scikit-learn here.

One outer iteration k draws a fresh network, then alternates T matching steps
(update the synthetic set so that its per-class gradients match the real
ones) with network steps on the synthetic set, as the schedule says. Per-class
work is independent except for the inter-class term and the network steps,
which is what class sharding builds on: with a :class:`~gradmatch.sharding.ClassShard`
the loop holds and updates only its own classes' synthetic images, and the
three cross-class parts go through the shard's collectives.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from copy import deepcopy
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .cpu_share import CpuShareProbe, oversubscription_note
from .data import ClassPools
from .formation import decode, decoded_labels
from .matching import matching_loss, rule_for_iteration
from .sampling import RandomBatches
from .schedules import Schedule
from .sharding import ClassShard, split_classes

__all__ = ["BN_TYPES", "LoopSettings", "SetLoop", "ClassBatch", "CondensationLoop", "DivergenceError",
           "class_gradients"]

_CE = nn.CrossEntropyLoss()
#: Normalisation layers that use batch statistics.
BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
#: Real images per class used to set BatchNorm statistics before matching (DC's BNSizePC).
BN_IMAGES_PER_CLASS = 16


class DivergenceError(FloatingPointError):
    """The matching loss or the synthetic set stopped being finite.

    Attributes
    ----------
    iteration : int
        Outer iteration in which it happened.
    last_good : torch.Tensor
        The synthetic set at the end of the last finite iteration.
    """

    def __init__(self, message: str, iteration: int, last_good: torch.Tensor):
        super().__init__(message)
        self.iteration = iteration
        self.last_good = last_good


@dataclass
class LoopSettings:
    """Everything the loop needs besides data, network and randomness."""

    iterations: int
    matching_steps: int
    schedule: Schedule
    distance: Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor]], torch.Tensor]
    match: str = "multilevel"
    lam: float = 10.0
    class_weights: Sequence[float] | None = None
    lr_syn: float = 0.1
    momentum_syn: float = 0.5
    lr_net: float = 0.01
    batch_real: int = 256
    batch_train: int = 256
    overfit_batch: int = 256
    #: Differentiable augmentation (gradmatch.augment.DSA) or None.
    augment: object = None
    #: "bf16": the real-gradient pass in bfloat16 (see ``CondensationLoop.real_gradients``).
    precision: str = "float32"
    #: torch.compile the network of the real-gradient pass.
    compile: bool = False
    #: "bf16": the forward passes of the network steps (and of the adaptive
    #: schedule's held-out loss) under bfloat16 autocast.
    network_precision: str = "float32"
    #: Multi-formation: each stored image decodes into factor**2 training images.
    factor: int = 1


def class_gradients(net: nn.Module, params: Sequence[torch.Tensor], x: torch.Tensor,
                    y: torch.Tensor, create_graph: bool) -> tuple[torch.Tensor, ...]:
    """Gradient of the mean cross-entropy of ``net`` on ``(x, y)`` w.r.t. ``params``."""
    out = net(x)
    if out.dtype in (torch.bfloat16, torch.float16):
        out = out.float()  # the loss in float32 when the network runs in half precision
    loss = _CE(out, y)
    grads = torch.autograd.grad(loss, params, create_graph=create_graph)
    return grads if create_graph else tuple(g.detach() for g in grads)



def _write_beside_bar(text: str) -> None:
    tqdm.write(text, file=sys.stderr)  # where the bar is, above it


#: A run predicted to last longer than this (seconds) says so after its first iteration.
LONG_RUN_SECONDS = 600


def announce_long_run(seconds: float, remaining: int, write: Callable[[str], object]) -> bool:
    """Say how long the remaining iterations will take when that is long; whether it said so.

    Examples
    --------
    >>> announce_long_run(9.0, 999, print)
    condensing: the first iteration took 9.0 s, so the remaining 999 will take about 2.5 h (iterations=...)
    True
    >>> announce_long_run(9.0, 10, print)
    False
    """
    estimate = seconds * remaining
    if estimate < LONG_RUN_SECONDS:
        return False
    hours = estimate / 3600
    when = f"{hours:.1f} h" if hours >= 1 else f"{estimate / 60:.0f} min"
    write(f"condensing: the first iteration took {seconds:.1f} s, so the remaining {remaining} will take "
          f"about {when} (iterations=... sets the total; Ctrl-C keeps the set reached)")
    return True


#: A first iteration shorter than this is too short for /proc/stat's ticks to tell the load.
CPU_SHARE_MIN_SECONDS = 1.0


def _warn(text: str) -> None:
    warnings.warn(text, UserWarning, stacklevel=4)


def tell_if_cpu_shared(probe: CpuShareProbe, write: Callable[[str], object]) -> bool:
    """After the first iteration: say so when other processes shared the cores (see
    :mod:`gradmatch.cpu_share`); whether it said so."""
    others = probe.others()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    note = None if others is None else oversubscription_note(others, torch.get_num_threads(), cores)
    if note:
        write(note)
    return note is not None


class ClassBatch(NamedTuple):
    """One class's matching batch: real images and the decoded synthetic ones, with labels."""

    c: int
    real: torch.Tensor
    real_labels: torch.Tensor
    syn: torch.Tensor
    syn_labels: torch.Tensor


@dataclass
class SetLoop:
    """What every loop that learns a synthetic set shares: the set, its optimiser, randomness, state.

    Subclasses implement :meth:`iterate` (one outer iteration's work) and name
    the per-iteration records they keep in ``HISTORY_KEYS``.

    Parameters
    ----------
    pools : ClassPools
        The real data.
    syn : torch.Tensor
        Initial normalised synthetic images, ordered by class (sharded: only
        those of the owned classes).
    syn_counts : sequence of int
        Synthetic images per class (in class order), of all classes.
    make_network : callable
        ``() -> nn.Module`` with a fresh random initialisation; called inside a
        forked, seeded global RNG.
    settings : LoopSettings or another settings dataclass
        Needs ``iterations``, ``lr_syn``, ``momentum_syn``, ``batch_real``,
        ``augment`` and ``factor``.
    generator : torch.Generator
        Source of all randomness (batches, shuffles, network seeds), on the
        data's device.
    shard : ClassShard, optional
        This rank's classes in a class-sharded run (see :mod:`gradmatch.sharding`).
    real_sampler : RandomBatches or RepresentativeBatches, optional
        Where each matching step's real batches come from (see
        :mod:`gradmatch.sampling`); random batches of ``settings.batch_real``
        by default.
    """

    pools: ClassPools
    syn: torch.Tensor
    syn_counts: Sequence[int]
    make_network: Callable[[], nn.Module]
    settings: LoopSettings

    #: The per-iteration records kept in ``history``.
    HISTORY_KEYS: ClassVar[tuple[str, ...]] = ("loss", "seconds")
    generator: torch.Generator
    iteration: int = 0
    history: dict[str, list] | None = None
    optimizer_state: dict | None = None
    shard: ClassShard | None = None
    real_sampler: RandomBatches | None = None

    def __post_init__(self):
        device = self.pools.device
        if self.real_sampler is None:
            self.real_sampler = RandomBatches(self.settings.batch_real)
        #: The per-iteration records kept: the loop's and the sampler's.
        self.history_keys = self.HISTORY_KEYS + self.real_sampler.history_keys
        self.syn = self.syn.detach().to(device=device, dtype=torch.float32).clone().requires_grad_(True)
        self.full_labels = torch.cat([
            torch.full((k,), c, dtype=torch.long, device=device) for c, k in enumerate(self.syn_counts)
        ])
        bounds = [0]
        for k in self.syn_counts:
            bounds.append(bounds[-1] + int(k))
        self.n_syn = bounds[-1]
        owned = range(len(self.syn_counts)) if self.shard is None else self.shard.owned
        # This rank's rows of the full synthetic set, and each owned class's rows of self.syn.
        self.own_rows = slice(bounds[owned.start], bounds[owned.stop])
        # Synthetic rows of every rank's block, for gathering the whole set.
        self.block_sizes = ([self.n_syn] if self.shard is None else
                            [bounds[b.stop] - bounds[b.start]
                             for b in split_classes(len(self.syn_counts), self.shard.world_size)])
        start = bounds[owned.start]
        self.syn_slices = [slice(bounds[c] - start, bounds[c + 1] - start) if c in owned else None
                           for c in range(len(self.syn_counts))]
        self.syn_labels = self.full_labels[self.own_rows]
        if self.syn.shape[0] != self.own_rows.stop - self.own_rows.start:
            raise ValueError(f"{self.syn.shape[0]} synthetic images given for this rank's classes, "
                             f"expected {self.own_rows.stop - self.own_rows.start}")
        self.optimizer = torch.optim.SGD([self.syn], lr=self.settings.lr_syn,
                                         momentum=self.settings.momentum_syn)
        if self.optimizer_state is not None:
            self.optimizer.load_state_dict(self.optimizer_state)
        if self.history is None:
            self.history = {key: [] for key in self.history_keys}
        self._last_good = self.syn.detach().clone()
        self._boundary = None
        self._cuda_devices = [device] if device.type == "cuda" else []

    def _sum_over_ranks(self, partial: torch.Tensor) -> torch.Tensor:
        """Complete a batch each rank filled with its own classes' rows."""
        return partial if self.shard is None else self.shard.sum_(partial)

    def full_synthetic(self) -> torch.Tensor:
        """The whole stored synthetic set (collective when sharded), detached."""
        return self._assemble(self.syn.detach())

    def training_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole set as networks train on it (decoded when ``factor > 1``), with its labels."""
        factor = self.settings.factor
        return decode(self.full_synthetic(), factor), decoded_labels(self.full_labels, factor)

    def fresh_network(self) -> nn.Module:
        """A new network, initialised from a seed drawn from the loop's generator."""
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator,
                                 device=self.generator.device).item())
        with torch.random.fork_rng(devices=self._cuda_devices):
            torch.manual_seed(seed)
            net = self.make_network()
        return net.to(self.pools.device).train()

    def set_batchnorm(self, net: nn.Module) -> None:
        """DC's rule: statistics from a few real images per class, then frozen."""
        bns = [m for m in net.modules() if isinstance(m, BN_TYPES)]
        if not bns:
            return
        net.train()
        batch = self._sum_over_ranks(torch.cat([
            self.pools.sample(c, BN_IMAGES_PER_CLASS, self.generator, partial=True)[0]
            for c in range(self.pools.n_classes)
        ]))
        with torch.no_grad():
            net(batch)
        for m in bns:
            m.eval()

    def run_iteration(self) -> dict:
        """One outer iteration (:meth:`iterate`), recorded; returns its history record."""
        start = time.perf_counter()
        record = self.iterate()
        record["seconds"] = time.perf_counter() - start
        record.update(self.real_sampler.record())
        for key in self.history_keys:
            self.history[key].append(record[key])
        self.iteration += 1
        self._last_good = self.syn.detach().clone()
        self._boundary = self.state()
        return record

    def owned_batches(self, net: nn.Module, step: int) -> Iterator[ClassBatch]:
        """Per owned class, in class order, its :class:`ClassBatch` for matching step ``step``.

        The real side comes from the loop's real sampler (which may embed
        real images with ``net``); the synthetic side is the class's stored
        images decoded (``factor``).
        With ``settings.augment``, one draw of parameters is applied to both
        sides of the class (siamese). The draws of every class are made in
        every rank, so all ranks follow the single-process random stream.
        """
        s = self.settings
        self.real_sampler.begin_step(step, getattr(net, "embed", None), self.pools, self.generator)
        for c in range(self.pools.n_classes):
            xr, yr = self.real_sampler.draw(self.pools, c, self.generator)
            draw = None
            if s.augment is not None:
                draw = s.augment.sample(1, self.generator, image_shape=tuple(self.syn.shape[1:]))
            rows = self.syn_slices[c]
            if rows is None:
                continue  # another rank's class
            xs = decode(self.syn[rows], s.factor)
            ys = decoded_labels(self.syn_labels[rows], s.factor)
            if draw is not None:
                xr, xs = s.augment.apply(xr, draw), s.augment.apply(xs, draw)
            yield ClassBatch(c, xr, yr, xs, ys)

    def iterate(self) -> dict:  # pragma: no cover - abstract
        """The work of one outer iteration; returns its record (``loss`` and the subclass's keys)."""
        raise NotImplementedError

    def check_finite(self, value: float, where: str) -> None:
        """Raise :class:`DivergenceError` when the loss or the set stopped being finite."""
        finite = bool(torch.isfinite(self.syn).all())
        if self.shard is not None:
            finite = self.shard.all_true(finite)
        if not math.isfinite(value) or not finite:
            raise DivergenceError(
                f"condensation diverged in iteration {self.iteration} ({where}): the loss is {value} "
                f"or the synthetic set holds NaN/inf. The likely cause is {self.divergence_hint()}; the "
                "synthetic set of the last finite iteration is kept.",
                self.iteration, self._assemble(self._last_good),
            )

    def divergence_hint(self) -> str:
        return f"a learning rate too large for the synthetic images (lr_syn={self.settings.lr_syn})"

    def run(self, progress: bool = False, callback: Callable[[int, dict], object] | None = None) -> None:
        """Run the remaining iterations, with an optional tqdm bar and a callback per iteration."""
        total = self.settings.iterations
        first = True
        with tqdm(total=total, initial=self.iteration, disable=not progress,
                  desc="condensing", unit="it", leave=False) as bar:
            while self.iteration < total:
                probe = CpuShareProbe.start() if first and self.pools.device.type == "cpu" else None
                record = self.run_iteration()
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4g}")
                if first and progress:
                    announce_long_run(record["seconds"], total - self.iteration, _write_beside_bar)
                if probe is not None and record["seconds"] >= CPU_SHARE_MIN_SECONDS:
                    # Said beside the bar when there is one, else as a warning: never silent.
                    tell_if_cpu_shared(probe, _write_beside_bar if progress else _warn)
                first = False
                if callback is not None and callback(self.iteration - 1, record):
                    break  # the caller asked to stop early

    def _assemble(self, local: torch.Tensor) -> torch.Tensor:
        if self.shard is None:
            return local
        return self.shard.assemble(local, self.block_sizes)

    @property
    def synthetic(self) -> torch.Tensor:
        """This rank's synthetic images (all of them when not sharded)."""
        return self.syn.detach()

    def state(self) -> dict:
        """Everything needed to continue exactly from here, as numpy arrays and plain values.

        Taken at an iteration boundary, it makes a resumed run identical (on the
        CPU) to an uninterrupted one: the synthetic set, the momentum of its
        optimiser, the generator and the global torch RNG, the iteration
        counter and the history.
        """
        buf = self.optimizer.state.get(self.syn, {}).get("momentum_buffer")
        return {
            "syn": self.syn.detach().cpu().numpy().copy(),
            "momentum": None if buf is None else buf.detach().cpu().numpy().copy(),
            "generator": self.generator.get_state().numpy().copy(),
            "global_rng": torch.get_rng_state().numpy().copy(),
            "iteration": int(self.iteration),
            "history": {k: list(v) for k, v in self.history.items()},
            **self.real_sampler.state(),
        }

    def last_boundary_state(self) -> dict:
        """The state at the end of the last finished iteration (or now, before the first)."""
        return self._boundary if self._boundary is not None else self.state()

    def state_problem(self, state: dict) -> str | None:
        """What makes a saved :meth:`state` unusable for this run, or None when it fits.

        Checked: the synthetic set's shape and finiteness, the momentum's shape,
        the sizes of both random states (a CUDA generator's state is not a CPU
        one's), the iteration counter and the history's keys and lengths.
        """
        syn = np.asarray(state.get("syn"))
        if syn.shape != tuple(self.syn.shape):
            return (f"its synthetic set has shape {syn.shape}, this run expects {tuple(self.syn.shape)} "
                    "(different ipc, classes or input shape)")
        if syn.dtype.kind != "f" or not np.isfinite(syn).all():
            return "its synthetic set is not all finite floats"
        momentum = state.get("momentum")
        if momentum is not None and np.asarray(momentum).shape != syn.shape:
            return f"its momentum has shape {np.asarray(momentum).shape}, not the set's {syn.shape}"
        for name, current in (("generator", self.generator.get_state()), ("global_rng", torch.get_rng_state())):
            saved = np.asarray(state.get(name))
            if saved.dtype != np.uint8 or saved.shape != (current.numel(),):
                return (f"its {name} state holds {saved.size} values where this run's "
                        f"({self.generator.device.type}) holds {current.numel()}: it was written on another "
                        "kind of device")
        return (self.real_sampler.state_problem(state)
                or self._history_problem(state.get("iteration"), state.get("history")))

    def _history_problem(self, iteration, history) -> str | None:
        if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
            return f"its iteration counter is {iteration!r}, not a whole number >= 0"
        if not isinstance(history, dict) or set(history) != set(self.history):
            keys = sorted(history) if isinstance(history, dict) else type(history).__name__
            return f"its history has the entries {keys}, expected {sorted(self.history)}"
        lengths = {key: len(v) if isinstance(v, list) else None for key, v in history.items()}
        if any(n != iteration for n in lengths.values()):
            return f"its history holds {lengths} records for {iteration} iterations"
        return None

    def restore(self, state: dict) -> None:
        """Continue from a :meth:`state` (learning rates stay those of the current settings)."""
        syn = torch.as_tensor(state["syn"], dtype=torch.float32)
        if tuple(syn.shape) != tuple(self.syn.shape):
            raise ValueError(
                f"the saved synthetic set has shape {tuple(syn.shape)}, this run expects "
                f"{tuple(self.syn.shape)} (different ipc, classes or input shape)"
            )
        with torch.no_grad():
            self.syn.copy_(syn.to(self.syn.device))
        self.optimizer.state.clear()
        if state.get("momentum") is not None:
            self.optimizer.state[self.syn]["momentum_buffer"] = torch.as_tensor(
                state["momentum"], dtype=torch.float32).to(self.syn.device).clone()
        self.generator.set_state(torch.as_tensor(state["generator"], dtype=torch.uint8).cpu())
        if state.get("global_rng") is not None:
            torch.set_rng_state(torch.as_tensor(state["global_rng"], dtype=torch.uint8).cpu())
        self.iteration = int(state["iteration"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.real_sampler.restore(state)
        self._last_good = self.syn.detach().clone()
        self._boundary = self.state()


@dataclass
class CondensationLoop(SetLoop):
    """State and driver of one gradient-matching condensation run (paper Algorithm 1).

    Takes :class:`SetLoop`'s parameters, with a :class:`LoopSettings`.
    """

    HISTORY_KEYS: ClassVar[tuple[str, ...]] = ("loss", "seconds", "network_steps")

    def __post_init__(self):
        super().__post_init__()
        self._held = None
        if self.settings.schedule.until_overfit:
            # A fixed mixed-class real batch, the "validation" loss of the overfit rule.
            xh, yh = self.pools.sample_mixed(self.settings.overfit_batch, self.generator)
            self._held = (self._sum_over_ranks(xh), yh)

    def low_precision(self, net: nn.Module):
        """The network the real-gradient pass runs, when it is not ``net`` itself.

        A shadow copy of the network, made once per run and loaded with
        ``net``'s weights at every matching step (the network changes only
        between them): in bfloat16 for ``precision="bf16"`` on the CPU, and
        compiled with ``torch.compile`` when ``compile=True`` (one compilation
        per run, since every iteration's network has the same architecture).
        Returns ``(callable, parameters)`` or None.
        """
        s = self.settings
        cpu_bf16 = s.precision == "bf16" and self.pools.device.type != "cuda"
        if not (cpu_bf16 or s.compile):
            return None
        if getattr(self, "_shadow", None) is None:
            self._shadow = deepcopy(net).to(torch.bfloat16 if cpu_bf16 else torch.float32)
            self._shadow_call = torch.compile(self._shadow) if s.compile else self._shadow
        else:
            with torch.no_grad():
                self._shadow.load_state_dict(net.state_dict())  # casts to the shadow's dtype
        for mine, theirs in zip(self._shadow.modules(), net.modules()):
            mine.training = theirs.training  # e.g. BatchNorm frozen in eval mode
        return self._shadow_call, [p for p in self._shadow.parameters() if p.requires_grad]

    def real_gradients(self, net: nn.Module, params: Sequence[torch.Tensor], x: torch.Tensor,
                       y: torch.Tensor, low=None) -> tuple[torch.Tensor, ...]:
        """Gradients of a real batch: in float32, or with ``precision="bf16"`` in bfloat16.

        Only this pass (most of a matching step's work) changes precision; its
        gradients come back as float32 and everything after them, including
        the synthetic side, stays float32.
        """
        if low is not None:
            net, params = low
        dtype = params[0].dtype
        if self.settings.precision == "bf16" and x.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return class_gradients(net, params, x, y, create_graph=False)
        grads = class_gradients(net, params, x.to(dtype), y, create_graph=False)
        return grads if dtype == torch.float32 else tuple(g.float() for g in grads)

    def matching_step(self, net: nn.Module, params: Sequence[torch.Tensor], t: int = 0) -> float:
        """Matching step ``t`` of this iteration: one update of the synthetic set; returns the loss."""
        s = self.settings
        low = self.low_precision(net)
        n_classes = self.pools.n_classes
        weights = s.class_weights if s.class_weights is not None else [1.0 / n_classes] * n_classes
        g_real, g_syn, w_own = [], [], []
        for batch in self.owned_batches(net, self.iteration * s.matching_steps + t):
            g_real.append(self.real_gradients(net, params, batch.real, batch.real_labels, low))
            g_syn.append(class_gradients(net, params, batch.syn, batch.syn_labels, create_graph=True))
            w_own.append(weights[batch.c])
        sharded = self.shard is not None
        loss = matching_loss(g_syn, g_real, distance=s.distance, match=s.match, lam=s.lam,
                             weights=w_own, iteration=self.iteration,
                             union_reduce=self.shard.sum_with_grad if sharded else None,
                             inter_share=1.0 / self.shard.world_size if sharded else 1.0)
        value = float(loss.detach())
        if sharded:
            value = self.shard.sum_value(value)  # the single-process loss, on every rank
        if not math.isfinite(value):
            return value
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return value

    def _train_epoch(self, net: nn.Module, opt: torch.optim.Optimizer,
                     x: torch.Tensor, y: torch.Tensor) -> None:
        n = x.shape[0]
        perm = torch.randperm(n, generator=self.generator, device=self.generator.device).to(x.device)
        for start in range(0, n, self.settings.batch_train):
            rows = perm[start : start + self.settings.batch_train]
            xb = x[rows]
            if self.settings.augment is not None:
                xb = self.settings.augment(xb, self.generator)
            loss = _CE(self.network_forward(net, xb), y[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def network_forward(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``net(x)`` as the network steps run it: float32 logits, computed under
        bfloat16 autocast for ``network_precision="bf16"`` (the weights, their
        gradients and the optimiser stay float32; augmentation runs before, in float32)."""
        if self.settings.network_precision != "bf16":
            return net(x)
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            out = net(x)
        return out.float()

    def network_steps(self, net: nn.Module, opt: torch.optim.Optimizer, t: int) -> int:
        """Train ``net`` on the current synthetic set after matching step ``t``."""
        net.train()
        # Every rank trains the same network on the whole set (gathered when sharded).
        x, y = self.training_set()
        sched = self.settings.schedule
        if not sched.until_overfit:
            n_steps = sched(t)
            for _ in range(n_steps):
                self._train_epoch(net, opt, x, y)
            return n_steps
        xh, yh = self._held
        with torch.no_grad():
            previous = float(_CE(self.network_forward(net, xh), yh))
        taken = 0
        for _ in range(sched.max_steps):
            self._train_epoch(net, opt, x, y)
            taken += 1
            with torch.no_grad():
                current = float(_CE(self.network_forward(net, xh), yh))
            if current > previous:  # the held real loss rose: overfitting
                break
            previous = current
        return taken

    def iterate(self) -> dict:
        """T matching steps on a fresh network, with network steps in between."""
        s = self.settings
        net = self.fresh_network()
        params = [p for p in net.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"the network ({type(net).__name__}) has no trainable parameters, so there are "
                             "no gradients to match: give a model whose factory builds layers with weights")
        opt = torch.optim.SGD(params, lr=s.lr_net)
        losses, steps = [], 0
        for t in range(s.matching_steps):
            self.set_batchnorm(net)
            losses.append(self.matching_step(net, params, t))
            self.check_finite(losses[-1], f"matching step {t}")
            if t == s.matching_steps - 1:
                break  # no network steps after the last update
            steps += self.network_steps(net, opt, t)
        return {"loss": sum(losses) / len(losses), "network_steps": steps,
                "rule": rule_for_iteration(s.match, self.iteration)}

    def divergence_hint(self) -> str:
        s = self.settings
        return (f"a learning rate too large for the synthetic images (lr_syn={s.lr_syn}) or the network "
                f"(lr_net={s.lr_net})")
