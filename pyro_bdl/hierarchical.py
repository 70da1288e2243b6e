r"""Hierarchical weight priors: priors with *hyper-sites* sampled once per draw, before the weights.

A :class:`HierarchicalPrior` declares latent scales (the hyper-sites) and gives each weight the
prior :math:`W \mid h \sim \mathcal N(0, s(h)^2)` elementwise, where :math:`s(h)` is a scale
built from the hyper-site values :math:`h`. :class:`~pyro_bdl.model.BayesianModel` samples
every hyper-site first (names below, prefixed by the model's ``prefix``), then the weights:

* **non-centred** (default, ``centred=False``): the sample site is ``"{param}_z"``
  (e.g. ``"0.weight_z"``), :math:`z \sim \mathcal N(0, 1)` elementwise, and the weight
  :math:`W = z \cdot s(h)` is the deterministic site ``"{param}"`` (``"0.weight"``);
* **centred** (``centred=True``): the sample site ``"{param}"`` is :math:`W \sim
  \mathcal N(0, s(h)^2)` directly.

Both are the same model (the densities differ by the Jacobian :math:`\prod s(h)` of
:math:`z \mapsto W`); the non-centred one removes the funnel between a scale and its weights
that makes NUTS diverge and mean-field VI collapse.

Hyper-site names (``{layer}`` is the owning module's path in ``named_parameters()``,
e.g. ``"0"``; a top-level parameter has none, and the name is then just the suffix):

=====================  ============================================  =========================
prior                  site                                          shape
=====================  ============================================  =========================
LayerScalePrior        ``"{layer}.scale"`` (``"{layer}.variance"``   ``()`` per layer, or
                       with ``hyperprior="inverse_gamma"``)           ``(out,)`` per unit
ARDPrior               ``"{layer}.input_scale"``                      ``(in_features,)``
HorseshoePrior         ``"global_scale"``, ``"{layer}.local_scale"``, ``()``, weight shape or
                       ``"slab_variance"`` (regularised only)         ``(in,)``, ``()``
=====================  ============================================  =========================

Guides and estimators: :class:`~pyro_bdl.guides.MeanFieldNormal` covers the hyper-sites with
log-normal factors (a Normal on the unconstrained value), on the trace-free path in the
non-centred parameterisation; the centred one is fitted with the traced estimator
(``estimator="auto"`` picks it). ``MCMC(NUTS(bnn.model))`` runs on both. The dropout guides
refuse hierarchical priors; Laplace and SG-MCMC need a fixed prior over the weights and refuse
them too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, cast

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import TorchDistributionMixin
from pyro.poutine.runtime import InferDict
from torch.distributions import Distribution

from .nn import INIT_KEY
from .priors import Include, Prior

__all__ = [
    "HYPER_KEY",
    "HierarchicalPrior",
    "LayerScalePrior",
    "ARDPrior",
    "HorseshoePrior",
    "noncentred_site",
]

#: ``infer`` key marking a hyper-site of a :class:`HierarchicalPrior` (guides read it).
HYPER_KEY = "pyro_bdl_hyper"

HYPERPRIORS = ("half_cauchy", "half_normal", "inverse_gamma")


def noncentred_site(site: str) -> str:
    """Name of the standard-normal sample site behind weight site ``site`` (non-centred).

    Example::

        >>> noncentred_site("0.weight")
        '0.weight_z'
    """
    return f"{site}_z"


def _layer(name: str) -> str:
    return name.rpartition(".")[0]


def _hyper_name(layer: str, suffix: str) -> str:
    return f"{layer}.{suffix}" if layer else suffix


def _expand(d: Distribution, shape: tuple[int, ...]) -> Distribution:
    return d.expand(torch.Size(shape)).to_event(len(shape)) if shape else d


def _positive(what: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"Expected {what} to be a positive number, but got {value!r}.")
    if not math.isfinite(value):
        raise ValueError(f"Expected {what} to be finite, but got {value!r}.")
    return float(value)


def _scale_hyperprior(
    kind: str, scale: float, like: torch.Tensor, shape: tuple[int, ...]
) -> Distribution:
    """Half-Cauchy or half-normal of ``scale`` over a positive scale, event shape ``shape``."""
    s = torch.tensor(scale, dtype=like.dtype, device=like.device)
    base = dist.HalfCauchy(s) if kind == "half_cauchy" else dist.HalfNormal(s)
    return _expand(base, shape)


def _trailing(s: torch.Tensor, event: int, param_dim: int, dims: tuple[int, ...]) -> torch.Tensor:
    """Place a scale with ``event`` trailing dims at ``dims`` of a parameter of ``param_dim``
    dims (leading sample dims kept), as a tensor broadcastable to ``lead + param.shape``."""
    lead = s.shape[: s.dim() - event]
    view = [1] * param_dim
    for k, d in enumerate(dims):
        view[d] = s.shape[s.dim() - event + k]
    return s.reshape(tuple(lead) + tuple(view))


class HierarchicalPrior(Prior):
    r"""Base of the priors with hyper-sites: ``W | h ~ N(0, s(h)^2)`` elementwise.

    Subclasses implement :meth:`make_hyper_dists` (the hyper-sites and their priors, independent
    of each other) and :meth:`weight_scale` (:math:`s(h)` of one parameter).

    :param include: predicate ``(name, param) -> bool`` choosing the random parameters.
    :param centred: ``False`` (default): sample :math:`z \sim \mathcal N(0, 1)` as site
        ``"{param}_z"`` and set ``W = z * s(h)`` (deterministic site ``"{param}"``);
        ``True``: sample ``W ~ N(0, s(h)^2)`` as site ``"{param}"``.

    Example::

        >>> import torch
        >>> from pyro_bdl.hierarchical import LayerScalePrior
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        >>> prior = LayerScalePrior()
        >>> list(prior.hyper_dists(dict(prior.random_parameters(net))))
        ['0.scale', '2.scale']
    """

    def __init__(self, include: Include | None = None, *, centred: bool = False) -> None:
        super().__init__(include)
        if not isinstance(centred, bool):
            raise TypeError(f"Expected centred to be True or False, but got {centred!r}.")
        self.centred = centred

    def hyper_dists(self, params: Mapping[str, torch.Tensor]) -> dict[str, Distribution]:
        """``{hyper-site name (no model prefix): prior}``, in sampling order.

        Built by :meth:`make_hyper_dists` once per parameter layout (names, shapes, dtype,
        device) and reused: every step of a fit reads them.

        :param params: the random parameters by name (their shapes, dtype and device).
        :return: each distribution's event shape is the site's shape, its support positive.
        """
        key = tuple((n, tuple(p.shape), p.dtype, p.device) for n, p in params.items())
        cache = self.__dict__.setdefault("_hyper_cache", {})
        if key not in cache:
            cache.clear()
            cache[key] = self.make_hyper_dists(params)
        return dict(cache[key])

    def make_hyper_dists(self, params: Mapping[str, torch.Tensor]) -> dict[str, Distribution]:
        """Build :meth:`hyper_dists` (what a subclass implements)."""
        raise NotImplementedError

    def weight_scale(
        self, name: str, param: torch.Tensor, hypers: Mapping[str, torch.Tensor]
    ) -> torch.Tensor | float:
        """:math:`s(h)` of parameter ``name``: broadcastable to ``lead + param.shape``.

        :param hypers: ``{hyper-site name: value}``, each of shape ``lead + site shape``
            (``lead``: sample or plate dims, the same for every site).
        """
        raise NotImplementedError

    def prior_dist(self, name: str, param: torch.Tensor) -> Distribution:
        """Refused: a hierarchical prior has no fixed distribution of one weight.

        :raises TypeError: always, naming what to use.
        """
        raise TypeError(
            f"Expected a prior with a fixed distribution for {name!r}, but "
            f"{type(self).__name__} is hierarchical (its weights' prior depends on hyper-sites "
            "sampled by BayesianModel). Use it through BNN/BayesianModel with MeanFieldNormal "
            "or MCMC(NUTS(bnn.model)); Laplace, SG-MCMC and the dropout guides need a "
            "non-hierarchical prior such as IIDPrior."
        )

    def sample_weights(
        self,
        params: Mapping[str, torch.Tensor],
        site_name: Callable[[str], str],
    ) -> dict[str, torch.Tensor]:
        """Sample the hyper-sites, then the weights, as Pyro sites (``BayesianModel`` runs this).

        :param params: the random parameters by name, in network order.
        :param site_name: ``param name -> site name`` (the model's prefix).
        :return: ``{param name: W}``, each of shape ``lead + param.shape``.
        """
        hypers = {}
        for h, d in self.hyper_dists(params).items():
            hd = cast(TorchDistributionMixin, d)
            hypers[h] = pyro.sample(site_name(h), hd, infer=cast(InferDict, {HYPER_KEY: True}))
        weights = {}
        for n, p in params.items():
            s = self.weight_scale(n, p, hypers)
            site = site_name(n)
            if self.centred:
                d = dist.Normal(torch.zeros_like(p), s).to_event(p.dim())
                init = cast(InferDict, {INIT_KEY: p.detach()})
                weights[n] = pyro.sample(site, d, infer=init)
                continue
            std = dist.Normal(torch.zeros_like(p), torch.ones_like(p)).to_event(p.dim())
            z = pyro.sample(noncentred_site(site), std, infer=_z_init(p))
            weights[n] = pyro.deterministic(site, z * s, event_dim=p.dim())
        return weights

    def weights_from_latents(
        self,
        params: Mapping[str, torch.Tensor],
        sites: Mapping[str, torch.Tensor],
        site_name: Callable[[str], str],
    ) -> dict[str, torch.Tensor]:
        """``{param name: W}`` from draws of the latent sites (hyper-sites and ``z`` or ``W``).

        :param params: the random parameters by name (shapes).
        :param sites: ``{site name: (S, *site shape)}``.
        :param site_name: ``param name -> site name``.
        :return: ``{param name: (S, *param.shape)}``.
        """
        if self.centred:
            return {n: sites[site_name(n)] for n in params}
        hypers = {h: sites[site_name(h)] for h in self.hyper_dists(params)}
        return {
            n: sites[site_name(noncentred_site(n))] * self.weight_scale(n, p, hypers)
            for n, p in params.items()
        }

    def latent_shapes(self, params: Mapping[str, torch.Tensor]) -> dict[str, torch.Size]:
        """``{site name without prefix: shape}`` of the latent sites, in sampling order.

        Example::

            >>> import torch
            >>> from pyro_bdl.hierarchical import ARDPrior
            >>> ARDPrior().latent_shapes({"weight": torch.zeros(1, 20), "bias": torch.zeros(1)})
            {'input_scale': torch.Size([20]), 'weight_z': torch.Size([1, 20]), 'bias_z': torch.Size([1])}
        """  # noqa: E501
        out = {h: d.event_shape for h, d in self.hyper_dists(params).items()}
        for n, p in params.items():
            out[n if self.centred else noncentred_site(n)] = p.shape
        return out

    def config(self) -> dict | None:
        cfg = self._config()
        if self.centred:
            cfg["centred"] = True
        return cfg

    def _config(self) -> dict[str, Any]:
        raise NotImplementedError


def _z_init(param: torch.Tensor) -> InferDict:
    """``infer`` of a non-centred site: ``z`` starts at the network's weights (so ``W`` starts
    at ``W_net * s(h_0)``: the network's weights where the initial scale is one, near zero
    under a horseshoe, whose ``W_net / s`` start would sit far in the tails of ``N(0, 1)``)."""
    return cast(InferDict, {INIT_KEY: param.detach()})


class _ScaleHyperprior:
    """The hyperprior arguments shared by :class:`LayerScalePrior` and :class:`ARDPrior`."""

    def _set_hyperprior(
        self, hyperprior: str, scale: float, concentration: float, rate: float
    ) -> None:
        if hyperprior not in HYPERPRIORS:
            raise ValueError(
                f"Expected hyperprior in {HYPERPRIORS}, but got {hyperprior!r}; e.g. "
                "hyperprior='half_cauchy'."
            )
        self.hyperprior = hyperprior
        self.scale = _positive("scale", scale)
        self.concentration = _positive("concentration", concentration)
        self.rate = _positive("rate", rate)

    def _hyper(self, like: torch.Tensor, shape: tuple[int, ...]) -> Distribution:
        if self.hyperprior == "inverse_gamma":
            a = torch.tensor(self.concentration, dtype=like.dtype, device=like.device)
            b = torch.tensor(self.rate, dtype=like.dtype, device=like.device)
            return _expand(dist.InverseGamma(a, b), shape)
        return _scale_hyperprior(self.hyperprior, self.scale, like, shape)

    def _suffix(self, base: str) -> str:
        return "variance" if self.hyperprior == "inverse_gamma" and base == "scale" else base

    def _to_scale(self, value: torch.Tensor) -> torch.Tensor:
        return value.sqrt() if self.hyperprior == "inverse_gamma" else value

    def _hyper_config(self) -> dict[str, Any]:
        if self.hyperprior == "inverse_gamma":
            return {
                "hyperprior": self.hyperprior,
                "concentration": self.concentration,
                "rate": self.rate,
            }
        return {"hyperprior": self.hyperprior, "scale": self.scale}


class LayerScalePrior(_ScaleHyperprior, HierarchicalPrior):
    r"""A learned prior scale per layer (or per output unit): ``W ~ N(0, s^2)``, ``s ~ p(s)``.

    Every random parameter of one module (its weight and bias) shares that module's scale.

    :param hyperprior: ``"half_cauchy"`` (default) or ``"half_normal"`` of ``scale`` on
        :math:`s` (site ``"{layer}.scale"``), or ``"inverse_gamma"`` of ``(concentration,
        rate)`` on the variance :math:`s^2` (site ``"{layer}.variance"``).
    :param scale: scale of the half-Cauchy / half-normal hyperprior (> 0).
    :param concentration: inverse-gamma shape (> 0).
    :param rate: inverse-gamma rate (> 0).
    :param per: ``"layer"`` (one scale, shape ``()``) or ``"unit"`` (one per output unit, shape
        ``(out,)``: row ``i`` of the weight and entry ``i`` of the bias).
    :param include: which parameters are random (default: all).
    :param centred: see :class:`HierarchicalPrior`.

    Example::

        >>> import torch
        >>> from pyro_bdl.hierarchical import LayerScalePrior
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        >>> prior = LayerScalePrior(per="unit")
        >>> {k: tuple(v) for k, v in prior.latent_shapes(dict(net.named_parameters())).items()}
        ... # doctest: +NORMALIZE_WHITESPACE
        {'0.scale': (8,), '2.scale': (1,), '0.weight_z': (8, 3), '0.bias_z': (8,),
         '2.weight_z': (1, 8), '2.bias_z': (1,)}
    """

    def __init__(
        self,
        hyperprior: str = "half_cauchy",
        scale: float = 1.0,
        *,
        concentration: float = 1.0,
        rate: float = 1.0,
        per: str = "layer",
        include: Include | None = None,
        centred: bool = False,
    ) -> None:
        super().__init__(include, centred=centred)
        self._set_hyperprior(hyperprior, scale, concentration, rate)
        if per not in ("layer", "unit"):
            raise ValueError(f"Expected per in ('layer', 'unit'), but got {per!r}.")
        self.per = per

    def _site(self, name: str) -> str:
        return _hyper_name(_layer(name), self._suffix("scale"))

    def make_hyper_dists(self, params: Mapping[str, torch.Tensor]) -> dict[str, Distribution]:
        out: dict[str, Distribution] = {}
        for n, p in params.items():
            site = self._site(n)
            if self.per == "unit" and p.dim() == 0:
                raise ValueError(
                    f"Expected parameters with an output dimension for per='unit', but {n!r} is "
                    "a scalar; use per='layer' or leave it out with include=."
                )
            shape = (p.shape[0],) if self.per == "unit" else ()
            if site in out and out[site].event_shape != shape:
                raise ValueError(
                    f"Expected the parameters of layer {_layer(n)!r} to share their output "
                    f"units, but {n!r} has shape {tuple(p.shape)}; use per='layer'."
                )
            out.setdefault(site, self._hyper(p, shape))
        return out

    def weight_scale(
        self, name: str, param: torch.Tensor, hypers: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        s = self._to_scale(hypers[self._site(name)])
        if self.per == "layer":
            return _trailing(s, 0, param.dim(), ())
        return _trailing(s, 1, param.dim(), (0,))

    def _config(self) -> dict[str, Any]:
        cfg = self._hyper_config()
        if self.per != "layer":
            cfg["per"] = self.per
        return cfg

    def __repr__(self) -> str:
        return f"LayerScalePrior({self.hyperprior!r}, per={self.per!r}, centred={self.centred})"


class ARDPrior(_ScaleHyperprior, HierarchicalPrior):
    r"""Automatic relevance determination: one learned scale per input feature of the first layer.

    Column ``j`` of the first weight matrix (the first random parameter with two or more
    dimensions, or the parameter named ``param``) has prior :math:`\mathcal N(0, s_j^2)`,
    :math:`s_j \sim` ``hyperprior`` (site ``"{layer}.input_scale"``, shape ``(in,)``; with
    ``"inverse_gamma"`` the site ``"{layer}.input_variance"`` holds :math:`s_j^2`). Every other
    random parameter has the fixed prior :math:`\mathcal N(0, \text{other\_scale}^2)`.

    The default half-Cauchy(1) puts mass near zero, so an irrelevant input can be switched
    off; an inverse-gamma(1, 1) variance has almost none below 0.1 and cannot.

    :param hyperprior: ``"half_cauchy"`` (default), ``"half_normal"`` or ``"inverse_gamma"``.
    :param scale: scale of the half-Cauchy / half-normal hyperprior (> 0).
    :param concentration: inverse-gamma shape (> 0).
    :param rate: inverse-gamma rate (> 0).
    :param other_scale: scale of the fixed Normal prior of the other parameters (> 0).
    :param param: name of the weight with the input features (default: the first matrix).
    :param include: which parameters are random (default: all).
    :param centred: see :class:`HierarchicalPrior`.

    Example::

        >>> import torch
        >>> from pyro_bdl.hierarchical import ARDPrior
        >>> net = torch.nn.Linear(20, 1)
        >>> prior = ARDPrior()
        >>> {k: tuple(d.event_shape) for k, d in prior.hyper_dists(dict(net.named_parameters())).items()}
        {'input_scale': (20,)}
    """  # noqa: E501

    def __init__(
        self,
        hyperprior: str = "half_cauchy",
        scale: float = 1.0,
        *,
        concentration: float = 1.0,
        rate: float = 1.0,
        other_scale: float = 1.0,
        param: str | None = None,
        include: Include | None = None,
        centred: bool = False,
    ) -> None:
        super().__init__(include, centred=centred)
        self._set_hyperprior(hyperprior, scale, concentration, rate)
        self.other_scale = _positive("other_scale", other_scale)
        if param is not None and not isinstance(param, str):
            raise TypeError(f"Expected param to be a parameter name or None, but got {param!r}.")
        self.param = param

    def _target(self, params: Mapping[str, torch.Tensor]) -> str:
        if self.param is not None:
            p = params.get(self.param)
            if p is None or p.dim() < 2:
                raise ValueError(
                    f"Expected param to name a random weight matrix among {list(params)}, but "
                    f"got {self.param!r}{'' if p is None else f' of shape {tuple(p.shape)}'}."
                )
            return self.param
        for n, p in params.items():
            if p.dim() >= 2:
                return n
        raise ValueError(
            "Expected a random weight matrix (>= 2 dims) for ARD, but the random parameters "
            f"are {[(n, tuple(p.shape)) for n, p in params.items()]}; make one random with "
            "include=, or use LayerScalePrior."
        )

    def _site(self, name: str) -> str:
        return _hyper_name(_layer(name), "input_" + self._suffix("scale"))

    def make_hyper_dists(self, params: Mapping[str, torch.Tensor]) -> dict[str, Distribution]:
        target = self._target(params)
        p = params[target]
        return {self._site(target): self._hyper(p, (p.shape[1],))}

    def weight_scale(
        self, name: str, param: torch.Tensor, hypers: Mapping[str, torch.Tensor]
    ) -> torch.Tensor | float:
        site = self._site(name)
        if site not in hypers or param.dim() < 2:
            return self.other_scale
        return _trailing(self._to_scale(hypers[site]), 1, param.dim(), (1,))

    def _config(self) -> dict[str, Any]:
        cfg = self._hyper_config()
        if self.other_scale != 1.0:
            cfg["other_scale"] = self.other_scale
        if self.param is not None:
            cfg["param"] = self.param
        return cfg

    def __repr__(self) -> str:
        return f"ARDPrior({self.hyperprior!r}, centred={self.centred})"


class HorseshoePrior(HierarchicalPrior):
    r"""The regularised horseshoe (Piironen & Vehtari 2017) on every random weight matrix.

    .. math::

        \tau \sim \mathcal C^+(0, \tau_0),\quad \lambda \sim \mathcal C^+(0, 1),\quad
        c^2 \sim \text{Inv-Gamma}\big(\tfrac{\nu}{2}, \tfrac{\nu s^2}{2}\big),\quad
        W \sim \mathcal N\big(0, \tilde\lambda^2 \tau^2\big),\
        \tilde\lambda = \frac{c \lambda}{\sqrt{c^2 + \tau^2\lambda^2}}

    so the effective scale is :math:`\tau\lambda c / \sqrt{c^2 + \tau^2\lambda^2}` (with
    ``regularised=False``: :math:`\tau\lambda`, the plain horseshoe). Sites: ``"global_scale"``
    (:math:`\tau`, shape ``()``, shared by all layers), ``"{layer}.local_scale"``
    (:math:`\lambda`: the weight's shape for ``local="weight"``, ``(in,)`` for
    ``local="input"``, one per input feature shared by all output units) and
    ``"slab_variance"`` (:math:`c^2`, shape ``()``, regularised only). Local scales per
    *output* unit are not offered: on a ``Linear(20, 1)`` they would shrink nothing. Parameters
    with fewer than two dimensions (biases) get the fixed prior ``N(0, other_scale^2)``.

    Piironen & Vehtari's choice for :math:`p_0` relevant of :math:`D` inputs, :math:`N` data,
    noise :math:`\sigma`: :math:`\tau_0 = p_0 / (D - p_0) \cdot \sigma / \sqrt N`.

    :param global_scale: :math:`\tau_0` (> 0).
    :param slab_scale: :math:`s` (> 0), the scale weights far from zero are regularised to.
    :param slab_df: :math:`\nu` (> 0).
    :param local: ``"weight"`` (default) or ``"input"``.
    :param regularised: include the slab (default ``True``).
    :param other_scale: scale of the fixed Normal prior of the other parameters (> 0).
    :param include: which parameters are random (default: all).
    :param centred: see :class:`HierarchicalPrior`.

    Example::

        >>> import torch
        >>> from pyro_bdl.hierarchical import HorseshoePrior
        >>> prior = HorseshoePrior(global_scale=0.01)
        >>> params = {"weight": torch.zeros(1, 20), "bias": torch.zeros(1)}
        >>> {k: tuple(d.event_shape) for k, d in prior.hyper_dists(params).items()}
        {'global_scale': (), 'local_scale': (1, 20), 'slab_variance': ()}
    """

    def __init__(
        self,
        global_scale: float = 1.0,
        slab_scale: float = 2.0,
        slab_df: float = 4.0,
        *,
        local: str = "weight",
        regularised: bool = True,
        other_scale: float = 1.0,
        include: Include | None = None,
        centred: bool = False,
    ) -> None:
        super().__init__(include, centred=centred)
        self.global_scale = _positive("global_scale", global_scale)
        self.slab_scale = _positive("slab_scale", slab_scale)
        self.slab_df = _positive("slab_df", slab_df)
        if local not in ("weight", "input"):
            raise ValueError(
                f"Expected local in ('weight', 'input'), but got {local!r}; per-output-unit local "
                "scales shrink nothing on a single output and are not offered."
            )
        if not isinstance(regularised, bool):
            raise TypeError(f"Expected regularised to be True or False, but got {regularised!r}.")
        self.local = local
        self.regularised = regularised
        self.other_scale = _positive("other_scale", other_scale)

    def make_hyper_dists(self, params: Mapping[str, torch.Tensor]) -> dict[str, Distribution]:
        matrices = {n: p for n, p in params.items() if p.dim() >= 2}
        if not matrices:
            raise ValueError(
                "Expected a random weight matrix (>= 2 dims) for the horseshoe, but the random "
                f"parameters are {[(n, tuple(p.shape)) for n, p in params.items()]}."
            )
        like = next(iter(matrices.values()))
        out = {"global_scale": _scale_hyperprior("half_cauchy", self.global_scale, like, ())}
        for n, p in matrices.items():
            shape = tuple(p.shape) if self.local == "weight" else (p.shape[-1],)
            out[_hyper_name(_layer(n), "local_scale")] = _scale_hyperprior(
                "half_cauchy", 1.0, p, shape
            )
        if self.regularised:
            nu = torch.tensor(self.slab_df, dtype=like.dtype, device=like.device)
            out["slab_variance"] = dist.InverseGamma(nu / 2, nu * self.slab_scale**2 / 2)
        return out

    def weight_scale(
        self, name: str, param: torch.Tensor, hypers: Mapping[str, torch.Tensor]
    ) -> torch.Tensor | float:
        site = _hyper_name(_layer(name), "local_scale")
        if param.dim() < 2 or site not in hypers:
            return self.other_scale
        lam = hypers[site]
        if self.local == "input":
            lam = _trailing(lam, 1, param.dim(), (param.dim() - 1,))
        tau = _trailing(hypers["global_scale"], 0, param.dim(), ())
        if not self.regularised:
            return tau * lam
        c2 = _trailing(hypers["slab_variance"], 0, param.dim(), ())
        tl2 = (tau * lam).square()
        return tau * lam * (c2 / (c2 + tl2)).sqrt()

    def _config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "global_scale": self.global_scale,
            "slab_scale": self.slab_scale,
            "slab_df": self.slab_df,
        }
        if self.local != "weight":
            cfg["local"] = self.local
        if not self.regularised:
            cfg["regularised"] = False
        if self.other_scale != 1.0:
            cfg["other_scale"] = self.other_scale
        return cfg

    def __repr__(self) -> str:
        return (
            f"HorseshoePrior(global_scale={self.global_scale}, regularised={self.regularised}, "
            f"local={self.local!r}, centred={self.centred})"
        )


def hierarchical_of(prior: Any) -> HierarchicalPrior | None:
    """The prior as a :class:`HierarchicalPrior`, or ``None`` for a prior without hyper-sites.

    Example::

        >>> import pyro.distributions as dist
        >>> from pyro_bdl.priors import IIDPrior
        >>> hierarchical_of(IIDPrior(dist.Normal(0.0, 1.0))) is None
        True
    """
    return prior if isinstance(prior, HierarchicalPrior) else None
