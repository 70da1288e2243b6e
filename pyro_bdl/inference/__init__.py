"""Inference: posteriors as sources of draws, the one draws loop, the ELBO and the fit loop.

Layer L4: imports the model, the guides and the nouns below it, never the ``BNN`` facade.
"""

from .posterior import (
    DRAWS_PLATE,
    Draws,
    FixedParameterWarning,
    GuidePosterior,
    Posterior,
    SamplesPosterior,
    group_samples,
)
from .predict import default_chunk, iter_draw_chunks, predict, run_model

__all__ = [
    "DRAWS_PLATE",
    "Draws",
    "FixedParameterWarning",
    "GuidePosterior",
    "Posterior",
    "SamplesPosterior",
    "default_chunk",
    "group_samples",
    "iter_draw_chunks",
    "predict",
    "run_model",
]
