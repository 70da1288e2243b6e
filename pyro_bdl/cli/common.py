"""What the subcommands of ``pyro-bdl`` share: the error type, the dtype, fitting and writing.

Only :mod:`torch` is imported here; the BNN, ArviZ and tqdm are imported inside the functions
that use them, so that ``pyro-bdl --help`` stays fast.

Example::

    >>> net = mlp(3, [8], 2)
    >>> count_parameters(net), next(net.parameters()).dtype
    (50, torch.float32)
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .._version import __version__

if TYPE_CHECKING:
    from torch import Tensor

    from ..arviz import ArviZData
    from ..bnn import BNN, FitResult
    from .report import StagedFolder
    from .training import ConvergenceRule

__all__ = [
    "DTYPE",
    "CLIError",
    "count_parameters",
    "export_netcdf",
    "fit_until_converged",
    "fit_with_progress",
    "mlp",
    "one_line",
    "staged",
    "threads",
    "versions",
    "warn",
]

#: dtype of the data and networks the command builds (fast on CPU, same in every session).
DTYPE = torch.float32


class CLIError(Exception):
    """A problem with the user's input, reported as one line on stderr.

    Example::

        >>> str(CLIError("no such file: 'data.csv'"))
        "no such file: 'data.csv'"
    """


def warn(message: str) -> None:
    """Print ``pyro-bdl: warning: MESSAGE`` as one line on stderr.

    Example::

        >>> warn("the fit has not converged")  # prints on stderr
    """
    print(f"pyro-bdl: warning: {one_line(message)}", file=sys.stderr)


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space.

    Example::

        >>> one_line("line 1\\n   line 2 ")
        'line 1 line 2'
    """
    return " ".join(str(text).split())


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads (small networks are fastest on one).

    :param n: the number of threads inside the block; the previous number is restored after.

    Example::

        >>> before = torch.get_num_threads()
        >>> with threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def staged(out: str) -> Iterator[StagedFolder]:
    """Stage a report folder for ``out``; discard it unless the block commits it.

    :param out: the destination folder (see :meth:`~pyro_bdl.cli.report.StagedFolder.prepare`).
    :raises ~pyro_bdl.cli.report.OutputError: if ``out`` cannot be used.

    Example::

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     with staged(f"{tmp}/report") as folder:
        ...         _ = (folder.path / "report.md").write_text("# Hello\\n")
        ...         target = folder.commit()
        ...     sorted(p.name for p in target.iterdir())
        ['.pyro-bdl-report', 'report.md']
    """
    from .report import StagedFolder

    folder = StagedFolder.prepare(out)
    try:
        yield folder
    finally:
        if folder.path.exists():
            folder.discard()


def mlp(
    d_in: int, hidden: Sequence[int], d_out: int, activation: type[nn.Module] = nn.ReLU
) -> nn.Sequential:
    """``d_in -> hidden... -> d_out`` with ``activation`` between layers, in :data:`DTYPE`.

    :param d_in: input features.
    :param hidden: units per hidden layer.
    :param d_out: outputs.
    :param activation: the module class put after every hidden layer.

    Example::

        >>> mlp(2, [16, 8], 1, nn.Tanh)
        Sequential(
          (0): Linear(in_features=2, out_features=16, bias=True)
          (1): Tanh()
          (2): Linear(in_features=16, out_features=8, bias=True)
          (3): Tanh()
          (4): Linear(in_features=8, out_features=1, bias=True)
        )
    """
    layers: list[nn.Module] = []
    width = d_in
    for h in hidden:
        layers += [nn.Linear(width, h), activation()]
        width = h
    layers.append(nn.Linear(width, d_out))
    return nn.Sequential(*layers).to(DTYPE)


def fit_with_progress(
    bnn: BNN, x: Tensor, y: Tensor, desc: str, progress: bool, **kwargs: Any
) -> FitResult:
    """``bnn.fit`` with a labelled progress bar (epochs, last ELBO per datum).

    :param bnn: the model to fit.
    :param x: inputs ``(N, D)``.
    :param y: targets ``(N,)`` (or soft targets ``(N, C)``).
    :param desc: the progress bar's label.
    :param progress: show the bar.
    :param kwargs: passed to :meth:`~pyro_bdl.bnn.BNN.fit`; ``epochs`` is required.

    Example::

        >>> import pyro.distributions as dist
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> x, y = torch.randn(16, 2), torch.randn(16)
        >>> bnn = BNN(mlp(2, [4], 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian())
        >>> fit_with_progress(bnn, x, y, "toy", False, epochs=3, seed=0).num_steps
        3
    """
    from tqdm.auto import tqdm

    epochs = kwargs["epochs"]
    with tqdm(total=epochs, desc=desc, unit="epoch", disable=not progress, leave=True) as bar:

        def callback(epoch: int, result: FitResult) -> None:
            bar.update(1)
            bar.set_postfix_str(f"ELBO/N {result.elbo[-1]:.3f}", refresh=False)

        return bnn.fit(x, y, progress=False, callback=callback, **kwargs)


def fit_until_converged(
    bnn: BNN,
    x: Tensor,
    y: Tensor,
    desc: str,
    progress: bool,
    *,
    epochs: int | None,
    batch_size: int | None = None,
    **kwargs: Any,
) -> tuple[FitResult, ConvergenceRule]:
    """Fit under the command's convergence rule (:mod:`~pyro_bdl.cli.training`).

    :param bnn: the model to fit.
    :param x: inputs ``(N, D)``.
    :param y: targets ``(N,)`` (or soft targets ``(N, C)``).
    :param desc: the progress bar's label.
    :param progress: show the bar.
    :param epochs: the epoch limit, or ``None`` for the limit of
        :func:`~pyro_bdl.cli.training.plan`.
    :param batch_size: minibatch size (default: full batches).
    :param kwargs: passed to :meth:`~pyro_bdl.bnn.BNN.fit` (``lr``, ``seed``, ...).
    :return: ``(fit record, rule)``; ``rule.converged`` says how the fit ended.

    Example::

        >>> import pyro.distributions as dist
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> x, y = torch.randn(16, 2), torch.randn(16)
        >>> bnn = BNN(mlp(2, [4], 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian())
        >>> fit, rule = fit_until_converged(bnn, x, y, "toy", False, epochs=3, seed=0)
        >>> fit.num_steps, rule.converged
        (3, False)
    """
    from .training import ConvergenceRule, plan

    schedule = plan(len(x), batch_size or len(x), epochs)
    rule = ConvergenceRule(schedule.window)
    fit = fit_with_progress(
        bnn,
        x,
        y,
        desc,
        progress,
        epochs=schedule.epochs,
        batch_size=batch_size,
        callbacks=[rule],
        **kwargs,
    )
    return fit, rule


def export_netcdf(
    bnn: BNN,
    train: tuple[Tensor, Tensor],
    path: Path,
    *,
    samples: int,
    fit: FitResult | None,
    seed: int,
    class_labels: Sequence[str] | None = None,
    held_out: tuple[Tensor, Tensor] | None = None,
) -> ArviZData:
    """Write the ArviZ InferenceData of ``bnn`` to ``path`` (netCDF) and return it.

    The ``log_likelihood``, ``posterior_predictive`` and ``observed_data`` groups hold the
    **training** rows (what ``az.loo`` estimates from); held-out rows go to the ``predictions``
    and ``predictions_constant_data`` groups (:func:`pyro_bdl.arviz.add_predictions`).

    :param bnn: a fitted BNN.
    :param train: the training inputs ``(N, D)`` and targets ``(N,)``, as the fit saw them.
    :param path: the ``.nc`` file to write.
    :param samples: posterior draws.
    :param fit: the fit record (its ELBO trace goes into the ``variational`` group), if any.
    :param seed: random seed of the draws.
    :param class_labels: class names, for a classifier.
    :param held_out: test inputs and targets, if any.

    Example::

        >>> idata = export_netcdf(  # doctest: +SKIP
        ...     bnn, (x, y), Path("bnn.nc"), samples=100, fit=fit, seed=0, held_out=(xt, yt)
        ... )
    """
    from ..arviz import add_predictions, to_inference_data

    x, y = train
    idata = to_inference_data(
        bnn, x, y, num_samples=samples, fit_result=fit, seed=seed, class_labels=class_labels
    )
    if held_out is not None:
        idata = add_predictions(
            idata,
            bnn,
            *held_out,
            num_samples=samples,
            seed=seed + 1,
            class_labels=class_labels,
        )
    idata.to_netcdf(str(path))
    return idata


def versions() -> str:
    """The versions of pyro-bdl, torch and pyro-ppl, in one line.

    Example::

        >>> versions()  # doctest: +ELLIPSIS
        'pyro-bdl ..., torch ..., pyro-ppl ...'
    """
    import pyro

    return f"pyro-bdl {__version__}, torch {torch.__version__}, pyro-ppl {pyro.__version__}"


def count_parameters(net: nn.Module) -> int:
    """The number of weights of ``net`` (every parameter element).

    Example::

        >>> count_parameters(nn.Linear(3, 2))
        8
    """
    return sum(p.numel() for p in net.parameters())
