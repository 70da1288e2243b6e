"""Where is a BNN unsure? Mean-field VI, MC dropout and NUTS on a 1-D toy with a gap.

The data (:func:`pyro_bdl.datasets.toy_regression`) are two clusters of inputs,
``[-1, -0.3]`` and ``[0.3, 1]``, with noise whose standard deviation grows with ``|x|``
(``0.05 + 0.2 |x|``). One network, ``1 -> H -> 2`` with tanh, outputs a location and an
unconstrained noise scale (:class:`~pyro_bdl.HeteroskedasticGaussian`), and the same
``BNN`` -- same prior, same likelihood -- is fitted three ways:

* a mean-field Gaussian guide (:class:`~pyro_bdl.guides.MeanFieldNormal`) by SVI;
* concrete dropout (:class:`~pyro_bdl.guides.ConcreteDropout`: MC dropout as variational
  inference, with the drop probability of each weight matrix learned) by SVI;
* NUTS on ``bnn.model`` itself (``pyro.infer.MCMC``), the reference posterior.

Each predictive is split by the law of total variance into aleatoric noise
(:math:`\\overline{\\sigma^2}`, which should track the true noise) and epistemic spread
(:math:`\\mathrm{Var}_s[\\mu_s]`, which should grow in the gap). The example prints, per
method, the epistemic variance inside the gap over that in the data region and the mean
relative error of the aleatoric standard deviation against the true noise, and saves the three
decompositions side by side.

Single-hidden-layer mean-field VI and MC dropout are known to underestimate the uncertainty
*between* clusters of data (Foong et al. 2019, "'In-Between' Uncertainty in Bayesian Neural
Networks"); the numbers show it rather than hide it. With 200 points the concrete-dropout ELBO
drives the drop probabilities to almost zero, so dropout's epistemic part nearly vanishes
everywhere while its aleatoric part fits the noise well.

Run::

    python examples/regression_uncertainty.py --out figures/
    python examples/regression_uncertainty.py --quick --out /tmp  # seconds, for smoke tests
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS
from torch import nn

from pyro_bdl import BNN, HeteroskedasticGaussian, Prediction
from pyro_bdl.datasets import ToyInfo, toy_mean, toy_regression
from pyro_bdl.guides import ConcreteDropout, MeanFieldNormal
from pyro_bdl.plots import regression_bands

FIGURE = "regression_uncertainty.png"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` shrinks every budget to a smoke test."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="data, initialisation and RNG seed")
    parser.add_argument("--quick", action="store_true", help="tiny budgets (a smoke test)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the figure")
    parser.add_argument("--num-data", type=int, default=200, help="training points")
    parser.add_argument("--hidden", type=int, default=16, help="hidden units of 1-H-2")
    parser.add_argument("--epochs", type=int, default=3000, help="SVI steps (full batch)")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate for SVI")
    parser.add_argument("--dropout-p", type=float, default=0.1, help="initial drop probability")
    parser.add_argument("--num-samples", type=int, default=200, help="predictive draws (SVI)")
    parser.add_argument("--nuts-samples", type=int, default=200, help="NUTS draws kept")
    parser.add_argument("--nuts-warmup", type=int, default=200, help="NUTS warm-up steps")
    parser.add_argument("--max-tree-depth", type=int, default=6, help="NUTS tree depth cap")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads; one is fastest for tensors this small (0: leave torch's)",
    )
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    args = parser.parse_args(argv)
    if args.quick:
        args.num_data, args.hidden, args.epochs = 60, 8, 50
        args.num_samples, args.nuts_samples, args.nuts_warmup = 20, 10, 10
        args.max_tree_depth = 3
    return args


def make_bnn(hidden: int, guide: Any = None) -> BNN:
    """``1 -> hidden -> 2`` tanh network with heteroskedastic Gaussian noise.

    The prior is N(0, 3^2) on the first layer, so that tanh units may be steep and functions
    may turn between the clusters, and N(0, 4 / hidden) on the output weights, so that the
    prior output scale does not grow with the width.
    """
    net = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, 2))
    first, out = dist.Normal(0.0, 3.0), dist.Normal(0.0, 2.0 / math.sqrt(hidden))
    prior = {"0.weight": first, "0.bias": first, "2.weight": out, "2.bias": dist.Normal(0.0, 1.0)}
    likelihood = HeteroskedasticGaussian(min_scale=1e-3)
    return BNN(net, prior, likelihood, guide=guide)


def fit_svi(
    bnn: BNN, x: torch.Tensor, y: torch.Tensor, x_grid: torch.Tensor, args: argparse.Namespace
) -> tuple[Prediction, dict[str, Any]]:
    """Fit the guide by full-batch SVI and draw the predictive on ``x_grid``.

    Also returns the learned drop probabilities of a dropout guide (``{}`` otherwise).
    """
    bnn.fit(x, y, epochs=args.epochs, lr=args.lr, seed=args.seed, progress=args.progress)
    pred = bnn.predict(x_grid, num_samples=args.num_samples, seed=args.seed)
    learned = getattr(bnn.guide, "drop_probabilities", None)
    return pred, ({"drop_p": learned()} if learned is not None else {})


def fit_nuts(
    bnn: BNN, x: torch.Tensor, y: torch.Tensor, x_grid: torch.Tensor, args: argparse.Namespace
) -> tuple[Prediction, dict[str, Any]]:
    """Run NUTS on ``bnn.model`` and predict from its draws; also return the divergences."""
    kernel = NUTS(bnn.model, max_tree_depth=args.max_tree_depth)
    mcmc = MCMC(
        kernel,
        num_samples=args.nuts_samples,
        warmup_steps=args.nuts_warmup,
        disable_progbar=not args.progress,
    )
    mcmc.run(x, y)
    divergences = len(mcmc.diagnostics()["divergences"]["chain 0"])
    return bnn.predict_from_samples(x_grid, mcmc.get_samples()), {"divergences": divergences}


def summarize(pred: Prediction, x_grid: torch.Tensor, info: ToyInfo) -> dict[str, float]:
    """Epistemic variance in the gap vs the data region, and the aleatoric std's error there.

    The data region is the part of the domain outside the gap; the gap ratio is
    ``mean epistemic variance (gap) / mean epistemic variance (data)`` and the aleatoric error
    is ``mean |sqrt(aleatoric) - sigma(x)| / sigma(x)`` over the data region.
    """
    parts = pred.decompose()
    x = x_grid[:, 0]
    gap = info.in_gap(x)
    data = (x >= info.domain[0]) & (x <= info.domain[1]) & ~gap
    epi_gap = float(parts.epistemic[gap].mean())
    epi_data = float(parts.epistemic[data].mean())
    noise = info.noise_std(x[data])
    rel_error = ((parts.aleatoric[data].sqrt() - noise).abs() / noise).mean()
    return {
        "epistemic_gap": epi_gap,
        "epistemic_data": epi_data,
        "epistemic_ratio": epi_gap / epi_data,
        "aleatoric_rel_error": float(rel_error),
    }


def plot(
    predictions: dict[str, Prediction],
    results: dict[str, dict[str, float]],
    x_grid: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    info: ToyInfo,
    path: Path,
) -> None:
    """Top row: predictive bands per method; bottom row: aleatoric and epistemic std vs x."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0 * len(predictions), 7.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(predictions), sharex=True, sharey="row", squeeze=False)
    xs = x_grid[:, 0]
    true_noise = info.noise_std(xs)
    for col, (name, pred) in enumerate(predictions.items()):
        top, bottom = axes[0, col], axes[1, col]
        regression_bands(x_grid, pred, x_train=x, y_train=y, true_fn=toy_mean, ax=top)
        r = results[name]
        top.set_title(f"{name}: epistemic gap/data = {r['epistemic_ratio']:.1f}x")
        parts = pred.decompose()
        bottom.plot(xs, parts.aleatoric.sqrt(), color="C1", label="aleatoric std")
        bottom.plot(xs, parts.epistemic.sqrt(), color="C0", label="epistemic std")
        bottom.plot(xs, true_noise, "k--", label="true noise std")
        bottom.set_title(
            f"aleatoric std rel. error (data) = {100 * r['aleatoric_rel_error']:.0f} %"
        )
        bottom.set_xlabel("x")
        bottom.set_ylabel("std")
        if col:
            top.get_legend().remove()
        else:
            bottom.legend(loc="upper center", fontsize="small")
        for ax in (top, bottom):
            if info.gap is not None:
                ax.axvspan(*info.gap, color="0.9", zorder=0)
    axes[0, 0].set_ylim(-2.5, 2.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def markdown_table(results: dict[str, dict[str, float]]) -> str:
    """The summary as a markdown table."""
    lines = [
        "| method | epistemic var. (gap) | epistemic var. (data) | gap / data "
        "| aleatoric std rel. error (data) | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['epistemic_gap']:.4f} | {r['epistemic_data']:.4f} "
            f"| {r['epistemic_ratio']:.2f} | {100 * r['aleatoric_rel_error']:.1f} % "
            f"| {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Fit the three posteriors, print the table, save the figure; return the numbers."""
    pyro.set_rng_seed(args.seed)
    pyro.clear_param_store()
    dtype = torch.get_default_dtype()
    x, y, info = toy_regression(args.num_data, seed=args.seed, dtype=dtype)
    x_grid = torch.linspace(-1.25, 1.25, 251, dtype=dtype).unsqueeze(-1)

    guides = {
        "mean-field": MeanFieldNormal(init_scale=1e-2),
        # drop probabilities learned per weight matrix: fixed ones on so small a net underfit
        "dropout": ConcreteDropout(init_p=args.dropout_p),
        "nuts": None,
    }
    predictions: dict[str, Prediction] = {}
    results: dict[str, dict[str, Any]] = {}
    for name, guide in guides.items():
        torch.manual_seed(args.seed)  # same initial network for every method
        bnn = make_bnn(args.hidden, guide)
        start = time.perf_counter()
        fit = fit_nuts if name == "nuts" else fit_svi
        pred, extra = fit(bnn, x, y, x_grid, args)
        predictions[name] = pred
        results[name] = {
            **summarize(pred, x_grid, info),
            "seconds": time.perf_counter() - start,
            **extra,
        }

    print(markdown_table(results))
    drop_p = ", ".join(f"{k}: {v:.3f}" for k, v in results["dropout"]["drop_p"].items())
    print(f"\nlearned drop probabilities: {drop_p}")
    print(f"NUTS divergences: {results['nuts']['divergences']}")
    path = args.out / FIGURE
    plot(predictions, results, x_grid, x, y, info, path)
    print(f"figure: {path}")
    return {"methods": results, "figure": str(path)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the example; ``argv`` as on the command line (``None``: ``sys.argv[1:]``)."""
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        return run(args)
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
