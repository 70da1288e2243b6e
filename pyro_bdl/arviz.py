"""ArviZ export of a fitted :class:`~pyro_bdl.BNN` (or of NUTS on its model), and PSIS k̂ of a guide.

:func:`to_inference_data` turns posterior draws -- from the guide of a BNN fitted by SVI, or from
``pyro.infer.MCMC`` run on ``bnn.model`` -- into the groups ArviZ expects, one
:class:`xarray.Dataset` per group:

============================  ===================================================================
group                         content (dims)
============================  ===================================================================
``posterior``                 ``"obs_mean"`` E[y | x_n, W_s] (chain, draw, obs_id[, class]) and the
                              weight sites named in ``var_names`` (chain, draw, ``<site>_dim_i``)
``posterior_predictive``      ``"obs"``: one y drawn per weight draw (chain, draw, obs_id, ...)
``log_likelihood``            ``"obs"``: log p(y_n | W_s), summed over y_n's own dims
                              (chain, draw, obs_id); what ``az.loo``/``az.waic`` read
``observed_data``             ``"obs"``: y as the likelihood uses it (obs_id, ...)
``constant_data``             ``"x"``: the inputs (obs_id, ``x_dim_i``)
``sample_stats`` (MCMC)       ``"diverging"`` (chain, draw)
``variational`` (SVI)         guide parameters of the requested sites (``<site>_loc``,
                              ``<site>_scale``, ...), drop probabilities, and the ELBO trace of a
                              :class:`~pyro_bdl.FitResult` (``elbo``, ``loglik``, ``kl`` per
                              epoch, ``step_elbo``... per step; nats per datum)
============================  ===================================================================

Draws from a guide form one chain; MCMC draws keep their chains, so ``az.rhat`` and ``az.ess``
mean something. Weights are exported only when asked for by name: a network with millions of
weights never lands in memory by default. The result is an ``az.InferenceData`` on ArviZ 0.x and
an ``xarray.DataTree`` on ArviZ 1.x.

:func:`psis_khat` answers "is the guide any good?" (Yao et al. 2018): the Pareto-smoothed
importance ratios p(W, y) / q(W) over draws from the guide, and their tail shape k̂.

Running the ArviZ 1.x test (ArviZ 1.x needs Python >= 3.12)::

    python3.12 -m venv .venv312
    .venv312/bin/pip install "arviz>=1" torch pyro-ppl matplotlib tqdm pytest hypothesis
    PYTHONPATH=. .venv312/bin/pytest tests/test_arviz.py -k arviz1

(On Linux, ``pip install torch`` on a new Python pulls a CUDA build of several GB.)
"""

from __future__ import annotations

import datetime
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

import numpy as np
import pyro
import torch
import xarray as xr
from pyro import poutine
from pyro.distributions import TorchDistribution
from pyro.distributions.util import scale_and_mask
from pyro.infer import MCMC
from pyro.poutine.util import site_is_subsample

from ._checks import check_seed
from ._checks import positive_int as _positive_int
from .bnn import BNN, FitResult
from .inference.posterior import (
    GuidePosterior,
    Posterior,
    SamplesPosterior,
    group_samples,
    per_draw,
    warn_fixed_parameters,
)
from .inference.predict import default_chunk, iter_draw_chunks, run_model
from .likelihoods import OBS
from .model import OBS_MEAN as MODEL_OBS_MEAN
from .uncertainty import Prediction

with warnings.catch_warnings():
    # ArviZ 0.23 announces its 1.x refactor with a FutureWarning on import: nothing to act on.
    warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
    import arviz as az

__all__ = [
    "HELD_OUT_LOG_LIK",
    "ArviZData",
    "OBS_ID",
    "OBS_MEAN",
    "OBS_SCALE",
    "PSISResult",
    "VARIATIONAL",
    "add_predictions",
    "arviz_major_version",
    "prediction_from_samples",
    "psis_khat",
    "psislw",
    "to_inference_data",
]

#: ``az.InferenceData`` on ArviZ 0.x, ``xarray.DataTree`` on ArviZ 1.x.
ArviZData: TypeAlias = Any

#: Dimension indexing the data points.
OBS_ID = "obs_id"
#: Posterior variable: the per-draw predictive mean E[y | x, W] (class probabilities for
#: classifiers, the Gaussian location for regression); also the deterministic site of
#: ``bnn.model`` that ``Predictive`` returns (``pyro_bdl.model.OBS_MEAN``).
OBS_MEAN = MODEL_OBS_MEAN
#: Posterior variable (Gaussian likelihoods): the per-draw noise standard deviation.
OBS_SCALE = f"{OBS}_scale"
#: Name of the group holding the guide's parameters and the ELBO trace.
VARIATIONAL = "variational"
#: Variable of the ``predictions`` group: log p(y_n | W_s) of the held-out targets.
HELD_OUT_LOG_LIK = f"{OBS}_log_lik"


def arviz_major_version() -> int:
    """Major version of the installed ArviZ (0 or 1), which decides the output type.

    Example::

        >>> arviz_major_version() in (0, 1)
        True
    """
    return int(str(az.__version__).split(".")[0])


# ================================================================================ checks
def _check_var_names(
    var_names: Sequence[str] | None, sites: Mapping[str, torch.Size], kind: str
) -> list[str]:
    if var_names is None:
        return [OBS_MEAN]
    if isinstance(var_names, str):
        var_names = [var_names]
    allowed = [OBS_MEAN] + ([OBS_SCALE] if kind == "gaussian" else []) + list(sites)
    unknown = [v for v in var_names if v not in allowed]
    if unknown:
        raise ValueError(
            f"Expected var_names among the model's sites and predictive summaries {allowed}, but "
            f"got {unknown}, which is not a site. Site names are the keys of "
            "net.named_parameters() after the BNN's prefix."
        )
    return list(dict.fromkeys(var_names))


def _chunk(bnn: BNN, x: torch.Tensor, chunk_size: int | None) -> int:
    """The package's one chunk policy, over every latent site."""
    model = bnn.bayesian_model
    return chunk_size or default_chunk(model, len(x), _net_dtype(bnn), model.latent_shapes(x))


def _net_dtype(bnn: BNN) -> torch.dtype:
    return next(bnn.net.parameters()).dtype


# ================================================================================ per-draw work
@dataclass
class _Draws:
    """Per-draw arrays filled chunk by chunk (leading dim: all draws, chains flattened)."""

    num: int
    arrays: dict[str, np.ndarray]
    observed: np.ndarray | None = None

    def put(self, key: str, start: int, value: torch.Tensor) -> None:
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.to(torch.float64)
        array = value.numpy()
        if key not in self.arrays:
            self.arrays[key] = np.empty((self.num,) + array.shape[1:], dtype=array.dtype)
        self.arrays[key][start : start + len(array)] = array


def _record(
    draws: _Draws,
    start: int,
    c: int,
    bnn: BNN,
    trace: poutine.Trace,
    weights: Mapping[str, torch.Tensor],
    var_names: Sequence[str],
    observed: bool,
) -> None:
    site = trace.nodes[OBS]
    fn = cast(TorchDistribution, site["fn"])  # a sample site's fn is its distribution
    pred = bnn.likelihood.prediction(fn)
    if OBS_MEAN in var_names:
        draws.put(OBS_MEAN, start, pred.samples)
    if OBS_SCALE in var_names and pred.scale is not None:
        draws.put(OBS_SCALE, start, pred.scale)
    for name in var_names:
        if name in weights:
            draws.put(name, start, weights[name])  # (c, *shape)
    value = cast(torch.Tensor, site["value"])  # y, observed or drawn (sample_obs=True)
    if observed:
        draws.put("log_likelihood", start, fn.log_prob(value).expand(c, -1))
        draws.put("posterior_predictive", start, fn.sample())
        if draws.observed is None:
            draws.observed = _numpy(value)
    else:
        draws.put("posterior_predictive", start, value.expand(fn.batch_shape + fn.event_shape))


def _numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    return (t.to(torch.float64) if t.is_floating_point() else t).numpy()


@torch.no_grad()
def _collect(
    bnn: BNN,
    posterior: Posterior,
    x: torch.Tensor,
    y: torch.Tensor | None,
    num: int,
    chunk: int,
    var_names: Sequence[str],
) -> _Draws:
    """Run the model on every chunk of draws and record the groups' per-draw arrays."""
    draws = _Draws(num, {})
    for start, chunk_draws in iter_draw_chunks(posterior, num, chunk=chunk):
        trace = run_model(bnn.model, chunk_draws, x, y, dataset_size=len(x), sample_obs=True)
        _record(
            draws, start, chunk_draws.num, bnn, trace, chunk_draws.sites, var_names, y is not None
        )
    return draws


# ================================================================================ datasets
def _attrs(kind: str) -> dict[str, str]:
    return {
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "arviz_version": str(az.__version__),
        "inference_library": "pyro",
        "inference_library_version": str(pyro.__version__),
        "creation_library": "pyro_bdl",
        "inference": kind,
    }


def _coords(dims: Sequence[str], shape: Sequence[int], fixed: Mapping[str, Any]) -> dict:
    return {d: fixed.get(d, np.arange(n)) for d, n in zip(dims, shape, strict=True)}


def _dataset(
    variables: Mapping[str, tuple[Sequence[str], np.ndarray]],
    attrs: Mapping[str, str],
    fixed: Mapping[str, Any],
) -> xr.Dataset:
    coords: dict[str, Any] = {}
    for dims, array in variables.values():
        coords.update(_coords(dims, array.shape, fixed))
    return xr.Dataset(
        {name: (list(dims), array) for name, (dims, array) in variables.items()},
        coords=coords,
        attrs=dict(attrs),
    )


def _by_chain(array: np.ndarray, chains: int) -> np.ndarray:
    return array.reshape((chains, array.shape[0] // chains) + array.shape[1:])


def _by_chain_tensor(t: torch.Tensor, chains: int) -> torch.Tensor:
    return t.reshape((chains, t.shape[0] // chains) + t.shape[1:])


def _target_dims(ndim: int) -> list[str]:
    return [f"{OBS}_dim_{i}" for i in range(ndim)]


def _groups(
    bnn: BNN,
    draws: _Draws,
    chains: int,
    x: torch.Tensor,
    var_names: Sequence[str],
    kind: str,
    class_labels: Sequence[Any] | None,
) -> dict[str, xr.Dataset]:
    attrs = _attrs(kind)
    sample = ["chain", "draw"]
    fixed: dict[str, Any] = {}
    posterior: dict[str, tuple[Sequence[str], np.ndarray]] = {}
    for name in var_names:
        if name not in draws.arrays:
            continue
        array = _by_chain(draws.arrays[name], chains)
        rest = array.ndim - 2
        if name in (OBS_MEAN, OBS_SCALE):
            dims = [OBS_ID] + _target_dims(rest - 1)
            if name == OBS_MEAN and bnn.likelihood.kind == "categorical":
                dims = [OBS_ID, "class"]
                labels = np.arange(array.shape[-1]) if class_labels is None else class_labels
                if len(labels) != array.shape[-1]:
                    raise ValueError(
                        f"Expected {array.shape[-1]} class_labels (one per network output), but "
                        f"got {len(labels)}."
                    )
                fixed["class"] = np.asarray(labels)
        else:
            dims = [f"{name}_dim_{i}" for i in range(rest)]
        posterior[name] = (sample + dims, array)
    groups = {"posterior": _dataset(posterior, attrs, fixed)}
    pp = _by_chain(draws.arrays["posterior_predictive"], chains)
    groups["posterior_predictive"] = _dataset(
        {OBS: (sample + [OBS_ID] + _target_dims(pp.ndim - 3), pp)}, attrs, fixed
    )
    if "log_likelihood" in draws.arrays:
        ll = _by_chain(draws.arrays["log_likelihood"], chains)
        groups["log_likelihood"] = _dataset({OBS: (sample + [OBS_ID], ll)}, attrs, fixed)
    if draws.observed is not None:
        obs = draws.observed
        groups["observed_data"] = _dataset(
            {OBS: ([OBS_ID] + _target_dims(obs.ndim - 1), obs)}, attrs, fixed
        )
    xa = _numpy(x)
    groups["constant_data"] = _dataset(
        {"x": ([OBS_ID] + [f"x_dim_{i}" for i in range(xa.ndim - 1)], xa)}, attrs, fixed
    )
    return groups


def _variational(
    bnn: BNN,
    x: torch.Tensor,
    sites: Sequence[str],
    fit_result: FitResult | None,
    attrs: Mapping[str, str],
) -> xr.Dataset | None:
    guide = bnn.guide
    variables: dict[str, tuple[Sequence[str], np.ndarray]] = {}

    def add(name: str, site: str, t: torch.Tensor) -> None:
        a = _numpy(t)
        variables[name] = ([f"{site}_dim_{i}" for i in range(a.ndim)], a)

    loc_scale = getattr(guide, "loc_scale", None)
    median = getattr(guide, "median", None)
    drop_probabilities = getattr(guide, "drop_probabilities", None)
    if sites and callable(loc_scale):
        locs_scales = loc_scale()
        for s in sites:
            add(f"{s}_loc", s, locs_scales[s][0])
            add(f"{s}_scale", s, locs_scales[s][1])
    elif sites and callable(median):
        with torch.no_grad():
            medians = median(x[:1])
        for s in sites:
            add(f"{s}_median", s, medians[s])
    if callable(drop_probabilities):
        for s, p in drop_probabilities().items():
            variables[f"{s}_p"] = ([], np.asarray(p, dtype=np.float64))
    out_attrs: dict[str, Any] = dict(attrs, guide=type(guide).__name__)
    if fit_result is not None:
        if not isinstance(fit_result, FitResult):
            raise TypeError(
                "Expected fit_result to be the FitResult that bnn.fit returned, but got "
                f"{type(fit_result).__name__}."
            )
        for name in ("elbo", "loglik", "kl"):
            variables[name] = (["epoch"], np.asarray(getattr(fit_result, name), dtype=np.float64))
            step = f"step_{name}"
            variables[step] = (["step"], np.asarray(getattr(fit_result, step), dtype=np.float64))
        out_attrs.update(
            dataset_size=int(fit_result.dataset_size),
            fit_seconds=float(fit_result.seconds),
            elbo_units="nats per datum",
        )
    if not variables:
        return None
    return _dataset(variables, out_attrs, {})


def _wrap(groups: Mapping[str, xr.Dataset]) -> ArviZData:
    """One Dataset per group -> ``az.InferenceData`` (ArviZ 0.x) or ``xarray.DataTree`` (1.x)."""
    if arviz_major_version() >= 1:
        return xr.DataTree.from_dict(dict(groups))
    # the stubs let **groups reach InferenceData's attrs/warn_on_custom_groups: they are group names
    return az.InferenceData(**groups)  # type: ignore[arg-type]


# ================================================================================ public API
def _mcmc_bnn(mcmc: MCMC, bnn: BNN | None) -> BNN:
    model = getattr(mcmc.kernel, "model", None)
    owner = getattr(model, "__self__", None)
    if bnn is None:
        if isinstance(owner, BNN):
            return owner
        raise ValueError(
            "Expected bnn= with an MCMC result whose kernel does not run a BNN's model; pass "
            "to_inference_data(mcmc, x, y, bnn=bnn, ...)."
        )
    if not isinstance(bnn, BNN):
        raise TypeError(f"Expected bnn to be a pyro_bdl.BNN, but got {type(bnn).__name__}.")
    return bnn


def _fixed_set_size(
    posterior: SamplesPosterior, sites: Mapping[str, torch.Size], num_samples: int | None
) -> int:
    """How many of a fixed set's draws to export (all by default), after checking its sites."""
    total = int(posterior.num_draws or 0)
    num = total if num_samples is None else _positive_int("num_samples", num_samples)
    missing = sorted(set(sites) - set(posterior.samples))
    if missing or num > total:
        raise ValueError(
            f"Expected draws for every latent site of the model and num_samples <= {total}, "
            f"but got none for {missing} and num_samples={num}."
        )
    return num


def _collect_posterior(
    bnn: BNN,
    posterior: Posterior,
    x: torch.Tensor,
    y: torch.Tensor | None,
    num_samples: int | None,
    seed: int | None,
    chunk: int,
    var_names: Sequence[str],
) -> tuple[_Draws, dict[str, Any]]:
    """The per-draw arrays of any other posterior (SWAG, a guide mixture), one chain, and the
    attrs that say what it is: ``num_samples`` fresh draws (required) of a posterior that draws
    afresh, or of a fixed set all its draws (default) or its first ``num_samples``."""
    total = posterior.num_draws
    if total is None and num_samples is None:
        raise ValueError(
            f"Expected num_samples, the number of fresh draws from the "
            f"{type(posterior).__name__} to export (e.g. num_samples=200), but got None."
        )
    num = total if num_samples is None else _positive_int("num_samples", num_samples)
    if total is not None and num is not None and num > total:
        raise ValueError(f"Expected num_samples <= the {total} draws, but got {num}.")
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        draws = _collect(bnn, posterior, x, y, cast(int, num), chunk, var_names)
    # which posterior, and whether its draws are fresh independent ones (not a Markov chain)
    described = {
        "posterior_type": type(posterior).__name__,
        "independent_draws": int(total is None),
    }
    return draws, described


def _grouped_samples(
    fitted: MCMC | Mapping[str, torch.Tensor],
    sites: Mapping[str, torch.Size],
    num_samples: int | None,
    group_by_chain: bool | None,
) -> tuple[dict[str, torch.Tensor], int, np.ndarray | None]:
    """``({site: (chains * draws, *shape)}, chains, diverging (chains, draws) or None)``."""
    grouped = group_samples(fitted, sites, group_by_chain=group_by_chain)
    chains, total = next(iter(grouped.values())).shape[:2]
    keep = np.arange(total)
    if num_samples is not None:
        num_samples = _positive_int("num_samples", num_samples)
        if num_samples > total:
            raise ValueError(
                f"Expected num_samples <= the {total} draws per chain, but got {num_samples}."
            )
        keep = np.unique(np.linspace(0, total - 1, num_samples).round().astype(int))
    index = torch.as_tensor(keep)
    flat = {k: v[:, index].reshape((chains * len(keep),) + v.shape[2:]) for k, v in grouped.items()}
    diverging = None
    if isinstance(fitted, MCMC):
        divergences = fitted.diagnostics().get("divergences")
        if divergences is not None:
            div = np.zeros((chains, total), dtype=bool)
            for i in range(chains):
                div[i, np.asarray(divergences.get(f"chain {i}", []), dtype=int)] = True
            diverging = div[:, keep]
    return flat, chains, diverging


def _collect_samples(
    bnn: BNN,
    fitted: MCMC | SamplesPosterior | Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor | None,
    sites: Mapping[str, torch.Size],
    num_samples: int | None,
    group_by_chain: bool | None,
    chunk: int,
    var_names: Sequence[str],
) -> tuple[_Draws, int, np.ndarray | None]:
    """The per-draw arrays of draws from outside the package (MCMC, a dict, several chains)."""
    if isinstance(fitted, SamplesPosterior):  # several chains: thinned chain by chain
        group_by_chain = True
        fitted = {k: _by_chain_tensor(v, fitted.chains) for k, v in fitted.samples.items()}
    else:
        warn_fixed_parameters(bnn.bayesian_model, x, stacklevel=3)
    flat, chains, diverging = _grouped_samples(fitted, sites, num_samples, group_by_chain)
    bnn.bayesian_model.check_draws(flat)
    num = next(iter(flat.values())).shape[0]
    posterior = SamplesPosterior(flat, chains=chains)
    return _collect(bnn, posterior, x, y, num, chunk, var_names), chains, diverging


def to_inference_data(
    fitted: BNN | MCMC | Posterior | Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    num_samples: int | None = None,
    var_names: Sequence[str] | None = None,
    bnn: BNN | None = None,
    fit_result: FitResult | None = None,
    class_labels: Sequence[Any] | None = None,
    seed: int | None = None,
    chunk_size: int | None = None,
    group_by_chain: bool | None = None,
) -> ArviZData:
    """Export posterior draws of a BNN to ArviZ: predictive draws, pointwise log-likelihood, ...

    The draws come from the BNN's guide (one chain of ``num_samples`` joint draws W_s ~ q, one W
    for all data points; for dropout guides one mask per draw) or from MCMC on ``bnn.model``
    (every chain kept). For each draw the model is run on ``x`` with W fixed, in vectorised
    chunks of draws (bounded memory), and the groups listed in the module docstring are filled.

    :param fitted: a fitted :class:`~pyro_bdl.BNN`; a ``pyro.infer.MCMC`` that ran
        ``bnn.model`` (its chains kept); a dict of draws with ``bnn=``, in the layouts Pyro's
        tools produce, read by :func:`~pyro_bdl.inference.posterior.group_samples` from the
        model's site shapes: ``mcmc.get_samples()`` ``(S, *shape)`` and a ``Predictive``'s
        output ``(S, 1, *shape)`` are one chain of S draws, ``(chains, draws, *shape)``
        (``mcmc.get_samples(group_by_chain=True)``, several single-chain runs stacked) keeps
        its chains, other keys (``"obs"``) are ignored; or a
        :class:`~pyro_bdl.inference.SamplesPosterior` (ensemble members, snapshots; its
        ``chains``) with ``bnn=``; or any other :class:`~pyro_bdl.inference.Posterior` with
        ``bnn=`` (``SWAG``, ``GuideMixture``, ``DeepEnsemble`` of :mod:`pyro_bdl.posteriors`):
        one chain of ``num_samples`` fresh draws when it draws afresh (``num_draws is None``),
        else its fixed set in order; every group's ``attrs`` record ``posterior_type`` (its
        class name) and ``independent_draws`` (1: fresh independent draws, not a Markov chain;
        0: a fixed set), and ``inference`` is ``"draws"``.
    :param x: inputs ``(N, ...)``: **the training data** when the result is for ``az.loo`` /
        ``az.waic`` / ``az.compare``, which estimate out-of-sample fit from the
        ``log_likelihood`` of the data the posterior was fitted to (on held-out rows their
        estimate means nothing); put held-out rows into the ``predictions`` groups with
        :func:`add_predictions`.
    :param y: targets ``(N, ...)``; without them there is no ``log_likelihood`` or
        ``observed_data`` group, and ``posterior_predictive`` holds draws of y.
    :param num_samples: draws from the guide (required for a BNN) or from a posterior that draws
        afresh (required); for MCMC, draws kept per chain (evenly thinned; default: all).
    :param var_names: posterior variables: any of the model's sites (e.g. ``"0.weight"``),
        ``"obs_mean"`` and, for Gaussian likelihoods, ``"obs_scale"``. Default
        ``["obs_mean"]``: no weights. The guide parameters of requested sites go to the
        ``variational`` group.
    :param bnn: the BNN whose model the MCMC ran (found from ``mcmc.kernel.model`` when that is
        ``bnn.model``).
    :param fit_result: the :class:`~pyro_bdl.FitResult` of ``bnn.fit``, stored as the ELBO trace.
    :param class_labels: names of the classes (coordinate of the ``class`` dim, categorical).
    :param seed: if given, guide draws (and a posterior's fresh draws) are reproducible without
        touching the global RNG.
    :param chunk_size: draws per vectorised model run (default: about 64 MB per chunk).
    :param group_by_chain: for a dict of draws, force the reading of its leading dims:
        ``True`` ``(chains, draws, *shape)``, ``False`` one chain (see ``group_samples``).
    :return: ``az.InferenceData`` on ArviZ 0.x, ``xarray.DataTree`` on ArviZ 1.x.
    :raises ValueError: on ``num_samples <= 0``, x and y of different lengths, a ``var_names``
        entry that is not a site, or draws whose shapes match none of the layouts (the message
        names them).
    :raises FixedParameterWarning: (a warning) for MCMC or a dict of draws, if the model has
        learned point estimates (``pyro.param``: a learned noise scale) that the draws leave
        at their current values -- NUTS never samples them; give the noise a prior
        (``HomoskedasticGaussian(precision_prior=...)``) or fix it.

    Example::

        >>> import arviz as az
        >>> from pyro.infer import MCMC, NUTS
        >>> import pyro.distributions as dist
        >>> import torch
        >>> from torch import nn
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> x = torch.linspace(-1, 1, 8).unsqueeze(-1)  # 8 rows
        >>> y = torch.sin(3 * x[:, 0])
        >>> net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))
        >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=1.0))
        >>> result = bnn.fit(x, y, epochs=2, lr=1e-2, progress=False)  # (more in practice)
        >>> idata = to_inference_data(bnn, x, y, num_samples=200, seed=0)
        >>> idata.log_likelihood["obs"].shape  # (chain, draw, obs_id)
        (1, 200, 8)
        >>> az.loo(idata).pareto_k.shape  # PSIS-LOO reads the log_likelihood group
        (8,)

    NUTS on the same model (a short run here; hundreds of draws in practice)::

        >>> mcmc = MCMC(NUTS(bnn.model, max_tree_depth=3), num_samples=20, warmup_steps=20,
        ...             disable_progbar=True)
        >>> mcmc.run(x, y)
        >>> to_inference_data(mcmc, x, y, var_names=["0.weight"]).posterior["0.weight"].shape
        (1, 20, 4, 1)
    """
    seed = check_seed("seed", seed)
    if isinstance(fitted, BNN):
        if bnn is not None and bnn is not fitted:
            raise ValueError("Expected bnn=None (or the same BNN) when fitted is a BNN.")
        model_bnn = fitted
        if num_samples is None:
            raise ValueError(
                "Expected num_samples, the number of draws from the guide (e.g. num_samples=200)."
            )
        num_samples = _positive_int("num_samples", num_samples)
    elif isinstance(fitted, MCMC):
        model_bnn = _mcmc_bnn(fitted, bnn)
    elif isinstance(fitted, (Mapping, Posterior)):  # any Posterior: SamplesPosterior, SWAG, ...
        if bnn is None:
            raise ValueError(
                f"Expected bnn= with a {type(fitted).__name__}: the BNN whose model made them."
            )
        if not isinstance(bnn, BNN):
            raise TypeError(f"Expected bnn to be a pyro_bdl.BNN, but got {type(bnn).__name__}.")
        model_bnn = bnn
    else:
        raise TypeError(
            "Expected fitted to be a BNN, a pyro.infer.MCMC, a Posterior (SamplesPosterior, "
            f"SWAG, ...) or a dict of samples, but got {type(fitted).__name__}."
        )
    x, y = model_bnn.check_data(x, y)
    if chunk_size is not None:
        chunk_size = _positive_int("chunk_size", chunk_size)
    if fit_result is not None and not isinstance(fitted, BNN):
        raise ValueError("Expected fit_result only with a BNN fitted by SVI, not with MCMC draws.")
    sites = model_bnn.bayesian_model.latent_shapes(x)
    kind = model_bnn.likelihood.kind
    var_names = _check_var_names(var_names, sites, kind)
    chunk = _chunk(model_bnn, x, chunk_size)
    diverging = None
    described: dict[str, Any] = {}
    if isinstance(fitted, BNN):
        fitted.ensure_guide(x)
        chains = 1
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            # one W for all data points (per-draw masks for dropout): pointwise log-likelihoods
            # of the same draw, as LOO needs
            posterior = GuidePosterior(
                fitted.guide, fitted.bayesian_model, args=(x,), shapes=sites, per_example=False
            )
            # num_samples: required and checked above
            draws = _collect(fitted, posterior, x, y, cast(int, num_samples), chunk, var_names)
        inference = "svi"
    elif isinstance(fitted, SamplesPosterior) and fitted.chains == 1:
        chains, inference = 1, "samples"
        num = _fixed_set_size(fitted, sites, num_samples)
        draws = _collect(model_bnn, fitted, x, y, num, chunk, var_names)
    elif isinstance(fitted, Posterior) and not isinstance(fitted, SamplesPosterior):
        chains, inference = 1, "draws"
        draws, described = _collect_posterior(
            model_bnn, fitted, x, y, num_samples, seed, chunk, var_names
        )
    else:
        inference = "mcmc" if isinstance(fitted, MCMC) else "samples"
        draws, chains, diverging = _collect_samples(
            model_bnn, fitted, x, y, sites, num_samples, group_by_chain, chunk, var_names
        )
    groups = _groups(model_bnn, draws, chains, x, var_names, inference, class_labels)
    attrs = _attrs(inference)
    for group in groups.values():
        group.attrs.update(described)
    if diverging is not None:
        groups["sample_stats"] = _dataset({"diverging": (["chain", "draw"], diverging)}, attrs, {})
    if isinstance(fitted, BNN):
        requested = [v for v in var_names if v in sites]
        variational = _variational(fitted, x, requested, fit_result, attrs)
        if variational is not None:
            groups[VARIATIONAL] = variational
    return _wrap(groups)


def prediction_from_samples(
    bnn: BNN,
    samples: MCMC | Mapping[str, torch.Tensor],
    x: torch.Tensor,
    *,
    chunk_size: int | None = None,
    group_by_chain: bool | None = None,
) -> Prediction:
    """A :class:`~pyro_bdl.uncertainty.Prediction` from MCMC draws of the BNN's latent sites.

    :param bnn: the BNN whose model was sampled.
    :param samples: a ``pyro.infer.MCMC`` that ran ``bnn.model``, or a dict of draws in any
        layout of :func:`~pyro_bdl.inference.posterior.group_samples` (``mcmc.get_samples()``,
        ``get_samples(group_by_chain=True)``, a ``Predictive``'s output).
    :param x: inputs ``(N, ...)``.
    :param chunk_size: draws per vectorised forward.
    :param group_by_chain: force the reading of a dict's leading dims (see ``group_samples``).
    :return: a Prediction with ``S`` draws (all chains, chain after chain), samples of shape
        ``(S, N, ...)``.

    Example::

        >>> from pyro.infer import MCMC, NUTS
        >>> import pyro.distributions as dist
        >>> import torch
        >>> from torch import nn
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> x = torch.linspace(-1, 1, 8).unsqueeze(-1)  # 8 rows
        >>> y = torch.sin(3 * x[:, 0])
        >>> net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))
        >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=1.0))
        >>> mcmc = MCMC(NUTS(bnn.model, max_tree_depth=3), num_samples=10, warmup_steps=10,
        ...             disable_progbar=True)  # a short run; hundreds of draws in practice
        >>> mcmc.run(x, y)
        >>> x_test = torch.linspace(-2, 2, 5).unsqueeze(-1)
        >>> pred = prediction_from_samples(bnn, mcmc, x_test)
        >>> pred.mean.shape, pred.decompose().epistemic.shape
        (torch.Size([5]), torch.Size([5]))
    """
    if not isinstance(bnn, BNN):
        raise TypeError(f"Expected bnn to be a pyro_bdl.BNN, but got {type(bnn).__name__}.")
    if not isinstance(samples, (MCMC, Mapping)):
        raise TypeError(
            "Expected samples to be a pyro.infer.MCMC or a dict {site: tensor}, but got "
            f"{type(samples).__name__}."
        )
    return bnn.predict_from_samples(
        x, samples, chunk_size=chunk_size, group_by_chain=group_by_chain
    )


# ================================================================================ PSIS k̂
@dataclass(frozen=True)
class PSISResult:
    """Pareto-smoothed importance sampling diagnostic of a guide (Yao et al. 2018).

    :ivar khat: estimated shape of the generalised Pareto tail of the ratios p(W, y) / q(W).
    :ivar reading: ``"good"`` (k̂ < 0.5), ``"usable"`` (0.5 <= k̂ <= 0.7) or ``"unreliable"``
        (k̂ > 0.7, or NaN).
    :ivar log_weights: Pareto-smoothed, normalised log importance weights, shape ``(S,)``.
    :ivar log_ratios: the raw log ratios log p(W_s, y) - log q(W_s), shape ``(S,)``.
    """

    khat: float
    reading: str
    log_weights: np.ndarray
    log_ratios: np.ndarray

    def __repr__(self) -> str:
        return (
            f"PSISResult(khat={self.khat:.3f}, reading={self.reading!r}, S={len(self.log_ratios)})"
        )


def _reading(khat: float) -> str:
    if math.isnan(khat) or khat > 0.7:
        return "unreliable"
    return "good" if khat < 0.5 else "usable"


def psislw(log_ratios: np.ndarray | Sequence[float]) -> tuple[np.ndarray, float]:
    r"""Pareto-smoothed importance log weights and k̂ of log ratios, on ArviZ 0.x or 1.x.

    The argument is :math:`\log r_s = \log p_s - \log q_s`, ArviZ 0.x's convention for
    ``az.psislw``. ArviZ 1.x gets ``arviz_stats.base.array_stats.psislw(-log_ratios)``: its
    argument is the negated ratio (a log-likelihood, in LOO). For PSIS-LOO of point n the log
    ratios are :math:`-\log p(y_n \mid W_s)`.

    :param log_ratios: log importance ratios, shape ``(S,)``.
    :return: ``(log_weights, khat)``: smoothed log weights normalised to ``logsumexp = 0``,
        shape ``(S,)``, and the Pareto shape estimate; ``-inf`` when all ratios are equal up to
        float round-off (the proposal is the target: the weights are bounded, there is no tail).

    Example::

        >>> lw, k = psislw(np.random.default_rng(0).normal(size=1000))
        >>> lw.shape, round(float(np.exp(lw).sum()), 6), k < 0.5
        ((1000,), 1.0, True)
    """
    log_ratios = np.asarray(log_ratios, dtype=np.float64)
    if log_ratios.ndim != 1:
        raise ValueError(
            f"Expected log ratios of shape (S,), but got shape {tuple(log_ratios.shape)}."
        )
    if np.ptp(log_ratios) <= 64 * np.finfo(np.float64).eps * np.abs(log_ratios).max():
        # equal ratios up to round-off (q is the target): uniform weights, no tail to fit
        return np.full_like(log_ratios, -math.log(len(log_ratios))), -math.inf
    if arviz_major_version() >= 1:
        from arviz_stats.base import array_stats

        log_weights, khat = array_stats.psislw(-log_ratios)
    else:
        log_weights, khat = az.psislw(log_ratios)
    return np.asarray(log_weights, dtype=np.float64), float(np.asarray(khat))


@torch.no_grad()
def _log_ratios(bnn: BNN, x: torch.Tensor, y: torch.Tensor, num: int, chunk: int) -> np.ndarray:
    n = len(x)
    model = bnn.bayesian_model
    posterior = GuidePosterior(
        bnn.guide,
        model,
        args=(x, y),
        kwargs={"dataset_size": n},
        shapes=model.latent_shapes(x),
        per_example=False,
        log_q=True,
    )
    out = np.empty(num, dtype=np.float64)
    for start, draws in iter_draw_chunks(posterior, num, chunk=chunk):
        c = draws.num
        trace = run_model(bnn.model, draws, x, y, dataset_size=n)
        log_p = torch.zeros(c, dtype=torch.float64, device=x.device)  # float64, with the net
        for site in trace.nodes.values():
            if site["type"] == "sample" and not site_is_subsample(site):
                fn = cast(TorchDistribution, site["fn"])  # a sample site's distribution
                lp = fn.log_prob(cast(torch.Tensor, site["value"]))
                log_p += per_draw(scale_and_mask(lp, site["scale"], site["mask"]), c, x.device)
        assert draws.log_q is not None  # asked for
        out[start : start + c] = (log_p - draws.log_q).cpu().numpy()
    return out


def psis_khat(
    fitted: BNN,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_samples: int,
    seed: int | None = None,
    chunk_size: int | None = None,
) -> PSISResult:
    r"""PSIS diagnostic of the guide: is q(W) a usable importance proposal for p(W | y)?

    Draws W_s ~ q (s = 1..S), computes the log ratios

    .. math:: r_s = \log p(W_s, y) - \log q(W_s)

    with the model's log joint on the full data (no minibatch scaling: the data plate's size is
    ``len(x)``), Pareto-smooths them and returns the tail shape k̂ (Yao, Vehtari, Simpson &
    Gelman 2018): below 0.5 the guide is good, 0.5–0.7 usable, above 0.7 unreliable. Expect
    k̂ > 0.7 for mean-field guides on real networks: report it, don't gate on it.

    :param fitted: a fitted :class:`~pyro_bdl.BNN` whose guide has a density over the weights
        (mean-field, AutoNormal, low-rank, ...; not the dropout guides, not AutoDelta).
    :param x: inputs ``(N, ...)``, the training data.
    :param y: targets ``(N, ...)``.
    :param num_samples: S, draws from the guide (a few hundred or more: the tail uses
        min(S/5, 3√S) of them).
    :param seed: if given, reproducible without touching the global RNG.
    :param chunk_size: draws per vectorised run (default: about 64 MB per chunk).
    :return: a :class:`PSISResult` (``khat``, ``reading``, ``log_weights``, ``log_ratios``).
    :raises ValueError: if the guide has no density over W (dropout guides: their site
        log-density is the mask's), on ``num_samples <= 0`` or x and y of different lengths.

    Example::

        >>> import pyro.distributions as dist
        >>> import torch
        >>> from torch import nn
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> x = torch.linspace(-1, 1, 8).unsqueeze(-1)  # 8 rows
        >>> y = torch.sin(3 * x[:, 0])
        >>> net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))
        >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=1.0))
        >>> result = bnn.fit(x, y, epochs=2, lr=1e-2, progress=False)  # (thousands in practice)
        >>> res = psis_khat(bnn, x, y, num_samples=200, seed=0)
        >>> res  # 2 steps from its start, q(W) is far narrower than p(W | y)  # doctest: +ELLIPSIS
        PSISResult(khat=..., reading='unreliable', S=200)
        >>> res.log_weights.shape
        (200,)
    """
    seed = check_seed("seed", seed)
    if not isinstance(fitted, BNN):
        raise TypeError(f"Expected fitted to be a pyro_bdl.BNN, but got {type(fitted).__name__}.")
    num_samples = _positive_int("num_samples", num_samples)
    if y is None:
        raise ValueError("Expected targets y: the log joint p(W, y) needs the observed data.")
    x, y = cast(tuple[torch.Tensor, torch.Tensor], fitted.check_data(x, y))  # y is not None
    if chunk_size is not None:
        chunk_size = _positive_int("chunk_size", chunk_size)
    fitted.ensure_guide(x)
    chunk = _chunk(fitted, x, chunk_size)
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        log_ratios = _log_ratios(fitted, x, y, num_samples, chunk)
    if not np.isfinite(log_ratios).all():
        bad = int((~np.isfinite(log_ratios)).sum())
        raise ValueError(
            f"Expected finite log ratios log p(W, y) - log q(W), but {bad} of {num_samples} are "
            "NaN/inf: the guide puts mass where the model has none (check the prior's support)."
        )
    log_weights, khat = psislw(log_ratios)
    return PSISResult(khat, _reading(khat), log_weights, log_ratios)


# ================================================================================ held-out rows
def _group_datasets(data: ArviZData) -> dict[str, xr.Dataset]:
    """``{group: Dataset}`` of an ``az.InferenceData`` (0.x) or an ``xarray.DataTree`` (1.x)."""
    if arviz_major_version() >= 1:
        return {str(name): node.to_dataset() for name, node in data.children.items()}
    return {name: getattr(data, name) for name in data.groups()}


def add_predictions(
    data: ArviZData,
    fitted: BNN | MCMC | Posterior | Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    num_samples: int | None = None,
    bnn: BNN | None = None,
    class_labels: Sequence[Any] | None = None,
    seed: int | None = None,
    chunk_size: int | None = None,
) -> ArviZData:
    """Add held-out rows to an export as ArviZ's out-of-sample groups.

    ``data`` is :func:`to_inference_data` on the training data; the new rows go into

    =============================  =============================================================
    group                          content (dims)
    =============================  =============================================================
    ``predictions``                ``"obs"``: one y drawn per weight draw (chain, draw, obs_id,
                                   ...); ``"obs_mean"`` E[y | x_n, W_s]; with ``y``,
                                   ``"obs_log_lik"`` log p(y_n | W_s) (chain, draw, obs_id), and
                                   the attribute ``lpd``, the held-out log predictive density
                                   sum_n log mean_s p(y_n | W_s) (nats)
    ``predictions_constant_data``  ``"x"``: the inputs; with ``y``, ``"obs"``: the held-out targets
    =============================  =============================================================

    so that ``az.loo`` keeps reading the training data's ``log_likelihood``. The draws are made
    as by ``to_inference_data(fitted, x, y, ...)`` (arguments as there): fixed samples and MCMC
    give the same draws as in ``data``; a guide is sampled afresh (with ``seed``).

    :param data: the export of the training data (not modified).
    :param fitted: what ``data`` was made from (a BNN, MCMC, samples, any posterior).
    :param x: held-out inputs ``(M, ...)``.
    :param y: held-out targets ``(M, ...)``, or ``None``.
    :return: a new ``az.InferenceData`` (ArviZ 0.x) or ``xarray.DataTree`` (1.x) with every
        group of ``data`` and the two above.

    Example::

        >>> import arviz as az
        >>> import pyro.distributions as dist
        >>> import torch
        >>> from torch import nn
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> x = torch.linspace(-1, 1, 12).unsqueeze(-1)
        >>> y = torch.sin(3 * x[:, 0])
        >>> net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))
        >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=1.0))
        >>> _ = bnn.fit(x[:8], y[:8], epochs=2, progress=False)
        >>> train = to_inference_data(bnn, x[:8], y[:8], num_samples=50, seed=0)
        >>> both = add_predictions(train, bnn, x[8:], y[8:], num_samples=50, seed=1)
        >>> both.log_likelihood["obs"].shape, both.predictions["obs_log_lik"].shape
        ((1, 50, 8), (1, 50, 4))
        >>> both.predictions_constant_data["x"].shape
        (4, 1)
    """
    new = _group_datasets(
        to_inference_data(
            fitted,
            x,
            y,
            num_samples=num_samples,
            bnn=bnn,
            class_labels=class_labels,
            seed=seed,
            chunk_size=chunk_size,
        )
    )
    groups = _group_datasets(data)
    predicted = {OBS: new["posterior_predictive"][OBS]}
    if OBS_MEAN in new["posterior"]:
        predicted[OBS_MEAN] = new["posterior"][OBS_MEAN]
    attrs = dict(new["posterior_predictive"].attrs)
    constant = {"x": new["constant_data"]["x"]}
    if "log_likelihood" in new:
        ll = new["log_likelihood"][OBS]
        predicted[HELD_OUT_LOG_LIK] = ll
        per_point = np.log(np.exp(ll.values - ll.values.max((0, 1))).mean((0, 1)))
        attrs["lpd"] = float((per_point + ll.values.max((0, 1))).sum())
        constant[OBS] = new["observed_data"][OBS]
    groups["predictions"] = xr.Dataset(predicted, attrs=attrs)
    groups["predictions_constant_data"] = xr.Dataset(constant, attrs=attrs)
    return _wrap(groups)
