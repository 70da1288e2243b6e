"""Lift the parameters of an unchanged ``torch.nn.Module`` to Pyro sample sites.

The user's network is never modified: its selected parameters are replaced, for one call, by
tensors sampled from the prior or the guide through :func:`torch.func.functional_call`. When the
sampled tensors carry leading sample dimensions (a vectorised particle plate,
``Predictive(parallel=True)``, a stack of posterior draws) the forward is vectorised over them
with :func:`torch.func.vmap`, so ``S`` draws cost one batched forward instead of ``S`` Python calls.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar, cast

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints
from pyro.distributions.torch_distribution import TorchDistributionMixin
from torch import nn
from torch.distributions import Distribution
from torch.func import functional_call, vmap

__all__ = [
    "BatchedForward",
    "broadcast_shapes",
    "cast_distribution",
    "eval_mode",
    "INIT_KEY",
    "init_to_net",
    "module_mode",
    "MODES",
    "named_random_parameters",
    "train_mode",
]

#: Key of a sample site's ``infer`` dict under which the lifted parameter's current value is kept,
#: so that guides can start at the network's weights (a pretrained net is a warm start).
INIT_KEY = "pyro_bdl_init"


#: The modes a fit can run the network in: ``{name: training flag}`` (``None``: as it is).
MODES: dict[str, bool | None] = {"train": True, "eval": False, "keep": None}


@contextlib.contextmanager
def module_mode(net: nn.Module, training: bool | None) -> Iterator[nn.Module]:
    """Run a block with ``net`` in training (``True``) or evaluation (``False``) mode.

    On entry ``net.train(training)`` is called (so a module that overrides ``train()`` is
    honoured); on exit every submodule's own ``training`` flag is set back to what it was,
    also when the block raises, and also for modules the block itself switched. ``None``
    leaves the modes as they are.

    :param net: any module.
    :param training: the mode of the block, or ``None``.
    :return: a context manager yielding ``net``.

    Example::

        >>> import torch
        >>> from pyro_bdl.nn import module_mode
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
        >>> net[1].eval()  # a user's own per-module choice  # doctest: +ELLIPSIS
        Dropout(...)
        >>> with module_mode(net, True):
        ...     net[1].training
        True
        >>> net.training, net[1].training  # restored module by module
        (True, False)
    """
    if training is None:
        yield net
        return
    saved = [(m, m.training) for m in net.modules()]
    try:
        net.train(training)
        yield net
    finally:
        for module, flag in saved:
            module.training = flag


def eval_mode(net: nn.Module) -> contextlib.AbstractContextManager[nn.Module]:
    """Run a block with ``net`` in evaluation mode (dropout off, BatchNorm on its running
    statistics, which it then leaves unchanged); each module's mode is restored afterwards.

    ``BNN.predict`` and every probe of the package run under it.

    Example::

        >>> import torch
        >>> from pyro_bdl.nn import eval_mode
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
        >>> with eval_mode(net):
        ...     out = net(torch.randn(1, 3))  # one row: fine in evaluation mode
        >>> net.training, float(net[1].num_batches_tracked)  # still training; stats untouched
        (True, 0.0)
    """
    return module_mode(net, False)


def train_mode(net: nn.Module) -> contextlib.AbstractContextManager[nn.Module]:
    """Run a block with ``net`` in training mode; each module's mode is restored afterwards.

    ``BNN.fit`` runs under it by default (``mode="train"``).

    Example::

        >>> import torch
        >>> from pyro_bdl.nn import train_mode
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.5)).eval()
        >>> with train_mode(net):
        ...     net[1].training
        True
        >>> net[1].training
        False
    """
    return module_mode(net, True)


def is_real_support(support: Any) -> bool:
    """Whether a distribution's support is the real line (possibly as independent dims)."""
    while hasattr(support, "base_constraint"):
        support = support.base_constraint
    return support is constraints.real


def named_random_parameters(
    net: nn.Module, include: Callable[[str, nn.Parameter], bool] | None = None
) -> list[tuple[str, nn.Parameter]]:
    """List the parameters of ``net`` that become random, in ``named_parameters()`` order.

    :param net: any module.
    :param include: predicate ``(name, param) -> bool``; ``None`` selects every parameter.
    :return: ``[(name, param), ...]`` for the selected parameters.
    :raises ValueError: if the network has no parameters or ``include`` selects none.

    Example::

        >>> import torch
        >>> from pyro_bdl.nn import named_random_parameters
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
        >>> [n for n, _ in named_random_parameters(net, lambda n, p: n.startswith("1."))]
        ['1.weight', '1.bias']
    """
    params = list(net.named_parameters())
    if not params:
        raise ValueError(
            f"Expected a network with at least one parameter, but {type(net).__name__} has none."
        )
    if include is None:
        return params
    selected = [(n, p) for n, p in params if include(n, p)]
    if not selected:
        names = ", ".join(n for n, _ in params)
        raise ValueError(
            "Expected `include` to select at least one parameter to make random, but it selected "
            f"none of: {names}. Fix the predicate, e.g. include=lambda name, p: "
            "name.endswith('weight')."
        )
    return selected


def init_to_net(site: dict[str, Any] | None = None, fallback: Callable | None = None) -> Any:
    """Initialisation for Pyro autoguides: start every lifted site at the network's weights.

    Sites that do not come from a network parameter (for example a noise precision) fall back to
    ``fallback`` (default :func:`pyro.infer.autoguide.init_to_median`).

    :param site: a Pyro message (when used directly as ``init_loc_fn``).
    :param fallback: strategy for sites without a network value.

    Example::

        >>> import pyro.distributions as dist
        >>> import torch
        >>> from pyro.infer.autoguide import AutoNormal
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> from pyro_bdl.nn import init_to_net
        >>> net = torch.nn.Linear(2, 1)
        >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.1))
        >>> guide = AutoNormal(bnn.model, init_loc_fn=init_to_net)
        >>> _ = guide(torch.zeros(4, 2), torch.zeros(4))  # initialises the guide
        >>> torch.equal(guide.locs.weight, net.weight)  # starts at the network's weights
        True
    """
    from pyro.infer.autoguide.initialization import init_to_median

    if fallback is None:
        fallback = init_to_median
    if site is None:
        return lambda s: init_to_net(s, fallback=fallback)
    value = site["infer"].get(INIT_KEY)
    if value is None:
        return fallback(site)
    return value.detach().clone()


D = TypeVar("D", bound=Distribution)


def cast_distribution(d: D, like: torch.Tensor) -> D:
    """Rebuild ``d`` with its tensor arguments on ``like``'s dtype and device (if they differ).

    Priors are usually written with float32 scalars; a float64 network needs float64 priors.

    Example::

        >>> import pyro.distributions as dist
        >>> import torch
        >>> from pyro_bdl.nn import cast_distribution
        >>> like = torch.zeros(2, dtype=torch.float64)
        >>> cast_distribution(dist.Normal(0.0, 1.0), like).loc.dtype
        torch.float64
    """
    if isinstance(d, dist.Independent):
        base = cast_distribution(d.base_dist, like)
        if not isinstance(base, TorchDistributionMixin):
            raise TypeError(
                "Expected a Pyro distribution (pyro.distributions) inside Independent, but got "
                f"{type(base).__module__}.{type(base).__name__}: build it with "
                "pyro.distributions and .to_event()."
            )
        return base.to_event(d.reinterpreted_batch_ndims)
    if isinstance(d, torch.distributions.MixtureSameFamily):
        return type(d)(
            cast_distribution(d.mixture_distribution, like),
            cast_distribution(d.component_distribution, like),
        )
    args = {k: v for k, v in vars(d).items() if k in d.arg_constraints and torch.is_tensor(v)}
    if all(v.dtype == like.dtype and v.device == like.device for v in args.values()):
        return d
    if "probs" in args and "logits" in args:  # both cached after use; the constructor takes one
        del args["probs"]
    # Distribution subclasses take their own arguments, which Distribution.__init__ does not list
    factory: Callable[..., D] = type(d)
    return factory(**{k: v.to(like) for k, v in args.items()})


#: Modules applied elementwise (any leading dims): a chain of these and ``nn.Linear`` layers is
#: run with batched matrix products instead of ``vmap``.
_ELEMENTWISE_MODULES = (
    nn.ReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.GELU,
    nn.SiLU,
    nn.ELU,
    nn.LeakyReLU,
    nn.Softplus,
    nn.Identity,
    nn.Dropout,
)

#: Largest layer buffer (elements) a BatchedForward keeps for its next no-grad call.
_KEEP_NUMEL = 4 * 2**20

#: In-place versions of elementwise modules, for outputs in a no-grad workspace.
_INPLACE: dict[type, Callable[[nn.Module, torch.Tensor], torch.Tensor]] = {
    nn.ReLU: lambda m, h: h.relu_(),
    nn.Tanh: lambda m, h: h.tanh_(),
    nn.Sigmoid: lambda m, h: h.sigmoid_(),
    nn.SiLU: lambda m, h: F.silu(h, inplace=True),
    nn.ELU: lambda m, h: F.elu(h, cast(nn.ELU, m).alpha, inplace=True),
    nn.LeakyReLU: lambda m, h: F.leaky_relu(h, cast(nn.LeakyReLU, m).negative_slope, inplace=True),
    nn.Identity: lambda m, h: h,
}


_HOOK_REGISTRIES = (
    "_forward_pre_hooks",
    "_forward_hooks",
    "_backward_pre_hooks",
    "_backward_hooks",
)


def _has_hooks(module: nn.Module) -> bool:
    """Whether a module has forward/backward hooks (a read-only look at torch's registries)."""
    return any(getattr(module, name, None) for name in _HOOK_REGISTRIES)


def _global_hooks() -> bool:
    """Whether global module hooks are registered (``register_module_forward_hook`` ...)."""
    registry = torch.nn.modules.module
    return any(getattr(registry, "_global" + name, None) for name in _HOOK_REGISTRIES)


#: the public convolution modules (``torch.nn``'s common base class is private)
_CONV_TYPES = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


@contextlib.contextmanager
def _layer_hooks(layer_fns: Mapping[nn.Module, Callable] | None) -> Iterator[None]:
    """Replace the outputs of ``layer_fns``' modules by ``fn(module, x, weight, bias, output)``
    (forward hooks, for the duration of the block)."""
    if not layer_fns:
        yield
        return

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        weight, bias = module.weight, getattr(module, "bias", None)
        return cast(torch.Tensor, layer_fns[module](module, args[0], weight, bias, output))

    handles = [m.register_forward_hook(hook) for m in layer_fns]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def _input_hooks(input_fns: Mapping[nn.Module, Callable] | None) -> Iterator[None]:
    """Apply ``input_fns`` as forward pre-hooks for the duration of the block."""
    if not input_fns:
        yield
        return

    def hook(module: nn.Module, args: tuple) -> tuple:
        return (input_fns[module](module, args[0]),) + tuple(args[1:])

    handles = [m.register_forward_pre_hook(hook) for m in input_fns]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class _LinearChain:
    """A plain ``nn.Sequential`` of ``nn.Linear`` layers and elementwise modules, run directly.

    For S stacked weight draws the layers become batched matrix products (``baddbmm``), with no
    ``vmap`` or ``functional_call`` overhead per call; for one draw, ``F.linear``. It computes what
    the module computes, and is only used when that is certain: exact types (no subclasses),
    no hooks, no dropout layer in training mode (checked at every call).
    """

    def __init__(self, net: nn.Module) -> None:
        if type(net) is not nn.Sequential:
            raise TypeError("not a chain")
        self.net = net
        self.layers: list[tuple[nn.Module, str | None]] = []
        for name, module in net.named_children():
            if type(module) is nn.Linear:
                self.layers.append((module, name))
            elif type(module) in _ELEMENTWISE_MODULES:
                self.layers.append((module, None))
            else:
                raise TypeError("not a chain")
        self.names = {
            f"{n}.{p}" for _, n in self.layers if n is not None for p in ("weight", "bias")
        }

    def usable(self, params: Mapping[str, torch.Tensor], args: tuple) -> bool:
        return (
            len(args) == 1
            and torch.is_tensor(args[0])
            and args[0].dim() == 2
            and set(params) <= self.names
            and not any(type(m) is nn.Dropout and m.training and m.p > 0 for m, _ in self.layers)
            and not _has_hooks(self.net)
            and not any(_has_hooks(m) for m, _ in self.layers)
            and not _global_hooks()
        )

    def __call__(
        self,
        params: Mapping[str, torch.Tensor],
        x: torch.Tensor,
        batched: bool,
        input_fns: Mapping[nn.Module, Callable] | None = None,
        workspace: dict[int, torch.Tensor] | None = None,
        layer_fns: Mapping[nn.Module, Callable] | None = None,
    ) -> torch.Tensor:
        """Run the chain; with ``workspace`` (no autograd) layer outputs reuse its buffers.

        Reusing buffers across chunks matters on CPU: a fresh multi-MB tensor per layer and chunk
        is a fresh ``mmap`` whose page faults cost more than the matrix product.
        """

        def buffer(i: int, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor | None:
            if workspace is None:
                return None
            numel = math.prod(shape)
            buf = workspace.get(i)
            if buf is None or buf.numel() < numel or buf.dtype != like.dtype:
                buf = workspace[i] = torch.empty(numel, dtype=like.dtype, device=like.device)
            return buf[:numel].view(shape)

        h = x
        owned = False  # whether h is a workspace buffer (never write into the caller's x)
        for i, (module, name) in enumerate(self.layers):
            if name is None:
                if type(module) is nn.Dropout:
                    continue
                inplace = _INPLACE.get(type(module)) if owned else None
                h = inplace(module, h) if inplace is not None else module(h)
                continue
            owned = workspace is not None
            if input_fns and module in input_fns:
                h = input_fns[module](module, h)
            linear = cast(nn.Linear, module)  # __init__ names only the nn.Linear layers
            # nn.Linear registers ``bias`` as a Parameter or None; its stubs do not declare it
            bias = cast("torch.Tensor | None", linear.bias)
            w = params.get(f"{name}.weight", linear.weight)
            b = params.get(f"{name}.bias", bias)
            if layer_fns and module in layer_fns:  # the layer's output, computed by the fn
                h = layer_fns[module](module, h, w, b, None)
                continue
            if not batched or (w.dim() == 2 and (b is None or b.dim() == 1)):
                h = F.linear(h, w, b)
                continue
            # a 2-d w got here only with a batched (not None) bias, which then holds the draws
            num = w.shape[0] if w.dim() == 3 else cast(torch.Tensor, b).shape[0]
            if w.dim() == 2:
                w = w.expand(num, *w.shape)
            out = w.shape[1]
            if h.dim() == 2:  # the shared input: one matrix product against all draws' rows
                w2 = w.reshape(-1, w.shape[-1])
                buf = buffer(i, (h.shape[0], num * out), h)
                if b is None:
                    h = torch.mm(h, w2.t(), out=buf) if buf is not None else h @ w2.t()
                else:
                    b2 = b.expand(num, out).reshape(-1)
                    h = (
                        torch.addmm(b2, h, w2.t(), out=buf)
                        if buf is not None
                        else torch.addmm(b2, h, w2.t())
                    )
                h = h.view(h.shape[0], num, out).transpose(0, 1)
                continue
            buf = buffer(i, (num, h.shape[1], out), h)
            if b is None:
                h = (
                    torch.bmm(h, w.transpose(1, 2), out=buf)
                    if buf is not None
                    else torch.bmm(h, w.transpose(1, 2))
                )
            else:
                b3 = (b.expand(num, out) if b.dim() == 1 else b).unsqueeze(1)
                h = (
                    torch.baddbmm(b3, h, w.transpose(1, 2), out=buf)
                    if buf is not None
                    else torch.baddbmm(b3, h, w.transpose(1, 2))
                )
        return h


class BatchedForward:
    """Run ``net`` with some parameters replaced, vectorised over leading sample dimensions.

    ``params`` maps parameter names to tensors of shape ``sample_shape + param.shape`` (size-1
    leading dims broadcast; size-1 dims between the sample dims and ``param.shape``, which Pyro's
    plates add, are dropped). The output has shape ``sample_shape + net(*args).shape``.

    Modules whose operators have no ``vmap`` batching rule (``nn.GRU``, ``nn.LSTM``, BatchNorm in
    training mode) are run with a Python loop over the draws instead; the choice is made on the
    first batched call in each combination of the modules' train/eval flags (BatchNorm vectorises
    in evaluation mode, not in training mode) and kept (:attr:`vectorized` is the choice for the
    current modes). A failed ``vmap`` attempt leaves no trace: the network's buffers and the
    random stream are restored before the loop runs, so the loop's draws and BatchNorm updates
    are those of ``vectorize=False``. If the loop fails as well, its error is raised: a real
    error is never hidden behind the fallback. Drawn convolution weights on CPU take the loop
    too (``"auto"``): ``vmap`` turns them into a grouped convolution, measured about 3x slower
    than one convolution per draw on LeNet-5. A plain ``nn.Sequential`` of ``nn.Linear`` layers
    and elementwise activations (no hooks, no dropout in training mode) is run with batched
    matrix products instead of ``vmap`` (same outputs, less overhead per call).

    The network runs in the mode its modules are in. In training mode a BatchNorm layer
    updates its running statistics once per forward pass it runs: without sample dims as one
    plain training forward does; under draws, once per draw (its input depends on the draws:
    no ``vmap`` rule, the loop runs it with each draw's batch statistics) or once per call (its
    input does not depend on them: ``vmap`` runs it once).

    :param net: the unchanged user network.
    :param vectorize: ``True`` (use vmap), ``False`` (loop) or ``"auto"``.

    Example::

        >>> import torch
        >>> from pyro_bdl.nn import BatchedForward
        >>> net = torch.nn.Linear(3, 2)
        >>> fwd = BatchedForward(net)
        >>> w = torch.randn(5, 2, 3)  # 5 draws of the weight
        >>> fwd({"weight": w}, torch.randn(7, 3), sample_shape=(5,)).shape
        torch.Size([5, 7, 2])
    """

    def __init__(self, net: nn.Module, vectorize: bool | str = "auto") -> None:
        if vectorize not in (True, False, "auto"):
            raise ValueError(f"Expected vectorize in (True, False, 'auto'), but got {vectorize!r}.")
        self.net = net
        self._fixed: bool | None = None if vectorize == "auto" else bool(vectorize)
        #: ``{modules' training flags: whether vmap works}``, decided on first use per mode
        self._decided: dict[tuple[bool, ...], bool] = {}
        self._modules = list(net.modules())
        self._shapes = {n: p.shape for n, p in net.named_parameters()}
        self._chain: _LinearChain | None = None
        self._workspaces: dict[int, dict[int, torch.Tensor]] = {}
        #: parameters of convolutions: vmap over their draws is a grouped convolution, which is
        #: ~3x slower on CPU than one convolution per draw, so "auto" loops there (see _run)
        self._conv_params = {
            f"{m}.{p}" if m else p
            for m, mod in net.named_modules()
            if isinstance(mod, _CONV_TYPES)
            for p, _ in mod.named_parameters(recurse=False)
        }
        if vectorize is not False:
            try:
                self._chain = _LinearChain(net)
            except TypeError:
                self._chain = None

    def __call__(
        self,
        params: Mapping[str, torch.Tensor],
        *args: Any,
        sample_shape: tuple[int, ...] | torch.Size = (),
        chunk_size: int | None = None,
        input_fns: Mapping[nn.Module, Callable] | None = None,
        layer_fns: Mapping[nn.Module, Callable] | None = None,
    ) -> torch.Tensor:
        """Outputs ``sample_shape + net(*args).shape``.

        :param input_fns: ``{module: fn(module, input) -> input}`` applied to the first input
            of those modules (as forward pre-hooks would be), e.g. per-example dropout masks.
        :param layer_fns: ``{module: fn(module, x, weight, bias, output) -> output}``: the
            output of those (``nn.Linear``) modules, e.g. local reparameterization's noise;
            ``output`` is the module's own output, or ``None`` where it was not computed (a
            Linear chain lets the fn compute it). Single draws only (no ``sample_shape``).
        """
        sample_shape = torch.Size(sample_shape)
        flat = {}
        for name, value in params.items():
            shape = self._shapes[name]
            batch = value.shape[: value.dim() - len(shape)]
            if not sample_shape:
                flat[name] = value.reshape(shape) if batch else value
                continue
            if len(sample_shape) == 1 and batch == sample_shape:
                flat[name] = value  # already (S, *shape): no view nodes for autograd
                continue
            extra = len(batch) - len(sample_shape)
            if extra > 0:  # size-1 dims of the model's plates, right of the sample dims
                value = value.reshape(batch[:-extra] + shape)
            flat[name] = value.expand(sample_shape + shape).reshape((-1,) + tuple(shape))
        chain = (
            self._chain
            if self._chain is not None and flat and self._chain.usable(flat, args)
            else None
        )
        if not sample_shape:
            if chain is not None:
                return chain(flat, args[0], False, input_fns, layer_fns=layer_fns)
            with _input_hooks(input_fns), _layer_hooks(layer_fns):
                return functional_call(self.net, flat, args)
        if layer_fns:
            raise ValueError(
                "Expected layer_fns with a single draw (no sample_shape), but got sample_shape "
                f"{tuple(sample_shape)}: call the forward once per draw."
            )
        if input_fns:
            chain = None  # per-example noise under a particle dim: vmap's random streams
        if chain is not None and self._fixed is None:
            self._decided.setdefault(self._mode_key(), True)
        num = sample_shape.numel()
        chunk = num if chunk_size is None else max(1, min(chunk_size, num))
        if chain is not None and not torch.is_grad_enabled():
            # layer buffers kept between calls (per thread): fresh multi-MB tensors each call
            # would be fresh mmaps, whose page faults cost more than the products
            workspace = self._workspaces.setdefault(threading.get_ident(), {})
            result = None
            for i in range(0, num, chunk):
                part = chain(
                    {n: v[i : i + chunk] for n, v in flat.items()}, args[0], True, None, workspace
                )
                if result is None:
                    result = part.new_empty((num,) + part.shape[1:])
                result[i : i + len(part)] = part
            for key in [k for k, buf in workspace.items() if buf.numel() > _KEEP_NUMEL]:
                del workspace[key]  # keep only cache-sized buffers between calls
            assert result is not None, f"sample_shape {tuple(sample_shape)} has no draw"
            return result.reshape(sample_shape + result.shape[1:])
        with _input_hooks(input_fns):
            outs = [
                chain({n: v[i : i + chunk] for n, v in flat.items()}, args[0], True)
                if chain is not None
                else self._run({n: v[i : i + chunk] for n, v in flat.items()}, args)
                for i in range(0, num, chunk)
            ]
        out = outs[0] if len(outs) == 1 else torch.cat(outs)
        return out.reshape(sample_shape + out.shape[1:])

    def activation_width(self) -> int | None:
        """Summed output width of a Linear chain's layers (its activations per example), or
        ``None`` when the network is not run as a chain."""
        if self._chain is None:
            return None
        # the named layers of a chain are its nn.Linear layers
        return sum(cast(nn.Linear, m).out_features for m, n in self._chain.layers if n is not None)

    @property
    def vectorized(self) -> bool | None:
        """Whether batched calls use ``vmap`` (``True``) or a loop (``False``) in the modules'
        current train/eval flags; ``None`` while not yet decided (``vectorize="auto"``)."""
        if self._fixed is not None:
            return self._fixed
        return self._decided.get(self._mode_key())

    def _mode_key(self) -> tuple[bool, ...]:
        return tuple(m.training for m in self._modules)

    def _run(self, flat: dict[str, torch.Tensor], args: tuple) -> torch.Tensor:
        if self._fixed is not None:
            return self._vmap(flat, args) if self._fixed else self._loop(flat, args)
        key = self._mode_key()
        decided = self._decided.get(key)
        if decided is not None:
            return self._vmap(flat, args) if decided else self._loop(flat, args)
        if not self._conv_params.isdisjoint(flat) and all(
            v.device.type == "cpu" for v in flat.values()
        ):
            self._decided[key] = False  # drawn convolution weights on CPU: the loop is faster
            return self._loop(flat, args)
        buffers = [(b, b.clone()) for b in self.net.buffers()]
        rng = _rng_state(list(flat.values()) + [a for a in args if torch.is_tensor(a)])
        try:
            out = self._vmap(flat, args)
        except RuntimeError:
            # undo what the attempt did before failing (BatchNorm counts its batches first)
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)
            _set_rng_state(rng)
            out = self._loop(flat, args)  # re-raises any error that is not vmap's
            self._decided[key] = False
        else:
            self._decided[key] = True
        return out

    def _vmap(self, flat: dict[str, torch.Tensor], args: tuple) -> torch.Tensor:
        def one(p: dict[str, torch.Tensor]) -> torch.Tensor:
            return functional_call(self.net, p, args)

        return vmap(one, randomness="different")(flat)

    def _loop(self, flat: dict[str, torch.Tensor], args: tuple) -> torch.Tensor:
        num = next(iter(flat.values())).shape[0]
        return torch.stack(
            [
                functional_call(self.net, {n: v[s] for n, v in flat.items()}, args)
                for s in range(num)
            ]
        )


def _rng_state(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """The CPU random state and that of every CUDA device among ``tensors``."""
    devices = {
        t.device.index if t.device.index is not None else torch.cuda.current_device()
        for t in tensors
        if t.is_cuda
    }
    return torch.get_rng_state(), {d: torch.cuda.get_rng_state(d) for d in devices}


def _set_rng_state(state: tuple[torch.Tensor, dict[int, torch.Tensor]]) -> None:
    cpu, cuda = state
    torch.set_rng_state(cpu)
    for device, value in cuda.items():
        torch.cuda.set_rng_state(value, device)


def sample_shape_of(
    values: Mapping[str, torch.Tensor],
    shapes: Mapping[str, torch.Size],
    plate_nesting: int = 1,
) -> torch.Size:
    """Leading sample shape of sampled weights, with the model's plate dims stripped.

    Pyro right-aligns batch dimensions with plates: a global weight sampled under a vectorised
    particle plate of size ``P`` placed at ``-(plate_nesting + 1)`` has shape
    ``(P, 1, *param.shape)``, whose size-1 dims belong to the model's plates. ``Predictive``
    conditions on ``(P, *param.shape)`` instead. Up to ``plate_nesting`` trailing size-1 batch dims
    are dropped and the rest (``(P,)`` in both cases) is the shape the forward is vectorised over,
    so the network output ``(P, N, ...)`` lines up with the data plate at dim -1.

    :raises ValueError: if a value does not end in its parameter's shape.
    """
    batch_shapes = []
    for name, value in values.items():
        shape = shapes[name]
        k = value.dim() - len(shape)
        if k < 0 or value.shape[k:] != shape:
            raise ValueError(
                f"Expected the value of weight site {name!r} to end in the parameter's shape "
                f"{tuple(shape)}, but got shape {tuple(value.shape)}."
            )
        batch_shapes.append(value.shape[:k])
    batch = broadcast_shapes(*batch_shapes)
    strip = 0
    while strip < min(plate_nesting, len(batch)) and batch[len(batch) - 1 - strip] == 1:
        strip += 1
    return batch[: len(batch) - strip]


def broadcast_shapes(*shapes: tuple[int, ...]) -> torch.Size:
    """``torch.broadcast_shapes`` in plain Python: it is called every step, and torch's costs
    tens of microseconds per call on torch 2.13.

    Example::

        >>> from pyro_bdl.nn import broadcast_shapes
        >>> broadcast_shapes((4, 1), (3,))
        torch.Size([4, 3])
    """
    if not shapes:
        return torch.Size()
    if all(s == shapes[0] for s in shapes):
        return torch.Size(shapes[0])
    ndim = max(len(s) for s in shapes)
    out = [1] * ndim
    for s in shapes:
        for i, d in enumerate(s, ndim - len(s)):
            if d != 1:
                if out[i] not in (1, d):
                    raise ValueError(
                        f"Expected broadcastable weight batch shapes, but got {shapes}."
                    )
                out[i] = d
    return torch.Size(out)


def fan_in_out(param: torch.Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a parameter; a 1-D parameter (a bias) counts its length for both.

    Example::

        >>> import torch
        >>> from pyro_bdl.nn import fan_in_out
        >>> fan_in_out(torch.empty(4, 3))
        (3, 4)
    """
    if param.dim() < 2:
        n = max(1, param.numel())
        return n, n
    receptive = math.prod(param.shape[2:])
    return param.shape[1] * receptive, param.shape[0] * receptive
