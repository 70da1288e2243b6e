"""Mean-field VI, MC dropout and NUTS on one small BNN, compared the ArviZ way.

A 1-16-1 tanh network with a N(0, 1) prior is fitted to 1-D toy regression data three ways:
a mean-field Gaussian guide (SVI), a Bernoulli-dropout guide (MC dropout as VI) and NUTS on the
same ``bnn.model``. Each fit is exported with :func:`pyro_bdl.arviz.to_inference_data`; then

* ``az.compare`` ranks the three by PSIS-LOO (expected log predictive density),
* :func:`pyro_bdl.arviz.psis_khat` says whether each *guide* is a usable importance proposal for
  the posterior (dropout has no density over the weights, NUTS has no guide),
* posterior-predictive-check plots are written to ``--out``.

Run::

    python examples/arviz_diagnostics.py --quick          # seconds
    python examples/arviz_diagnostics.py --out ppc_plots  # minutes
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS
from torch import nn

from pyro_bdl import BNN, HomoskedasticGaussian, MeanFieldNormal
from pyro_bdl.arviz import arviz_major_version, psis_khat, to_inference_data
from pyro_bdl.datasets import toy_regression
from pyro_bdl.guides import BernoulliDropout

with warnings.catch_warnings():
    # ArviZ 0.23 announces its 1.x refactor with a FutureWarning on first import
    warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
    import arviz as az

NOISE = 0.1  # the toy data's noise std (toy_regression with heteroskedastic=False)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (``--seed``, ``--quick``, ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of data, fits and draws")
    parser.add_argument("--quick", action="store_true", help="tiny budgets (a smoke test)")
    parser.add_argument("--out", type=Path, default=Path("arviz_diagnostics_out"), help="plots")
    return parser.parse_args(argv)


def make_bnn(guide: Any, dtype: torch.dtype = torch.float64) -> BNN:
    """The 1-16-1 tanh BNN with a N(0, 1) prior on every weight and a known noise std."""
    net = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1)).to(dtype)
    return BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=NOISE), guide=guide)


def run_nuts(
    bnn: BNN, x: torch.Tensor, y: torch.Tensor, init: dict, budget: dict, seed: int
) -> MCMC:
    """NUTS on ``bnn.model``, started at a draw of a fitted guide (``init``)."""
    pyro.set_rng_seed(seed)
    kernel = NUTS(bnn.model, max_tree_depth=budget["tree_depth"])
    mcmc = MCMC(
        kernel,
        num_samples=budget["mcmc"],
        warmup_steps=budget["mcmc"],
        initial_params=init,
        disable_progbar=True,
    )
    mcmc.run(x, y)
    return mcmc


def save_ppc(idata: Any, path: Path, seed: int) -> None:
    """Posterior predictive check of ``obs``: ``az.plot_ppc`` (0.x) or ``plot_ppc_dist`` (1.x)."""
    import matplotlib.pyplot as plt

    if arviz_major_version() >= 1:
        draws = idata["posterior_predictive"].sizes
        num = min(50, draws["chain"] * draws["draw"])
        az.plot_ppc_dist(idata, num_samples=num, backend="matplotlib").savefig(path)
    else:
        draws = idata.posterior_predictive.sizes
        axes = az.plot_ppc(
            idata, num_pp_samples=min(50, draws["chain"] * draws["draw"]), random_seed=seed
        )
        np.ravel(axes)[0].figure.savefig(path)
    plt.close("all")


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured markdown table."""

    def cell(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Fit, export, compare, plot; print a markdown report and return its numbers.

    :param argv: command-line arguments (default: ``sys.argv[1:]``).
    :return: ``{"compare": {name: {...}}, "khat": {name: float | None},
        "khat_reading": {...}, "loo_max_khat": {...}, "plots": [paths], "warnings": [...],
        "markdown": str}``.
    """
    args = parse_args(argv)
    matplotlib.use("Agg")
    budget = (
        {"n": 40, "epochs": 300, "draws": 100, "psis": 200, "mcmc": 25, "tree_depth": 3}
        if args.quick
        else {"n": 100, "epochs": 3000, "draws": 500, "psis": 2000, "mcmc": 300, "tree_depth": 6}
    )
    x, y, _ = toy_regression(
        budget["n"], heteroskedastic=False, seed=args.seed, dtype=torch.float64
    )
    torch.manual_seed(args.seed)  # the networks' initial weights
    fit = dict(epochs=budget["epochs"], lr=2e-2, progress=False, seed=args.seed)

    fits: dict[str, Any] = {}
    mean_field = make_bnn(MeanFieldNormal(init_scale=1e-2))
    mf_result = mean_field.fit(x, y, **fit)
    dropout = make_bnn(BernoulliDropout(p=0.1))
    do_result = dropout.fit(x, y, **fit)
    with torch.no_grad():  # start NUTS at a draw of the mean-field fit, not in the prior's tails
        init = {k: v.detach() for k, v in mean_field.guide(x, None).items()}
    mcmc = run_nuts(mean_field, x, y, init, budget, args.seed)  # the same model, sampled

    draws = dict(num_samples=budget["draws"], seed=args.seed)
    fits["mean-field"] = to_inference_data(mean_field, x, y, fit_result=mf_result, **draws)
    fits["dropout"] = to_inference_data(dropout, x, y, fit_result=do_result, **draws)
    fits["NUTS"] = to_inference_data(mcmc, x, y)

    khat: dict[str, float | None] = {}
    reading: dict[str, str] = {}
    for name, bnn in (("mean-field", mean_field), ("dropout", dropout)):
        try:
            result = psis_khat(bnn, x, y, num_samples=budget["psis"], seed=args.seed)
        except ValueError:  # the dropout guide has no density over the weights
            khat[name], reading[name] = None, "n/a: the guide has no density over W"
        else:
            khat[name], reading[name] = result.khat, result.reading
    khat["NUTS"], reading["NUTS"] = None, "n/a: no guide (MCMC)"

    args.out.mkdir(parents=True, exist_ok=True)
    plots: list[str] = []
    caught: list[str] = []
    loo_max_khat: dict[str, float] = {}
    with warnings.catch_warnings(record=True) as records:
        # ArviZ warns when a pointwise LOO k̂ is high (expected for VI on a BNN): report, go on
        warnings.simplefilter("always")
        for name, idata in fits.items():
            loo = az.loo(idata, pointwise=True)
            loo_max_khat[name] = float(np.max(np.asarray(loo.pareto_k)))
            path = args.out / f"ppc_{name.lower().replace('-', '_')}.png"
            save_ppc(idata, path, args.seed)
            plots.append(str(path))
        options = {"ic": "loo"} if arviz_major_version() == 0 else {"round_to": "none"}
        table = az.compare(fits, **options)
    for w in records:
        text = f"{w.category.__name__}: {str(w.message).splitlines()[0]}"
        if text not in caught:
            caught.append(text)

    elpd_col = "elpd_loo" if "elpd_loo" in table.columns else "elpd"
    p_col = "p_loo" if "p_loo" in table.columns else "p"
    compare = {
        str(name): {
            "rank": int(row["rank"]),
            "elpd_loo": float(row[elpd_col]),
            "se": float(row["se"]),
            "p_loo": float(row[p_col]),
            "weight": float(row["weight"]),
        }
        for name, row in table.iterrows()
    }
    report = "\n\n".join(
        [
            f"# Mean-field vs dropout vs NUTS on a 1-16-1 BNN (N = {budget['n']})",
            "## PSIS-LOO comparison (az.compare)",
            markdown_table(
                ["fit", "rank", "elpd_loo", "se", "p_loo", "weight"],
                [[name] + list(row.values()) for name, row in compare.items()],
            ),
            "## Is the guide any good? PSIS k̂ (good < 0.5, usable 0.5-0.7, unreliable > 0.7)",
            markdown_table(
                ["fit", "guide k̂", "reading", "max pointwise LOO k̂"],
                [
                    [name, "-" if khat[name] is None else khat[name], reading[name], k]
                    for name, k in loo_max_khat.items()
                ],
            ),
            "## Posterior predictive checks\n\n" + "\n".join(f"- `{p}`" for p in plots),
            "## Warnings\n\n" + ("\n".join(f"- {c}" for c in caught) if caught else "none"),
        ]
    )
    print(report)
    return {
        "compare": compare,
        "khat": khat,
        "khat_reading": reading,
        "loo_max_khat": loo_max_khat,
        "plots": plots,
        "warnings": caught,
        "markdown": report,
    }


if __name__ == "__main__":
    main()
