"""Tests of :mod:`pyro_bdl.cli`, one module per module of the package.

This folder is a package (the convention for every subfolder of ``tests/``) so that its test
modules are imported as ``cli.test_report`` etc. and never collide with a same-named module
elsewhere (``tests/test_report.py`` tests the ``pyro_bdl.report`` shim).
"""
