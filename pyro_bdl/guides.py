"""Guides q_M(W): builders ``model -> AutoGuide``.

:class:`MeanFieldNormal` builds an :class:`AutoMeanFieldNormal`, a fully factorised Gaussian that
starts at the network's current weights and emits ``Normal`` sites for real-support latents, so
the KL to a Gaussian prior is computed in closed form. Any Pyro autoguide class (``AutoDelta``,
``AutoLowRankMultivariateNormal``, ...) or callable ``model -> guide`` is accepted in its place.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution, constraints
from pyro.distributions.transforms import biject_to
from pyro.infer.autoguide import AutoGuide
from pyro.infer.autoguide.initialization import InitMessenger, init_to_median, init_to_sample
from pyro.infer.autoguide.utils import deep_setattr
from pyro.nn import PyroModule, PyroParam
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import InferDict
from torch import nn
from torch.distributions import register_kl

from ._checks import check_float
from .nn import INIT_KEY, broadcast_shapes, init_to_net, is_real_support

__all__ = [
    "AutoDropout",
    "AutoMeanFieldNormal",
    "BernoulliDropout",
    "ConcreteDropout",
    "GuideLike",
    "LinearOutputNoise",
    "MaskedWeight",
    "MeanFieldNormal",
    "PerExampleMasks",
    "build_guide",
    "relaxed_keep_mask",
    "to_dropout_net",
]

GuideLike = Any  # a builder ``model -> guide``, an AutoGuide subclass, or None

_MF_ESTIMATORS = ("sample", "local_reparameterization", "flipout")
#: ``infer`` key marking a sample site as a factor of :class:`AutoMeanFieldNormal`.
_FACTOR_KEY = "pyro_bdl_factor"


def deep_getattr(obj: Any, name: str) -> Any:
    """``getattr`` along a dotted path (the inverse of Pyro's ``deep_setattr``)."""
    return functools.reduce(getattr, name.split("."), obj)


class _FactorisedGuide(AutoGuide):
    """An autoguide with one independent factor per global latent site.

    Subclasses build their parameters in ``_setup_prototype`` and return each factor from
    :meth:`get_site_dist`; sampling every site is shared.
    """

    #: ``infer`` entries of every site this guide samples (a subclass may mark its sites)
    _site_infer: dict[str, Any] = {}

    def get_site_dist(self, name: str) -> TorchDistribution:
        """The factor q(W_name)."""
        raise NotImplementedError

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Sample every latent site from its factor; returns ``{site name: value}``."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        return {
            # InferDict lists Pyro's own keys; a site's infer dict may carry others at runtime
            name: pyro.sample(
                name, self.get_site_dist(name), infer=cast(InferDict, dict(self._site_infer))
            )
            for name, _ in self.prototype_trace.iter_stochastic_nodes()
        }


class AutoMeanFieldNormal(_FactorisedGuide):
    r"""Fully factorised Gaussian guide for every global latent site of a model.

    .. math::

        q(W) = \prod_j \mathcal N(W_j; \mu_j, \sigma_j^2), \quad
        \sigma_j = \mathrm{softplus}(\rho_j)

    Real-support sites are emitted as ``Normal(loc, scale).to_event(...)`` (so
    :class:`~pyro.infer.TraceMeanField_ELBO` and :func:`pyro_bdl.infer.elbo_terms` use the
    analytic KL); constrained sites (a noise precision) as a Normal pushed through
    ``biject_to(support)``.

    :param model: a Pyro model whose latent sites are all global (outside every plate).
    :param init_loc_fn: where the means start; default :func:`~pyro_bdl.nn.init_to_net`
        (the network's current weights, a warm start for a pretrained net).
    :param init_scale: initial standard deviation of every factor (> 0).

    Example::

        >>> import pyro.distributions as dist
        >>> import torch
        >>> from torch import nn
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> x = torch.linspace(-1, 1, 8).unsqueeze(-1)  # 8 rows
        >>> y = torch.sin(3 * x[:, 0])
        >>> net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))
        >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.1))
        >>> guide = AutoMeanFieldNormal(bnn.model, init_scale=1e-2)
        >>> draws = guide(x, y)  # one draw of every weight (y observed: "obs" is no latent)
        >>> sorted(draws), draws["0.weight"].shape
        (['0.bias', '0.weight', '2.bias', '2.weight'], torch.Size([4, 1]))
    """

    #: the sites are marked as this guide's factors, for :class:`LinearOutputNoise`
    _site_infer = {_FACTOR_KEY: True}

    def __init__(
        self,
        model: Callable,
        *,
        init_loc_fn: Callable = init_to_net,
        init_scale: float = 1e-2,
        estimator: str = "sample",
    ) -> None:
        if estimator not in _MF_ESTIMATORS:
            raise ValueError(f"Expected estimator in {_MF_ESTIMATORS}, but got {estimator!r}.")
        self.init_loc_fn = init_loc_fn
        self._init_scale = check_float("init_scale", init_scale)
        self.estimator = estimator
        super().__init__(InitMessenger(init_loc_fn)(model))

    def estimator_context(
        self, bnn: Any, training: bool = True
    ) -> contextlib.AbstractContextManager:
        """The handler ``BNN.fit`` runs under: local reparameterization, flipout, or nothing.

        Prediction (``training=False``) always draws whole weight matrices, so predictive
        draws are functions, not per-example noise.
        """
        if self.estimator == "sample" or not training:
            return contextlib.nullcontext()
        sites: dict[str, nn.Module] = {}
        params = dict(bnn.net.named_parameters())
        for n in bnn.random_names:
            owner = n.rpartition(".")[0]
            module = bnn.net.get_submodule(owner) if owner else bnn.net
            if type(module) is nn.Linear and n.endswith("weight"):
                sites[bnn.site_name(n)] = module
                prior = bnn.prior.site_dist(n, params[n])
                if self.estimator == "local_reparameterization" and (
                    _normal_prior_parts(prior, params[n].shape) is None
                ):
                    raise ValueError(
                        "Expected a Gaussian prior on the weights for local reparameterization "
                        f"(its KL must be closed form: no weights are drawn), but {n!r} has "
                        f"{type(prior).__name__}. Use estimator='flipout' or 'sample'."
                    )
        if not sites:
            raise ValueError(
                f"Expected at least one random nn.Linear weight for estimator="
                f"{self.estimator!r}, but the random parameters are {bnn.random_names}. Use "
                "estimator='sample'."
            )
        return LinearOutputNoise(self, sites, flipout=self.estimator == "flipout")

    def _setup_prototype(self, *args: Any, **kwargs: Any) -> None:
        super()._setup_prototype(*args, **kwargs)
        self.locs = PyroModule()
        self.scales = PyroModule()
        self._transforms: dict[str, Any] = {}
        self._event_dims: dict[str, int] = {}
        for name, site in self.prototype_trace.iter_stochastic_nodes():
            if site["cond_indep_stack"]:
                raise NotImplementedError(
                    f"AutoMeanFieldNormal supports global latent sites only, but site {name!r} "
                    "is inside a plate; use pyro.infer.autoguide.AutoNormal for local latents."
                )
            fn = site["fn"]
            value = site["value"].detach()
            if is_real_support(fn.support):
                transform, unconstrained = None, value
            else:
                transform = biject_to(fn.support)
                unconstrained = transform.inv(value)
            self._transforms[name] = transform
            self._event_dims[name] = fn.event_dim + unconstrained.dim() - value.dim()
            deep_setattr(self.locs, name, PyroParam(unconstrained.clone(), constraints.real))
            deep_setattr(
                self.scales,
                name,
                PyroParam(
                    torch.full_like(unconstrained, self._init_scale), constraints.softplus_positive
                ),
            )

    def get_site_dist(self, name: str) -> TorchDistribution:
        """The factor q(W_name): a Normal, or a Normal pushed through the support's bijection."""
        loc = deep_getattr(self.locs, name)
        scale = deep_getattr(self.scales, name)
        q: TorchDistribution = dist.Normal(loc, scale)
        event_dim = self._event_dims[name]
        if event_dim:
            q = q.to_event(event_dim)
        transform = self._transforms[name]
        if transform is not None:
            q = dist.TransformedDistribution(q, transform.with_cache())
        return q

    def trace_free_sampler(self, priors: Mapping[str, Any] | None, bnn: Any = None) -> Any:
        """A sampler that draws every site and the closed-form KL without Pyro, or ``None``.

        It draws exactly what :meth:`forward` draws (same random stream, also under a particle
        plate) and returns the KL summed over sites, so ``BNN.fit`` can compute the ELBO estimate
        of :func:`~pyro_bdl.infer.elbo_terms` without tracing. ``None`` when a site has
        constrained support or a prior that is not Gaussian (the traced step is used then).

        :param priors: ``{site name: prior distribution}`` (event shape = the site's shape), or
            ``None`` for a sampler that only draws (``with_kl=False``), as prediction needs.
        :param bnn: unused (the dropout guide needs it).
        :return: ``sampler(sample_shape=(), with_kl=True) -> ({site: draw of shape
            sample_shape + site shape}, KL as a 0-dim tensor or None)``, or ``None``.

        Example::

            >>> import pyro.distributions as dist
            >>> import torch
            >>> from torch import nn
            >>> from pyro_bdl import BNN, HomoskedasticGaussian
            >>> x = torch.linspace(-1, 1, 8).unsqueeze(-1)  # 8 rows
            >>> y = torch.sin(3 * x[:, 0])
            >>> net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))
            >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.1))
            >>> bnn.ensure_guide(x)  # the guide's parameters
            >>> sampler = bnn.guide.trace_free_sampler(None, bnn)
            >>> draws, _ = sampler((10,), with_kl=False)
            >>> draws["0.weight"].shape
            torch.Size([10, 4, 1])
        """
        if self.prototype_trace is None or any(t is not None for t in self._transforms.values()):
            return None
        if priors is None:  # draws only (prediction: whole weight draws whatever the estimator)
            return _MeanFieldSampler(self, {name: None for name in self._transforms})
        if self.estimator != "sample" or set(priors) != set(self._transforms):
            return None
        parts = {}
        for name in self._transforms:
            part = _normal_prior_parts(priors[name], deep_getattr(self.locs, name).shape)
            if part is None:
                return None
            parts[name] = part
        return _MeanFieldSampler(self, parts)

    @torch.no_grad()
    def median(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Posterior medians (the means, mapped to each site's support)."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        out = {}
        for name, _ in self.prototype_trace.iter_stochastic_nodes():
            loc = deep_getattr(self.locs, name)
            transform = self._transforms[name]
            out[name] = loc if transform is None else transform(loc)
        return out

    @torch.no_grad()
    def loc_scale(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{site: (loc, scale)}`` of the unconstrained Normal factors (after the first call)."""
        if self.prototype_trace is None:
            raise RuntimeError("The guide has no parameters yet: call it (or fit) once first.")
        return {
            name: (deep_getattr(self.locs, name).detach(), deep_getattr(self.scales, name).detach())
            for name, _ in self.prototype_trace.iter_stochastic_nodes()
        }


#: ``(loc, scale)`` of a Gaussian prior over one weight tensor
_PriorParts = tuple[torch.Tensor, torch.Tensor]


def _normal_prior_parts(prior: Any, shape: torch.Size) -> _PriorParts | None:
    """``(loc, scale)`` of a Gaussian prior over a whole weight tensor, else ``None``.

    Accepts ``Normal`` with ``batch_shape == shape`` or ``Independent(Normal)`` with
    ``event_shape == shape`` (what priors give a site); the tensors may be expanded views.
    """
    base, ndims = prior, 0
    if isinstance(prior, torch.distributions.Independent):
        base, ndims = prior.base_dist, prior.reinterpreted_batch_ndims
    if type(base) not in (torch.distributions.Normal, dist.Normal):
        return None
    if tuple(prior.batch_shape) + tuple(prior.event_shape) != tuple(shape) or ndims != len(shape):
        return None
    return base.loc.expand(shape), base.scale.expand(shape)


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The tensors' entries as one vector (a view for a single tensor)."""
    if len(tensors) == 1:
        return tensors[0].reshape(-1)
    return torch.cat([t.reshape(-1) for t in tensors])


def _uniform(t: torch.Tensor) -> float | None:
    """The single value of a tensor whose entries are all equal (``None`` otherwise)."""
    first = t.reshape(-1)[:1]
    return float(first) if bool((t == first).all()) else None


class _MeanFieldSampler:
    r"""Trace-free draws and closed-form KL of an :class:`AutoMeanFieldNormal` (see ``__call__``).

    All sites are handled as one flat vector: the draws consume the random stream site by site,
    exactly as the guide's ``Normal.rsample`` calls do, and the KL to a Gaussian prior
    :math:`\sum \log s_0 - \log s + (s^2 + (m - m_0)^2) / (2 s_0^2) - 1/2` is one reduction.
    """

    def __init__(self, guide: AutoMeanFieldNormal, parts: Mapping[str, _PriorParts | None]) -> None:
        self.names = list(parts)
        locs = [deep_getattr(guide.locs, n) for n in self.names]
        scales = [deep_getattr(guide.scales, n) for n in self.names]
        self.locs = [t.unconstrained() for t in locs]
        self.rhos = [t.unconstrained() for t in scales]
        self.params = self.locs + self.rhos
        self.shapes = [t.shape for t in self.locs]
        self.sizes = [t.numel() for t in self.locs]
        self.transform = biject_to(constraints.softplus_positive)
        self.has_kl = all(part is not None for part in parts.values())
        if not self.has_kl:
            return
        prior = {n: part for n, part in parts.items() if part is not None}  # every site
        prior_loc = torch.cat([prior[n][0].reshape(-1) for n in self.names])
        prior_scale = torch.cat([prior[n][1].reshape(-1) for n in self.names]).detach()
        self.prior_loc = None if bool((prior_loc == 0).all()) else prior_loc.detach()
        uniform = _uniform(prior_scale)
        self.inv_two_var: float | torch.Tensor = (
            float(0.5 / prior_scale[0] ** 2) if uniform is not None else 0.5 / prior_scale**2
        )
        self.const = float(prior_scale.log().sum()) - 0.5 * prior_scale.numel()

    def __call__(
        self, sample_shape: tuple[int, ...] = (), with_kl: bool = True
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """``({site: draw of shape sample_shape + site shape}, KL or None)``."""
        like = self.locs[0]
        shape = tuple(sample_shape)
        if not torch.is_grad_enabled() and not with_kl:
            # many draws (prediction): site by site, without copying the noise into one vector
            return {
                n: m
                + torch.empty(shape + tuple(m.shape), dtype=m.dtype, device=m.device).normal_()
                * self.transform(rho)
                for n, m, rho in zip(self.names, self.locs, self.rhos, strict=True)
            }, None
        # one flat vector: fewer autograd nodes per step
        loc = _flat(self.locs)
        scale = self.transform(_flat(self.rhos))
        eps = torch.cat(
            [
                torch.empty(shape + tuple(s), dtype=like.dtype, device=like.device)
                .normal_()
                .reshape(shape + (-1,))
                for s in self.shapes
            ],
            dim=-1,
        )
        w = loc + eps * scale
        draws = {
            n: part.reshape(shape + tuple(s))
            for n, part, s in zip(self.names, w.split(self.sizes, dim=-1), self.shapes, strict=True)
        }
        if not with_kl:
            return draws, None
        if not self.has_kl:
            raise RuntimeError("This sampler was built without priors: it has no KL.")
        centred = loc if self.prior_loc is None else loc - self.prior_loc
        quad = scale.square() + centred.square()
        quad = (
            quad.sum() * self.inv_two_var
            if isinstance(self.inv_two_var, float)
            else (quad * self.inv_two_var).sum()
        )
        return draws, quad - scale.log().sum() + self.const

    #: no per-example noise
    input_fns = None


class _MeanOnly(dist.Independent):
    """A Gaussian factor that emits its mean: the noise goes to the layer outputs instead.

    Its KL to a Gaussian prior is the factor's (``Independent``'s registered KL), so the ELBO is
    unchanged; its ``log_prob`` is never a valid Monte-Carlo KL, hence the Gaussian-prior check.
    """

    def rsample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        return self.base_dist.loc.expand(self._extended_shape(torch.Size(sample_shape)))


class _LayerHooks(Messenger):
    """A Messenger that hooks the layers owning some weight sites while it is active.

    Subclasses set ``_pre`` (forward pre-hooks instead of forward hooks), implement ``_hook``
    and fill ``_active`` (``{module: what the guide emitted}``) in ``_pyro_sample``. Hooks are
    removed on exit; torch is never patched.
    """

    _pre = False

    def __init__(self, sites: dict[str, nn.Module]) -> None:
        super().__init__()
        self.sites = sites
        self._active: dict[nn.Module, Any] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> _LayerHooks:
        self._active = {}
        for module in set(self.sites.values()):
            register = (
                module.register_forward_pre_hook if self._pre else module.register_forward_hook
            )
            self._handles.append(register(self._hook))
        return super().__enter__()

    def __exit__(self, *args: Any) -> Any:
        for h in self._handles:
            h.remove()
        self._handles, self._active = [], {}
        return super().__exit__(*args)

    def _hook(self, module: nn.Module, *args: Any) -> Any:
        raise NotImplementedError


class LinearOutputNoise(_LayerHooks):
    r"""Effect handler: local reparameterization or flipout on the ``nn.Linear`` layers.

    Two lower-variance estimators of the same expected log-likelihood under a mean-field
    Gaussian :math:`q(W) = \prod \mathcal N(\mu, \sigma^2)`, each drawing its noise per
    example (forward hooks on the layers; torch is never patched):

    * **local reparameterization** (Kingma, Salimans & Welling 2015): the weight site emits
      :math:`\mu`, and the layer output for input :math:`x` becomes
      :math:`x\mu^\top + b + \sqrt{x^2 (\sigma^2)^\top}\,\epsilon`, the exact marginal
      of :math:`xW^\top + b`, with fresh :math:`\epsilon` per example and unit;
    * **flipout** (Wen et al. 2018): one draw :math:`W = \mu + \Delta W` per particle, and
      per-example random signs :math:`s, r \in \{\pm 1\}`:
      :math:`x\mu^\top + b + ((x \circ s)\Delta W^\top) \circ r`, again with the marginal
      of :math:`xW^\top + b` but nearly independent across examples.

    Both cost extra matrix products, so they are opt-in (``MeanFieldNormal(estimator=...)``)
    and used by ``fit`` only; ``predict`` draws whole weights.

    :param guide: the :class:`AutoMeanFieldNormal` whose factors are used.
    :param sites: ``{site name: nn.Linear owning that weight}``.
    :param flipout: flipout instead of local reparameterization.

    Example::

        >>> import pyro.distributions as dist
        >>> import torch
        >>> from torch import nn
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> x = torch.linspace(-1, 1, 8).unsqueeze(-1)  # 8 rows
        >>> y = torch.sin(3 * x[:, 0])
        >>> net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))
        >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.1),
        ...           guide=MeanFieldNormal(estimator="local_reparameterization"))
        >>> result = bnn.fit(x, y, epochs=2, progress=False)  # under this handler
        >>> bnn.guide.estimator_context(bnn)  # doctest: +ELLIPSIS
        <pyro_bdl.guides.LinearOutputNoise object at ...>
    """

    def __init__(self, guide: AutoMeanFieldNormal, sites: dict[str, nn.Module], flipout: bool):
        super().__init__(sites)
        self.guide, self.flipout = guide, flipout

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        name = msg["name"]
        if name not in self.sites or not msg["infer"].get(_FACTOR_KEY) or msg["is_observed"]:
            return
        self._active[self.sites[name]] = name
        if not self.flipout:
            fn = msg["fn"]
            msg["fn"] = _MeanOnly(fn.base_dist, fn.reinterpreted_batch_ndims)

    def _hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        name = self._active.get(module)
        if name is None:  # a model run without the guide (e.g. from the prior)
            return None
        x = args[0]
        loc = deep_getattr(self.guide.locs, name)
        if not self.flipout:
            scale = deep_getattr(self.guide.scales, name)
            var = F.linear(x.square(), scale.square())
            std = var.clamp_min(torch.finfo(var.dtype).tiny).sqrt()
            return output + std * torch.randn_like(output)
        linear = cast(nn.Linear, module)  # the sites are nn.Linear weights
        delta = linear.weight - loc
        signs_in = torch.empty_like(x).bernoulli_(0.5).mul_(2).sub_(1)
        signs_out = torch.empty_like(output).bernoulli_(0.5).mul_(2).sub_(1)
        return F.linear(x, loc, linear.bias) + F.linear(x * signs_in, delta) * signs_out


_INIT_LOCS: dict[str, Callable[..., Any]] = {
    "net": init_to_net,
    "median": init_to_median,
    "sample": init_to_sample,
}


class MeanFieldNormal:
    """Builder of the mean-field Gaussian guide: ``MeanFieldNormal(...)(model) -> AutoGuide``.

    :param init_scale: initial standard deviation of every weight (> 0). Small values start the
        fit near the network's point estimate.
    :param init_loc: ``"net"`` (the network's current weights), ``"median"`` (prior median),
        ``"sample"`` (a prior draw), or any Pyro ``init_loc_fn``.
    :param estimator: how ``BNN.fit`` estimates the expected log-likelihood: ``"sample"`` (one
        weight draw per particle, the default and the fastest), ``"local_reparameterization"``
        or ``"flipout"`` (per-example noise on ``nn.Linear`` outputs, lower variance, slower on
        CPU); see :class:`AutoMeanFieldNormal`.

    Example::

        >>> import pyro.distributions as dist
        >>> import torch
        >>> from torch import nn
        >>> from pyro_bdl import BNN, Categorical, IIDPrior
        >>> x, y = torch.randn(8, 2), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
        >>> net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 3))
        >>> bnn = BNN(net, IIDPrior(dist.Normal(0., 1.)), Categorical(),
        ...           guide=MeanFieldNormal(init_scale=1e-3))
        >>> result = bnn.fit(x, y, epochs=2, progress=False)
        >>> type(bnn.guide).__name__
        'AutoMeanFieldNormal'
    """

    def __init__(
        self, init_scale: float = 1e-2, init_loc: str | Callable = "net", estimator: str = "sample"
    ) -> None:
        check_float("init_scale", init_scale)
        if estimator not in _MF_ESTIMATORS:
            raise ValueError(f"Expected estimator in {_MF_ESTIMATORS}, but got {estimator!r}.")
        self.estimator = estimator
        if isinstance(init_loc, str):
            if init_loc not in _INIT_LOCS:
                raise ValueError(
                    f"Expected init_loc in {sorted(_INIT_LOCS)} or a callable, "
                    f"but got {init_loc!r}."
                )
        elif not callable(init_loc):
            raise TypeError(f"Expected init_loc to be a string or callable, but got {init_loc!r}.")
        self.init_scale = float(init_scale)
        self.init_loc = init_loc

    def config(self) -> dict | None:
        """JSON-able constructor arguments (``None`` with a custom ``init_loc`` callable)."""
        if not isinstance(self.init_loc, str):
            return None
        cfg: dict = {"init_scale": self.init_scale, "init_loc": self.init_loc}
        if self.estimator != "sample":
            cfg["estimator"] = self.estimator
        return cfg

    def __call__(self, model: Callable) -> AutoMeanFieldNormal:
        fn = _INIT_LOCS[self.init_loc] if isinstance(self.init_loc, str) else self.init_loc
        return AutoMeanFieldNormal(
            model, init_loc_fn=fn, init_scale=self.init_scale, estimator=self.estimator
        )

    def __repr__(self) -> str:
        extra = "" if self.estimator == "sample" else f", estimator={self.estimator!r}"
        return f"MeanFieldNormal(init_scale={self.init_scale}, init_loc={self.init_loc!r}{extra})"


def build_guide(spec: GuideLike, model: Callable) -> Callable:
    """Build the guide for ``model`` from a builder, an AutoGuide class or ``None``.

    An AutoGuide class is instantiated as ``cls(model)``, with ``init_loc_fn=init_to_net`` when the
    class accepts it (so it starts at the network's weights). ``None`` means
    :class:`MeanFieldNormal` with its defaults.

    Example::

        >>> from pyro.infer.autoguide import AutoDelta
        >>> import pyro.distributions as dist
        >>> import torch
        >>> from torch import nn
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> x = torch.linspace(-1, 1, 8).unsqueeze(-1)  # 8 rows
        >>> y = torch.sin(3 * x[:, 0])
        >>> net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))
        >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.1))
        >>> guide = build_guide(AutoDelta, bnn.model)  # starts at the network's weights
        >>> type(guide).__name__
        'AutoDelta'
    """
    if spec is None:
        spec = MeanFieldNormal()
    if isinstance(spec, AutoGuide):
        raise TypeError(
            "Expected a guide builder (e.g. MeanFieldNormal() or the class AutoNormal), but got an "
            "AutoGuide instance already bound to another model; pass its class instead."
        )
    if isinstance(spec, type) and issubclass(spec, AutoGuide):
        kwargs = {}
        if "init_loc_fn" in inspect.signature(spec).parameters:
            kwargs["init_loc_fn"] = init_to_net
        return spec(model, **kwargs)
    if not callable(spec):
        raise TypeError(
            "Expected guide to be a builder model -> guide (e.g. MeanFieldNormal()), an AutoGuide "
            f"class, or None, but got {type(spec).__name__}."
        )
    guide = spec(model)
    if not callable(guide):
        raise TypeError(
            f"Expected the guide builder to return a callable guide, but got {guide!r}."
        )
    return guide


# =============================================================================== dropout guides
def _binary_entropy(p: torch.Tensor) -> torch.Tensor:
    return -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p))


class MaskedWeight(TorchDistribution):
    r"""The dropout variational factor of one weight: a point at :math:`M\,\mathrm{diag}(z)`.

    .. math:: W = M\,\mathrm{diag}(z), \qquad z_k \sim \mathrm{Bernoulli}(1 - p)

    with one :math:`z_k` per input unit (axis ``mask_dim`` of ``W``: the columns of a linear weight,
    the input channels of a convolution). ``mask_dim=None`` is a point mass at ``M`` (how biases are
    treated). With ``temperature`` the mask is the relaxed (concrete) Bernoulli of Gal et al.
    (2017), reparameterised in ``p``. ``per_example=True`` returns ``M`` itself: the masks are then
    drawn per data point by :class:`PerExampleMasks` on the layer inputs.

    ``log_prob(value)`` is :math:`\log q(z)` of the mask drawn by the last ``rsample`` (the
    density of W relative to the counting measure over masks), so a Monte-Carlo KL
    :math:`\log q - \log p` is unbiased for :math:`\mathbb E_q[-\log p(W)] - K\,H(p)`. Against
    a Gaussian prior the KL is computed in closed form (registered with
    :func:`torch.distributions.kl_divergence`).

    :param loc: the variational parameter M (shape = the parameter's shape).
    :param p: drop probability, a 0-dim tensor in [0, 1).
    :param mask_dim: axis of ``loc`` carrying the input units, or ``None``.
    :param temperature: concrete relaxation temperature, or ``None`` for hard masks.
    :param per_example: emit M and leave the masking to :class:`PerExampleMasks`.

    Example::

        >>> q = MaskedWeight(torch.ones(2, 3), torch.tensor(0.5), mask_dim=1)
        >>> w = q.rsample()  # each column of ones is kept or zeroed
        >>> bool(((w == 0) | (w == 1)).all())
        True
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(
        self,
        loc: torch.Tensor,
        p: torch.Tensor,
        mask_dim: int | None,
        *,
        temperature: float | None = None,
        per_example: bool = False,
        batch_shape: Sequence[int] = (),
        validate_args: bool | None = None,
    ) -> None:
        self.loc, self.p, self.mask_dim = loc, p, mask_dim
        self.temperature, self.per_example = temperature, per_example
        self._mask: torch.Tensor | None = None
        super().__init__(torch.Size(batch_shape), loc.shape, validate_args=False)

    @property
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.real, len(self.event_shape))

    @property
    def num_units(self) -> int:
        """K, the number of input units that are dropped together (0 for a point mass)."""
        return 0 if self.mask_dim is None else self.loc.shape[self.mask_dim]

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> MaskedWeight:
        return MaskedWeight(
            self.loc,
            self.p,
            self.mask_dim,
            temperature=self.temperature,
            per_example=self.per_example,
            batch_shape=batch_shape,
        )

    def with_per_example_masks(self) -> MaskedWeight:
        """The same factor with the masking left to the layer inputs."""
        return MaskedWeight(
            self.loc,
            self.p,
            self.mask_dim,
            temperature=self.temperature,
            per_example=True,
            batch_shape=self.batch_shape,
        )

    @property
    def mean(self) -> torch.Tensor:
        keep = 1 - self.p if self.mask_dim is not None else 1.0
        return (keep * self.loc).expand(self.batch_shape + self.event_shape)

    def rsample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        if self.mask_dim is None or self.per_example:
            return self.loc.expand(shape + self.event_shape)
        k = self.num_units
        keep = (1 - self.p).expand(shape + (k,))
        if self.temperature is None:
            z = torch.bernoulli(keep.detach())
        else:
            z = relaxed_keep_mask(
                self.p,
                torch.rand(shape + (k,), dtype=self.loc.dtype, device=self.loc.device),
                self.temperature,
            )
        self._mask = z
        ndim = len(self.event_shape)
        view = shape + (1,) * self.mask_dim + (k,) + (1,) * (ndim - self.mask_dim - 1)
        mask = z.reshape(view)
        return self.loc * mask

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self.mask_dim is None:
            return torch.zeros(self.batch_shape, dtype=self.loc.dtype, device=self.loc.device)
        if self.per_example or self.temperature is not None or self._mask is None:
            raise ValueError(
                "The dropout factor has no tractable log-density here: per-example or relaxed "
                "(concrete) masks need a Gaussian prior, whose KL is closed form. Use a Normal "
                "prior, or BernoulliDropout(estimator='per_particle') for other priors."
            )
        return dist.Bernoulli(1 - self.p).log_prob(self._mask).sum(-1)


def relaxed_keep_mask(p: torch.Tensor, u: torch.Tensor, temperature: float) -> torch.Tensor:
    r"""Concrete relaxation of a keep indicator :math:`1 - \mathrm{Bernoulli}(p)` (Gal et al. 2017).

    .. math::

        \tilde z = 1 - \sigma\!\left(\frac{\log p - \log(1-p) + \log u - \log(1-u)}{t}\right)

    :param p: drop probability (broadcasts against ``u``).
    :param u: uniform noise in (0, 1).
    :param temperature: t > 0 (0.1 in the paper).

    Example::

        >>> relaxed_keep_mask(torch.tensor(0.5), torch.tensor([1e-6, 0.5, 1 - 1e-6]), 0.1)
        tensor([1.0000, 0.5000, 0.0000])
    """
    eps = torch.finfo(u.dtype).eps
    logit = torch.log(p + eps) - torch.log1p(-p + eps) + torch.log(u + eps) - torch.log1p(-u + eps)
    return 1 - torch.sigmoid(logit / temperature)


def _kl_masked_normal(q: MaskedWeight, prior: Any) -> torch.Tensor:
    base, ndims = prior, 0
    if isinstance(prior, torch.distributions.Independent):
        base, ndims = prior.base_dist, prior.reinterpreted_batch_ndims
    if type(base) not in (torch.distributions.Normal, dist.Normal) or ndims != len(q.event_shape):
        raise NotImplementedError
    keep = 1 - q.p if q.mask_dim is not None else torch.ones_like(q.p)
    m, mu, var = q.loc, base.loc, base.scale**2
    # E_q[-log N(W; mu, var)] with E[z] = E[z^2] = 1 - p
    cross = 0.5 * torch.log(2 * math.pi * var) + (keep * m**2 - 2 * keep * mu * m + mu**2) / (
        2 * var
    )
    if ndims:
        cross = cross.sum(tuple(range(-ndims, 0)))
    entropy = q.num_units * _binary_entropy(q.p) if q.mask_dim is not None else 0.0
    return (cross - entropy).expand(broadcast_shapes(q.batch_shape, prior.batch_shape))


register_kl(MaskedWeight, torch.distributions.Independent)(_kl_masked_normal)
register_kl(MaskedWeight, torch.distributions.Normal)(_kl_masked_normal)


_MASKABLE = {
    nn.Linear: None,
    nn.Conv1d: F.dropout1d,
    nn.Conv2d: F.dropout2d,
    nn.Conv3d: F.dropout3d,
}


class PerExampleMasks(_LayerHooks):
    """Effect handler: draw dropout masks per data point on the inputs of the masked layers.

    While active, the dropout guide's weight sites emit M (their :class:`MaskedWeight` is switched
    to ``per_example``) and every ``nn.Linear`` / ``nn.ConvNd`` whose weight is such a site gets a
    forward pre-hook that multiplies its input by a fresh keep mask per example (per element for
    linear layers, per channel for convolutions), exactly like ``nn.Dropout`` /
    ``nn.Dropout2d`` without the ``1/(1-p)`` rescaling. The estimator is unbiased for the same
    ELBO and has lower variance. Hooks are removed on exit; torch is never patched.

    :param net: the network the sites belong to.
    :param sites: ``{site name: module owning that weight}``.

    Example::

        >>> import pyro.distributions as dist
        >>> import torch
        >>> from torch import nn
        >>> from pyro_bdl import BNN, HomoskedasticGaussian, elbo_terms
        >>> x = torch.linspace(-1, 1, 8).unsqueeze(-1)  # 8 rows
        >>> y = torch.sin(3 * x[:, 0])
        >>> net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))
        >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.1),
        ...           guide=BernoulliDropout(p=0.25))
        >>> bnn.ensure_guide(x)
        >>> with PerExampleMasks(net, {"0.weight": net[0], "2.weight": net[2]}):
        ...     terms = elbo_terms(bnn.model, bnn.guide, x, y)
        >>> bool(torch.isfinite(terms.loss))
        True
    """

    _pre = True

    def __init__(self, net: nn.Module, sites: dict[str, nn.Module]) -> None:
        for name, module in sites.items():
            if type(module) not in _MASKABLE or getattr(module, "groups", 1) != 1:
                raise ValueError(
                    "Expected per-example dropout masks on nn.Linear or nn.Conv1d/2d/3d weights "
                    f"(groups=1), but site {name!r} belongs to {type(module).__name__}. Use "
                    "estimator='per_particle', or keep that parameter deterministic with include=."
                )
        super().__init__(sites)

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        fn = msg["fn"]
        if isinstance(fn, MaskedWeight) and msg["name"] in self.sites and fn.mask_dim is not None:
            msg["fn"] = fn.with_per_example_masks()
            self._active[self.sites[msg["name"]]] = fn

    def _hook(self, module: nn.Module, args: tuple) -> tuple | None:
        q = self._active.get(module)
        if q is None:  # a model run without the guide (e.g. from the prior): no masks
            return None
        p = float(q.p) if q.temperature is None else q.p
        return (_mask_input(module, args[0], p, q.temperature),) + tuple(args[1:])


def _mask_input(
    module: nn.Module, x: torch.Tensor, p: float | torch.Tensor, temperature: float | None
) -> torch.Tensor:
    """Multiply a layer input by fresh keep masks per example (per channel for convolutions)."""
    feature_dropout = _MASKABLE[type(module)]
    if temperature is None:  # the very masks nn.Dropout / nn.Dropout2d would draw
        if feature_dropout is None:
            # F.dropout's own noise on CPU, without its 1/(1-p) scaling (tested against it)
            return x * torch.empty_like(x).bernoulli_(1 - p)
        return feature_dropout(x, cast(float, p), True) * (1 - p)  # hard masks: a fixed p
    site = (
        x
        if feature_dropout is None
        else x[(slice(None), slice(None)) + (slice(0, 1),) * (x.dim() - 2)]
    )
    if not isinstance(p, torch.Tensor):  # a fixed p with relaxed masks
        p = torch.tensor(p, dtype=x.dtype, device=x.device)
    return x * relaxed_keep_mask(p, torch.rand_like(site), temperature)


class _DropoutSampler:
    """Trace-free step pieces of an :class:`AutoDropout` with per-example masks.

    ``__call__`` returns the means M of every site (the masks are drawn on the layer inputs by
    :attr:`input_fns`, in the same order and with the same random calls as
    :class:`PerExampleMasks`) and the closed-form KL of :func:`_kl_masked_normal` to the
    Gaussian prior.
    """

    def __init__(
        self,
        guide: AutoDropout,
        parts: Mapping[str, _PriorParts | None],
        modules: dict[str, nn.Module],
    ) -> None:
        self.names = list(parts)
        self.locs = [deep_getattr(guide.locs, n).unconstrained() for n in self.names]
        self.logits = {
            n: deep_getattr(guide.p_logits, n).unconstrained()
            for n in self.names
            if n not in guide._fixed_p
        }
        self.params = self.locs + list(self.logits.values())
        self.fixed_p = {n: float(guide._fixed_p[n]) for n in self.names if n in guide._fixed_p}
        self.temperature = guide.temperature
        self.masked = {n: guide._mask_dims[n] is not None for n in self.names}
        self.units = {
            n: t.shape[1] if self.masked[n] else 0
            for n, t in zip(self.names, self.locs, strict=True)
        }
        self.modules = {modules[n]: n for n in modules}
        #: ``{module: fn(module, input)}``: the per-example masks, for ``BatchedForward``
        self.input_fns = {m: self._mask for m in self.modules}
        #: ``(B, rows)`` when the inputs are these rows of a minibatch of B (data-parallel)
        self.rows: tuple[int, slice] | None = None
        self._p: dict[str, float | torch.Tensor] = {}
        self.has_kl = all(part is not None for part in parts.values())
        self.flat_coef: torch.Tensor | None = None
        if not self.has_kl:
            return
        # E_q[-log N(W; mu, var)] = c + keep * sum(a W^2 - b W), a = 1/(2 var), b = mu / var
        self.const, self.a, self.b = {}, {}, {}
        prior = {n: part for n, part in parts.items() if part is not None}  # every site
        for n in self.names:
            mu, scale = (t.detach() for t in prior[n])
            var = scale**2
            self.const[n] = float((0.5 * torch.log(2 * math.pi * var) + mu**2 / (2 * var)).sum())
            uniform = _uniform(var)
            self.a[n] = float(0.5 / var.reshape(-1)[0]) if uniform is not None else 0.5 / var
            self.b[n] = None if bool((mu == 0).all()) else mu / var
        entropy = sum(
            self.units[n] * float(_binary_entropy(torch.tensor(p, dtype=torch.float64)))
            for n, p in self.fixed_p.items()
            if self.masked[n]
        )
        self.fixed_const = sum(self.const.values()) - entropy
        if not self.logits and all(
            isinstance(self.a[n], float) and self.b[n] is None for n in self.names
        ):
            like = self.locs[0]
            self.flat_coef = torch.cat(
                [
                    torch.full(
                        (t.numel(),),
                        (1 - self.fixed_p[n] if self.masked[n] else 1.0)
                        * cast(float, self.a[n]),  # uniform: a float (checked above)
                        dtype=like.dtype,
                        device=like.device,
                    )
                    for n, t in zip(self.names, self.locs, strict=True)
                ]
            )

    def __call__(
        self, sample_shape: tuple[int, ...] = (), with_kl: bool = True
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """``({site: M expanded to sample_shape + site shape}, KL or None)``; sets the masks' p."""
        draws = {
            n: m.expand(tuple(sample_shape) + m.shape) if sample_shape else m
            for n, m in zip(self.names, self.locs, strict=True)
        }
        self._p = dict(self.fixed_p)
        for n, logit in self.logits.items():
            self._p[n] = torch.sigmoid(logit)
        if not with_kl:
            return draws, None
        if not self.has_kl:
            raise RuntimeError("This sampler was built without priors: it has no KL.")
        if self.flat_coef is not None:
            flat = _flat(self.locs)
            return draws, torch.dot(self.flat_coef * flat, flat) + self.fixed_const
        kl: float | torch.Tensor = self.fixed_const
        for n, m in zip(self.names, self.locs, strict=True):
            if n in self.logits:
                p = cast(torch.Tensor, self._p[n])  # a learned p: sigmoid(logit)
                keep: float | torch.Tensor = 1 - p
                kl = kl - self.units[n] * _binary_entropy(p)
            else:
                keep = 1 - self.fixed_p[n] if self.masked[n] else 1.0
            a, b = self.a[n], self.b[n]
            term = m.square().sum() * a if isinstance(a, float) else (m.square() * a).sum()
            if b is not None:
                term = term - (m * b).sum()
            kl = kl + keep * term
        return draws, cast(torch.Tensor, kl)  # a tensor: there is at least one site

    def _mask(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        p = self._p[self.modules[module]]
        if self.rows is None:
            return _mask_input(module, x, p, self.temperature)
        # a shard of a minibatch of B rows: the masks of all B rows, in one draw as one process
        # draws them, and this shard's rows of them
        size, rows = self.rows
        pad = (rows.start, size - rows.stop)
        full = torch.cat(
            [x.new_zeros((pad[0],) + x.shape[1:]), x, x.new_zeros((pad[1],) + x.shape[1:])]
        )
        return _mask_input(module, full, p, self.temperature)[rows]


def _check_p(name: str, p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(
            f"Expected a dropout probability {name} in [0, 1), but got {p!r}; p = 1 would drop "
            "every unit."
        )
    return float(p)


_ESTIMATORS = ("per_example", "per_particle")


class AutoDropout(_FactorisedGuide):
    r"""Dropout as variational inference (Gal & Ghahramani 2016): q_M(W_i) = M_i · diag(z_i).

    Every random parameter with two or more dims gets a :class:`MaskedWeight` factor with its own
    drop probability p_i over its input units (axis 1: the columns of a linear weight, the input
    channels of a convolution). Parameters with one dim (biases) get a point mass at M: they are
    MAP estimates under the prior (its weight decay, no dropout). Against a Gaussian prior
    :math:`\mathcal N(0, l^{-2})` the KL is, up to a constant in M (the entropy of a point mass),

    .. math::

        \mathrm{KL}(q \,\|\, p) = \sum_i \frac{(1 - p_i)\, l^2}{2} \lVert M_i \rVert^2
        - K_i\, H(p_i) + \text{const},

    computed in closed form (for other priors by Monte Carlo over the masks). For a Gaussian
    likelihood of precision τ, dividing the negative ELBO by N·τ gives dropout training:

    .. math::

        \frac{1}{2B}\sum_{n \in \text{batch}} \lVert y_n - \hat y_n \rVert^2
        + \sum_i \lambda_i \lVert M_i \rVert^2, \qquad \lambda_i = \frac{l^2 (1 - p_i)}{2 N \tau}.

    Means start at ``W / (1 - p)`` for the network's weights W, so the network is read as an
    inverted-dropout network (``nn.Dropout`` rescales kept units by ``1/(1-p)``) and the
    predictive mean starts at the network's output.

    :param model: the model (a :class:`~pyro_bdl.BNN`'s ``model``).
    :param p: one drop probability for every weight matrix, or ``{site name: p}`` (missing sites
        get 0). With ``learn_p`` the starting value.
    :param estimator: ``"per_example"`` (fresh masks for every data point, as a dropout layer
        draws them; lower variance; used by ``BNN.fit``/``predict``) or ``"per_particle"`` (one
        mask per draw of W: plain Pyro semantics).
    :param temperature: relaxed (concrete) masks at this temperature; ``None`` for hard masks.
    :param learn_p: learn one p per weight matrix (concrete dropout; needs ``temperature``).
    :param init_loc_fn: where W starts (default: the network's weights).

    Example::

        >>> import pyro.distributions as dist
        >>> import torch
        >>> from torch import nn
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> x = torch.linspace(-1, 1, 8).unsqueeze(-1)  # 8 rows
        >>> y = torch.sin(3 * x[:, 0])
        >>> net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))
        >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.5),
        ...           guide=BernoulliDropout(p=0.25))
        >>> bnn.ensure_guide(x)
        >>> type(bnn.guide).__name__, bnn.guide.drop_probabilities()
        ('AutoDropout', {'0.weight': 0.25, '2.weight': 0.25})
    """

    def __init__(
        self,
        model: Callable,
        *,
        p: float | Mapping[str, float] = 0.1,
        estimator: str = "per_example",
        temperature: float | None = None,
        learn_p: bool = False,
        init_loc_fn: Callable = init_to_net,
    ) -> None:
        if isinstance(p, Mapping):
            self._p_spec: float | dict[str, float] = {
                k: _check_p(f"for {k!r}", v) for k, v in p.items()
            }
        else:
            self._p_spec = _check_p("p", p)
        if estimator not in _ESTIMATORS:
            raise ValueError(f"Expected estimator in {_ESTIMATORS}, but got {estimator!r}.")
        if temperature is not None:
            check_float("temperature", temperature)
        if learn_p and temperature is None:
            raise ValueError("Expected a temperature with learn_p=True (concrete dropout).")
        self.estimator = estimator
        self.temperature = temperature
        self.learn_p = learn_p
        self.init_loc_fn = init_loc_fn
        super().__init__(InitMessenger(init_loc_fn)(model))

    def _p_for(self, name: str) -> float:
        if isinstance(self._p_spec, dict):
            return self._p_spec.get(name, 0.0)
        return self._p_spec

    def _setup_prototype(self, *args: Any, **kwargs: Any) -> None:
        super()._setup_prototype(*args, **kwargs)
        self.locs = PyroModule()
        self.p_logits = PyroModule()
        self._mask_dims: dict[str, int | None] = {}
        self._fixed_p: dict[str, torch.Tensor] = {}
        sites = dict(self.prototype_trace.iter_stochastic_nodes())
        if isinstance(self._p_spec, dict):
            unknown = sorted(set(self._p_spec) - set(sites))
            if unknown:
                raise ValueError(
                    f"Expected dropout probabilities for weight sites among {sorted(sites)}, "
                    f"but got unknown site(s) {unknown}."
                )
        for name, site in sites.items():
            if site["cond_indep_stack"] or INIT_KEY not in site["infer"]:
                raise NotImplementedError(
                    f"Dropout guides cover network weights only, but site {name!r} is not one "
                    "(a precision prior?). Use a fixed or learned noise scale instead."
                )
            value = site["value"].detach()
            mask_dim = 1 if value.dim() >= 2 else None
            p = self._p_for(name) if mask_dim is not None else 0.0
            self._mask_dims[name] = mask_dim
            deep_setattr(self.locs, name, PyroParam(value / (1 - p), constraints.real))
            p_t = torch.tensor(p, dtype=value.dtype, device=value.device)
            if self.learn_p and mask_dim is not None:
                p_t = p_t.clamp(1e-4, 1 - 1e-4)
                deep_setattr(self.p_logits, name, PyroParam(torch.logit(p_t), constraints.real))
            else:
                self._fixed_p[name] = p_t
        if not any(d is not None for d in self._mask_dims.values()):
            raise ValueError(
                "Expected at least one weight matrix (a parameter with >= 2 dims) to drop, but "
                f"the random parameters are {sorted(sites)}. Make a weight random with include=."
            )

    def drop_probability(self, name: str) -> torch.Tensor:
        """The (current) drop probability of a site, a 0-dim tensor."""
        if name in self._fixed_p:
            return self._fixed_p[name]
        return torch.sigmoid(deep_getattr(self.p_logits, name))

    def get_site_dist(self, name: str) -> MaskedWeight:
        """The factor q(W_name)."""
        return MaskedWeight(
            deep_getattr(self.locs, name),
            self.drop_probability(name),
            self._mask_dims[name],
            temperature=self.temperature,
        )

    @torch.no_grad()
    def median(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """The mean weights ``(1 - p) · M`` (what a dropout network uses at test time)."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        return {
            n: self.get_site_dist(n).mean for n, _ in self.prototype_trace.iter_stochastic_nodes()
        }

    @torch.no_grad()
    def drop_probabilities(self) -> dict[str, float]:
        """``{site name: p}`` of every masked weight."""
        if self.prototype_trace is None:
            raise RuntimeError("The guide has no parameters yet: call it (or fit) once first.")
        return {
            n: float(self.drop_probability(n)) for n, d in self._mask_dims.items() if d is not None
        }

    def trace_free_sampler(
        self, priors: Mapping[str, Any] | None, bnn: Any
    ) -> _DropoutSampler | None:
        """Trace-free step pieces for ``BNN.fit`` (per-example masks, Gaussian prior), or None.

        The sampler's ELBO estimate equals the one of :func:`~pyro_bdl.infer.elbo_terms` under
        :meth:`estimator_context` (same masks from the same random calls, same closed-form KL).

        :param priors: ``{site name: prior distribution}``, or ``None`` for a sampler that only
            draws (``with_kl=False``), as prediction needs.
        :param bnn: the :class:`~pyro_bdl.BNN` whose network carries the masked layers.
        :return: ``sampler(sample_shape=(), with_kl=True) -> ({site: M expanded to
            sample_shape + site shape}, KL or None)`` with ``sampler.input_fns`` (the masks, for
            :class:`~pyro_bdl.nn.BatchedForward`), or ``None``.

        Example::

            >>> import pyro.distributions as dist
            >>> import torch
            >>> from torch import nn
            >>> from pyro_bdl import BNN, HomoskedasticGaussian
            >>> x = torch.linspace(-1, 1, 8).unsqueeze(-1)  # 8 rows
            >>> y = torch.sin(3 * x[:, 0])
            >>> net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))
            >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.1),
            ...           guide=BernoulliDropout(p=0.25))
            >>> bnn.ensure_guide(x)
            >>> sampler = bnn.guide.trace_free_sampler(None, bnn)
            >>> means, _ = sampler(with_kl=False)  # {site: M}; masks via sampler.input_fns
            >>> sorted(means), len(sampler.input_fns)
            (['0.bias', '0.weight', '2.bias', '2.weight'], 2)
        """
        if self.prototype_trace is None or self.estimator != "per_example":
            return None
        if priors is not None and set(priors) != set(self._mask_dims):
            return None
        parts, modules = {}, {}
        for name, mask_dim in self._mask_dims.items():
            part = None
            if priors is not None:
                part = _normal_prior_parts(priors[name], deep_getattr(self.locs, name).shape)
                if part is None:
                    return None
            parts[name] = part
            if mask_dim is not None:
                module = bnn.net.get_submodule(name[len(bnn.prefix) :].rpartition(".")[0])
                if type(module) not in _MASKABLE or getattr(module, "groups", 1) != 1:
                    return None
                modules[name] = module
        if len(set(modules.values())) != len(modules):
            return None
        return _DropoutSampler(self, parts, modules)

    def estimator_context(
        self, bnn: Any, training: bool = True
    ) -> contextlib.AbstractContextManager:
        """The handler ``BNN.fit``/``predict`` run under: per-example masks or nothing.

        ``training`` is ignored: predictions draw per-example masks too, as MC dropout does.
        """
        shapes = {
            bnn.site_name(n): p for n, p in bnn.net.named_parameters() if n in bnn.random_names
        }
        matrices = [s for s, p in shapes.items() if p.dim() >= 2]
        if not matrices:
            raise ValueError(
                "Expected at least one weight matrix (a parameter with >= 2 dims) to drop, but "
                f"the random parameters are {bnn.random_names}. Make a weight random with include=."
            )
        if self.estimator == "per_particle":
            return contextlib.nullcontext()
        sites = {}
        for site in matrices:
            param = site[len(bnn.prefix) :]
            sites[site] = bnn.net.get_submodule(param.rpartition(".")[0])
        return PerExampleMasks(bnn.net, sites)


class BernoulliDropout:
    """Builder of the Bernoulli-dropout guide (MC dropout as variational inference).

    :param p: drop probability in [0, 1) for every weight matrix, or ``{site name: p}``.
    :param estimator: ``"per_example"`` (default) or ``"per_particle"``; see :class:`AutoDropout`.

    Example::

        >>> import pyro.distributions as dist
        >>> import torch
        >>> from torch import nn
        >>> from pyro_bdl import BNN, Categorical
        >>> x, y = torch.randn(8, 2), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
        >>> net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 3))
        >>> bnn = BNN(net, dist.Normal(0.0, 1.0), Categorical(),
        ...           guide=BernoulliDropout(p=0.25))
        >>> result = bnn.fit(x, y, epochs=2, progress=False)
        >>> to_dropout_net(bnn)  # an nn.Module with nn.Dropout layers
        Sequential(
          (0): Sequential(
            (0): Dropout(p=0.25, inplace=False)
            (1): Linear(in_features=2, out_features=4, bias=True)
          )
          (1): ReLU()
          (2): Sequential(
            (0): Dropout(p=0.25, inplace=False)
            (1): Linear(in_features=4, out_features=3, bias=True)
          )
        )
    """

    def __init__(
        self, p: float | Mapping[str, float] = 0.1, estimator: str = "per_example"
    ) -> None:
        if isinstance(p, Mapping):
            for k, v in p.items():
                _check_p(f"for {k!r}", v)
        else:
            _check_p("p", p)
        if estimator not in _ESTIMATORS:
            raise ValueError(f"Expected estimator in {_ESTIMATORS}, but got {estimator!r}.")
        self.p = p
        self.estimator = estimator

    def __call__(self, model: Callable) -> AutoDropout:
        return AutoDropout(model, p=self.p, estimator=self.estimator)

    def config(self) -> dict | None:
        """JSON-able constructor arguments."""
        p = dict(self.p) if isinstance(self.p, Mapping) else self.p
        return {"p": p, "estimator": self.estimator}

    def __repr__(self) -> str:
        return f"BernoulliDropout(p={self.p!r}, estimator={self.estimator!r})"

    @staticmethod
    def from_dropout_net(
        net: nn.Module,
        likelihood: Any,
        prior: Any = None,
        *,
        estimator: str = "per_example",
        **bnn_kwargs: Any,
    ) -> Any:
        """Read an already-trained network with dropout layers as a posterior, without retraining.

        Each ``nn.Dropout`` (``nn.Dropout1d/2d/3d``) is matched to the next ``nn.Linear``
        (``nn.ConvNd``) in module registration order (the order of an ``nn.Sequential``); its
        p becomes that weight's drop probability and M = W / (1 - p). The network is copied and
        its dropout layers replaced by identities, so the guide draws the masks. With the same
        seed, ``bnn.predict(x, S, chunk_size=1)`` equals S MC-dropout passes of ``net``.

        :param net: the trained network (unchanged).
        :param likelihood: the likelihood it was trained with.
        :param prior: the prior (default ``Normal(0, 1)``); it matters only for further fitting.
        :return: a :class:`~pyro_bdl.BNN` with an :class:`AutoDropout` guide.

        Example::

            >>> import torch
            >>> from torch import nn
            >>> from pyro_bdl import Categorical
            >>> trained = nn.Sequential(  # trained with dropout before its last layer
            ...     nn.Linear(2, 4), nn.ReLU(), nn.Dropout(0.25), nn.Linear(4, 3)
            ... )
            >>> bnn = BernoulliDropout.from_dropout_net(trained, Categorical())
            >>> pred = bnn.predict(torch.randn(5, 2), num_samples=100)
            >>> bnn.guide.drop_probabilities(), pred.probs.shape
            ({'0.weight': 0.0, '3.weight': 0.25}, torch.Size([5, 3]))
        """
        from .bnn import BNN

        if not isinstance(net, nn.Module):
            raise TypeError(f"Expected an nn.Module, but got {type(net).__name__}.")
        dropouts = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
        expect = {
            nn.Linear: nn.Dropout,
            nn.Conv1d: nn.Dropout1d,
            nn.Conv2d: nn.Dropout2d,
            nn.Conv3d: nn.Dropout3d,
        }
        probs: dict[str, float] = {}
        pending: tuple[str, nn.Module] | None = None
        for name, module in net.named_modules():
            if isinstance(module, dropouts):
                pending = (name, module)
            elif type(module) in expect and pending is not None:
                if type(pending[1]) is not expect[type(module)]:
                    raise ValueError(
                        f"Expected {expect[type(module)].__name__} before {type(module).__name__} "
                        f"{name!r}, but got {type(pending[1]).__name__} {pending[0]!r}: its masks "
                        "are not a distribution over this layer's weight columns."
                    )
                probs[f"{name}.weight" if name else "weight"] = _check_p(
                    f"of {pending[0]!r}", pending[1].p
                )
                pending = None
        if not probs:
            raise ValueError(
                "Expected a network with nn.Dropout layers before its Linear/Conv layers, but "
                "found none. Train it with dropout, or build "
                "BNN(..., guide=BernoulliDropout(p=...))."
            )
        copied = copy.deepcopy(net)
        for name, module in list(copied.named_modules()):
            if isinstance(module, dropouts):
                parent, _, child = name.rpartition(".")
                setattr(copied.get_submodule(parent), child, nn.Identity())
        prefix = bnn_kwargs.get("prefix", "")
        guide = BernoulliDropout({prefix + k: v for k, v in probs.items()}, estimator=estimator)
        prior = dist.Normal(0.0, 1.0) if prior is None else prior
        return BNN(copied, prior, likelihood, guide=guide, **bnn_kwargs)


class ConcreteDropout:
    """Builder of the concrete-dropout guide: p learned per weight matrix (Gal et al. 2017).

    The masks are relaxed Bernoulli draws at ``temperature`` (reparameterised in p), and the
    objective carries the −K·H(p) term of the KL, which is what keeps p away from 0.

    :param init_p: starting drop probability, in (0, 1).
    :param temperature: relaxation temperature (0.1 in the paper).
    :param estimator: ``"per_example"`` (default) or ``"per_particle"``.

    Example::

        >>> import pyro.distributions as dist
        >>> import torch
        >>> from torch import nn
        >>> from pyro_bdl import BNN, HeteroskedasticGaussian
        >>> x = torch.linspace(-1, 1, 8).unsqueeze(-1)  # 8 rows
        >>> y = torch.sin(3 * x[:, 0])
        >>> net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HeteroskedasticGaussian(),
        ...           guide=ConcreteDropout(init_p=0.2))
        >>> result = bnn.fit(x, y, epochs=2, progress=False)  # p is learned with the weights
        >>> p = bnn.guide.drop_probabilities()
        >>> sorted(p), all(0 < v < 1 for v in p.values())
        (['0.weight', '2.weight'], True)
    """

    def __init__(
        self, init_p: float = 0.1, temperature: float = 0.1, estimator: str = "per_example"
    ) -> None:
        if not 0.0 < _check_p("init_p", init_p):
            raise ValueError(f"Expected init_p in (0, 1) for a learned p, but got {init_p!r}.")
        check_float("temperature", temperature)
        if estimator not in _ESTIMATORS:
            raise ValueError(f"Expected estimator in {_ESTIMATORS}, but got {estimator!r}.")
        self.init_p, self.temperature, self.estimator = float(init_p), float(temperature), estimator

    def __call__(self, model: Callable) -> AutoDropout:
        return AutoDropout(
            model,
            p=self.init_p,
            estimator=self.estimator,
            temperature=self.temperature,
            learn_p=True,
        )

    def config(self) -> dict | None:
        """JSON-able constructor arguments."""
        return {"init_p": self.init_p, "temperature": self.temperature, "estimator": self.estimator}

    def __repr__(self) -> str:
        return f"ConcreteDropout(init_p={self.init_p}, temperature={self.temperature})"


def to_dropout_net(bnn: Any) -> nn.Module:
    """Export a fitted dropout BNN as a plain ``nn.Module`` with dropout layers.

    Each masked weight's module is wrapped as ``nn.Sequential(nn.Dropout(p), module)``
    (``nn.Dropout2d`` for ``nn.Conv2d`` ...) with weight ``W = (1 - p) · M`` (inverted dropout);
    biases are their point estimates. The dropout layers are left in training mode and the rest
    of the network in the mode it was in, so calling the result draws from the guide's predictive:
    with the same seed, S calls equal ``bnn.predict(x, S, chunk_size=1)`` (per-example masks).
    Parameter names gain the ``.1`` of the wrapper (``"0.weight"`` -> ``"0.1.weight"``).

    :param bnn: a :class:`~pyro_bdl.BNN` whose guide is an :class:`AutoDropout`.
    :return: the exported network.

    Example::

        >>> import pyro.distributions as dist
        >>> import torch
        >>> from torch import nn
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> x = torch.linspace(-1, 1, 8).unsqueeze(-1)  # 8 rows
        >>> y = torch.sin(3 * x[:, 0])
        >>> net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))
        >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.1),
        ...           guide=BernoulliDropout(p=0.25))
        >>> result = bnn.fit(x, y, epochs=2, progress=False)
        >>> mc = to_dropout_net(bnn)
        >>> draws = torch.stack([mc(x) for _ in range(100)])  # 100 MC-dropout passes
        >>> draws.shape
        torch.Size([100, 8, 1])
    """
    guide = bnn.guide
    if not isinstance(guide, AutoDropout):
        raise TypeError(
            f"Expected a BNN with a dropout guide (BernoulliDropout), but its guide is "
            f"{type(guide).__name__}."
        )
    if guide.prototype_trace is None:
        raise RuntimeError(
            "The guide has no parameters yet: fit the BNN (or call its guide) first."
        )
    if guide.temperature is not None:
        raise ValueError(
            "Expected hard Bernoulli masks; a concrete-dropout guide uses relaxed masks. Its "
            "learned p can be used with BernoulliDropout(p=bnn.guide.drop_probabilities())."
        )
    net = copy.deepcopy(bnn.net)
    wrappers = {
        nn.Linear: nn.Dropout,
        nn.Conv1d: nn.Dropout1d,
        nn.Conv2d: nn.Dropout2d,
        nn.Conv3d: nn.Dropout3d,
    }
    inserted = []
    with torch.no_grad():
        for param_name in bnn.random_names:
            site = bnn.site_name(param_name)
            q = guide.get_site_dist(site)
            owner_name, _, attr = param_name.rpartition(".")
            owner = net.get_submodule(owner_name)
            getattr(owner, attr).copy_(q.mean)
        for param_name in bnn.random_names:
            site = bnn.site_name(param_name)
            if guide._mask_dims[site] is None:
                continue
            p = float(guide.drop_probability(site))
            owner_name, _, _ = param_name.rpartition(".")
            owner = net.get_submodule(owner_name)
            if type(owner) not in wrappers:
                raise ValueError(
                    f"Expected masked weights of nn.Linear/nn.ConvNd modules, but {param_name!r} "
                    f"belongs to {type(owner).__name__}."
                )
            drop = wrappers[type(owner)](p)
            inserted.append(drop)
            wrapped = nn.Sequential(drop, owner)
            if owner_name:
                parent, _, child = owner_name.rpartition(".")
                setattr(net.get_submodule(parent), child, wrapped)
            else:
                net = wrapped
    for d in inserted:
        d.train()
    return net


def guide_config(spec: GuideLike) -> dict | None:
    """Describe a guide specification as plain data (``None`` if it cannot be).

    Example::

        >>> guide_config(MeanFieldNormal(1e-3))
        {'type': 'MeanFieldNormal', 'config': {'init_scale': 0.001, 'init_loc': 'net'}}
    """
    import pyro.infer.autoguide as autoguides

    if spec is None:
        spec = MeanFieldNormal()
    name = spec.__name__ if isinstance(spec, type) else None
    if name is not None and getattr(autoguides, name, None) is spec:
        return {"type": "autoguide", "config": {"name": name}}
    cfg = spec.config() if hasattr(spec, "config") else None
    return None if cfg is None else {"type": type(spec).__name__, "config": cfg}


def guide_from_config(cfg: Mapping) -> GuideLike:
    """Rebuild a guide specification from :func:`guide_config`'s output (no code is run).

    :raises ValueError: for an unknown guide type.
    """
    import pyro.infer.autoguide as autoguides

    kind, args = cfg.get("type"), dict(cfg.get("config", {}))
    if kind == "autoguide":
        cls = getattr(autoguides, str(args.get("name")), None)
        if not (isinstance(cls, type) and issubclass(cls, AutoGuide)):
            raise ValueError(
                f"Expected a pyro.infer.autoguide class, but got {args.get('name')!r}."
            )
        return cls
    builders = {c.__name__: c for c in (MeanFieldNormal, BernoulliDropout, ConcreteDropout)}
    if kind not in builders:
        raise ValueError(f"Expected a guide type among {sorted(builders)}, but got {kind!r}.")
    return builders[kind](**args)
