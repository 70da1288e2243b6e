"""``pyro_bdl.likelihoods`` keeps every name it had as a module, as the same objects."""

import pyro_bdl
import pyro_bdl.likelihoods as likelihoods
from pyro_bdl.distributions import config
from pyro_bdl.likelihoods import base, classification, distillation, gaussian

#: ``pyro_bdl.likelihoods.__all__`` before it became a package, and where each name lives now.
OLD_ALL = {
    "Likelihood": base,
    "Categorical": classification,
    "Bernoulli": classification,
    "HomoskedasticGaussian": gaussian,
    "HeteroskedasticGaussian": gaussian,
    "OBS": base,
    "PRECISION": base,
}


def test_every_old_public_name_is_exported_from_its_new_home():
    assert set(OLD_ALL) <= set(likelihoods.__all__)
    for name, home in OLD_ALL.items():
        assert getattr(likelihoods, name) is getattr(home, name), name
    assert likelihoods.OBS == "obs" and likelihoods.PRECISION == "precision"
    for name in ("Likelihood", "Categorical", "Bernoulli"):
        assert getattr(pyro_bdl, name) is getattr(likelihoods, name)


def test_names_other_modules_import_still_import():
    from pyro_bdl.likelihoods import check_outputs, likelihood_from_config  # the engine's imports

    assert check_outputs is likelihoods.check_outputs is base.check_outputs
    assert likelihood_from_config is base.likelihood_from_config
    from pyro_bdl.priors import distribution_config, distribution_from_config

    assert distribution_config is config.distribution_config
    assert distribution_from_config is config.distribution_from_config


def test_likelihood_from_config_knows_the_distillation_likelihoods():
    """The package imports every likelihood module, so a saved student always loads."""
    lik = likelihoods.likelihood_from_config("Distillation", {"temperature": 2.0})
    assert isinstance(lik, distillation.Distillation) and lik.soft_weight == 4.0
    assert isinstance(
        likelihoods.likelihood_from_config("GaussianDistillation", {"min_scale": 0.1}),
        distillation.GaussianDistillation,
    )
