"""``BNN``: a prior, a likelihood and a guide around an unchanged ``nn.Module``.

A thin shell over plain Pyro: :meth:`BNN.model` and :attr:`BNN.guide` are ordinary Pyro callables
(usable with ``SVI``, ``Predictive``, ``MCMC(NUTS(bnn.model))`` and hand-written guides);
:meth:`BNN.fit` is an SVI loop that also reports the ELBO's two terms, and :meth:`BNN.predict`
draws from the guide in vectorised chunks.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import pyro.optim
import torch
from pyro import poutine
from pyro.infer.autoguide import AutoGuide
from pyro.nn import PyroModule
from torch import nn

from ._checks import as_tensor, check_seed, positive_int
from .guides import GuideLike, InitialValues, PyroGuide, build_guide
from .inference.callbacks import Callback, fit_callbacks
from .inference.data import make_batches
from .inference.elbo import estimator_handler
from .inference.loop import (
    DivergenceError,
    FitOptions,
    FitResult,
    FitState,
    LoaderBatches,
    TensorBatches,
    fit_model,
)
from .inference.optim import make_optim
from .inference.posterior import (
    DRAWS_PLATE,
    GuidePosterior,
    Posterior,
    SamplesPosterior,
    warn_fixed_parameters,
)
from .inference.predict import default_chunk, predict
from .inference.strategies import Strategy, checksum, resolve_strategy
from .likelihoods import OBS, Likelihood
from .model import BayesianModel
from .priors import Prior, PriorLike, as_prior
from .serialization import PosteriorFile
from .uncertainty import Prediction

if TYPE_CHECKING:
    from pyro.infer import MCMC

__all__ = ["BNN", "FitResult", "DivergenceError", "UnfittedGuideWarning"]

_names = itertools.count()

__all__ += ["DRAWS_PLATE"]  # the one draws plate, defined in pyro_bdl.inference.posterior


class UnfittedGuideWarning(UserWarning):
    """``BNN.predict`` drew from a guide that nothing has trained (see :attr:`BNN.fitted`)."""


class BNN(PyroModule, PosteriorFile):
    """A Bayesian neural network: prior p(W), likelihood p(y | f_W(x)) and guide q(W).

    The network is not modified. The parameters the prior selects become Pyro sample sites named
    by their ``named_parameters()`` keys (after ``prefix``); the others stay deterministic and
    are learned as point estimates (exposed to Pyro's param store under a per-BNN name, so two
    BNNs never share them).

    :param net: any ``torch.nn.Module``.
    :param prior: a :class:`~pyro_bdl.priors.Prior`, a scalar distribution, a ``{name: dist}``
        dict or a callable ``(name, param) -> dist``.
    :param likelihood: a :class:`~pyro_bdl.likelihoods.Likelihood`.
    :param guide: a builder ``model -> guide`` (default :class:`~pyro_bdl.guides.MeanFieldNormal`),
        a Pyro AutoGuide class, or a hand-written Pyro guide ``guide(x, y=None, **kwargs)`` that
        samples every weight site (wrapped in a :class:`~pyro_bdl.guides.PyroGuide`: it gets only
        the arguments its signature accepts; a callable is told from a builder by its signature,
        see :func:`~pyro_bdl.guides.guide_or_builder`). Assigning ``bnn.guide = ...``
        takes the same, and also an AutoGuide instance built for ``bnn.model`` (one that already
        ran, e.g. fitted by plain ``SVI``, is used as a :class:`~pyro_bdl.guides.PyroGuide`).
    :param include: optional predicate ``(name, param) -> bool`` of which parameters are random.
    :param prefix: prepended to every weight site name.
    :param name: name of this BNN in Pyro's param store (default: unique ``"BNN<k>"``).
    :param vectorize: how draws are batched through the network (see
        :class:`~pyro_bdl.nn.BatchedForward`).
    :param temperature: :math:`T > 0` of the posterior (see :attr:`temperature`): ``1.0`` is the
        Bayes posterior, ``T < 1`` a cold one (Wenzel et al. 2020).

    A prior with learned scales (:class:`~pyro_bdl.priors.LearnedNormalPrior`, empirical Bayes)
    becomes this module's child ``prior_params``: :meth:`fit` trains its scales with the guide,
    ``state_dict``/:meth:`save`/:meth:`load` carry them and the repr prints them.

    Example::

        >>> import pyro.distributions as dist
        >>> from pyro_bdl import HomoskedasticGaussian
        >>> x = torch.linspace(-1, 1, 20).unsqueeze(-1)  # (N, 1)
        >>> y = torch.sin(3 * x[:, 0])  # (N,)
        >>> net = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))
        >>> bnn = BNN(net, dist.Normal(0., 1.), HomoskedasticGaussian(scale=0.1))
        >>> fit = bnn.fit(x, y, epochs=5, lr=1e-2, progress=False)
        >>> pred = bnn.predict(x[:4], num_samples=100)
        >>> pred.samples.shape  # (S, M)
        torch.Size([100, 4])
    """

    def __init__(
        self,
        net: nn.Module,
        prior: PriorLike,
        likelihood: Likelihood,
        guide: GuideLike = None,
        *,
        include: Callable[[str, nn.Parameter], bool] | None = None,
        prefix: str = "",
        name: str | None = None,
        vectorize: bool | str = "auto",
        temperature: float = 1.0,
    ) -> None:
        if not isinstance(net, nn.Module):
            raise TypeError(f"Expected net to be a torch.nn.Module, but got {type(net).__name__}.")
        if not isinstance(likelihood, Likelihood):
            raise TypeError(
                "Expected likelihood to be a pyro_bdl.likelihoods.Likelihood (e.g. Categorical()), "
                f"but got {type(likelihood).__name__}."
            )
        if not isinstance(prefix, str):
            raise TypeError(f"Expected prefix to be a str, but got {type(prefix).__name__}.")
        name = f"BNN{next(_names)}" if name is None else name
        super().__init__(name)
        self.name = name
        self.net = net
        # Reach the net through a plain attribute: PyroModule.__getattr__ would register the
        # whole net (lifted parameters included) with pyro.module whenever a Pyro context is on.
        object.__setattr__(self, "_net", net)
        prior = as_prior(prior, include)
        first = next(net.parameters(), None)
        if first is not None:  # learned likelihood parameters (a noise scale) live with the net
            likelihood.to(device=first.device, dtype=first.dtype)
        self.likelihood = likelihood
        if isinstance(prior, nn.Module):  # learned prior scales: "{name}.prior_params.*"
            self.prior_params = prior
        #: the Pyro program (prior, likelihood, lifted net); it owns no parameters, so the
        #: state-dict and param-store names stay this BNN's
        self.bayesian_model = BayesianModel(
            net,
            prior,
            likelihood,
            prefix=prefix,
            name=name,
            vectorize=vectorize,
            temperature=temperature,
        )
        self.random_names = list(self.bayesian_model.random_names)
        self.deterministic_names = list(self.bayesian_model.deterministic_names)
        self.prefix = prefix
        self._install_guide(guide, build_guide(guide, self.model))
        #: the :class:`FitResult` of the last :meth:`fit` (``None`` before fitting)
        self.fit_result: FitResult | None = None
        #: the :class:`~pyro_bdl.inference.loop.FitState` the last :meth:`fit` ended in
        self.fit_state: FitState | None = None
        #: per-example input shape of the last fit or prediction (``save`` records it)
        self.input_shape: tuple[int, ...] | None = None

    # ------------------------------------------------------------------ the guide
    def __setattr__(self, name: str, value: Any) -> None:
        if name == "guide":  # anything guide= takes, and an AutoGuide instance
            self._install_guide(value, self._adopt(value))
            return
        if name == "prior":  # the property below (nn.Module would adopt a Module value as a child)
            object.__setattr__(self, name, value)
            return
        super().__setattr__(name, value)

    def _adopt(self, value: Any) -> Any:
        """The guide ``bnn.guide = value`` installs.

        An AutoGuide instance not yet run becomes a child module (its parameters are this
        BNN's, saved in its state dict); one that already ran elsewhere cannot (Pyro does not
        re-parent a module that has run), so it is used as a
        :class:`~pyro_bdl.guides.PyroGuide`, its parameters staying in Pyro's param store under
        their names. Anything else is built as ``guide=`` is.
        """
        if isinstance(value, AutoGuide):
            if value.prototype_trace is None or value is self.__dict__["_modules"].get("guide"):
                return value
            return PyroGuide(value)
        return build_guide(value, self.model)

    def _install_guide(self, spec: GuideLike, guide: Any) -> None:
        """Make ``guide`` (built from ``spec``) this BNN's guide, not fitted yet."""
        old = self.__dict__.get("_initial_values")
        if old is not None:
            old.detach()
        if "guide" in self._modules and not isinstance(guide, nn.Module):
            del self._modules["guide"]  # an AutoGuide child module replaced by a plain guide
        super().__setattr__("guide", guide)  # an AutoGuide becomes a child module
        #: what the guide was built from (``save`` records its configuration); a plain
        #: attribute, never a child module (it may be an AutoGuide instance)
        object.__setattr__(self, "guide_spec", spec)
        self._initial_values = InitialValues(guide)
        self._fitted = False

    @property
    def fitted(self) -> bool:
        """Whether the guide holds a posterior rather than its initial values.

        ``True`` after :meth:`fit` (any step), :meth:`load` or :meth:`mark_fitted`, and whenever
        a guide parameter differs from the value it was created with (so plain ``SVI`` on
        ``bnn.model, bnn.guide``, or an optimiser loop of one's own, counts), or the guide's
        parameters existed before this BNN first ran it (a hand-written guide fitted elsewhere:
        it cannot tell; :meth:`predict` runs the guide before it asks). ``False`` for a guide
        never built or run, or still at its initial values: :meth:`predict` then warns
        (:class:`UnfittedGuideWarning`). Assigning a new guide starts over.

        Example::

            >>> import pyro.distributions as dist
            >>> from pyro_bdl import HomoskedasticGaussian
            >>> x = torch.linspace(-1, 1, 10).unsqueeze(-1)
            >>> bnn = BNN(nn.Linear(1, 1), dist.Normal(0., 1.), HomoskedasticGaussian(0.1))
            >>> bnn.fitted
            False
            >>> _ = bnn.fit(x, 2 * x[:, 0], epochs=1, progress=False)
            >>> bnn.fitted
            True
        """
        return self._fitted or not self._initial_values.untrained(self.guide)

    def mark_fitted(self) -> None:
        """Declare the guide's current parameters a posterior (e.g. imported from a network
        trained elsewhere), so that :meth:`predict` does not warn that it is unfitted."""
        self._fitted = True

    @property
    def prior(self) -> Prior:
        """The prior p(W) (assigning one changes the model's prior)."""
        return self.bayesian_model.prior

    @prior.setter
    def prior(self, value: Prior) -> None:
        self._modules.pop("prior_params", None)  # a learned prior is the child "prior_params"
        if isinstance(value, nn.Module):
            cast(Prior, value).random_parameters(self._net)  # creates its learned scales
            self.prior_params = value
        self.bayesian_model.prior = value

    @property
    def temperature(self) -> float:
        r"""The posterior's temperature :math:`T` (assigning one re-tempers the model).

        ``bnn.model`` scales its whole log joint (prior and likelihood) by :math:`1/T`, and
        :meth:`fit` maximises the tempered ELBO
        :math:`(\mathbb E_q[\log p(y \mid W)] - \mathrm{KL}(q \| p)) / T +
        (1 - 1/T)\,\mathrm H[q]` on either estimator: its ``loglik`` is
        :math:`\mathbb E_q[\log p(y \mid W)] / T` and its ``kl`` the rest (see
        :attr:`BayesianModel.temperature <pyro_bdl.model.BayesianModel.temperature>`).

        Example::

            >>> import pyro.distributions as dist
            >>> from pyro_bdl import HomoskedasticGaussian
            >>> bnn = BNN(nn.Linear(1, 1), dist.Normal(0., 1.), HomoskedasticGaussian(0.1),
            ...           temperature=0.5)
            >>> bnn.temperature
            0.5
            >>> bnn.temperature = -1.0
            Traceback (most recent call last):
            ...
            ValueError: Expected temperature T > 0 (a finite number; ...), but got -1.0. ...
        """
        return self.bayesian_model.temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        self.bayesian_model.temperature = value

    # ------------------------------------------------------------------ the Pyro program
    def site_name(self, param_name: str) -> str:
        """Sample-site name of a network parameter (``prefix + name``)."""
        return self.prefix + param_name

    def model(
        self, x: torch.Tensor, y: torch.Tensor | None = None, *, dataset_size: int | None = None
    ) -> torch.Tensor:
        """The Pyro model: weights from the prior, then one ``"obs"`` site under the data plate.

        :param x: inputs, shape ``(B, ...)``.
        :param y: targets, shape ``(B, ...)``, or ``None`` to sample them.
        :param dataset_size: N for minibatch scaling (default: the likelihood's, else ``B``).
        :return: y (observed or sampled), shape ``sample_shape + (B, ...)``.
        """
        return self.bayesian_model(x, y, dataset_size=dataset_size)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Same as :meth:`model`."""
        return self.model(x, y)

    def network_output(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Network outputs for a stack of weight draws.

        :param weights: ``{param name: tensor (S, *param.shape)}`` for every random parameter.
        :param x: inputs ``(N, ...)``.
        :return: outputs ``(S, N, ...)``.
        """
        return self.bayesian_model.outputs(weights, x)

    def estimator(self, training: bool = True) -> contextlib.AbstractContextManager:
        """The effect handler ``fit`` (``training``) and ``predict`` run under, as the guide asks
        (see :func:`~pyro_bdl.inference.elbo.estimator_handler`)."""
        return estimator_handler(self.guide, self.bayesian_model, training)

    # ------------------------------------------------------------------ validation
    def check_data(self, x: Any, y: Any = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate inputs (and targets) as ``fit`` and ``predict`` do, with no side effects.

        Checks types, emptiness, NaN/inf, dtypes, that the network accepts ``x`` (one cheap
        forward on two rows) and that every target fits the network's output (shape, labels).

        :param x: inputs ``(N, ...)``.
        :param y: targets ``(N, ...)`` or ``None``.
        :return: ``(x, y)``.
        :raises ValueError, TypeError: with what was expected and what was received.

        Example::

            >>> import pyro.distributions as dist
            >>> from pyro_bdl import Categorical
            >>> bnn = BNN(nn.Linear(2, 3), dist.Normal(0., 1.), Categorical())
            >>> bnn.check_data(torch.zeros(4, 2), torch.tensor([0, 1, 2, 3]))
            Traceback (most recent call last):
            ...
            ValueError: Expected class labels in [0, 2] for a network with 3 outputs, ...
        """
        x, y = as_tensor("x", x, self._net), as_tensor("y", y, self._net)
        return self.bayesian_model.check_data(x, y)

    def ensure_guide(self, x: torch.Tensor) -> None:
        """Build a lazily initialised guide now, outside any plate, without touching the RNG.

        Pyro's autoguides create their parameters on their first call, and so does a
        hand-written guide (:class:`~pyro_bdl.guides.PyroGuide`, run once if it never ran);
        ``fit`` and ``predict`` call this first, and so should code that draws from
        ``bnn.guide`` under its own plate. The network's buffers (BatchNorm statistics) are left
        as they were.

        :param x: example inputs ``(B, ...)`` (only the first rows are used).
        """
        if isinstance(self.guide, PyroGuide):
            if self.guide.ran:
                return
        elif getattr(self.guide, "prototype_trace", True) is not None:
            return
        with self.bayesian_model.side_effect_free(), poutine.block():
            # autoguides treat unobserved sites as latent: build them with an observed y
            y = poutine.trace(self.model).get_trace(x[:2]).nodes[OBS]["value"]
            self.guide(x[:2], y)

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        x: torch.Tensor | torch.utils.data.DataLoader,
        y: torch.Tensor | None = None,
        *,
        epochs: int = 1,
        batch_size: int | None = None,
        lr: float = 1e-3,
        optim: pyro.optim.PyroOptim | None = None,
        num_particles: int = 1,
        vectorize_particles: bool = True,
        shuffle: bool = True,
        seed: int | None = None,
        progress: bool = True,
        callback: Callable[[int, FitResult], bool | None] | None = None,
        checkpoint_every: int | None = None,
        checkpoint_path: str | os.PathLike | None = None,
        resume_from: str | os.PathLike | None = None,
        distributed: bool = False,
        callbacks: Sequence[Callback] = (),
        elbo: str = "auto",
        strategy: Strategy | None = None,
        mode: str = "train",
    ) -> FitResult:
        """Fit the guide (and the deterministic parameters) by SVI.

        Each step minimises the negative ELBO, in nats for the whole data set (the data plate
        scales a minibatch by ``N / B``); the returned history is divided by N. At a
        :attr:`temperature` ``T != 1`` it is the tempered ELBO (its ``loglik`` divided by ``T``);
        a prior's learned scales (:class:`~pyro_bdl.priors.LearnedNormalPrior`) are trained
        with the guide.

        :param x: inputs ``(N, ...)``, or a DataLoader yielding ``(x, y)`` minibatches.
            numpy arrays, lists and pandas objects are converted: floating values to the
            network's dtype, integers to ``torch.long``, on the network's device.
        :param y: targets ``(N, ...)`` (``None`` with a DataLoader), converted as ``x``.
        :param epochs: passes over the data.
        :param batch_size: minibatch size (default: the full data).
        :param lr: learning rate of the default ``pyro.optim.Adam``.
        :param optim: any ``pyro.optim`` optimiser (overrides ``lr``). A learning-rate scheduler
            (``pyro.optim.ExponentialLR({...})``, any ``PyroLRScheduler``) is stepped once at
            the end of every epoch; ``ReduceLROnPlateau`` with the epoch's loss, ``-elbo[-1]``.
        :param num_particles: draws per step for the ELBO estimate.
        :param vectorize_particles: draw the particles in one batched pass.
        :param shuffle: reshuffle tensors every epoch.
        :param seed: seeds torch's global RNG before fitting.
        :param progress: show a tqdm progress bar.
        :param callback: ``callback(epoch, result)`` after each epoch; return ``True`` to stop.
        :param checkpoint_every: write a checkpoint (posterior, optimiser, RNG, history) to
            ``checkpoint_path`` every this many epochs.
        :param checkpoint_path: where checkpoints go.
        :param resume_from: a checkpoint written by ``fit``; the run continues from its epoch
            and reproduces the uninterrupted run exactly (same data and arguments).
        :param distributed: data-parallel SVI over an initialised ``torch.distributed`` group
            (see :mod:`pyro_bdl.inference.strategies.data_parallel`; ``batch_size`` is global;
            DataLoaders, checkpoints and per-example dropout masks work as in one process).
        :param callbacks: :class:`~pyro_bdl.inference.callbacks.Callback` objects (e.g.
            ``EarlyStop(patience=50)``, a per-step collector), run after the built-in ones.
        :param elbo: the ELBO estimator: ``"auto"`` (trace-free when the guide offers it: the
            same estimate from the same random numbers, without Pyro's tracing), ``"traced"``
            (always Pyro's traced estimate) or ``"trace_free"`` (fail if not available).
        :param strategy: how the work is spread: one process (default) or
            :class:`~pyro_bdl.inference.strategies.data_parallel.DataParallel`
            (``distributed=True`` is ``strategy=DataParallel()``).
        :param mode: the network's modules while fitting: ``"train"`` (training mode, as
            PyTorch training loops: dropout on, BatchNorm on batch statistics), ``"eval"``
            (evaluation mode, e.g. frozen BatchNorm statistics) or ``"keep"`` (each module as
            it is, e.g. after ``net.bn.eval()``); each module's mode is restored afterwards
            (see the user guide, "Training and evaluation mode").
        :return: a :class:`FitResult` with the per-datum ELBO, expected log-likelihood and KL.
        :raises DivergenceError: if the ELBO becomes NaN/inf; parameters keep their last good
            values.

        Example::

            >>> import pyro.distributions as dist
            >>> from pyro_bdl import HomoskedasticGaussian
            >>> x = torch.linspace(-1, 1, 20).unsqueeze(-1)
            >>> net = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))
            >>> bnn = BNN(net, dist.Normal(0., 1.), HomoskedasticGaussian(scale=0.1))
            >>> result = bnn.fit(x, x[:, 0], epochs=3, batch_size=8, lr=1e-2, progress=False)
            >>> result  # doctest: +ELLIPSIS
            FitResult(epochs=3, steps=9, elbo/N=...)
            >>> len(result.step_elbo), result.elbo[-1] == result.loglik[-1] - result.kl[-1]
            (9, True)
        """
        x, y = as_tensor("x", x, self._net), as_tensor("y", y, self._net)
        strategy = resolve_strategy(distributed, strategy)
        options = FitOptions(epochs, num_particles, vectorize_particles, shuffle, seed, elbo, mode)

        def prepare() -> tuple[TensorBatches | LoaderBatches, pyro.optim.PyroOptim]:
            options.validate()
            made = make_optim(lr, optim)
            if checkpoint_every is not None:
                positive_int("checkpoint_every", checkpoint_every)
                if checkpoint_path is None:
                    raise ValueError(
                        "Expected checkpoint_path with checkpoint_every, but got None."
                    )
            model = self.bayesian_model
            data = make_batches(x, y, batch_size, shuffle, model.check_pair)
            if isinstance(data, TensorBatches):
                model.check_targets(data.y, model.probe_output(data.x))
            return data, made

        # on every process; with several, an error on one is raised on all of them
        data, optim = strategy.guard("the checks before fitting", prepare)
        example = data.example()[0]
        self.input_shape = tuple(example.shape[1:])  # the data are valid
        state = fit_model(
            self.bayesian_model,
            self.guide,
            data,
            optim,
            options,
            strategy=strategy,
            callbacks=fit_callbacks(
                progress=progress and strategy.is_main,
                checkpoint_every=checkpoint_every,
                save=lambda state: (
                    self._write_fit_checkpoint(checkpoint_path, state, optim)
                    if strategy.is_main  # the processes hold the same state: one file
                    else None
                ),
                callback=callback,
                callbacks=callbacks,
            ),
            resume=None
            if resume_from is None
            else lambda state: self._resume(resume_from, optim, state, example),
        )
        self.fit_result = state.history
        self.fit_state = state
        self._fitted = True
        return state.history

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def predict(
        self,
        x: torch.Tensor,
        num_samples: int = 100,
        *,
        chunk_size: int | None = None,
        seed: int | None = None,
        distributed: bool = False,
        posterior: Posterior | None = None,
        strategy: Strategy | None = None,
    ) -> Prediction:
        """Posterior predictive: ``num_samples`` weight draws from the guide, batched in chunks.

        :param x: inputs ``(N, ...)`` (array-likes are converted as in :meth:`fit`).
        :param num_samples: number of posterior draws S.
        :param chunk_size: draws per batched forward (default: sized to about 64 MB).
        :param seed: if given, predictions are reproducible without touching the global RNG.
        :param posterior: where the draws come from (default: the fitted guide); any
            :class:`~pyro_bdl.inference.Posterior`, e.g. a
            :class:`~pyro_bdl.inference.SamplesPosterior` of MCMC draws or ensemble members
            (``num_samples`` at most its ``num_draws``). Without it, predicting from a guide
            nothing has trained (:attr:`fitted` is ``False``) warns
            (:class:`UnfittedGuideWarning`).
        :param distributed: split the forward work over an initialised ``torch.distributed``
            group and gather the draws on every rank (the same draws as one process):
            ``strategy=DataParallel()``.
        :param strategy: how the work is spread (default: one process).
        :return: a :class:`~pyro_bdl.uncertainty.Prediction` with ``samples`` of shape
            ``(S, N, ...)``.

        Example::

            >>> import pyro.distributions as dist
            >>> from pyro_bdl import Categorical
            >>> x, y = torch.randn(5, 2), torch.tensor([0, 1, 2, 0, 1])
            >>> bnn = BNN(nn.Linear(2, 3), dist.Normal(0., 1.), Categorical())
            >>> _ = bnn.fit(x, y, epochs=1, progress=False)
            >>> pred = bnn.predict(x, num_samples=200)  # (S, N, C) draws
            >>> pred.samples.shape, pred.mean.shape, pred.decompose().epistemic.shape
            (torch.Size([200, 5, 3]), torch.Size([5, 3]), torch.Size([5]))
        """
        seed = check_seed("seed", seed)
        chunk_size = positive_int("chunk_size", chunk_size, optional=True)
        strategy = resolve_strategy(distributed, strategy)

        def prepare() -> tuple[torch.Tensor, int, int, Posterior]:
            checked, _ = self.check_data(x)
            num = positive_int("num_samples", num_samples)
            if chunk_size is not None:
                positive_int("chunk_size", chunk_size)
            self.ensure_guide(checked)
            model = self.bayesian_model
            dtype = next(self._net.parameters()).dtype
            shapes = model.latent_shapes(checked)
            chunk = chunk_size or default_chunk(model, len(checked), dtype, shapes)
            source = self.posterior(checked) if posterior is None else posterior
            return checked, num, chunk, source

        # on every process; with several, an error on one is raised on all of them
        x, num, chunk, source = strategy.guard("the checks before predicting", prepare)
        if posterior is None and not self.fitted:
            warnings.warn(
                f"{self.name} predicts from a guide nothing has trained: its parameters still "
                "hold the values it was created with (no fit, load or optimiser step changed "
                "them), so the predictions are the initial guide's, not a posterior's. Fit "
                "first (bnn.fit(x, y)), load a fitted posterior (BNN.load), assign a guide you "
                "fitted yourself (bnn.guide = guide), or pass posterior= (e.g. a "
                "SamplesPosterior of MCMC draws); if these values are the posterior you mean, "
                "call bnn.mark_fitted().",
                UnfittedGuideWarning,
                stacklevel=3,  # predict, torch.no_grad's wrapper, the caller
            )
        pred = strategy.predict(
            self.bayesian_model,
            source,
            x,
            num,
            chunk=chunk,
            seed=seed,
            fingerprint=lambda: sum(checksum(p) for _, p in sorted(self.named_parameters())),
        )
        self.input_shape = tuple(x.shape[1:])
        return pred

    @torch.no_grad()
    def predict_from_samples(
        self,
        x: torch.Tensor,
        samples: Mapping[str, torch.Tensor] | MCMC,
        *,
        chunk_size: int | None = None,
        group_by_chain: bool | None = None,
    ) -> Prediction:
        """Posterior predictive from given draws of the latent sites (e.g. ``MCMC`` samples).

        :param x: inputs ``(N, ...)``.
        :param samples: draws of every latent site (the weights, and ``"precision"`` if the
            likelihood has one): a ``pyro.infer.MCMC`` that ran, ``mcmc.get_samples()``
            (``(S, *site shape)``), ``mcmc.get_samples(group_by_chain=True)``
            (``(chains, draws, *site shape)``) or a ``Predictive``'s output
            (``(S, 1, *site shape)``), read by
            :func:`~pyro_bdl.inference.posterior.group_samples`; other keys are ignored.
        :param chunk_size: draws per batched forward.
        :param group_by_chain: force the reading of the leading dims (see ``group_samples``).
        :return: a :class:`~pyro_bdl.uncertainty.Prediction` with all ``chains * draws`` draws.
        :raises FixedParameterWarning: (a warning) if the model has learned point estimates
            (``pyro.param``, e.g. a learned noise scale) that the draws leave fixed.

        Example::

            >>> import pyro.distributions as dist
            >>> from pyro.infer import MCMC, NUTS
            >>> from pyro_bdl import HomoskedasticGaussian
            >>> x = torch.linspace(-1, 1, 10).unsqueeze(-1)
            >>> bnn = BNN(nn.Linear(1, 1), dist.Normal(0., 1.), HomoskedasticGaussian(scale=0.1))
            >>> mcmc = MCMC(NUTS(bnn.model), num_samples=20, warmup_steps=20,
            ...             disable_progbar=True)
            >>> mcmc.run(x, 2 * x[:, 0])
            >>> pred = bnn.predict_from_samples(x, mcmc.get_samples())
            >>> pred.samples.shape  # (S, N)
            torch.Size([20, 10])
        """
        x, _ = self.check_data(x)
        model = self.bayesian_model
        posterior = SamplesPosterior.from_samples(
            samples, model.latent_shapes(x), group_by_chain=group_by_chain
        )
        model.check_draws(posterior.samples)
        warn_fixed_parameters(model, x, stacklevel=3)  # through no_grad's wrapper
        assert posterior.num_draws is not None  # a fixed set
        pred = predict(model, posterior, x, posterior.num_draws, chunk=chunk_size)
        assert pred is not None  # every chunk is kept
        return pred

    def posterior(self, x: torch.Tensor, *, per_example: bool = True) -> GuidePosterior:
        """The fitted guide as a :class:`~pyro_bdl.inference.GuidePosterior` (a source of draws).

        :param x: example inputs ``(B, ...)``: the guide is built on them if it is still lazy,
            and called with them.
        :param per_example: allow per-example noise (MC dropout's masks), as :meth:`predict`
            draws; ``False`` draws one W for all data points.

        Example::

            >>> import pyro.distributions as dist
            >>> from pyro_bdl import Categorical
            >>> bnn = BNN(nn.Linear(2, 3), dist.Normal(0., 1.), Categorical())
            >>> draws = bnn.posterior(torch.randn(4, 2)).sample(10)
            >>> draws.sites["weight"].shape  # (S, *shape)
            torch.Size([10, 3, 2])
        """
        x = as_tensor("x", x, self._net)
        self.ensure_guide(x)
        model = self.bayesian_model
        return GuidePosterior(
            self.guide, model, args=(x,), shapes=model.latent_shapes(x), per_example=per_example
        )

    def __repr__(self) -> str:
        return (
            f"BNN(name={self.name!r}, random={len(self.random_names)} params, "
            f"deterministic={len(self.deterministic_names)}, prior={self.prior!r}, "
            f"likelihood={self.likelihood!r}"
            + ("" if self.temperature == 1.0 else f", temperature={self.temperature:g}")
            + ")"
        )
