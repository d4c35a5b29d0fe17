"""The CI skip policy, as a pytest plugin: under CI=true a skip not allowed below fails the run.

A skip means a feature went untested (no real data, no Chromium, an extra not installed, not root);
locally that is a note in the summary, in CI it must not pass unnoticed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

# The only skips CI accepts, by test (parameters aside), each with the reason it cannot run there.
ALLOWED = {
    "tests/test_api_key_file.py::test_an_unreadable_file_says_so": (
        "CI runs as root, and root reads any file: an unreadable key file cannot be made"
    ),
}


def in_ci() -> bool:
    """Whether this is a CI run (CI=true, as CI services set it)."""
    return os.environ.get("CI", "").lower() == "true"


def _forbidden(report: Any) -> str | None:
    """Return why a skipped report fails the run under CI, or None if it may be skipped."""
    if not (report.skipped and in_ci()) or report.nodeid.split("[")[0] in ALLOWED:
        return None
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return (
        f"skipped under CI=true ({reason.removeprefix('Skipped: ')}); make it run in CI, or allow it "
        "with its reason in tests/helpers/ci_skips.py"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Turn a test's forbidden skip (in setup or call) into a failure."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if why := _forbidden(report):
        report.outcome, report.longrepr = "failed", why


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """Turn a whole module's forbidden skip (`importorskip` at import) into a collection error."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if why := _forbidden(report):
        report.outcome, report.longrepr = "failed", why
