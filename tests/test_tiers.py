"""The suite's tiers (tests/conftest.py): a test module that declares neither `unit` nor `e2e` fails the collection,
by its path; a test's own tier mark overrides its module's, so `-m unit` leaves out an e2e test of a unit module."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit

CONFTEST = "from tests.conftest import pytest_collection_modifyitems  # noqa: F401\n"


def test_an_unmarked_module_fails_the_collection_naming_it(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_marked="import pytest\npytestmark = [pytest.mark.unit]\n\ndef test_a():\n    pass\n",
        test_single="import pytest\n\n@pytest.mark.e2e\ndef test_b():\n    pass\n",  # a test's mark is not the module's
        test_plain="def test_c():\n    pass\n",
    )
    result = pytester.runpytest_inprocess("--collect-only", "-m", "unit")  # also when -m would deselect them
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    error = result.stderr.str()
    assert str(pytester.path / "test_single.py") in error and str(pytester.path / "test_plain.py") in error
    assert "test_marked.py" not in error


def test_a_tests_own_tier_overrides_its_modules(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_mixed="""
import pytest

pytestmark = pytest.mark.unit


def test_fast():
    pass


@pytest.mark.e2e
def test_slow():
    pass
""")
    tiers = {}
    for tier in ("unit", "e2e"):
        result = pytester.runpytest_inprocess("--collect-only", "-q", "-m", tier)
        assert result.ret == pytest.ExitCode.OK
        tiers[tier] = [line.split("::")[1] for line in result.outlines if "::" in line]
    assert tiers == {"unit": ["test_fast"], "e2e": ["test_slow"]}
