"""Effect handlers that hook the layers owning weight sites: per-example noise on layer inputs
(dropout masks) or outputs (local reparameterization, flipout). Hooks are removed on exit;
torch is never patched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.poutine.messenger import Messenger
from torch import nn

from ..distributions.masked_weight import MaskedWeight, relaxed_keep_mask
from .base import FACTOR_KEY, deep_getattr

if TYPE_CHECKING:
    from .mean_field import AutoMeanFieldNormal

__all__ = [
    "LayerHooks",
    "LinearOutputNoise",
    "MASKABLE",
    "MeanOnly",
    "PerExampleMasks",
    "mask_input",
]


class MeanOnly(dist.Independent):
    """A Gaussian factor that emits its mean: the noise goes to the layer outputs instead.

    Its KL to a Gaussian prior is the factor's (``Independent``'s registered KL), so the ELBO is
    unchanged; its ``log_prob`` is never a valid Monte-Carlo KL, hence the Gaussian-prior check.
    """

    def rsample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        return self.base_dist.loc.expand(self._extended_shape(torch.Size(sample_shape)))


class LayerHooks(Messenger):
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

    def __enter__(self) -> LayerHooks:
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


class LinearOutputNoise(LayerHooks):
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
        >>> from pyro_bdl import BNN, HomoskedasticGaussian, MeanFieldNormal
        >>> x = torch.linspace(-1, 1, 8).unsqueeze(-1)  # 8 rows
        >>> y = torch.sin(3 * x[:, 0])
        >>> net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))
        >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.1),
        ...           guide=MeanFieldNormal(estimator="local_reparameterization"))
        >>> result = bnn.fit(x, y, epochs=2, progress=False)  # under this handler
        >>> bnn.estimator()  # doctest: +ELLIPSIS
        <pyro_bdl.guides.handlers.LinearOutputNoise object at ...>
    """

    def __init__(self, guide: AutoMeanFieldNormal, sites: dict[str, nn.Module], flipout: bool):
        super().__init__(sites)
        self.guide, self.flipout = guide, flipout

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        name = msg["name"]
        if name not in self.sites or not msg["infer"].get(FACTOR_KEY) or msg["is_observed"]:
            return
        self._active[self.sites[name]] = name
        if not self.flipout:
            fn = msg["fn"]
            msg["fn"] = MeanOnly(fn.base_dist, fn.reinterpreted_batch_ndims)

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


MASKABLE = {
    nn.Linear: None,
    nn.Conv1d: F.dropout1d,
    nn.Conv2d: F.dropout2d,
    nn.Conv3d: F.dropout3d,
}


class PerExampleMasks(LayerHooks):
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
        >>> from pyro_bdl import BNN, BernoulliDropout, HomoskedasticGaussian, elbo_terms
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
            if type(module) not in MASKABLE or getattr(module, "groups", 1) != 1:
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
        return (mask_input(module, args[0], p, q.temperature),) + tuple(args[1:])


def mask_input(
    module: nn.Module, x: torch.Tensor, p: float | torch.Tensor, temperature: float | None
) -> torch.Tensor:
    """Multiply a layer input by fresh keep masks per example (per channel for convolutions)."""
    feature_dropout = MASKABLE[type(module)]
    if temperature is None and not isinstance(p, torch.Tensor) and p == 0:
        return x  # nothing dropped and, as F.dropout(p=0), no random numbers drawn
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
