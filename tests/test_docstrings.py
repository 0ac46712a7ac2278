"""Runs the `>>>` examples in every module's docstrings as doctests."""

import contextlib
import doctest
import importlib
import io
import pkgutil

import pytest

import keras_metacleaner

MODULES = [keras_metacleaner.__name__] + sorted(
    info.name
    for info in pkgutil.walk_packages(
        keras_metacleaner.__path__, prefix=f"{keras_metacleaner.__name__}."
    )
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        result = doctest.testmod(
            module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
        )
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} docstring examples failed in {name}:\n"
        f"{report.getvalue()}"
    )
