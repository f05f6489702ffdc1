"""What the reducers that learn a synthetic set share: the fit as named steps.

:class:`LearnedSetReducer` is the base of :class:`~gradmatch.GradientMatchingCondenser`
and :class:`~gradmatch.DistributionMatchingCondenser`. Its ``_fit_resample``
reads as the steps of a fit: build the loop (pools of real data, the initial
set, a trial network), restore its state (warm start or checkpoint), run it,
and return the fitted attributes. A subclass says which loop runs
(``_loop_class``) and with which settings (``_loop_settings``); the rules that
need no data and those that do are declared here once for both.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch

from ._base import BaseReducer
from .augment import check_augment_input, make_augment
from .checkpoint import Checkpointer, NoCheckpoint, UndescribableSetting, describe_run, describe_setting, run_key
from .data import ClassPools, DatasetPools
from .engine import DivergenceError, SetLoop
from .formation import check_factor, decode_array, pack
from .hooks import IterationHooks
from .memory import keep_freed_memory
from .networks import build_model, check_network_fits
from .parameters import POSITIVE, AugmentSpec, Count, Folder, MeanStd, ModelName, Number, Options, StrOptions
from .resolve import resolve_model, resolve_normalization
from .runtime import isolated_rng, make_generator, resolve_device, seed_from, torch_threads
from .sampling import make_real_sampler
from .sharding import current_shard
from .validation import PreparedData, to_output_images, to_output_labels, warn_user

__all__ = ["LearnedSetReducer", "INITS"]

#: Valid values of the ``init`` parameter.
INITS = ("noise", "real", "mix")


def _at_added_default(name: str, value, added_later: dict) -> bool:
    """Whether ``name`` is a later parameter left at the value that reproduces the earlier behaviour."""
    if name not in added_later:
        return False
    default = added_later[name]
    return type(value) is type(default) and describe_setting(value) == describe_setting(default)


class LearnedSetReducer(BaseReducer):
    """Base of the reducers that learn their set with a :class:`~gradmatch.engine.SetLoop`."""

    _small_class_is_error = False

    _parameter_constraints: dict = {
        **BaseReducer._parameter_constraints,
        "iterations": [Count(1)],
        "lr_syn": [POSITIVE],
        # Momentum 1 or more never forgets a step: the set grows without bound.
        "momentum_syn": [Number(0, 1, closed="left")],
        "batch_real": [Count(1)],
        "factor": [Count(1)],
        "real_sampling": [StrOptions({"random", "representative"})],
        "recluster_every": [Count(1)],
        "init": [StrOptions(set(INITS))],
        "augment": [AugmentSpec()],
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
        "keep_freed_memory": ["boolean"],
        "n_threads": [Count(1), None],
    }

    #: Parameters that do not change the synthetic set of a given iteration, so a
    #: checkpoint stays valid when they change (iterations: a longer run continues;
    #: a sharded run and a streamed Dataset give the single-process, in-memory set).
    _NOT_IN_RUN_KEY = ("iterations", "verbose", "callback", "checkpoint", "checkpoint_every",
                       "warm_start", "device", "in_memory", "distributed", "keep_freed_memory", "n_threads")

    #: Parameters added after checkpoints were first written, with the value that
    #: reproduces the behaviour before them: left out of the run key at that value,
    #: so a checkpoint written before they existed still resumes. A new parameter
    #: that shapes the result goes here with its default.
    _ADDED_LATER: dict = {"factor": 1, "real_sampling": "random", "recluster_every": 10}

    #: The loop class a subclass runs.
    _loop_class: type[SetLoop] = SetLoop

    def _loop_settings(self, plan: dict):  # pragma: no cover - abstract
        raise NotImplementedError

    def _fitted_extras(self, plan: dict) -> dict:
        """Fitted attributes a subclass adds to the result."""
        return {}

    # ------------------------------------------------------------------ settings
    def _resolve_settings(self) -> dict:
        """The rules that need no data, each applied once per fit."""
        device = resolve_device(self.device)
        plan = dict(device=device, augment=make_augment(self.augment), **self._resolve_method_settings(device))
        if self.checkpoint is not None:
            self._run_settings(self._resolved_run_settings(plan), seed=0)  # refuse an unidentifiable run now
        return plan

    def _resolve_method_settings(self, device: torch.device) -> dict:
        """The subclass's own data-free settings (``precision`` and ``network_precision``
        entries identify runs by the precision that runs)."""
        return {}

    @staticmethod
    def _resolved_run_settings(plan: dict) -> dict:
        """Parameters whose value as resolved (a bf16 request that fell back to float32
        runs float32) identifies the run, rather than the value asked for."""
        return {k: plan[k] for k in ("precision", "network_precision") if k in plan}

    def _check_params_vs_input(self, data: PreparedData, plan: dict) -> dict:
        """The rules that need the data: budgets, augmentation, network, statistics, warm start."""
        plan = super()._check_params_vs_input(data, plan)
        check_augment_input(plan["augment"], data.layout.image_shape is not None)
        check_factor(self.factor, data.layout.image_shape)
        self._check_warm_start(data)
        counts = data.class_counts
        return {**plan,
                "model": resolve_model(self.model, data.layout.image_shape),
                "normalization": resolve_normalization(self.normalization, data),
                "class_weights": counts / counts.sum()}  # the classes' priors

    def _check_warm_start(self, data: PreparedData) -> None:
        """A warm start continues a set only on the same classes and with the same formation."""
        previous = getattr(self, "_state", None)
        if not self.warm_start or previous is None:
            return
        if not np.array_equal(previous["classes"], data.classes):
            raise ValueError(
                "warm_start=True continues the previous synthetic set, which was fitted on classes "
                f"{previous['classes'].tolist()!r}; these data have {data.classes.tolist()!r}. "
                "Set warm_start=False to start over.")
        if previous.get("factor", 1) != self.factor:
            raise ValueError(
                f"warm_start=True continues the previous synthetic set, whose images were learned as "
                f"factor={previous.get('factor', 1)} formations; factor={self.factor} would read them "
                "another way. Set factor back, or warm_start=False to start over.")

    def _run_settings(self, resolved: dict, seed: int) -> dict:
        """The settings that identify a run's checkpoints (described faithfully, or refused).

        ``resolved`` holds the precisions that run (a bf16 fit that fell back
        to float32 computes float32 iterations), and a None random_state is the
        seed drawn for this fit, so two unseeded runs never share a checkpoint.
        """
        params = {**self.get_params(deep=False), **resolved}
        settings = {k: v for k, v in params.items()
                    if k not in self._NOT_IN_RUN_KEY and not _at_added_default(k, v, self._ADDED_LATER)}
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

    def _fit_resample(self, data: PreparedData, plan: dict) -> dict:
        """Build the loop, restore its state (warm start or checkpoint), run it, return the result."""
        shard = self._shard(data)
        seed = seed_from(self.random_state)
        if shard is not None:
            seed = shard.broadcast_int(seed)  # every rank draws rank 0's random stream
        with isolated_rng(seed, plan["device"]), torch_threads(self.n_threads), \
                keep_freed_memory(enabled=self.keep_freed_memory and plan["device"].type == "cpu"):
            loop = self._build_loop(data, plan, seed, shard)
            checkpointer = self._checkpointer(data, plan, seed, shard)
            self._restore(loop, checkpointer, shard)
            return self._run(loop, checkpointer, data, plan, shard)

    def _build_loop(self, data: PreparedData, plan: dict, seed: int, shard) -> SetLoop:
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
        trial = build_model(model, shape, data.n_classes).to(device)
        check_network_fits(trial, pools.take_partial(torch.arange(min(2, len(data.labels)), device=device)),
                           data.n_classes)
        if self.real_sampling == "representative" and not callable(getattr(trial, "embed", None)):
            raise ValueError(
                f"real_sampling='representative' clusters real images in the network's embedding (its "
                f"embed() method, the features before its classifier), which {type(trial).__name__} lacks: "
                "give a model with one, or use real_sampling='random'")
        syn_counts = plan["ipc"].tolist()
        return self._loop_class(
            pools=pools, syn=self._initial_set(pools, syn_counts, shape, generator, shard),
            syn_counts=syn_counts, make_network=functools.partial(build_model, model, shape, data.n_classes),
            settings=self._loop_settings(plan), generator=generator, shard=shard,
            real_sampler=make_real_sampler(self.real_sampling, self.batch_real, self.recluster_every))

    def _initial_set(self, pools, syn_counts: list, shape, generator, shard) -> torch.Tensor:
        if self.init == "real":
            return pools.initial_images(syn_counts, generator)
        if self.init == "mix":  # factor**2 real images of the class shrunk into each stored one
            per_stored = self.factor * self.factor
            return pack(pools.initial_images([k * per_stored for k in syn_counts], generator), self.factor)
        syn = torch.randn((sum(syn_counts),) + tuple(shape), generator=generator, device=generator.device)
        if shard is None:
            return syn
        bounds = np.concatenate([[0], np.cumsum(syn_counts)])
        return syn[int(bounds[shard.owned.start]):int(bounds[shard.owned.stop])]

    def _checkpointer(self, data: PreparedData, plan: dict, seed: int, shard):
        if self.checkpoint is None:
            return NoCheckpoint()
        Checkpointer.probe(self.checkpoint)
        settings = self._run_settings(self._resolved_run_settings(plan), seed)
        key = run_key(data.images, data.labels, data.classes, settings)
        rank, world = (0, 1) if shard is None else (shard.rank, shard.world_size)
        return Checkpointer(self.checkpoint, key, self.checkpoint_every, rank, world)

    def _restore(self, loop: SetLoop, checkpointer, shard) -> None:
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

    def _run(self, loop: SetLoop, checkpointer, data: PreparedData, plan: dict, shard) -> dict:
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

    def _result(self, data: PreparedData, plan: dict, loop: SetLoop, syn: torch.Tensor,
                partial: bool) -> dict:
        """The fitted attributes for the synthetic set ``syn`` (normalised, ordered by class)."""
        norm = plan["normalization"]
        stored = to_output_images(syn, data.layout, np.asarray(norm.mean), np.asarray(norm.std))
        stored_codes = np.repeat(np.arange(data.n_classes), plan["ipc"])
        return {
            # What networks train on is decoded from the stored form, here as after load_set.
            "X_syn_": decode_array(stored, self.factor, data.layout.internal_shape),
            "_syn_codes": np.repeat(stored_codes, self.factor ** 2),
            "X_stored_": stored, "_stored_codes": stored_codes, "factor_": self.factor,
            "normalization_": norm.as_dict(), "class_weights_": plan["class_weights"],
            "history_": loop.history, "n_iter_": loop.iteration,
            "partial_": partial,
            "_state": {**loop.last_boundary_state(), "classes": data.classes, "factor": self.factor},
            "model_": plan["model"] if isinstance(plan["model"], str) else "custom",
            "n_ranks_": 1 if loop.shard is None else loop.shard.world_size,
            **self._fitted_extras(plan),
        }

    def _set_fitted(self, data: PreparedData, fitted: dict) -> None:
        super()._set_fitted(data, fitted)
        self.y_stored_ = to_output_labels(self._stored_codes, self.classes_)

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
