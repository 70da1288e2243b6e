"""The ``pyro-bdl`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pyro-bdl`` (one subparser per subcommand)."""
    parser = argparse.ArgumentParser(
        prog="pyro-bdl",
        description="Bayesian deep learning as probabilistic programs in Pyro.",
    )
    parser.add_argument("--version", action="version", version=f"pyro-bdl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    quick = sub.add_parser(
        "quickstart",
        help="fit a mean-field BNN on a 1-D toy regression and print a small table",
        description="Fit a mean-field BNN on a 1-D toy regression with a gap in the inputs and "
        "print predictive mean and total / aleatoric / epistemic std at a few inputs.",
    )
    quick.add_argument("--epochs", type=int, default=2000, help="SVI epochs (default 2000)")
    quick.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    quick.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def quickstart(epochs: int = 2000, seed: int = 0, progress: bool = True) -> str:
    """Fit a small BNN on toy data and return the summary table as markdown.

    :param epochs: SVI epochs.
    :param seed: random seed.
    :param progress: show the progress bar.

    Example::

        >>> print(quickstart(epochs=50, progress=False))  # doctest: +SKIP
    """
    import pyro.distributions as dist
    import torch
    from torch import nn

    from .bnn import BNN
    from .datasets import toy_regression
    from .guides import MeanFieldNormal
    from .likelihoods import HomoskedasticGaussian

    torch.manual_seed(seed)
    x, y, info = toy_regression(
        200, heteroskedastic=False, seed=seed, dtype=torch.get_default_dtype()
    )
    net = nn.Sequential(nn.Linear(1, 50), nn.Tanh(), nn.Linear(50, 1))
    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(), guide=MeanFieldNormal(1e-3))
    fit = bnn.fit(x, y, epochs=epochs, lr=1e-2, num_particles=4, seed=seed, progress=progress)
    grid = torch.tensor([[-1.0], [-0.6], [0.0], [0.6], [1.0]])
    pred = bnn.predict(grid, num_samples=200, seed=seed)
    parts = pred.decompose()
    rows = [
        "| x | true mean | predictive mean | total std | aleatoric std | epistemic std |",
        "|---|---|---|---|---|---|",
    ]
    for i, xi in enumerate(grid.squeeze(-1).tolist()):
        rows.append(
            f"| {xi:+.1f} | {info.mean(grid[i]).item():+.3f} | {pred.mean[i].item():+.3f} | "
            f"{parts.total[i].sqrt().item():.3f} | {parts.aleatoric[i].sqrt().item():.3f} | "
            f"{parts.epistemic[i].sqrt().item():.3f} |"
        )
    rows.append("")
    rows.append(
        f"ELBO / datum {fit.elbo[-1]:.3f} (expected log-lik {fit.loglik[-1]:.3f}, "
        f"KL {fit.kl[-1]:.3f}); {fit.num_steps} steps in {fit.seconds:.1f} s; x = 0 is in the gap."
    )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pyro-bdl``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "quickstart":
        print(quickstart(args.epochs, args.seed, progress=not args.no_progress))
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
