"""``BayesianModel``: a prior, a likelihood and an unchanged ``nn.Module`` as one Pyro program.

The model knows nothing of guides, optimisers or loops. It is what :class:`~pyro_bdl.BNN` fits
and what every posterior type is evaluated against:

* :meth:`BayesianModel.__call__` is the Pyro program (weights from the prior, one ``"obs"`` site
  under the data plate) used by ``SVI``, ``Predictive``, ``MCMC`` and the traced ELBO;
* :meth:`BayesianModel.outputs` and :meth:`BayesianModel.log_likelihood` evaluate stacked weight
  draws without Pyro (the trace-free ELBO and prediction use them).

It holds no parameters of its own: the network's and the likelihood's parameters stay where the
user (or :class:`~pyro_bdl.BNN`, whose state-dict and param-store names they keep) put them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

import pyro
import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import InferDict, Message
from pyro.poutine.util import site_is_subsample
from torch import nn
from torch.distributions import Bernoulli as TorchBernoulli
from torch.distributions import Categorical as TorchCategorical
from torch.distributions import Distribution, Independent
from torch.distributions import Normal as TorchNormal

from ._checks import check_tensor
from .distributions.expected_normal import ExpectedNormal
from .distributions.tempered import DistillationCategorical
from .hierarchical import HierarchicalPrior, noncentred_site
from .likelihoods import OBS, Likelihood
from .nn import (
    INIT_KEY,
    BatchedForward,
    broadcast_shapes,
    is_real_support,
    module_mode,
    sample_shape_of,
)
from .priors import Prior

__all__ = ["BayesianModel", "OBS_MEAN", "check_temperature"]

#: Deterministic site of :meth:`BayesianModel.__call__`: the noise-free mean E[y | x, W] of each
#: draw (the ArviZ export's posterior variable of the same name).
OBS_MEAN = f"{OBS}_mean"


class BayesianModel:
    """The Pyro program ``W ~ p(W); y ~ p(y | f_W(x))`` over an unchanged network.

    The parameters ``prior`` selects become sample sites named ``prefix + name`` (``name`` a
    ``named_parameters()`` key); the others stay deterministic and are registered with Pyro's
    param store as ``"{name}.net.{param}"`` (``name`` is the owner's param-store name), so Pyro's
    optimisers learn them as point estimates.

    :param net: any ``torch.nn.Module`` (never modified).
    :param prior: a :class:`~pyro_bdl.priors.Prior` (use :func:`~pyro_bdl.priors.as_prior` for
        the other accepted forms).
    :param likelihood: a :class:`~pyro_bdl.likelihoods.Likelihood`.
    :param prefix: prepended to every weight site name.
    :param name: param-store name of the deterministic parameters' owner.
    :param vectorize: how draws are batched through the network
        (see :class:`~pyro_bdl.nn.BatchedForward`).
    :param temperature: :math:`T > 0`: the program's whole log joint, prior and likelihood, is
        scaled by :math:`1/T` (``poutine.scale``), so that its posterior is the tempered
        :math:`p(W \\mid y)^{1/T}`; ``1.0`` (default) is the Bayes posterior, ``T < 1`` a "cold"
        one (see :attr:`temperature`).
    :raises ValueError: if the prior selects nothing, or gives a weight a constrained support.

    Example::

        >>> import pyro.distributions as dist
        >>> from pyro_bdl.likelihoods import HomoskedasticGaussian
        >>> from pyro_bdl.priors import IIDPrior
        >>> net = nn.Linear(3, 1)
        >>> model = BayesianModel(net, IIDPrior(dist.Normal(0.0, 1.0)), HomoskedasticGaussian(0.1))
        >>> model.random_names
        ['weight', 'bias']
        >>> draws = {"weight": torch.zeros(5, 1, 3), "bias": torch.zeros(5, 1)}
        >>> model.outputs(draws, torch.ones(4, 3)).shape  # (S, N, 1)
        torch.Size([5, 4, 1])
    """

    def __init__(
        self,
        net: nn.Module,
        prior: Prior,
        likelihood: Likelihood,
        *,
        prefix: str = "",
        name: str = "model",
        vectorize: bool | str = "auto",
        temperature: float = 1.0,
    ) -> None:
        self.temperature = temperature  # checked by the property
        self.net = net
        self.prior = prior
        self.likelihood = likelihood
        self.prefix = prefix
        self.name = name
        random = prior.random_parameters(net)
        if isinstance(prior, HierarchicalPrior):  # N(0, s(h)^2) weights: real support
            prior.hyper_dists(dict(random))  # its argument errors, up front
            random_checked: list[tuple[str, nn.Parameter]] = []
        else:
            random_checked = random
        for n, param in random_checked:
            support = prior.site_dist(n, param).support
            if not is_real_support(support):
                raise ValueError(
                    f"Expected a prior with real support for network weight {n!r}, but got "
                    f"support {support}. Weights are unconstrained: use a Normal-like prior, "
                    "or constrain the weight inside the network."
                )
        #: names (``named_parameters()`` keys) of the random parameters, in network order
        self.random_names: list[str] = [n for n, _ in random]
        chosen = set(self.random_names)
        #: names of the parameters learned as point estimates
        self.deterministic_names: list[str] = [
            n for n, _ in net.named_parameters() if n not in chosen
        ]
        #: ``{parameter name: shape}`` of every network parameter
        self.shapes: dict[str, torch.Size] = {n: p.shape for n, p in net.named_parameters()}
        #: the vectorised forward over stacked draws
        self.forward = BatchedForward(net, vectorize)
        self._prior_cache: tuple[Any, dict[str, Distribution]] | None = None
        self._latent: dict[str, torch.Size] | None = None

    # ------------------------------------------------------------------ naming
    def site_name(self, param_name: str) -> str:
        """Sample-site name of a network parameter (``prefix + name``).

        Example::

            >>> model.site_name("0.weight")  # with prefix="f.": 'f.0.weight'  # doctest: +SKIP
        """
        return self.prefix + param_name

    @property
    def site_names(self) -> list[str]:
        """Weight site names, in network order."""
        return [self.prefix + n for n in self.random_names]

    @property
    def hierarchical(self) -> HierarchicalPrior | None:
        """The prior when it has hyper-sites (see :mod:`pyro_bdl.hierarchical`), else ``None``."""
        return self.prior if isinstance(self.prior, HierarchicalPrior) else None

    @property
    def hyper_site_names(self) -> list[str]:
        """Site names of the prior's hyper-sites, in sampling order (``[]``: no hyper-sites).

        Example::

            >>> BayesianModel(nn.Linear(3, 1), LayerScalePrior(), lik).hyper_site_names
            ... # doctest: +SKIP
            ['scale']
        """
        if self.hierarchical is None:
            return []
        params = dict(self.net.named_parameters())
        random = {n: params[n] for n in self.random_names}
        return [self.prefix + h for h in self.hierarchical.hyper_dists(random)]

    @property
    def latent_site_names(self) -> list[str]:
        """Every latent site of the prior: hyper-sites, then the weights' sample sites
        (``"{site}_z"`` for a non-centred hierarchical prior; else the weight sites)."""
        if self.hierarchical is None or self.hierarchical.centred:
            return self.hyper_site_names + self.site_names
        return self.hyper_site_names + [noncentred_site(s) for s in self.site_names]

    def weights_from_sites(self, sites: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{parameter name: W}`` from draws of the latent sites, keyed by site name.

        Without hyper-sites this picks the weight sites; a non-centred hierarchical prior's
        weights are ``z * s(h)`` of its ``"{site}_z"`` and hyper-site draws.

        :param sites: ``{site name: (S, *site shape)}`` (other keys ignored).
        :return: ``{parameter name: (S, *param shape)}``.
        """
        if self.hierarchical is None:
            return {n: sites[self.site_name(n)] for n in self.random_names}
        params = dict(self.net.named_parameters())
        random = {n: params[n] for n in self.random_names}
        return self.hierarchical.weights_from_latents(random, sites, self.site_name)

    def module_of(self, site: str) -> nn.Module:
        """The module owning the parameter of a weight site (the network for a top-level one)."""
        owner = site[len(self.prefix) :].rpartition(".")[0]
        return self.net.get_submodule(owner) if owner else self.net

    # ------------------------------------------------------------------ input checks
    def check_inputs(self, x: Any) -> torch.Tensor:
        """``x`` as a non-empty, finite tensor of the network's floating dtype.

        :raises TypeError, ValueError: with what was expected, what was received, how to fix.
        """
        param = next(self.net.parameters())
        dtype = param.dtype
        if torch.is_tensor(x) and x.device != param.device:  # before any check reads x
            raise ValueError(
                f"Expected inputs x on the network's device {param.device}, but got x on "
                f"{x.device}; move it with x.to({str(param.device)!r}) (nothing is copied behind "
                "your back), or the network with net.to(x.device) before building the BNN."
            )
        x = check_tensor("x", x)
        if x.is_floating_point() and x.dtype != dtype:
            raise TypeError(
                f"Expected inputs x of the network's dtype {dtype}, but got {x.dtype}; convert "
                f"with x.to({dtype}) or the network with net.to({x.dtype})."
            )
        return x

    def probe_output(self, x: torch.Tensor) -> torch.Size:
        """Per-datum output shape of the network on the first rows of ``x``, with no side effects.

        The network runs with its current weights under ``no_grad``, in evaluation mode (each
        module's mode restored afterwards), the random stream forked and its buffers (BatchNorm
        statistics) restored afterwards: one row is enough, even with BatchNorm.

        :raises ValueError: if the network cannot process ``x`` (wrong feature shape or dtype).
        """
        try:
            with self.side_effect_free(), torch.no_grad():
                out = self.net(x[:2])
        except (RuntimeError, TypeError, ValueError, IndexError) as e:
            raise ValueError(
                f"Expected inputs the network accepts, but it failed on x of shape "
                f"{tuple(x.shape)} and dtype {x.dtype} (its error is chained above). Check the "
                "number of features, the rank and the dtype the network expects."
            ) from e
        if not torch.is_tensor(out):
            raise TypeError(
                f"Expected the network to return one tensor, but it returned {type(out).__name__}."
            )
        return out.shape[1:]

    def check_targets(self, y: torch.Tensor, out_shape: torch.Size) -> None:
        """Check all of ``y`` (shape, label range) against the network's output shape, up front."""
        p = next(self.net.parameters())
        f = torch.zeros((), dtype=p.dtype, device=p.device).expand((len(y), *out_shape))
        self.likelihood.check_target(y, f, 0)

    def check_pair(self, x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The cheap checks of a minibatch: tensors, equal rows, finite targets of a valid dtype.

        Example::

            >>> model.check_pair(torch.zeros(3, 2), torch.zeros(2))  # doctest: +SKIP
            ValueError: Expected x and y with the same number of rows, but got 3 and 2.
        """
        x = self.check_inputs(x)
        y = check_tensor("y", y)
        if len(x) != len(y):
            raise ValueError(
                f"Expected x and y with the same number of rows, but got {len(x)} and {len(y)}."
            )
        self.likelihood.validate_target(y)
        return x, y

    def check_data(self, x: Any, y: Any = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate inputs (and targets) with no side effects: types, emptiness, NaN/inf, dtypes,
        that the network accepts ``x`` (one cheap forward on two rows) and that every target
        fits the network's output (shape, labels).

        :param x: inputs ``(N, ...)``.
        :param y: targets ``(N, ...)`` or ``None``.
        :return: ``(x, y)``.
        :raises ValueError, TypeError: with what was expected and what was received.
        """
        if y is None:
            x = self.check_inputs(x)
            self.probe_output(x)
            return x, None
        x, y = self.check_pair(x, y)
        self.check_targets(y, self.probe_output(x))
        return x, y

    def check_draws(self, samples: Any) -> None:
        """Given draws must cover every weight site with ``(S, *shape)`` tensors of the
        network's dtype (S >= 1); other sites (a ``"precision"``) may be present.

        :raises TypeError, ValueError: naming the site and what was expected.
        """
        if not isinstance(samples, dict):
            raise TypeError(
                "Expected a dict {site name: tensor (S, *shape)}, but got "
                f"{type(samples).__name__}."
            )
        sites = {self.site_name(n): self.shapes[n] for n in self.random_names}
        if self.hierarchical is not None:
            random = {n: self.net.get_parameter(n) for n in self.random_names}
            shapes = self.hierarchical.latent_shapes(random)
            sites = {self.site_name(k): v for k, v in shapes.items()}
        missing = [s for s in sites if s not in samples]
        if missing:
            raise ValueError(
                f"Expected draws for every {'latent' if self.hierarchical else 'weight'} site, "
                f"but got none for {missing}; pass "
                "mcmc.get_samples() or a dict {site name: tensor (S, *shape)}."
            )
        dtype = next(self.net.parameters()).dtype
        for k, v in samples.items():
            if not torch.is_tensor(v) or v.dim() == 0 or len(v) == 0:
                raise ValueError(
                    f"Expected draws of {k!r} as a tensor (S, *shape) with S >= 1, but got "
                    f"{type(v).__name__}{'' if not torch.is_tensor(v) else tuple(v.shape)}."
                )
            if k in sites and v.shape[1:] != sites[k]:
                raise ValueError(
                    f"Expected draws of {k!r} of shape (S, *{tuple(sites[k])}), but got "
                    f"{tuple(v.shape)}."
                )
            if v.dtype != dtype:
                raise TypeError(
                    f"Expected draws of {k!r} in the network's dtype {dtype}, but got {v.dtype}."
                )

    # ------------------------------------------------------------------ tempering
    @property
    def temperature(self) -> float:
        r"""The temperature :math:`T > 0` of the posterior this program defines.

        The program's log joint is :math:`(\log p(y \mid W) + \log p(W)) / T` (every site is
        scaled by ``1/T`` with ``poutine.scale``): NUTS on it samples the tempered posterior
        :math:`p(W \mid y)^{1/T}`, and the ELBO the fit maximises is (Wenzel et al. 2020)

        .. math::

            \mathcal L_T(q) = \frac{\mathbb E_q[\log p(y \mid W)] - \mathrm{KL}(q \,\|\,
            p)}{T} + \Bigl(1 - \frac 1T\Bigr) \mathrm H[q]
            = \mathbb E_q\Bigl[\frac{\log p(y \mid W) + \log p(W)}{T}\Bigr] + \mathrm H[q],

        whose maximiser is the tempered posterior where the guide can represent it (a Gaussian
        posterior: the same mean, the covariance times :math:`T`). ``T = 1`` is the ELBO of the
        Bayes posterior. There is no separate KL weight: the likelihood is only scaled by
        ``N / B`` for minibatches (the data plate).

        :raises ValueError: (on assignment) unless :math:`T` is a finite number > 0.

        Example::

            >>> model.temperature = 0.5  # a cold posterior  # doctest: +SKIP
        """
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        self._temperature = check_temperature(value)

    # ------------------------------------------------------------------ the Pyro program
    def __call__(
        self, x: torch.Tensor, y: torch.Tensor | None = None, *, dataset_size: int | None = None
    ) -> torch.Tensor:
        """The program at :attr:`temperature`: :meth:`program` with every log density scaled by
        ``1 / T`` (the untempered program itself when ``T = 1``).

        :param x: inputs, shape ``(B, ...)``.
        :param y: targets, shape ``(B, ...)``, or ``None`` to sample them.
        :param dataset_size: N for minibatch scaling (default: the likelihood's, else ``B``).
        :return: y (observed or sampled), shape ``sample_shape + (B, ...)``.
        """
        if self._temperature == 1.0:
            return self.program(x, y, dataset_size=dataset_size)
        with poutine.scale(scale=1.0 / self._temperature):
            return self.program(x, y, dataset_size=dataset_size)

    def program(
        self, x: torch.Tensor, y: torch.Tensor | None = None, *, dataset_size: int | None = None
    ) -> torch.Tensor:
        """Weights from the prior, then one ``"obs"`` site under the data plate.

        Beside ``"obs"``, under the same plate, the deterministic site ``"obs_mean"``
        (:data:`OBS_MEAN`) records the noise-free predictive mean E[y | x, W] of each draw -- the
        class probabilities of a classifier, the location of a Gaussian, as the ArviZ export's
        ``obs_mean`` -- shape ``sample_shape + (B, ...)``, so that ``Predictive`` and
        ``az.from_pyro`` users get the latent function without the noise. It adds nothing to
        the log density (``pyro.deterministic``).

        :param x: inputs, shape ``(B, ...)``.
        :param y: targets, shape ``(B, ...)``, or ``None`` to sample them.
        :param dataset_size: N for minibatch scaling (default: the likelihood's, else ``B``).
        :return: y (observed or sampled), shape ``sample_shape + (B, ...)``.
        """
        params = dict(self.net.named_parameters())
        for n in self.deterministic_names:
            if params[n].requires_grad:  # frozen parameters stay out of the optimiser
                pyro.param(f"{self.name}.net.{n}", params[n])
        if self.hierarchical is not None:  # hyper-sites first, then the weights
            random = {n: params[n] for n in self.random_names}
            weights = self.hierarchical.sample_weights(random, self.site_name)
            sample_shape = sample_shape_of(weights, self.shapes)
            f = self.forward(weights, x, sample_shape=sample_shape)
            with _NoiseFreeMean(self.likelihood):
                return self.likelihood(
                    f, y, dataset_size=dataset_size, sample_ndim=len(sample_shape)
                )
        priors = self.prior_dists(params)
        weights = {
            n: pyro.sample(
                self.site_name(n),
                priors[n],
                infer=cast(InferDict, {INIT_KEY: params[n].detach()}),  # our own infer key
            )
            for n in self.random_names
        }
        sample_shape = sample_shape_of(weights, self.shapes)
        f = self.forward(weights, x, sample_shape=sample_shape)
        with _NoiseFreeMean(self.likelihood):  # the "obs_mean" site, beside "obs"
            return self.likelihood(f, y, dataset_size=dataset_size, sample_ndim=len(sample_shape))

    def prior_dists(self, params: Mapping[str, torch.Tensor] | None = None) -> dict[str, Any]:
        """``{parameter name: prior site distribution}``, rebuilt only when dtype/device change.

        :param params: the network's parameters by name (default: read from the network).
        :return: one distribution per random parameter, event shape = the parameter's shape.
        """
        if params is None:
            params = dict(self.net.named_parameters())
        if self.prior_parameters():  # learned scales: this run's values, never a cached copy
            return {n: self.prior.site_dist(n, params[n]) for n in self.random_names}
        p0 = params[self.random_names[0]]
        key = (id(self.prior), p0.dtype, p0.device)
        if self._prior_cache is None or self._prior_cache[0] != key:
            dists = {n: self.prior.site_dist(n, params[n]) for n in self.random_names}
            self._prior_cache = (key, dists)
        return self._prior_cache[1]

    def prior_parameters(self) -> list[torch.Tensor]:
        """The prior's own learned parameters (empirical Bayes, e.g. the unconstrained scales of
        a :class:`~pyro_bdl.priors.LearnedNormalPrior`); empty for a fixed prior.

        Example::

            >>> model.prior_parameters()  # a fixed N(0, 1) prior  # doctest: +SKIP
            []
        """
        prior = self.prior
        return list(prior.parameters()) if isinstance(prior, nn.Module) else []

    def site_priors(self) -> dict[str, Any]:
        """``{site name: prior distribution}`` (what guides' trace-free samplers take).

        With a hierarchical prior: the hyper-sites' priors and, non-centred, the ``N(0, 1)`` of
        each ``"{site}_z"``; centred, a weight's prior depends on the hyper-sites and its entry
        is ``None`` (no trace-free KL: the traced estimator is used).
        """
        if self.hierarchical is not None:
            params = dict(self.net.named_parameters())
            random = {n: params[n] for n in self.random_names}
            out: dict[str, Any] = {
                self.site_name(h): d for h, d in self.hierarchical.hyper_dists(random).items()
            }
            for n, p in random.items():
                if self.hierarchical.centred:
                    out[self.site_name(n)] = None
                else:
                    std = Independent(TorchNormal(torch.zeros_like(p), torch.ones_like(p)), p.dim())
                    out[noncentred_site(self.site_name(n))] = std
            return out
        return {self.site_name(n): d for n, d in self.prior_dists().items()}

    @contextlib.contextmanager
    def side_effect_free(self, training: bool | None = False) -> Iterator[None]:
        """Run a probe without consuming random numbers or changing the network's buffers or
        modes.

        :param training: the mode the network runs in inside the block: ``False`` (evaluation
            mode, as every probe of the package: dropout off, BatchNorm on its running
            statistics), ``True`` (training mode) or ``None`` (as it is). Each module's own
            mode is restored afterwards, also when the block raises.

        Example::

            >>> with model.side_effect_free():  # doctest: +SKIP
            ...     model.net(x[:1])  # evaluation mode; BatchNorm statistics, modes and the RNG
            ...                       # are left as they were
        """
        buffers = [(b, b.clone()) for b in self.net.buffers()]
        try:
            with torch.random.fork_rng(devices=[]), module_mode(self.net, training):
                yield
        finally:
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)

    def latent_shapes(self, x: torch.Tensor) -> dict[str, torch.Size]:
        """``{site: shape}`` of every latent site (weights, and e.g. a noise ``"precision"``).

        Found once, by a side-effect-free prior run on ``x``'s first row, twice, in evaluation
        mode (the random stream, the network's buffers and its modes are left as they were),
        then cached: the sites are global.

        :param x: example inputs ``(N, ...)``.
        """
        if self._latent is None:
            with self.side_effect_free(), torch.no_grad(), poutine.block():
                # two copies of the first row (a module may need more than one in any mode)
                trace = poutine.trace(self).get_trace(x[:1].expand(2, *x.shape[1:]))
            self._latent = {
                name: torch.Size(site["value"].shape)  # type: ignore[union-attr]  # sampled
                for name, site in trace.nodes.items()
                if site["type"] == "sample"
                and not site["is_observed"]
                and not site_is_subsample(site)
                and name != OBS  # y=None leaves the observation site unobserved here
            }
        return self._latent

    # ------------------------------------------------------------------ without Pyro
    def outputs(
        self,
        sites: Mapping[str, torch.Tensor],
        x: torch.Tensor,
        *,
        input_fns: Mapping[nn.Module, Callable] | None = None,
        by_site: bool = False,
    ) -> torch.Tensor:
        """Network outputs for a stack of weight draws.

        :param sites: ``{parameter name: tensor (S, *param.shape)}`` for every random parameter
            (``by_site=True``: keyed by site name, other keys ignored).
        :param x: inputs ``(N, ...)``.
        :param input_fns: per-example noise applied to module inputs (e.g. dropout masks).
        :param by_site: whether ``sites`` is keyed by site name.
        :return: outputs ``(S, N, ...)``.
        """
        if by_site:
            sites = self.weights_from_sites(sites)
        sample_shape = broadcast_shapes(*(w.shape[:1] for w in sites.values()))
        return self.forward(sites, x, sample_shape=sample_shape, input_fns=input_fns)

    def __repr__(self) -> str:
        return (
            f"BayesianModel(random={len(self.random_names)} params, "
            f"deterministic={len(self.deterministic_names)}, prior={self.prior!r}, "
            f"likelihood={self.likelihood!r}"
            + ("" if self._temperature == 1.0 else f", temperature={self._temperature:g}")
            + ")"
        )


def check_temperature(value: Any) -> float:
    """``value`` as a float, or an error unless it is a finite number > 0.

    :param value: the temperature :math:`T` (a float, an int, or a one-element tensor).
    :return: ``float(value)``.
    :raises TypeError, ValueError: naming what was expected, what was received and the fix.

    Example::

        >>> check_temperature(0.1)
        0.1
        >>> check_temperature(0)
        Traceback (most recent call last):
        ...
        ValueError: Expected temperature T > 0 (a finite number; T = 1 is the Bayes posterior, T < 1 a cold one), but got 0. Pass e.g. temperature=0.5.
    """  # noqa: E501
    if torch.is_tensor(value) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"Expected temperature T to be a positive number (e.g. 0.5), but got "
            f"{type(value).__name__} {value!r}. Pass a float, e.g. temperature=0.5."
        )
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            "Expected temperature T > 0 (a finite number; T = 1 is the Bayes posterior, T < 1 a "
            f"cold one), but got {value!r}. Pass e.g. temperature=0.5."
        )
    return float(value)


def _noise_free_mean(likelihood: Likelihood, fn: Distribution) -> torch.Tensor | None:
    """E[y | x, W] of the observation site's distribution, as ``likelihood.prediction`` reads it
    (without its checks on the closed forms: this runs in every traced step)."""
    base = fn
    while isinstance(base, Independent):
        base = base.base_dist
    if isinstance(base, (TorchCategorical, TorchBernoulli, DistillationCategorical)):
        return base.probs
    if isinstance(base, (TorchNormal, ExpectedNormal)):
        return base.loc
    try:  # any other family: its likelihood's own reading (generic: the family's mean)
        return likelihood.prediction(fn).samples
    except (ValueError, TypeError, NotImplementedError):  # e.g. NaN outputs: no site
        return None


class _NoiseFreeMean(Messenger):
    """Emit the deterministic ``"obs_mean"`` site right after the ``"obs"`` site, under its
    plates (batch shape ``sample_shape + (B,)``, as ``"obs"``)."""

    def __init__(self, likelihood: Likelihood) -> None:
        super().__init__()
        self.likelihood = likelihood
        self.fn: Distribution | None = None

    def _pyro_sample(self, msg: Message) -> None:
        if msg["name"] == OBS:
            self.fn = cast(Distribution, msg["fn"])  # before outer handlers wrap it (masks)

    def _pyro_post_sample(self, msg: Message) -> None:
        if msg["name"] != OBS or self.fn is None:
            return
        fn, self.fn = self.fn, None
        mean = _noise_free_mean(self.likelihood, fn)
        if mean is not None:
            pyro.deterministic(OBS_MEAN, mean, event_dim=mean.dim() - len(fn.batch_shape))
