"""Dropout as variational inference: :class:`AutoDropout`, its trace-free sampler (per-example
masks), and the :class:`BernoulliDropout` and :class:`ConcreteDropout` builders.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any, cast

import torch
from pyro.distributions import constraints
from pyro.infer.autoguide.initialization import InitMessenger
from pyro.infer.autoguide.utils import deep_setattr
from pyro.nn import PyroModule, PyroParam
from torch import nn

from .._checks import check_float
from ..distributions.masked_weight import MaskedWeight, binary_entropy
from ..hierarchical import HYPER_KEY
from ..nn import INIT_KEY, init_to_net
from .base import (
    FactorisedGuide,
    GuideBuilder,
    GuideModel,
    PriorParts,
    deep_getattr,
    flat_entries,
    normal_prior_parts,
    uniform_value,
)
from .handlers import MASKABLE, PerExampleMasks, mask_input

__all__ = ["AutoDropout", "BernoulliDropout", "ConcreteDropout", "check_p"]


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
        parts: Mapping[str, PriorParts | None],
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
            uniform = uniform_value(var)
            self.a[n] = float(0.5 / var.reshape(-1)[0]) if uniform is not None else 0.5 / var
            self.b[n] = None if bool((mu == 0).all()) else mu / var
        entropy = sum(
            self.units[n]
            * float(binary_entropy(torch.tensor(p, dtype=torch.float64, device="cpu")))
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
            flat = flat_entries(self.locs)
            return draws, torch.dot(self.flat_coef * flat, flat) + self.fixed_const
        kl: float | torch.Tensor = self.fixed_const
        for n, m in zip(self.names, self.locs, strict=True):
            if n in self.logits:
                p = cast(torch.Tensor, self._p[n])  # a learned p: sigmoid(logit)
                keep: float | torch.Tensor = 1 - p
                kl = kl - self.units[n] * binary_entropy(p)
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
            return mask_input(module, x, p, self.temperature)
        # a shard of a minibatch of B rows: the masks of all B rows, in one draw as one process
        # draws them, and this shard's rows of them
        size, rows = self.rows
        pad = (rows.start, size - rows.stop)
        full = torch.cat(
            [x.new_zeros((pad[0],) + x.shape[1:]), x, x.new_zeros((pad[1],) + x.shape[1:])]
        )
        return mask_input(module, full, p, self.temperature)[rows]


def check_p(name: str, p: Any) -> float:
    """A drop probability in [0, 1), as a float.

    :param name: how the error names it (e.g. ``"p"`` or ``"for '0.weight'"``).
    :param p: the value to check.
    :raises ValueError: for a value that is not a real number in [0, 1), naming it.

    Example::

        >>> check_p("p", 0.25)
        0.25
        >>> check_p("p", -0.1)
        Traceback (most recent call last):
        ...
        ValueError: Expected a dropout probability p in [0, 1), but got -0.1.
    """
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise ValueError(
            f"Expected a dropout probability {name} in [0, 1), but got {type(p).__name__} "
            f"{p!r}: pass a float."
        )
    if not 0.0 <= p < 1.0:
        why = ": p = 1 would drop every unit" if p == 1 else ""
        raise ValueError(f"Expected a dropout probability {name} in [0, 1), but got {p!r}{why}.")
    return float(p)


_ESTIMATORS = ("per_example", "per_particle")


class AutoDropout(FactorisedGuide):
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
                k: check_p(f"for {k!r}", v) for k, v in p.items()
            }
        else:
            self._p_spec = check_p("p", p)
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
        hyper = [name for name, site in sites.items() if site["infer"].get(HYPER_KEY)]
        if hyper:
            raise ValueError(
                "Expected a prior without hyper-sites for a dropout guide (it keeps every weight "
                f"at a point estimate times a mask), but the prior samples {hyper}. Use "
                "MeanFieldNormal() or MCMC(NUTS(bnn.model)) with a hierarchical prior, or a "
                "fixed prior such as IIDPrior(dist.Normal(0., 1.)) with dropout."
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
        self, priors: Mapping[str, Any] | None, model: GuideModel
    ) -> _DropoutSampler | None:
        """Trace-free step pieces for ``BNN.fit`` (per-example masks, Gaussian prior), or None.

        The sampler's ELBO estimate equals the one of :func:`~pyro_bdl.infer.elbo_terms` under
        :meth:`estimator_context` (same masks from the same random calls, same closed-form KL).

        :param priors: ``{site name: prior distribution}``, or ``None`` for a sampler that only
            draws (``with_kl=False``), as prediction needs.
        :param model: the model (e.g. ``bnn.bayesian_model``) whose network carries the masked
            layers.
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
            >>> sampler = bnn.guide.trace_free_sampler(None, bnn.bayesian_model)
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
                part = normal_prior_parts(priors[name], deep_getattr(self.locs, name).shape)
                if part is None:
                    return None
            parts[name] = part
            if mask_dim is not None:
                module = model.net.get_submodule(name[len(model.prefix) :].rpartition(".")[0])
                if type(module) not in MASKABLE or getattr(module, "groups", 1) != 1:
                    return None
                modules[name] = module
        if len(set(modules.values())) != len(modules):
            return None
        return _DropoutSampler(self, parts, modules)

    def estimator_context(
        self, model: GuideModel, training: bool = True
    ) -> contextlib.AbstractContextManager:
        """The handler ``BNN.fit``/``predict`` run under: per-example masks or nothing.

        ``training`` is ignored: predictions draw per-example masks too, as MC dropout does.
        """
        shapes = {
            model.site_name(n): p
            for n, p in model.net.named_parameters()
            if n in model.random_names
        }
        matrices = [s for s, p in shapes.items() if p.dim() >= 2]
        if not matrices:
            raise ValueError(
                "Expected at least one weight matrix (a parameter with >= 2 dims) to drop, but "
                f"the random parameters are {model.random_names}. Make a weight random with "
                "include=."
            )
        if self.estimator == "per_particle":
            return contextlib.nullcontext()
        sites = {}
        for site in matrices:
            param = site[len(model.prefix) :]
            sites[site] = model.net.get_submodule(param.rpartition(".")[0])
        return PerExampleMasks(model.net, sites)


class BernoulliDropout(GuideBuilder):
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
        >>> from pyro_bdl.workflows.dropout_nets import to_dropout_net
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
                check_p(f"for {k!r}", v)
        else:
            check_p("p", p)
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
        """Deprecated (one release): use
        :func:`pyro_bdl.workflows.dropout_nets.from_dropout_net`, which this calls.

        Example::

            >>> from pyro_bdl.workflows.dropout_nets import from_dropout_net  # instead
        """
        warnings.warn(
            "BernoulliDropout.from_dropout_net moved to "
            "pyro_bdl.workflows.dropout_nets.from_dropout_net (a guide never builds a BNN); "
            "this alias is removed in the next release.",
            FutureWarning,
            stacklevel=2,
        )
        from ..workflows.dropout_nets import from_dropout_net

        return from_dropout_net(net, likelihood, prior, estimator=estimator, **bnn_kwargs)


class ConcreteDropout(GuideBuilder):
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
        if not 0.0 < check_p("init_p", init_p):
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
