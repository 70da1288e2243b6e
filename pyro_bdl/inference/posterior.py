"""Posteriors as sources of weight draws: ``Posterior.sample(num) -> Draws``.

Every posterior type (a fitted guide, MCMC draws, a stack of point estimates) is read through
this one protocol, and one chunked loop (:func:`~pyro_bdl.inference.predict.iter_draw_chunks`)
turns draws into predictions, ArviZ groups, PSIS ratios and teacher targets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast, runtime_checkable

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.poutine.util import site_is_subsample
from torch import nn

from ..distributions.masked_weight import MaskedWeight

if TYPE_CHECKING:
    from ..model import BayesianModel

__all__ = ["DRAWS_PLATE", "Draws", "Posterior", "GuidePosterior", "SamplesPosterior"]

#: The one plate draws are vectorised over (outside the likelihood's data plate, at dim -2).
DRAWS_PLATE = "posterior_draws"


class Draws(NamedTuple):
    """A stack of S joint draws of a model's latent sites.

    :ivar sites: ``{site name: tensor (S, *site shape)}`` (weights, and e.g. ``"precision"``).
    :ivar input_fns: per-example noise ``{module: fn(module, input) -> input}`` applied to module
        inputs during the forward (the dropout guides' per-example masks), or ``None``.
    :ivar log_q: ``(S,)`` log density of each draw under the posterior, where the posterior
        computes it while sampling (a guide asked for it; PSIS needs it), else ``None``.

    Example::

        >>> d = Draws({"weight": torch.zeros(4, 2, 3)})
        >>> d.num
        4
    """

    sites: dict[str, torch.Tensor]
    input_fns: Mapping[nn.Module, Callable] | None = None
    log_q: torch.Tensor | None = None

    @property
    def num(self) -> int:
        """S, the number of draws."""
        return next(iter(self.sites.values())).shape[0]


@runtime_checkable
class Posterior(Protocol):
    """A source of joint draws of a model's latent sites.

    ``num_draws`` is ``None`` for a posterior that draws afresh on every call (a guide) and the
    size of a fixed set otherwise (MCMC draws, ensemble members), read in order from ``offset``.
    """

    num_draws: int | None

    def sample(self, num: int, *, offset: int = 0) -> Draws:
        """``num`` draws (for a fixed set: draws ``offset .. offset + num - 1``)."""
        ...


class SamplesPosterior:
    """A fixed set of draws: MCMC samples, ensemble members, SWAG/SG-MCMC snapshots.

    :param samples: ``{site name: tensor (S, *site shape)}``, S >= 1 and the same for every site
        (as ``mcmc.get_samples()`` returns, chains flattened).
    :raises TypeError, ValueError: for anything else, with what was received.

    Example::

        >>> post = SamplesPosterior({"weight": torch.randn(10, 1, 3), "bias": torch.zeros(10, 1)})
        >>> post.num_draws, post.sample(2, offset=8).num  # draws 8 and 9
        (10, 2)
    """

    def __init__(self, samples: Mapping[str, torch.Tensor]) -> None:
        if not isinstance(samples, Mapping) or not samples:
            raise TypeError(
                "Expected a non-empty dict {site name: tensor (S, *shape)}, but got "
                f"{type(samples).__name__}{'' if samples else ' (empty)'}."
            )
        for k, v in samples.items():
            if not torch.is_tensor(v) or v.dim() == 0 or len(v) == 0:
                raise ValueError(
                    f"Expected draws of {k!r} as a tensor (S, *shape) with S >= 1, but got "
                    f"{type(v).__name__}{'' if not torch.is_tensor(v) else tuple(v.shape)}."
                )
            if v.is_floating_point() and not torch.isfinite(v).all():
                raise ValueError(f"Expected finite draws of {k!r}, but found NaN/inf values.")
        sizes = {k: v.shape[0] for k, v in samples.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"Expected the same number of draws for every site, but got {sizes}.")
        self.samples = dict(samples)
        self.num_draws: int | None = next(iter(sizes.values()))

    @classmethod
    def stack(cls, members: list[Mapping[str, torch.Tensor]]) -> SamplesPosterior:
        """A posterior of K point estimates (e.g. independently trained nets), one draw each.

        :param members: K dicts ``{site name: tensor (*site shape)}`` with the same keys.
        :return: a :class:`SamplesPosterior` with ``num_draws == K``.

        Example::

            >>> a, b = {"w": torch.zeros(3)}, {"w": torch.ones(3)}
            >>> SamplesPosterior.stack([a, b]).samples["w"].shape
            torch.Size([2, 3])
        """
        if not members:
            raise ValueError("Expected at least one member, but got none.")
        keys = set(members[0])
        for i, m in enumerate(members):
            if set(m) != keys:
                raise ValueError(
                    f"Expected every member to have the sites {sorted(keys)}, but member {i} has "
                    f"{sorted(m)}."
                )
        return cls({k: torch.stack([m[k].detach() for m in members]) for k in members[0]})

    def sample(self, num: int, *, offset: int = 0) -> Draws:
        """Draws ``offset .. offset + num - 1`` of the set."""
        total = self.num_draws or 0
        if offset < 0 or num < 1 or offset + num > total:
            raise ValueError(
                f"Expected draws within the {total} stored ones, but asked for {num} from "
                f"offset {offset}."
            )
        return Draws({k: v[offset : offset + num] for k, v in self.samples.items()})

    def __repr__(self) -> str:
        return f"SamplesPosterior(num_draws={self.num_draws}, sites={list(self.samples)})"


class GuidePosterior:
    """Draws from a fitted guide (any AutoGuide, or a hand-written guide callable).

    When the guide offers a trace-free sampler (``guide.trace_free_sampler(None, model)``), draws
    come from it, with its per-example noise (``input_fns``: MC dropout's per-example masks) when
    ``per_example``; the random stream is the one of running the guide under the draws plate.
    Otherwise the guide is run under the :data:`DRAWS_PLATE` and its site values are read.

    :param guide: the guide; it must already have its parameters (``BNN.ensure_guide``).
    :param model: the :class:`~pyro_bdl.model.BayesianModel` the guide approximates.
    :param args: arguments to call the guide with (e.g. ``(x,)``); autoguides ignore them.
    :param shapes: ``{site name: shape}`` of the latent sites to read (default: the weights).
    :param per_example: allow per-example noise (prediction); ``False`` draws one W for all
        data points (exports for LOO, PSIS).
    :param log_q: compute each draw's log density under the guide (traced path only; PSIS).

    Example::

        >>> post = GuidePosterior(bnn.guide, bnn.bayesian_model, args=(x,))  # doctest: +SKIP
        >>> post.sample(100).sites["0.weight"].shape  # (100, 50, 1)  # doctest: +SKIP
    """

    num_draws: int | None = None

    def __init__(
        self,
        guide: Callable,
        model: BayesianModel,
        *,
        args: tuple = (),
        kwargs: Mapping[str, Any] | None = None,
        shapes: Mapping[str, torch.Size] | None = None,
        per_example: bool = True,
        log_q: bool = False,
    ) -> None:
        self.guide = guide
        self.model = model
        self.args = args
        self.kwargs = dict(kwargs or {})
        self.shapes = (
            dict(shapes)
            if shapes is not None
            else {model.site_name(n): model.shapes[n] for n in model.random_names}
        )
        self.per_example = per_example
        self.log_q = log_q
        self.sampler: Any = None
        if not log_q:
            make = getattr(guide, "trace_free_sampler", None)
            sampler = None if make is None else make(None, model)
            if sampler is not None and (per_example or sampler.input_fns is None):
                if set(sampler.names) >= set(self.shapes):
                    self.sampler = sampler

    def sample(self, num: int, *, offset: int = 0) -> Draws:
        """``num`` fresh joint draws (``offset`` is ignored: a guide has no fixed set)."""
        if self.sampler is not None:
            sites, _ = self.sampler((num,), with_kl=False)
            return Draws(sites, self.sampler.input_fns)
        with pyro.plate(DRAWS_PLATE, num, dim=-2):
            trace = poutine.trace(self.guide).get_trace(*self.args, **self.kwargs)
        sites = {}
        for name, shape in self.shapes.items():
            node = trace.nodes.get(name)
            if node is None or node["type"] != "sample":
                raise ValueError(
                    f"Expected the guide to sample site {name!r}, but it has no such site; a "
                    f"guide must sample every latent site of the model ({sorted(self.shapes)})."
                )
            value = cast(torch.Tensor, node["value"])  # a sample site's value: drawn
            sites[name] = value.expand((num, 1) + tuple(shape)).reshape((num,) + tuple(shape))
        log_q = _log_density(trace, num, set(self.shapes)) if self.log_q else None
        return Draws(sites, None, log_q)


def _log_density(trace: poutine.Trace, num: int, model_sites: set[str]) -> torch.Tensor:
    """``(num,)`` summed log densities of a guide trace's sample sites (auxiliary ones included).

    :raises ValueError: for a dropout factor, or a point mass with no auxiliary latent behind it
        (AutoDelta): no density over W.
    """
    sites = {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
    }
    auxiliary = [n for n in sites if n not in model_sites]
    values = [s["value"] for s in sites.values() if torch.is_tensor(s["value"])]
    device = values[0].device if values else torch.device("cpu")
    log_q = torch.zeros(num, dtype=torch.float64, device=device)  # float64 sums, on the draws'
    for name, site in sites.items():
        fn = cast(dist.Distribution, site["fn"])
        base = fn.base_dist if isinstance(fn, dist.Independent) else fn
        if isinstance(base, MaskedWeight):
            raise ValueError(
                f"Expected a guide with a density over the weights, but site {name!r} is a "
                "dropout factor (MaskedWeight): its log_prob is the mask's log-probability, not "
                "a density of W, so p(W, y) / q(W) is undefined and PSIS k̂ has no meaning. "
                "Compare dropout with the other fits through to_inference_data and az.compare "
                "(LOO) instead."
            )
        if isinstance(base, dist.Delta) and name in model_sites and not auxiliary:
            raise ValueError(
                f"Expected a guide with a density over the weights, but site {name!r} is a point "
                "mass (Delta, e.g. AutoDelta): q(W) has no density, so PSIS k̂ is undefined."
            )
        lp = scale_and_mask(fn.log_prob(site["value"]), site["scale"], site["mask"])
        log_q += per_draw(lp, num, device=device)
    return log_q


def per_draw(
    lp: torch.Tensor | float, num: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """Sum a site's log-density over everything but the draws dim (at -2): shape ``(num,)``.

    The sums are float64, on ``lp``'s device (a float ``lp``: on ``device``, default the CPU).

    Example::

        >>> per_draw(torch.ones(3, 1), 3)  # float64 sums
        tensor([1., 1., 1.], dtype=torch.float64)
    """
    if not torch.is_tensor(lp):
        return torch.full((num,), float(lp), dtype=torch.float64, device=device or "cpu")
    if lp.dim() > 2:
        raise ValueError(
            f"Expected site log-densities with batch dims (draws, data) at most, but got shape "
            f"{tuple(lp.shape)}: the BNN has a single data plate."
        )
    lp = lp.reshape((1,) * (2 - lp.dim()) + lp.shape)
    return lp.expand(num, lp.shape[-1]).sum(-1).to(torch.float64)
