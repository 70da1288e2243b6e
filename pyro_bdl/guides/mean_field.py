"""The mean-field Gaussian guide: :class:`AutoMeanFieldNormal`, its trace-free sampler and the
:class:`MeanFieldNormal` builder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, cast

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution, constraints
from pyro.distributions.transforms import biject_to
from pyro.infer.autoguide.initialization import InitMessenger, init_to_median, init_to_sample
from pyro.infer.autoguide.utils import deep_setattr
from pyro.nn import PyroModule, PyroParam
from torch import nn

from .._checks import check_float
from ..nn import init_to_net, is_real_support
from .base import (
    FACTOR_KEY,
    FactorisedGuide,
    GuideBuilder,
    GuideModel,
    PriorParts,
    deep_getattr,
    flat_entries,
    normal_prior_parts,
    uniform_value,
)
from .handlers import LinearOutputNoise
from .hyper import constrained_sites_sampler

__all__ = ["AutoMeanFieldNormal", "MeanFieldNormal"]

_MF_ESTIMATORS = ("sample", "local_reparameterization", "flipout")


class AutoMeanFieldNormal(FactorisedGuide):
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
    _site_infer = {FACTOR_KEY: True}

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
        self, model: GuideModel, training: bool = True
    ) -> contextlib.AbstractContextManager:
        """The handler ``BNN.fit`` runs under: local reparameterization, flipout, or nothing.

        Prediction (``training=False``) always draws whole weight matrices, so predictive
        draws are functions, not per-example noise.
        """
        if self.estimator == "sample" or not training:
            return contextlib.nullcontext()
        hyper = getattr(model, "hyper_site_names", None)  # a hierarchical prior's
        if hyper:
            raise ValueError(
                f"Expected a prior without hyper-sites for estimator={self.estimator!r}, but the "
                f"prior samples {hyper}: its weights' KL depends on them (local "
                "reparameterization and flipout need a fixed prior). Use estimator='sample'."
            )
        sites: dict[str, nn.Module] = {}
        params = dict(model.net.named_parameters())
        priors = model.site_priors()
        for n in model.random_names:
            owner = n.rpartition(".")[0]
            module = model.net.get_submodule(owner) if owner else model.net
            if type(module) is nn.Linear and n.endswith("weight"):
                sites[model.site_name(n)] = module
                prior = priors[model.site_name(n)]
                if self.estimator == "local_reparameterization" and (
                    normal_prior_parts(prior, params[n].shape) is None
                ):
                    raise ValueError(
                        "Expected a Gaussian prior on the weights for local reparameterization "
                        f"(its KL must be closed form: no weights are drawn), but {n!r} has "
                        f"{type(prior).__name__}. Use estimator='flipout' or 'sample'."
                    )
        if not sites:
            raise ValueError(
                f"Expected at least one random nn.Linear weight for estimator="
                f"{self.estimator!r}, but the random parameters are {model.random_names}. Use "
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

    def trace_free_sampler(
        self, priors: Mapping[str, Any] | None, model: GuideModel | None = None
    ) -> Any:
        """A sampler that draws every site and the closed-form KL without Pyro, or ``None``.

        It draws exactly what :meth:`forward` draws (same random stream, also under a particle
        plate) and returns the KL summed over sites, so ``BNN.fit`` can compute the ELBO estimate
        of :func:`~pyro_bdl.infer.elbo_terms` without tracing. ``None`` when a site has
        constrained support or a prior that is not Gaussian (the traced step is used then).

        :param priors: ``{site name: prior distribution}`` (event shape = the site's shape), or
            ``None`` for a sampler that only draws (``with_kl=False``), as prediction needs.
        :param model: the model (its ``nn.Linear`` layers, for ``estimator=
            "local_reparameterization"`` / ``"flipout"``: the sampler then also gives
            ``layer_fns``, the per-example output noise the traced estimate draws with
            :class:`LinearOutputNoise`, from the same random calls; one particle at a time).
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
            >>> sampler = bnn.guide.trace_free_sampler(None, bnn.bayesian_model)
            >>> draws, _ = sampler((10,), with_kl=False)
            >>> draws["0.weight"].shape
            torch.Size([10, 4, 1])
        """
        if self.prototype_trace is None:
            return None
        if any(t is not None for t in self._transforms.values()):  # hyper-sites: guides/hyper.py
            if priors is not None and self.estimator != "sample":
                return None
            return constrained_sites_sampler(self, self._transforms, priors, _MeanFieldSampler)
        if priors is None:  # draws only (prediction: whole weight draws whatever the estimator)
            return _MeanFieldSampler(self, {name: None for name in self._transforms})
        if set(priors) != set(self._transforms):
            return None
        parts = {}
        for name in self._transforms:
            part = normal_prior_parts(priors[name], deep_getattr(self.locs, name).shape)
            if part is None:
                return None
            parts[name] = part
        if self.estimator == "sample":
            return _MeanFieldSampler(self, parts)
        if model is None:
            return None
        try:  # the sites local reparameterization / flipout act on (refused ones: traced)
            handler = self.estimator_context(model, True)
        except ValueError:
            return None
        return _OutputNoiseSampler(
            self, parts, cast(LinearOutputNoise, handler).sites, self.estimator == "flipout"
        )

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


class _MeanFieldSampler:
    r"""Trace-free draws and closed-form KL of an :class:`AutoMeanFieldNormal` (see ``__call__``).

    All sites are handled as one flat vector: the draws consume the random stream site by site,
    exactly as the guide's ``Normal.rsample`` calls do, and the KL to a Gaussian prior
    :math:`\sum \log s_0 - \log s + (s^2 + (m - m_0)^2) / (2 s_0^2) - 1/2` is one reduction.
    """

    def __init__(self, guide: AutoMeanFieldNormal, parts: Mapping[str, PriorParts | None]) -> None:
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
        prior_scale = torch.cat([prior[n][1].reshape(-1) for n in self.names])
        # learned prior scales (empirical Bayes) keep their graph: the KL's gradient reaches them
        learned = prior_scale.requires_grad and torch.is_grad_enabled()
        prior_scale = prior_scale if learned else prior_scale.detach()
        self.prior_loc = None if bool((prior_loc == 0).all()) else prior_loc.detach()
        uniform = None if learned else uniform_value(prior_scale)
        self.inv_two_var: float | torch.Tensor = (
            float(0.5 / prior_scale[0] ** 2) if uniform is not None else 0.5 / prior_scale**2
        )
        log_scales = prior_scale.log().sum()
        self.const: float | torch.Tensor = (
            log_scales if learned else float(log_scales)
        ) - 0.5 * prior_scale.numel()

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
        loc = flat_entries(self.locs)
        scale = self.transform(flat_entries(self.rhos))
        # the noise site by site into one buffer (the same numbers as a normal_ per site)
        eps = torch.empty(shape + (loc.shape[-1],), dtype=like.dtype, device=like.device)
        for part in eps.split(self.sizes, dim=-1):
            if shape:
                part.copy_(torch.empty(part.shape, dtype=like.dtype, device=like.device).normal_())
            else:
                part.normal_()
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
        if isinstance(self.inv_two_var, float):  # sum(s^2 + m^2) / (2 s0^2): two dot products
            quad = (torch.dot(scale, scale) + torch.dot(centred, centred)) * self.inv_two_var
        else:
            quad = ((scale.square() + centred.square()) * self.inv_two_var).sum()
        return draws, quad - scale.log().sum() + self.const

    #: no per-example noise
    input_fns = None


class _OutputNoiseSampler(_MeanFieldSampler):
    r"""Trace-free local reparameterization or flipout (what :class:`LinearOutputNoise` does
    under Pyro, from the same random calls in the same order, for one particle).

    The weight draws are the guide's (local reparameterization: the means of the ``nn.Linear``
    weights, no noise drawn for them), the KL the closed form of :class:`_MeanFieldSampler`, and
    ``layer_fns`` compute the noisy outputs of the ``nn.Linear`` layers.
    """

    def __init__(
        self,
        guide: AutoMeanFieldNormal,
        parts: Mapping[str, PriorParts | None],
        sites: Mapping[str, nn.Module],
        flipout: bool,
    ) -> None:
        super().__init__(guide, parts)
        self.flipout = flipout
        index = {n: i for i, n in enumerate(self.names)}
        self._index = {module: index[name] for name, module in sites.items()}
        self._mean_only = set() if flipout else set(self._index.values())
        #: ``{nn.Linear: fn(module, x, weight, bias, output) -> noisy output}``
        self.layer_fns = dict.fromkeys(self._index, self._layer)
        self._parts: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(
        self, sample_shape: tuple[int, ...] = (), with_kl: bool = True
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """One draw (``sample_shape=()``) and the KL; ``with_kl=False``: whole weights."""
        if not with_kl:
            return super().__call__(sample_shape, with_kl)
        if tuple(sample_shape):
            raise ValueError(
                "Expected one particle (sample_shape=()) for per-example output noise, but got "
                f"sample_shape {tuple(sample_shape)}."
            )
        loc = flat_entries(self.locs)
        scale = self.transform(flat_entries(self.rhos))
        self._parts = [
            (m.view(s), r.view(s))
            for m, r, s in zip(
                loc.split(self.sizes), scale.split(self.sizes), self.shapes, strict=True
            )
        ]
        draws = {}
        for i, (name, (m, r)) in enumerate(zip(self.names, self._parts, strict=True)):
            if i in self._mean_only:  # MeanOnly: the mean, no random numbers
                draws[name] = m
            else:  # as Normal.rsample: loc + eps * scale
                draws[name] = m + torch.empty(m.shape, dtype=m.dtype, device=m.device).normal_() * r
        centred = loc if self.prior_loc is None else loc - self.prior_loc
        quad = scale.square() + centred.square()
        quad = (
            quad.sum() * self.inv_two_var
            if isinstance(self.inv_two_var, float)
            else (quad * self.inv_two_var).sum()
        )
        return draws, quad - scale.log().sum() + self.const

    def _layer(
        self,
        module: nn.Module,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        output: torch.Tensor | None,
    ) -> torch.Tensor:
        """The layer's output with the noise :meth:`LinearOutputNoise._hook` adds."""
        loc, scale = self._parts[self._index[module]]
        if not self.flipout:
            out = F.linear(x, weight, bias) if output is None else output
            var = F.linear(x.square(), scale.square())
            std = var.clamp_min(torch.finfo(var.dtype).tiny).sqrt()
            return out + std * torch.randn_like(out)
        delta = weight - loc
        signs_in = torch.empty_like(x).bernoulli_(0.5).mul_(2).sub_(1)
        shape = x.shape[:-1] + (loc.shape[0],)
        signs_out = x.new_empty(shape).bernoulli_(0.5).mul_(2).sub_(1)
        return F.linear(x, loc, bias) + F.linear(x * signs_in, delta) * signs_out


_INIT_LOCS: dict[str, Callable[..., Any]] = {
    "net": init_to_net,
    "median": init_to_median,
    "sample": init_to_sample,
}


class MeanFieldNormal(GuideBuilder):
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
