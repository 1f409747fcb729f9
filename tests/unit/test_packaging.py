"""The distribution: entry points, public names, a sensor that needs only the standard library."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

import pytest_runtime
import sensor

ROOT = Path(__file__).resolve().parents[2]

# The parts of `sensor` that run inside the host service. The hub and the CLI are separate
# processes and may use server libraries; everything else must import with the standard library.
IMPORT_CHECK = r"""
import importlib, pkgutil, sys
sys.path.insert(0, sys.argv[1])
import sensor
skipped = ("sensor.hub", "sensor.__main__")
names = ["sensor"]
for info in pkgutil.walk_packages(sensor.__path__, "sensor."):
    if info.name.startswith(skipped):
        continue
    importlib.import_module(info.name)
    names.append(info.name)
def is_stdlib(name):
    top = name.split(".")[0]
    # __main__ is this script; _sysconfigdata_* is the interpreter's own build data.
    return top in sys.stdlib_module_names or top == "__main__" or top.startswith("_sysconfigdata")
foreign = sorted(
    n for n in sys.modules if not is_stdlib(n) and n.split(".")[0] != "sensor"
)
print(len(names))
print(",".join(foreign))
"""


@pytest.mark.slow
def test_sensor_imports_in_a_bare_venv_with_the_standard_library_only(tmp_path: Path) -> None:
    env_dir = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    result = subprocess.run(
        [str(python), "-I", "-c", IMPORT_CHECK, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    count, foreign = [*result.stdout.splitlines(), ""][:2]
    assert int(count) >= 3, result.stdout
    assert foreign == "", f"the sensor imported non-stdlib modules: {foreign}"


def test_public_names_are_sorted_and_resolve() -> None:
    for package in (sensor, pytest_runtime):
        assert list(package.__all__) == sorted(package.__all__), package.__name__
        for name in package.__all__:
            assert hasattr(package, name), f"{package.__name__}.{name}"


def test_version_is_shared_by_both_packages() -> None:
    assert sensor.__version__ == pytest_runtime.__version__
    assert sensor.__version__[0].isdigit()


def test_plugin_is_registered_through_its_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess("--trace-config")
    result.stdout.fnmatch_lines(["*registered third-party plugins:*", "*pytest-runtime-*"])
    result.stdout.fnmatch_lines(["*pytest_runtime*plugin*"])
    assert result.ret == 0


def test_plugin_can_be_disabled_by_name(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess("-p", "no:runtime", "--trace-config")
    assert "pytest_runtime/plugin.py" not in result.stdout.str()
    assert result.ret == 0


def test_console_script_is_declared() -> None:
    from importlib.metadata import entry_points

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("pytest-runtime-sensor") == "sensor.__main__:main"
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("runtime") == "pytest_runtime.plugin"


def test_py_typed_markers_ship() -> None:
    assert (ROOT / "sensor" / "py.typed").exists()
    assert (ROOT / "pytest_runtime" / "py.typed").exists()


def test_python_is_supported() -> None:
    assert sys.version_info >= (3, 11)
