"""Shared test fixtures."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread is faster, and far faster on a shared, loaded CPU.

    Use with `pytestmark = pytest.mark.usefixtures("one_thread")`; the thread count is restored
    after the module.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# `make test` (what CI runs) passes --fail-on-skip: CI installs every reference library and asset,
# so a test skipped there (importorskip of a missing library, a missing asset) means something is
# broken, and the run must fail instead of going green with parts untested.
def pytest_addoption(parser):
    parser.addoption("--fail-on-skip", action="store_true", default=False,
                     help="exit non-zero when any test is skipped (CI: every dependency is installed)")


def pytest_sessionfinish(session, exitstatus):
    if not session.config.getoption("--fail-on-skip"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        for rep in skipped:
            reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
            print(f"\n--fail-on-skip: {rep.nodeid} was skipped: {reason}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
