"""One SVI step and one fit loop over it, with callbacks.

:func:`step` is one optimisation step (ELBO estimate, divergence guard, backward, update);
:func:`fit` is a thin loop over minibatches and epochs that reports to callbacks and returns the
:class:`FitState` it advanced, which is also how a fit resumes (pass the state back in).
``BNN.fit`` builds the objective, the optimiser and the data source and calls :func:`fit`.

**Modes.** A fit runs the network in training mode by default (``mode="train"``, PyTorch's
convention: dropout layers drop, BatchNorm normalises with the minibatch's statistics and
updates its running ones), ``"eval"`` in evaluation mode, ``"keep"`` in the modes its modules
are in; every module's own mode is restored when the fit ends, also on an error. The checks and
probes before the first step run in evaluation mode without side effects.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from pyro.optim import PyroOptim

from ..nn import module_mode
from .callbacks import Callback, EpochCallback
from .data import LoaderBatches, TensorBatches
from .elbo import Objective, TraceFreeELBO, estimator_handler, make_objective
from .optim import Optimizer
from .state import FitOptions, FitResult, FitState, check_mode
from .strategies import HINT, LOCAL, Batch, DivergenceError, Strategy

if TYPE_CHECKING:
    from ..model import BayesianModel

__all__ = [
    "Batch",
    "DivergenceError",
    "fit",
    "fit_model",
    "FitOptions",
    "FitResult",
    "FitState",
    "HINT",
    "LoaderBatches",
    "step",
    "TensorBatches",
]


def step(
    state: FitState,
    batch: Batch,
    objective: Objective,
    optimizer: Optimizer,
    *,
    dataset_size: int,
    num_particles: int = 1,
    strategy: Strategy = LOCAL,
) -> tuple[float, float]:
    """One SVI step on a minibatch: estimate, guard, backward, update.

    :param state: the fit's state (its step count names the step in errors).
    :param batch: the rows to evaluate (see :class:`~pyro_bdl.inference.strategies.Batch`).
    :param objective: the ELBO estimator.
    :param optimizer: the optimiser.
    :param dataset_size: N (the data plate scales the minibatch by N / B).
    :param num_particles: particles of the estimate.
    :param strategy: one process (default) or data-parallel.
    :return: ``(loglik, kl)`` of the estimate, floats, nats for the whole data set.
    :raises DivergenceError: if a term or the gradient is not finite, or a guide parameter
        left its support; the parameters keep their last good values.

    Example::

        >>> loglik, kl = step(state, Batch(xb, yb, len(xb)), objective, optimizer,
        ...                   dataset_size=N)  # doctest: +SKIP
    """
    return strategy.step(
        state, batch, objective, optimizer, dataset_size=dataset_size, num_particles=num_particles
    )


def fit(
    objective: Objective,
    optimizer: Optimizer,
    data: TensorBatches | LoaderBatches,
    *,
    epochs: int,
    state: FitState,
    num_particles: int = 1,
    callbacks: Sequence[Callback] = (),
    strategy: Strategy = LOCAL,
) -> FitState:
    """Run :func:`step` over ``data`` from ``state.epoch`` to ``epochs``; return the state.

    After every step each callback's ``on_step(state, loglik, kl)`` runs; after every epoch its
    ``on_epoch(state)``; a callback returning ``True`` (or setting ``state.stop``) ends the fit
    after that epoch, once every callback has run.

    :param objective: the ELBO estimator.
    :param optimizer: the optimiser.
    :param data: the minibatch source.
    :param epochs: the epoch to stop at (a resumed state continues from ``state.epoch``).
    :param state: the starting state (a fresh one, or one a fit left); its history's
        ``dataset_size`` is N, the size the data plate scales to.
    :param num_particles: particles per step.
    :param callbacks: see :mod:`pyro_bdl.inference.callbacks`.
    :param strategy: one process (default) or data-parallel: which rows each process
        evaluates, how a step is reduced, and that every process stops together.
    :return: ``state``, advanced.

    The network runs in the modes its modules are in (:func:`fit_model` sets them; around a
    direct call use :func:`~pyro_bdl.nn.train_mode`, as around any PyTorch training loop).

    Example::

        >>> state = fit(objective, optimizer, TensorBatches(x, y, 128), epochs=10,
        ...             state=state)  # doctest: +SKIP
    """
    state.optimizer, state.objective = optimizer, objective
    state.stop = False  # a state a callback stopped can be continued on purpose
    for cb in callbacks:
        cb.on_fit_start(state, epochs)
    start = time.perf_counter()
    try:
        for epoch in range(state.epoch, epochs):
            k = 0
            for batch in strategy.batches(data, state.generator):
                loglik, kl = strategy.step(
                    state,
                    batch,
                    objective,
                    optimizer,
                    dataset_size=state.history.dataset_size,
                    num_particles=num_particles,
                )
                state.history.add_step(loglik, kl)
                k += 1
                for cb in callbacks:
                    cb.on_step(state, loglik, kl)
            state.history.end_epoch(k)
            optimizer.end_epoch(-state.history.elbo[-1])  # a learning-rate scheduler's step
            state.epoch = epoch + 1
            if strategy.end_epoch(state, callbacks):
                state.stop = True  # the caller can tell an early stop from the last epoch
            if state.stop:
                break
    finally:
        for cb in callbacks:
            cb.on_fit_end(state)
    state.history.seconds = time.perf_counter() - start
    strategy.teardown(objective)
    return state


def fit_model(
    model: BayesianModel,
    guide: Callable,
    data: TensorBatches | LoaderBatches,
    optim: PyroOptim,
    options: FitOptions,
    *,
    strategy: Strategy = LOCAL,
    callbacks: Sequence[Callback] = (),
    resume: Callable[[FitState], None] | None = None,
) -> FitState:
    """A whole fit of ``guide`` to ``model``: seed, objective, optimiser, then :func:`fit`.

    The processes agree on the arguments and data and on a seed; ``torch`` and the minibatch
    order are seeded; ``resume(state)`` may restore a checkpoint; the objective is made on an
    example batch (trace-free when the guide offers it) and its parameters set up by the
    strategy; the optimiser is fused when it can be. From the objective on, the network is in
    ``options.mode`` (training mode by default), and each module's mode is restored at the end.

    :param model: the :class:`~pyro_bdl.model.BayesianModel`.
    :param guide: the guide.
    :param data: the minibatch source (checked).
    :param optim: the ``pyro.optim`` optimiser.
    :param options: see :class:`FitOptions`.
    :param strategy: one process (default) or data-parallel.
    :param callbacks: run by :func:`fit`.
    :param resume: restores a saved fit into the fresh state (after seeding).
    :return: the final :class:`FitState`.

    Example::

        >>> state = fit_model(bnn.bayesian_model, bnn.guide, TensorBatches(x, y, 32),
        ...                   pyro.optim.Adam({"lr": 0.01}), FitOptions(epochs=5))
        ... # doctest: +SKIP
    """
    size = model.likelihood.dataset_size or data.size
    net = list(model.net.parameters())
    callback_given = any(isinstance(cb, EpochCallback) for cb in callbacks)
    strategy.agree(
        [
            data.size,
            getattr(data, "batch_size", None) or -1,
            size,
            options.epochs,
            options.num_particles,
            float(options.vectorize_particles),
            float(options.shuffle),
            -1.0 if options.seed is None else float(options.seed),
            float(callback_given),
            len(net),
            sum(p.numel() for p in net),
        ],
        data.checksums(),
    )
    seed = strategy.agree_seed(options.seed)
    if seed is not None:
        torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(
        int(torch.randint(0, 2**62, (), device="cpu").item()) if seed is None else seed
    )
    state = FitState(0, FitResult(dataset_size=size), generator)
    if resume is not None:
        strategy.guard("the resume", lambda: resume(state))
    with module_mode(model.net, check_mode(options.mode)):
        return _fit_model(model, guide, data, optim, options, state, strategy, callbacks)


def _fit_model(
    model: BayesianModel,
    guide: Callable,
    data: TensorBatches | LoaderBatches,
    optim: PyroOptim,
    options: FitOptions,
    state: FitState,
    strategy: Strategy,
    callbacks: Sequence[Callback],
) -> FitState:
    size = state.history.dataset_size
    example = data.example()
    objective = strategy.guard(
        "the creation of the parameters",
        lambda: make_objective(
            model,
            guide,
            example,
            size,
            estimator=options.estimator,
            handler=lambda: estimator_handler(guide, model),
            num_particles=options.num_particles,
            vectorize_particles=options.vectorize_particles,
        ),
    )
    strategy.setup(objective, example)
    fused = isinstance(objective, TraceFreeELBO)
    optimizer = Optimizer(optim, objective.params if fused else None)
    return fit(
        objective,
        optimizer,
        data,
        epochs=options.epochs,
        state=state,
        num_particles=options.num_particles,
        callbacks=callbacks,
        strategy=strategy,
    )
