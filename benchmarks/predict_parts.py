"""Where BNN.predict's time goes on the 1-50-1 net (S = 100 draws, N = 1000 inputs).

Times, back to back (medians of 60 calls, one thread): the whole ``predict``, the plain loop that
draws W ~ q (``svi_step.py``'s baseline), and predict's parts: the batched forward of 5 chunks of
20 draws, drawing the weights, building the Prediction, and the input checks, probe and sampler.

    python benchmarks/predict_parts.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyro.distributions as dist
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import svi_step as b  # noqa: E402

from pyro_bdl import BNN, MeanFieldNormal  # noqa: E402


def median_ms(fn: Callable[[], object], n: int = 60) -> float:
    for _ in range(10):
        fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> dict[str, float]:
    """Print and return ``{part: milliseconds}``."""
    torch.set_num_threads(1)
    spec = b.NETS["1-50-1"]
    x, y = b.make_data(spec, 1000)
    bnn = BNN(b.build(spec), dist.Normal(0.0, 1.0), b.likelihood("regression"), MeanFieldNormal())
    bnn.fit(x, y, epochs=1, progress=False)
    loc_scale = {k: (m.detach(), s.detach()) for k, (m, s) in bnn.guide.loc_scale().items()}
    sampler = bnn.posterior(x).sampler  # the guide's trace-free sampler
    forward = bnn.bayesian_model.forward
    with torch.no_grad():
        draws = sampler((20,), with_kl=False)[0]
        f = torch.cat([forward(draws, x, sample_shape=(20,))] * 5)
        parts = {
            "predict": median_ms(lambda: bnn.predict(x, 100)),
            "plain loop drawing W ~ q": median_ms(
                lambda: b.loop_predict_sampling(bnn.net, loc_scale, x, 100)
            ),
            "forward, 5 chunks of 20 draws": 5
            * median_ms(lambda: forward(draws, x, sample_shape=(20,))),
            "weight draws, 5 chunks": 5 * median_ms(lambda: sampler((20,), with_kl=False)),
            "Prediction": median_ms(lambda: bnn.likelihood.prediction_from_outputs(f, 1)),
            "input checks, probe, posterior": median_ms(
                lambda: (bnn.check_data(x), bnn.posterior(x))
            ),
        }
    for name, ms in parts.items():
        print(f"{name:32s} {ms:7.2f} ms")
    return parts


if __name__ == "__main__":
    main()
