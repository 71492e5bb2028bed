"""Shared test set-up."""
import os
import tempfile


def pytest_configure(config):
    # Commands write their libraries' start-up output to a per-user log
    # ($XDG_STATE_HOME/urbansound/logs): the tests' go to a folder of their own, not to
    # the home of whoever runs them.  Subprocesses inherit it.
    if "URBANSOUND_TEST_STATE" not in os.environ:
        state = tempfile.mkdtemp(prefix="urbansound-test-state-")
        os.environ["URBANSOUND_TEST_STATE"] = state
        os.environ["XDG_STATE_HOME"] = state
