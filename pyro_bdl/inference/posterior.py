"""Posteriors as sources of weight draws: ``Posterior.sample(num) -> Draws``.

Every posterior type (a fitted guide, MCMC draws, a stack of point estimates) is read through
this one protocol, and one chunked loop (:func:`~pyro_bdl.inference.predict.iter_draw_chunks`)
turns draws into predictions, ArviZ groups, PSIS ratios and teacher targets.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast, runtime_checkable

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.infer import MCMC
from pyro.poutine.util import site_is_subsample
from torch import nn

from ..distributions.masked_weight import MaskedWeight

if TYPE_CHECKING:
    from ..model import BayesianModel

__all__ = [
    "DRAWS_PLATE",
    "Draws",
    "FixedParameterWarning",
    "GuidePosterior",
    "Posterior",
    "SamplesPosterior",
    "group_samples",
    "warn_fixed_parameters",
]

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
        (as ``mcmc.get_samples()`` returns, chains flattened). For the other layouts Pyro's tools
        produce (``MCMC`` objects, ``get_samples(group_by_chain=True)``, ``Predictive``), use
        :meth:`from_samples`.
    :param chains: how many chains the S draws are, chain after chain (S a multiple of it; ArviZ
        exports keep them apart).
    :raises TypeError, ValueError: for anything else, with what was received.

    Example::

        >>> post = SamplesPosterior({"weight": torch.randn(10, 1, 3), "bias": torch.zeros(10, 1)})
        >>> post.num_draws, post.sample(2, offset=8).num  # draws 8 and 9
        (10, 2)
    """

    def __init__(self, samples: Mapping[str, torch.Tensor], *, chains: int = 1) -> None:
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
        total = next(iter(sizes.values()))
        if isinstance(chains, bool) or not isinstance(chains, int) or chains < 1 or total % chains:
            raise ValueError(
                f"Expected chains to be a positive int dividing the {total} draws, but got "
                f"{chains!r}."
            )
        self.samples = dict(samples)
        self.num_draws: int | None = total
        #: how many chains the draws are, chain after chain (1: one chain, or not MCMC)
        self.chains = chains

    @classmethod
    def from_samples(
        cls,
        samples: MCMC | Mapping[str, torch.Tensor],
        shapes: Mapping[str, torch.Size],
        *,
        group_by_chain: bool | None = None,
    ) -> SamplesPosterior:
        """The draws Pyro's tools produce, read by :func:`group_samples`'s rule, chains kept.

        :param samples: a ``pyro.infer.MCMC`` that ran, or a dict of draws in one of the layouts
            of :func:`group_samples` (``get_samples()``, ``get_samples(group_by_chain=True)``,
            ``Predictive``).
        :param shapes: ``{site: shape}`` of the model's latent sites
            (``BayesianModel.latent_shapes(x)``); other keys of ``samples`` are ignored.
        :param group_by_chain: force the reading (see :func:`group_samples`).
        :return: a :class:`SamplesPosterior` of ``chains * draws`` draws, chain after chain.

        Example::

            >>> shapes = {"w": torch.Size([3])}
            >>> post = SamplesPosterior.from_samples({"w": torch.zeros(2, 50, 3)}, shapes)
            >>> post.chains, post.num_draws, post.samples["w"].shape
            (2, 100, torch.Size([100, 3]))
        """
        grouped = group_samples(samples, shapes, group_by_chain=group_by_chain)
        chains, draws = next(iter(grouped.values())).shape[:2]
        flat = {k: v.reshape((chains * draws,) + v.shape[2:]) for k, v in grouped.items()}
        return cls(flat, chains=chains)

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

    def to_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """``(config, tensors)``: the draws as named tensors, the chain count as plain data.

        Example::

            >>> config, tensors = SamplesPosterior({"w": torch.zeros(4, 2)}, chains=2).to_state()
            >>> config, tensors["w"].shape
            ({'type': 'SamplesPosterior', 'chains': 2}, torch.Size([4, 2]))
        """
        return {"type": type(self).__name__, "chains": self.chains}, dict(self.samples)

    @classmethod
    def from_state(
        cls, config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], bnn: Any = None
    ) -> SamplesPosterior:
        """Rebuild from :meth:`to_state` (``bnn``, if given, checks the sites against its model).

        :raises ValueError: for a config of another type, or draws the model does not have.

        Example::

            >>> post = SamplesPosterior({"w": torch.ones(3, 2)})
            >>> SamplesPosterior.from_state(*post.to_state()).samples["w"].sum().item()
            6.0
        """
        if config.get("type") != cls.__name__:
            raise ValueError(
                f"Expected the state of a {cls.__name__}, but got one of {config.get('type')!r}."
            )
        post = cls(dict(tensors), chains=int(config.get("chains", 1)))
        if bnn is not None:
            bnn.bayesian_model.check_draws(post.samples)
        return post

    def __repr__(self) -> str:
        chains = f", chains={self.chains}" if self.chains > 1 else ""
        return f"SamplesPosterior(num_draws={self.num_draws}{chains}, sites={list(self.samples)})"


def _layouts(shape: torch.Size) -> str:
    """The accepted layouts of one site's draws, for messages."""
    s = ", ".join(str(d) for d in shape)
    sep = ", " if s else ""
    return (
        f"(S{sep}{s}) (one chain, as mcmc.get_samples() returns), (S, 1{sep}{s}) (Predictive's "
        f"output) or (chains, draws{sep}{s}) (grouped by chain, as "
        "mcmc.get_samples(group_by_chain=True) returns)"
    )


def _chains_draws(
    name: str, value: Any, shape: torch.Size, group_by_chain: bool | None
) -> tuple[int, int]:
    """``(chains, draws)`` of one site's draws, by the rule of :func:`group_samples`."""
    if not torch.is_tensor(value):
        raise TypeError(
            f"Expected draws of {name!r} as a torch.Tensor, but got {type(value).__name__}."
        )
    lead = value.dim() - len(shape)
    if lead < 1 or value.shape[lead:] != shape:
        raise ValueError(
            f"Expected draws of {name!r}, whose site has shape {tuple(shape)}, shaped "
            f"{_layouts(shape)}, but got shape {tuple(value.shape)}."
        )
    dims = tuple(value.shape[:lead])
    if group_by_chain:
        if lead != 2:
            raise ValueError(
                f"Expected draws of {name!r} grouped by chain, (chains, draws, *{tuple(shape)}) "
                f"(group_by_chain=True), but got shape {tuple(value.shape)}; leave "
                "group_by_chain=None to read one chain (S, *shape) or Predictive's (S, 1, *shape)."
            )
        return dims[0], dims[1]
    if lead == 1 or all(d == 1 for d in dims[1:]):  # (S,) or Predictive's (S, 1[, 1...])
        return 1, dims[0]
    if lead == 2 and group_by_chain is None:
        return dims[0], dims[1]
    raise ValueError(
        f"Expected draws of {name!r} shaped {_layouts(shape)}"
        f"{' with group_by_chain=False: one chain' if group_by_chain is False else ''}, but got "
        f"shape {tuple(value.shape)}: {len(dims)} leading dims {dims} before the site's shape."
    )


def group_samples(
    samples: MCMC | Mapping[str, torch.Tensor],
    shapes: Mapping[str, torch.Size],
    *,
    group_by_chain: bool | None = None,
) -> dict[str, torch.Tensor]:
    """Draws of a model's latent sites as ``{site: tensor (chains, draws, *site shape)}``.

    The one reading of a samples dict (``BNN.predict_from_samples``, the ArviZ export). The
    leading dims of each site's draws are what is left of its shape once the site's own shape,
    known from the model (``shapes``), is taken off the end:

    ============================  ==================  ===========================================
    draws of a site               read as             what makes them
    ============================  ==================  ===========================================
    ``(S, *shape)``               1 chain, S draws    ``mcmc.get_samples()``, ``SamplesPosterior``
    ``(S, 1, *shape)``            1 chain, S draws    ``Predictive`` (its plate dims, size 1)
    ``(C, D, *shape)``, D > 1     C chains, D draws   ``mcmc.get_samples(group_by_chain=True)``
    a ``pyro.infer.MCMC``         its chains          ``MCMC.run``
    ============================  ==================  ===========================================

    ``(C, 1, *shape)`` is read as Predictive's layout (C draws of one chain), the only reading
    for which ArviZ's ESS and R̂ are defined; ``group_by_chain=True`` forces C chains of one
    draw (and refuses anything not ``(chains, draws, *shape)``); ``group_by_chain=False``
    refuses ``(C, D, *shape)`` with D > 1. Keys that are not latent sites of the model
    (``"obs"``, ``"obs_mean"``, ``"_RETURN"`` of a Predictive) are ignored.

    :param samples: a ``pyro.infer.MCMC`` that ran, or ``{site: tensor}`` in one of the layouts.
    :param shapes: ``{site: shape}`` of every latent site of the model
        (``BayesianModel.latent_shapes(x)``).
    :param group_by_chain: ``None`` (the rule above), ``True`` or ``False`` to force a reading.
    :return: ``{site: tensor (chains, draws, *shape)}`` for every site of ``shapes``.
    :raises TypeError, ValueError: for a site without draws, draws that end in another shape
        or have another layout, or sites that disagree on (chains, draws); each names the
        accepted layouts.

    Example::

        >>> shapes = {"w": torch.Size([2, 3]), "precision": torch.Size([])}
        >>> flat = {"w": torch.zeros(10, 2, 3), "precision": torch.ones(10)}
        >>> {k: tuple(v.shape) for k, v in group_samples(flat, shapes).items()}
        {'w': (1, 10, 2, 3), 'precision': (1, 10)}
        >>> predictive = {"w": torch.zeros(10, 1, 2, 3), "precision": torch.ones(10, 1),
        ...               "obs": torch.zeros(10, 5)}
        >>> group_samples(predictive, shapes)["w"].shape  # 1 chain x 10 draws; obs ignored
        torch.Size([1, 10, 2, 3])
        >>> group_samples({"w": torch.zeros(4, 25, 2, 3), "precision": torch.ones(4, 25)},
        ...               shapes)["precision"].shape  # 4 chains x 25 draws
        torch.Size([4, 25])
    """
    if isinstance(samples, MCMC):
        if group_by_chain is False:
            raise ValueError(
                "Expected group_by_chain=None or True with a pyro.infer.MCMC (its chains are "
                "known), but got False; pass mcmc.get_samples() to merge its chains."
            )
        samples, group_by_chain = samples.get_samples(group_by_chain=True), True
    if group_by_chain is not None and not isinstance(group_by_chain, bool):
        raise TypeError(
            f"Expected group_by_chain to be None, True or False, but got {group_by_chain!r}."
        )
    if not isinstance(samples, Mapping):
        raise TypeError(
            "Expected a pyro.infer.MCMC or a dict {site name: tensor}, but got "
            f"{type(samples).__name__}."
        )
    missing = [s for s in shapes if s not in samples]
    if missing:
        raise ValueError(
            f"Expected draws for every latent site of the model, but got none for {missing}; "
            "pass mcmc (the MCMC object), mcmc.get_samples() or a Predictive's output that "
            f"returns these sites (return_sites={sorted(shapes)})."
        )
    layout = {
        s: _chains_draws(s, samples[s], torch.Size(shape), group_by_chain)
        for s, shape in shapes.items()
    }
    if len(set(layout.values())) != 1:
        raise ValueError(
            f"Expected the same number of draws (chains, draws) for every site, but got {layout}."
        )
    chains, draws = next(iter(layout.values()))
    if chains < 1 or draws < 1:
        raise ValueError(f"Expected at least one draw, but got (chains, draws) = {layout}.")
    return {s: samples[s].reshape((chains, draws) + tuple(shapes[s])) for s in shapes}


class FixedParameterWarning(UserWarning):
    """Draws of a model's latent sites meet learned point estimates (``pyro.param``) that no
    sampler touches: they are held at their current values (see :func:`warn_fixed_parameters`)."""


def _describe(value: torch.Tensor) -> str:
    value = value.detach()
    return f"= {value.item():.4g}" if value.numel() == 1 else f"shape {tuple(value.shape)}"


def warn_fixed_parameters(model: BayesianModel, x: torch.Tensor, *, stacklevel: int = 2) -> None:
    """Warn when the model has learned point estimates that given draws leave fixed.

    MCMC (``NUTS``/``HMC``) samples a model's ``pyro.sample`` sites only; a ``pyro.param`` --
    the noise scale of ``HomoskedasticGaussian()`` (``scale=None``), a network parameter outside
    the prior, a :class:`~pyro_bdl.priors.LearnedNormalPrior`'s scales -- is neither sampled
    nor fitted, and stays at its current value (its initial one, if the BNN was never fitted).
    Called where draws from outside the package come in (``BNN.predict_from_samples``,
    ``to_inference_data`` of an MCMC or a dict of draws).

    :param model: the :class:`~pyro_bdl.model.BayesianModel` the draws are of.
    :param x: example inputs ``(N, ...)`` (its first row is run through the model, with no side
        effects, to find the ``pyro.param`` sites).
    :param stacklevel: where the warning points, counted from the caller of this function
        (1: the line calling it; 2: that function's caller).
    :raises FixedParameterWarning: (a warning) naming the parameters and the fixes.

    Example::

        >>> warn_fixed_parameters(bnn.bayesian_model, x)  # doctest: +SKIP
        FixedParameterWarning: The draws leave the model's learned point estimates fixed ...
    """
    with model.side_effect_free(), torch.no_grad(), poutine.block():
        trace = poutine.trace(model).get_trace(x[:1].expand(2, *x.shape[1:]))
    fixed = {
        name: _describe(cast(torch.Tensor, site["value"]))
        for name, site in trace.nodes.items()
        if site["type"] == "param"
    }
    if not fixed:
        return
    listed = ", ".join(f"{name!r} ({what})" for name, what in fixed.items())
    warnings.warn(
        f"The draws leave the model's learned point estimates fixed: {listed}. MCMC (NUTS, HMC) "
        "samples pyro.sample sites only; a pyro.param is neither sampled nor fitted, so it keeps "
        "its current value -- its initial value if the BNN was never fitted. To infer a noise "
        "scale, give it a prior: HomoskedasticGaussian(precision_prior=dist.Gamma(1.0, 0.01)) "
        "(a latent 'precision' site, sampled by NUTS and fitted by the guides); to keep a value "
        "on purpose, fix it: HomoskedasticGaussian(scale=0.1); for a network parameter, put it "
        "under the prior or freeze it (param.requires_grad_(False)); for a learned prior scale "
        "(LearnedNormalPrior's 'prior_params.scale'), sample it with a hierarchical prior "
        "(LayerScalePrior) or fix it (dist.Normal(0.0, s)). Draws from a guide fitted "
        "together with these values (Predictive after SVI) are fine: export the fit itself with "
        "to_inference_data(bnn, ...), or filter FixedParameterWarning.",
        FixedParameterWarning,
        stacklevel=stacklevel + 1,
    )


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
