"""The deny list: modules and file globs where no probe may be placed."""

from __future__ import annotations

import getpass
import hashlib
import hmac
import secrets
import ssl
from pathlib import Path
from typing import Any

import pytest

import sensor
from sensor.deny import DEFAULT_DENY_MODULES, DenyList, get_deny_list, set_deny_list


@pytest.fixture(autouse=True)
def fresh_default() -> Any:
    set_deny_list(None)
    yield
    set_deny_list(None)


@pytest.mark.parametrize(
    "module",
    [
        "sensor",
        "sensor.engine",
        "sensor.hub.store",
        "pytest_runtime.plugin",
        "ssl",
        "hashlib",
        "secrets",
    ],
)
def test_default_modules_and_their_submodules_are_denied(module: str) -> None:
    reason = DenyList().check(module, None)
    assert reason is not None
    assert repr(module) in reason
    assert "default" in reason


@pytest.mark.parametrize(
    "module", ["shop.pricing", "sslx", "sensors", "hashlibrary", "secretsauce"]
)
def test_other_modules_are_allowed(module: str) -> None:
    assert DenyList().check(module, "/srv/app/shop/pricing.py") is None


@pytest.mark.parametrize("mod", [ssl, hashlib, secrets])
def test_default_stdlib_files_are_denied_by_path(mod: Any) -> None:
    reason = DenyList().check(None, mod.__file__)
    assert reason is not None
    assert f"module {mod.__name__!r}" in reason


def test_files_of_the_sensor_package_are_denied_by_path() -> None:
    engine_file = str(Path(sensor.__file__).parent / "engine.py")
    reason = DenyList().check(None, engine_file)
    assert reason is not None
    assert "module 'sensor'" in reason


def test_sensor_deny_adds_modules_and_globs() -> None:
    deny = DenyList.from_env(
        {"SENSOR_DENY": "payments.crypto, */vault/*, keys.py, app/secrets/*.py, billing"}
    )
    assert "entry 'payments.crypto', SENSOR_DENY" in (deny.check("payments.crypto.aes", None) or "")
    assert deny.check("payments.cryptography", None) is None
    assert deny.check("billing", None) is not None
    assert "glob '*/vault/*'" in (deny.check(None, "/srv/app/vault/store.py") or "")
    assert "glob 'keys.py'" in (deny.check(None, "/srv/app/keys.py") or "")
    assert deny.check(None, "/srv/app/keys_test.py") is None
    assert "glob 'app/secrets/*.py'" in (deny.check(None, "/srv/app/secrets/x.py") or "")
    assert deny.check(None, "/srv/other/secrets/x.py") is None
    assert deny.check("ssl", None) is not None, "defaults stay"


def test_empty_sensor_deny_keeps_the_defaults() -> None:
    deny = DenyList.from_env({"SENSOR_DENY": " , "})
    assert deny.modules == DEFAULT_DENY_MODULES


def test_process_deny_list_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENSOR_DENY", "myapp.crypto")
    deny = get_deny_list()
    assert deny.check("myapp.crypto.keys", None) is not None
    assert get_deny_list() is deny


def test_add_extends_a_deny_list_at_run_time() -> None:
    deny = DenyList()
    assert deny.check("shop.admin", None) is None
    deny.add(modules=["shop.admin"], globs=["*/migrations/*"], origin="hub")
    assert "hub" in (deny.check("shop.admin.views", None) or "")
    assert deny.check(None, "/srv/shop/migrations/0001.py") is not None


def test_no_module_and_no_file_is_allowed() -> None:
    assert DenyList().check(None, None) is None


# Code that holds key material under ordinary names (`key`, `msg`, `data`), where the name rules
# cannot see it: hmac.new(key, msg), jwt.encode(payload, key), a signer's `key` local.
@pytest.mark.parametrize(
    "module",
    [
        "hmac",
        "getpass",
        "cryptography.hazmat.primitives.asymmetric.rsa",
        "jwt.api_jws",
        "jose.jws",
        "nacl.signing",
        "Crypto.Cipher.AES",
        "Cryptodome.PublicKey.RSA",
        "OpenSSL.crypto",
        "paramiko.rsakey",
        "keyring.backends",
        "passlib.hash",
        "bcrypt",
        "argon2",
        "hvac.api",
        "botocore.auth",
        "botocore.credentials",
        "google.auth.crypt",
        "google.oauth2.service_account",
        "azure.identity",
    ],
)
def test_modules_that_handle_key_material_are_denied_by_default(module: str) -> None:
    reason = DenyList().check(module, None)
    assert reason is not None
    assert "default" in reason


@pytest.mark.parametrize(
    "module", ["botocore.client", "google.cloud.storage", "jwtx", "hmacs", "azure.storage"]
)
def test_neighbours_of_key_material_modules_are_allowed(module: str) -> None:
    assert DenyList().check(module, None) is None


@pytest.mark.parametrize("mod", [hmac, getpass])
def test_key_material_stdlib_files_are_denied_by_path(mod: Any) -> None:
    reason = DenyList().check(None, mod.__file__)
    assert reason is not None
    assert f"module {mod.__name__!r}" in reason


def test_files_of_installed_key_material_packages_are_denied_by_path() -> None:
    jwt = pytest.importorskip("jwt")
    reason = DenyList().check(None, str(Path(jwt.__file__).parent / "api_jws.py"))
    assert reason is not None
    assert "module 'jwt'" in reason


def test_files_of_a_denied_submodule_are_denied_without_importing_it(tmp_path: Path) -> None:
    # A dotted entry (`botocore.auth`) covers its file under the top-level package, found
    # without importing the package.
    pkg = tmp_path / "vaultpkg"
    (pkg / "signing").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('imported')\n")
    (pkg / "auth.py").write_text("")
    (pkg / "signing" / "__init__.py").write_text("")
    (pkg / "signing" / "keys.py").write_text("")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        deny = DenyList(modules=["vaultpkg.auth", "vaultpkg.signing"])
        assert deny.check(None, str(pkg / "auth.py")) is not None
        assert deny.check(None, str(pkg / "signing" / "keys.py")) is not None
        assert deny.check(None, str(pkg / "client.py")) is None
        assert "vaultpkg" not in sys.modules
    finally:
        sys.path.remove(str(tmp_path))
