"""`make test` runs pytest with --fail-on-skip (tests/conftest.py): a skip must fail the run."""

from pathlib import Path

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()


def test_fail_on_skip_turns_a_skipped_test_into_a_failed_run(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_x="""
        import pytest
        def test_ok():
            pass
        def test_missing_library():
            pytest.importorskip("a_library_that_is_not_installed_anywhere")
    """)
    strict = pytester.runpytest("--fail-on-skip", "-p", "no:cacheprovider")
    strict.assert_outcomes(passed=1, skipped=1)
    assert strict.ret == 1
    assert "test_missing_library was skipped" in strict.stdout.str()
    lenient = pytester.runpytest("-p", "no:cacheprovider")
    assert lenient.ret == 0


def test_fail_on_skip_passes_a_run_without_skips(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_y="def test_ok():\n    assert 1 + 1 == 2\n")
    assert pytester.runpytest("--fail-on-skip", "-p", "no:cacheprovider").ret == 0
