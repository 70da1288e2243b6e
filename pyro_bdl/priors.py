"""Priors p(W) over the parameters of any ``torch.nn.Module``.

A prior is one method, :meth:`Prior.prior_dist`: the distribution of one named parameter. The base
class owns the rest: which parameters are random (one ``include`` predicate), expanding the
distribution to the parameter's shape, and moving it to the parameter's dtype and device.
A prior may also be given as a distribution, a ``{name: dist}`` dict (an entry for every
parameter, ``None`` for a deterministic one) or a callable ``(name, param) -> dist``;
:func:`as_prior` turns each form into a :class:`Prior`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any, cast

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.nn import PyroModule, PyroParam
from torch import nn
from torch.distributions import Distribution

from .distributions.config import distribution_config, distribution_from_config
from .nn import cast_distribution, fan_in_out, named_random_parameters
from .registry import Configurable, from_config

__all__ = [
    "Prior",
    "IIDPrior",
    "LayerwiseNormalPrior",
    "LearnedNormalPrior",
    "ScaleMixturePrior",
    "DictPrior",
    "CallablePrior",
    "as_prior",
    "PriorLike",
]

Include = Callable[[str, nn.Parameter], bool]


class Prior(Configurable):
    """Base class: a prior over the named parameters of a network.

    Subclasses implement :meth:`prior_dist` only (a distribution whose batch shape is ``()`` or
    broadcasts to the parameter's shape); :meth:`site_dist` expands it to the parameter's shape,
    declares every dimension an event dimension and casts it to the parameter's dtype and device.

    :param include: predicate ``(name, param) -> bool`` choosing which parameters are random
        (default: all). Parameters it rejects stay deterministic and are learned as point estimates.

    Example (a Bayesian last layer, the rest point estimates)::

        >>> import pyro.distributions as dist
        >>> import torch
        >>> from pyro_bdl.priors import IIDPrior
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        >>> prior = IIDPrior(dist.Normal(0.0, 1.0), include=lambda name, p: name.startswith("2."))
        >>> [name for name, _ in prior.random_parameters(net)]
        ['2.weight', '2.bias']
    """

    config_kind = "prior"

    def __init__(self, include: Include | None = None) -> None:
        if include is not None and not callable(include):
            raise TypeError(
                f"Expected include to be a callable (name, param) -> bool, but got {include!r}."
            )
        self.include = include

    def prior_dist(self, name: str, param: torch.Tensor) -> Distribution:
        """The prior of one parameter, before expansion to ``param.shape``."""
        raise NotImplementedError

    def random_parameters(self, net: nn.Module) -> list[tuple[str, nn.Parameter]]:
        """``[(name, param), ...]`` of ``net`` that this prior makes random.

        :raises ValueError: if nothing is selected.
        """
        return named_random_parameters(net, self.include)

    def site_dist(self, name: str, param: torch.Tensor) -> Distribution:
        """The distribution of the sample site for ``param``: event shape ``param.shape``.

        :raises ValueError: if the prior's batch shape does not broadcast to ``param.shape``.
        """
        d = cast_distribution(self.prior_dist(name, param), param)
        if d.event_shape:
            if d.event_shape != param.shape:
                raise ValueError(
                    f"Expected the prior of {name!r} to have event shape () or "
                    f"{tuple(param.shape)}, but got event shape {tuple(d.event_shape)}."
                )
            return d
        try:
            d = d.expand(param.shape)
        except (RuntimeError, ValueError) as e:
            raise ValueError(
                f"Expected the prior of {name!r} to have a batch shape broadcastable to "
                f"{tuple(param.shape)}, but got batch shape {tuple(d.batch_shape)}."
            ) from e
        return d.to_event(param.dim()) if param.dim() else d

    def config(self) -> dict | None:
        """JSON-able constructor arguments, or ``None`` if this prior cannot be saved as data.

        ``BNN.save`` stores it; ``BNN.load`` rebuilds the prior from it without running code
        from the file. Priors built from arbitrary callables return ``None`` and must be passed
        to ``BNN.load`` again.
        """
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class IIDPrior(Prior):
    """The same distribution, independently, for every element of every selected parameter.

    :param distribution: a univariate distribution, e.g. ``dist.Normal(0., 1.)``.

    Example::

        >>> import pyro.distributions as dist
        >>> import torch
        >>> from pyro_bdl.priors import IIDPrior
        >>> prior = IIDPrior(dist.Normal(0.0, 1.0))
        >>> prior.site_dist("weight", torch.zeros(3, 2)).event_shape
        torch.Size([3, 2])
    """

    def __init__(self, distribution: Distribution, include: Include | None = None) -> None:
        super().__init__(include)
        if not isinstance(distribution, Distribution):
            raise TypeError(
                f"Expected a torch/pyro Distribution, e.g. dist.Normal(0., 1.), "
                f"but got {type(distribution).__name__}."
            )
        if distribution.event_shape or distribution.batch_shape:
            raise ValueError(
                "Expected a scalar distribution (batch and event shape ()), but got batch shape "
                f"{tuple(distribution.batch_shape)} and event shape "
                f"{tuple(distribution.event_shape)}; use a dict prior for per-parameter shapes."
            )
        self.distribution = distribution

    def prior_dist(self, name: str, param: torch.Tensor) -> Distribution:
        return self.distribution

    def config(self) -> dict | None:
        d = distribution_config(self.distribution)
        return None if d is None else {"distribution": d}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **context: Any) -> IIDPrior:
        """Rebuild from :meth:`config` (the distribution described as data)."""
        return cls(distribution_from_config(config["distribution"]), **context)

    def __repr__(self) -> str:
        return f"IIDPrior({self.distribution})"


class LayerwiseNormalPrior(Prior):
    r"""Zero-mean Normal prior whose scale follows the classic weight-initialisation rules.

    With ``fan_in`` and ``fan_out`` as in :func:`torch.nn.init` (a bias counts its own length for
    both):

    .. math::

        \sigma_{\text{radford}} = \frac{1}{\sqrt{\text{fan\_in}}},\quad
        \sigma_{\text{kaiming}} = \frac{\text{gain}}{\sqrt{\text{fan\_in}}},\quad
        \sigma_{\text{xavier}} = \text{gain}\sqrt{\frac{2}{\text{fan\_in} + \text{fan\_out}}}

    :param method: ``"kaiming"``, ``"xavier"`` or ``"radford"`` (Neal 1996).
    :param nonlinearity: passed to :func:`torch.nn.init.calculate_gain` (kaiming, xavier).

    Example::

        >>> import torch
        >>> from pyro_bdl.priors import LayerwiseNormalPrior
        >>> prior = LayerwiseNormalPrior("radford")
        >>> prior.prior_dist("0.weight", torch.zeros(50, 4)).scale
        tensor(0.5000)
    """

    methods = ("kaiming", "xavier", "radford")

    def __init__(
        self,
        method: str = "radford",
        nonlinearity: str = "relu",
        include: Include | None = None,
    ) -> None:
        super().__init__(include)
        if method not in self.methods:
            raise ValueError(f"Expected method in {self.methods}, but got {method!r}.")
        self.method = method
        self.nonlinearity = nonlinearity
        # calculate_gain's stubs list its names as a Literal; it checks the name itself at run
        # time (ValueError for an unknown one), so any str may be passed on
        self.gain = (
            nn.init.calculate_gain(nonlinearity)  # type: ignore[arg-type]
            if method != "radford"
            else 1.0
        )

    def config(self) -> dict | None:
        return {"method": self.method, "nonlinearity": self.nonlinearity}

    def prior_dist(self, name: str, param: torch.Tensor) -> Distribution:
        fan_in, fan_out = fan_in_out(param)
        if self.method == "xavier":
            std = self.gain * math.sqrt(2.0 / (fan_in + fan_out))
        else:
            std = self.gain / math.sqrt(fan_in)
        return dist.Normal(torch.zeros((), dtype=param.dtype), torch.tensor(std, dtype=param.dtype))

    def __repr__(self) -> str:
        return f"LayerwiseNormalPrior({self.method!r})"


class LearnedNormalPrior(PyroModule, Prior):
    r"""Zero-mean Normal prior whose scales are learned by maximising the ELBO (empirical Bayes).

    .. math::

        w \sim \mathcal N(0, s_{g(w)}^2), \qquad
        \hat s = \arg\max_s \; \max_q \; \mathrm{ELBO}(q, s)

    The scales :math:`s_g` are point estimates, not latent variables: type-II maximum likelihood
    (the evidence maximised over the prior), with the ELBO standing in for the log evidence (they
    coincide where the guide can represent the posterior exactly). ``BNN.fit`` trains them with
    the guide's parameters, on either ELBO estimator.

    One scale per group of weights, ``per``:

    * ``"network"``: one scale for every random parameter (group ``"network"``);
    * ``"layer"``: one per module owning parameters (weight and bias of an ``nn.Linear`` share
      it; the group is the module's name, e.g. ``"0"``; ``""`` for the network itself);
    * ``"parameter"``: one per parameter tensor (the group is its name, e.g. ``"0.weight"``).

    The scales live in one ``pyro.param`` of shape ``(G,)``, :attr:`groups` giving the order,
    with a positive constraint (stored as its logarithm). Its param-store name is
    ``"{owner}.prior_params.scale"``, ``owner`` the ``BNN``'s name (e.g.
    ``"BNN0.prior_params.scale"``; the ``BNN`` adopts the prior as its child module
    ``prior_params``, so its state dict, ``BNN.save`` and ``BNN.load`` carry
    ``"prior_params.scale_unconstrained"``); a prior used without a ``BNN`` is named
    ``"{name}.scale"``. The parameter is created, at ``init_scale``, when a model first selects
    its parameters (:meth:`random_parameters`): use one instance per network.

    :param init_scale: starting value of every scale (> 0).
    :param per: ``"network"``, ``"layer"`` or ``"parameter"``.
    :param include: predicate ``(name, param) -> bool`` choosing which parameters are random.
    :param name: param-store name of the prior when it is used without a ``BNN``.
    :raises ValueError: for ``init_scale <= 0`` or an unknown ``per``.

    Example::

        >>> import torch
        >>> from pyro_bdl.priors import LearnedNormalPrior
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        >>> prior = LearnedNormalPrior(init_scale=0.5, per="layer")
        >>> [name for name, _ in prior.random_parameters(net)]
        ['0.weight', '0.bias', '2.weight', '2.bias']
        >>> prior.groups, tuple(prior.scale.shape)  # one scale per layer: (G,)
        (['0', '2'], (2,))
        >>> prior.prior_dist("2.bias", net[2].bias).scale
        tensor(0.5000, grad_fn=<SelectBackward0>)
        >>> prior
        LearnedNormalPrior(per='layer', scales={'0': 0.5, '2': 0.5})
    """

    pers = ("network", "layer", "parameter")

    def __init__(
        self,
        init_scale: float = 1.0,
        per: str = "network",
        include: Include | None = None,
        *,
        name: str = "prior",
    ) -> None:
        PyroModule.__init__(self, name)
        Prior.__init__(self, include)
        if isinstance(init_scale, bool) or not isinstance(init_scale, (int, float)):
            raise TypeError(
                f"Expected init_scale to be a positive float, but got {type(init_scale).__name__}."
            )
        if not (math.isfinite(init_scale) and init_scale > 0):
            raise ValueError(
                f"Expected init_scale > 0 (a finite float, e.g. 1.0), but got {init_scale}."
            )
        if per not in self.pers:
            raise ValueError(
                f"Expected per in {self.pers} (which weights share a learned scale), but got "
                f"{per!r}."
            )
        self.init_scale, self.per = float(init_scale), per
        #: the group of each entry of :attr:`scale` (set by :meth:`random_parameters`)
        self.groups: list[str] = []
        self._index: dict[str, int] = {}

    def group(self, name: str) -> str:
        """The group (entry of :attr:`groups`) of the parameter ``name``.

        Example::

            >>> LearnedNormalPrior(per="layer").group("encoder.0.weight")
            'encoder.0'
        """
        if self.per == "network":
            return "network"
        return name.rpartition(".")[0] if self.per == "layer" else name

    def random_parameters(self, net: nn.Module) -> list[tuple[str, nn.Parameter]]:
        """The selected parameters; creates the learned scales (``(G,)``) on first use.

        :raises ValueError: if nothing is selected, or the prior already learns the scales of a
            network with other groups (use one prior per network).
        """
        chosen = super().random_parameters(net)
        groups = list(dict.fromkeys(self.group(n) for n, _ in chosen))
        if "scale" not in self._pyro_params:
            like = chosen[0][1]
            init = torch.full((len(groups),), self.init_scale, dtype=like.dtype, device=like.device)
            self.scale = PyroParam(init, constraints.positive)
            self.groups = groups
        elif groups != self.groups:
            raise ValueError(
                f"Expected the learned scales' groups {self.groups} (this prior already learns "
                f"them for another network), but this network has groups {groups}. Use one "
                "LearnedNormalPrior per network."
            )
        self._index = {n: groups.index(self.group(n)) for n, _ in chosen}
        return chosen

    def forward(self) -> torch.Tensor:
        """The current scales, shape ``(G,)``, through ``pyro.param`` (so that traced ELBOs and
        Pyro's optimisers see them)."""
        # PyroModule returns the PyroParam set in random_parameters as its constrained tensor
        return cast(torch.Tensor, self.scale)

    def prior_dist(self, name: str, param: torch.Tensor) -> Distribution:
        if name not in self._index:
            raise ValueError(
                f"Expected a parameter this prior selected ({sorted(self._index)}), but got "
                f"{name!r}: call prior.random_parameters(net) first (a BNN does)."
            )
        scale = self()[self._index[name]]
        return dist.Normal(torch.zeros((), dtype=scale.dtype, device=scale.device), scale)

    @property
    def scales(self) -> dict[str, float]:
        """``{group: current scale}`` (empty before :meth:`random_parameters`)."""
        if "scale" not in self._pyro_params:
            return {}
        values = cast(torch.Tensor, self.scale).detach().tolist()  # no pyro.param call
        return {g: round(v, 6) for g, v in zip(self.groups, values, strict=True)}

    def __copy__(self) -> LearnedNormalPrior:
        """A new prior with the same arguments and no learned scales yet (``as_prior`` copies a
        prior to narrow its ``include``)."""
        return type(self)(self.init_scale, self.per, self.include, name=self._pyro_name)

    def config(self) -> dict | None:
        return {"init_scale": self.init_scale, "per": self.per}

    def __repr__(self) -> str:
        if not self.groups:
            return f"LearnedNormalPrior(init_scale={self.init_scale}, per={self.per!r})"
        return f"LearnedNormalPrior(per={self.per!r}, scales={self.scales})"


class ScaleMixturePrior(Prior):
    r"""Blundell et al. (2015) scale mixture of two zero-mean Gaussians, i.i.d. over weights.

    .. math:: p(w) = \pi\,\mathcal N(w; 0, \sigma_1^2) + (1 - \pi)\,\mathcal N(w; 0, \sigma_2^2)

    There is no closed-form KL to a Gaussian guide: the ELBO estimates it by Monte Carlo.

    :param pi: mixture weight of the first component, in (0, 1).
    :param sigma1: scale of the first component (> 0).
    :param sigma2: scale of the second component (> 0).

    Example::

        >>> import math
        >>> import torch
        >>> from pyro_bdl.priors import ScaleMixturePrior
        >>> prior = ScaleMixturePrior(0.5, 1.0, math.exp(-6))
        >>> prior.site_dist("w", torch.zeros(3)).log_prob(torch.zeros(3)).shape
        torch.Size([])
    """

    def __init__(
        self, pi: float, sigma1: float, sigma2: float, include: Include | None = None
    ) -> None:
        super().__init__(include)
        if not 0.0 < pi < 1.0:
            raise ValueError(f"Expected 0 < pi < 1, but got pi={pi}.")
        if sigma1 <= 0 or sigma2 <= 0:
            raise ValueError(f"Expected sigma1, sigma2 > 0, but got {sigma1}, {sigma2}.")
        self.pi, self.sigma1, self.sigma2 = float(pi), float(sigma1), float(sigma2)

    def config(self) -> dict | None:
        return {"pi": self.pi, "sigma1": self.sigma1, "sigma2": self.sigma2}

    def prior_dist(self, name: str, param: torch.Tensor) -> Distribution:
        dtype, device = param.dtype, param.device
        mix = dist.Categorical(torch.tensor([self.pi, 1.0 - self.pi], dtype=dtype, device=device))
        comp = dist.Normal(
            torch.zeros(2, dtype=dtype, device=device),
            torch.tensor([self.sigma1, self.sigma2], dtype=dtype, device=device),
        )
        return _RealMixture(mix, comp)

    def __repr__(self) -> str:
        return f"ScaleMixturePrior({self.pi}, {self.sigma1}, {self.sigma2})"


class _RealMixture(dist.MixtureSameFamily):
    """A mixture of Normals whose support says ``real`` (autoguides need a known bijection)."""

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return constraints.real


class DictPrior(Prior):
    """A prior per parameter name: every parameter of the network needs an entry.

    A key maps to a distribution (the parameter is random) or to ``None`` (it stays
    deterministic and is learned as a point estimate). A parameter with no entry is an error
    naming it, so that a typo or a forgotten layer never silently becomes a point estimate.
    To make only the listed parameters random, say so: ``unlisted="deterministic"``, or restrict
    the parameters considered with ``include=`` (here or in ``BNN(..., include=...)``).

    :param priors: ``{name: distribution or None}`` with names from ``net.named_parameters()``.
    :param include: predicate ``(name, param) -> bool`` of the parameters considered at all
        (default: every one); the others are deterministic and need no entry.
    :param unlisted: ``"error"`` (default): a considered parameter without an entry is an
        error; ``"deterministic"``: it stays deterministic.

    Example (a Bayesian last layer, three equivalent ways)::

        >>> import pyro.distributions as dist
        >>> import torch
        >>> from pyro_bdl.priors import DictPrior
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        >>> normal = dist.Normal(0.0, 1.0)
        >>> last = {"2.weight": normal, "2.bias": normal}
        >>> [n for n, _ in DictPrior({**last, "0.weight": None, "0.bias": None})
        ...  .random_parameters(net)]
        ['2.weight', '2.bias']
        >>> [n for n, _ in DictPrior(last, unlisted="deterministic").random_parameters(net)]
        ['2.weight', '2.bias']
        >>> [n for n, _ in DictPrior(last, include=lambda n, p: n.startswith("2."))
        ...  .random_parameters(net)]
        ['2.weight', '2.bias']
        >>> DictPrior(last).random_parameters(net)
        Traceback (most recent call last):
        ...
        ValueError: Expected a prior for every parameter of the network, but the {name: dist} dict has no entry for ['0.weight', '0.bias']. ...
    """  # noqa: E501

    def __init__(
        self,
        priors: Mapping[str, Distribution | None],
        include: Include | None = None,
        *,
        unlisted: str = "error",
    ) -> None:
        for k, v in priors.items():
            if v is not None and not isinstance(v, Distribution):
                raise TypeError(
                    f"Expected a Distribution (or None: deterministic) for parameter {k!r}, but "
                    f"got {type(v).__name__}."
                )
        if not priors:
            raise ValueError("Expected at least one {name: distribution} entry, but got {}.")
        if unlisted not in ("error", "deterministic"):
            raise ValueError(
                f"Expected unlisted in ('error', 'deterministic'), but got {unlisted!r}."
            )
        self.priors = dict(priors)
        self.unlisted = unlisted
        super().__init__(include)

    def random_parameters(self, net: nn.Module) -> list[tuple[str, nn.Parameter]]:
        """The considered parameters whose entry is a distribution.

        :raises ValueError: for a key that is no parameter of ``net``, a considered parameter
            with no entry (with ``unlisted="error"``), or when no parameter is random.
        """
        names = dict(net.named_parameters())
        unknown = [k for k in self.priors if k not in names]
        if unknown:
            raise ValueError(
                f"Expected prior keys among the network's parameter names {list(names)}, "
                f"but got unknown name(s) {unknown}."
            )
        considered = named_random_parameters(net, self.include)
        missing = [n for n, _ in considered if n not in self.priors]
        if missing and self.unlisted == "error":
            raise ValueError(
                "Expected a prior for every parameter of the network, but the {name: dist} dict "
                f"has no entry for {missing}. Give each a distribution, or None to keep it "
                "deterministic (a point estimate); or make only the listed parameters random "
                "with DictPrior(priors, unlisted='deterministic') or "
                "BNN(..., include=lambda name, p: name in priors)."
            )
        include = self.include
        return named_random_parameters(
            net,
            lambda n, p: (include is None or include(n, p)) and self.priors.get(n) is not None,
        )

    def prior_dist(self, name: str, param: torch.Tensor) -> Distribution:
        d = self.priors[name]
        assert d is not None  # random_parameters selects only names with a distribution
        return d

    def config(self) -> dict | None:
        out = {k: None if v is None else distribution_config(v) for k, v in self.priors.items()}
        if any(out[k] is None for k, v in self.priors.items() if v is not None):
            return None
        return {"priors": out, "unlisted": self.unlisted}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **context: Any) -> DictPrior:
        """Rebuild from :meth:`config` (each distribution described as data).

        A config without ``"unlisted"`` (written before it existed, when parameters without an
        entry were deterministic) is read with ``unlisted="deterministic"``.
        """
        priors = {
            k: None if v is None else distribution_from_config(v)
            for k, v in config["priors"].items()
        }
        return cls(priors, unlisted=str(config.get("unlisted", "deterministic")), **context)

    def __repr__(self) -> str:
        extra = "" if self.unlisted == "error" else f", unlisted={self.unlisted!r}"
        return f"DictPrior({list(self.priors)}{extra})"


class CallablePrior(Prior):
    """A prior given by a function ``(name, param) -> Distribution | None``.

    Parameters for which it returns ``None`` stay deterministic.

    Example::

        >>> import pyro.distributions as dist
        >>> import torch
        >>> from pyro_bdl.priors import CallablePrior
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        >>> prior = CallablePrior(lambda n, p: dist.Normal(0.0, 1.0) if p.dim() > 1 else None)
        >>> [name for name, _ in prior.random_parameters(net)]  # the weights, not the biases
        ['0.weight', '2.weight']
    """

    def __init__(self, fn: Callable[[str, torch.Tensor], Distribution | None]) -> None:
        if not callable(fn):
            raise TypeError(f"Expected a callable (name, param) -> dist, but got {fn!r}.")
        self.fn = fn
        super().__init__(lambda name, param: fn(name, param) is not None)

    def prior_dist(self, name: str, param: torch.Tensor) -> Distribution:
        d = self.fn(name, param)
        if not isinstance(d, Distribution):
            raise TypeError(
                f"Expected the prior callable to return a Distribution for {name!r}, "
                f"but got {type(d).__name__}."
            )
        return d


def prior_from_config(name: str, cfg: Mapping, include: Include | None = None) -> Prior:
    """Rebuild a built-in prior from ``(type name, config)`` (see :mod:`pyro_bdl.registry`).

    :raises ValueError: for an unknown type name.

    Example::

        >>> prior_from_config("LayerwiseNormalPrior", {"method": "xavier"})
        LayerwiseNormalPrior('xavier')
    """
    prior: Prior = from_config({"type": name, "config": cfg}, "prior", include=include)
    return prior


PriorLike = Prior | Distribution | Mapping[str, Distribution | None] | Callable


def as_prior(prior: PriorLike, include: Include | None = None) -> Prior:
    """Normalise the accepted prior forms into a :class:`Prior`.

    :param prior: a :class:`Prior`, a scalar distribution (i.i.d. prior), a
        ``{name: dist or None}`` dict (a :class:`DictPrior`: every parameter needs an entry,
        ``None`` for a deterministic one) or a callable ``(name, param) -> dist | None``.
    :param include: optional predicate overriding which parameters are random.

    Example::

        >>> import pyro.distributions as dist
        >>> from pyro_bdl.priors import as_prior
        >>> as_prior(dist.Normal(0.0, 1.0))
        IIDPrior(Normal(loc: 0.0, scale: 1.0))
    """
    if isinstance(prior, Prior):
        p = prior
    elif isinstance(prior, Distribution):
        p = IIDPrior(prior)
    elif isinstance(prior, Mapping):
        p = DictPrior(prior)
    elif callable(prior):
        p = CallablePrior(prior)
    else:
        raise TypeError(
            "Expected a Prior, a Distribution, a {name: dist} dict or a callable "
            f"(name, param) -> dist, but got {type(prior).__name__}."
        )
    if include is not None:
        if not callable(include):
            raise TypeError(
                f"Expected include to be a callable (name, param) -> bool, but got {include!r}; "
                "e.g. include=lambda name, p: name.startswith('2.')."
            )
        p = copy.copy(p)  # never change the caller's prior object
        base = p.include
        p.include = include if base is None else (lambda n, q: base(n, q) and include(n, q))
    return p
