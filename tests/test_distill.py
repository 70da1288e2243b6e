"""``pyro_bdl.distill`` re-exports every name it had before the split, as the same objects."""

import importlib
import subprocess
import sys

import pyro_bdl.distill
from pyro_bdl import distributions, workflows
from pyro_bdl.likelihoods import distillation

#: ``pyro_bdl.distill.__all__`` before it was split (plus the public constant outside it).
OLD_NAMES = {
    "TemperedCategorical": distributions.tempered,
    "DistillationCategorical": distributions.tempered,
    "ExpectedNormal": distributions.expected_normal,
    "Distillation": distillation,
    "GaussianDistillation": distillation,
    "teacher_targets": workflows.teachers,
    "gaussian_teacher_targets": workflows.teachers,
    "stack_targets": distributions.tempered,
    "TeacherTargets": workflows.teachers,
    "Teacher": workflows.teachers,
}


def test_every_old_name_is_the_object_from_its_new_home():
    assert set(pyro_bdl.distill.__all__) == set(OLD_NAMES)
    for name, home in OLD_NAMES.items():
        assert getattr(pyro_bdl.distill, name) is getattr(home, name), name
    assert pyro_bdl.distill.TEACHER_DRAWS_PLATE == workflows.teachers.TEACHER_DRAWS_PLATE
    assert pyro_bdl.distill is importlib.import_module("pyro_bdl").distill


def test_importing_the_old_paths_warns_nothing():
    code = (
        "import warnings; warnings.simplefilter('error');"
        "from pyro_bdl.distill import *;"
        "from pyro_bdl.likelihoods import *;"
        "from pyro_bdl.priors import distribution_config, distribution_from_config"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
