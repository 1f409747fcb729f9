"""Collection errors come out the same with schemathesis's pytest plugin loaded as without it.

schemathesis (installed with the dev extras, and in many API projects) wraps every test
function's collection in an old-style hook wrapper that re-raises an error inside its own
``except``: an error raised while a test's items are made got its ``AssertionError`` chained
in, and a ``PluggyTeardownRaisedWarning`` (an error of its own under ``-W error``).
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("schemathesis")

CASES = {
    "bad-location": (
        'import pytest\n\n@pytest.mark.runtime_probe("shop f")\ndef test_b():\n    pass\n',
        "*runtime_probe argument 'location': got 'shop f', expected 'module:qualname'*",
    ),
    "bad-capture": (
        "import pytest\n\n"
        '@pytest.mark.runtime_probe("shop:f", capture="price")\n'
        "def test_b():\n    pass\n",
        "*runtime_probe argument 'capture': got 'price', expected a list*",
    ),
    "bad-expectation": (
        "import pytest\n\n"
        '@pytest.mark.runtime_probe("shop:f", expect="__import__(\'os\')")\n'
        "@pytest.mark.parametrize('n', [1, 2])\n"
        "def test_b(n):\n    pass\n",
        "*runtime_probe argument 'expect'*",
    ),
    "import-error": (
        "import no_such_module_for_this_test\n\ndef test_b():\n    pass\n",
        "*ModuleNotFoundError: No module named 'no_such_module_for_this_test'*",
    ),
}


def _error_block(lines: list[str]) -> list[str]:
    """The lines of the ERRORS section, without timings."""
    start = next(i for i, line in enumerate(lines) if "ERRORS" in line)
    end = next(i for i, line in enumerate(lines) if "short test summary info" in line)
    return lines[start:end]


@pytest.mark.parametrize("warnings", [[], ["-W", "error"]])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_collection_error_reads_the_same_with_schemathesis_loaded(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, case: str, warnings: list[str]
) -> None:
    # The suite's conftest keeps schemathesis out of inner runs; this test wants it in.
    addopts = os.environ.get("PYTEST_ADDOPTS", "").replace("-p no:schemathesis", "").strip()
    monkeypatch.setenv("PYTEST_ADDOPTS", addopts)
    source, expected = CASES[case]
    pytester.makepyfile(test_case=source)
    loaded = pytester.runpytest_subprocess("-p", "no:cacheprovider", *warnings)
    assert "schemathesis" in loaded.stdout.str()  # in the "plugins:" header: it was loaded
    without = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:schemathesis", *warnings
    )
    for result in (loaded, without):
        assert result.ret == pytest.ExitCode.INTERRUPTED
        result.stdout.fnmatch_lines(["*ERROR collecting test_case.py*", expected])
    text = loaded.stdout.str()
    assert "During handling of the above exception" not in text
    assert "assert None is not None" not in text
    assert "PluggyTeardownRaisedWarning" not in text
    assert _error_block(loaded.stdout.lines) == _error_block(without.stdout.lines)
