"""The ``runtime`` option group, its ini keys and environment variables, read into one dataclass."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import TYPE_CHECKING

from pytest_runtime.errors import OptionError

if TYPE_CHECKING:
    import pytest

__all__ = [
    "DEFAULT_MIN_HITS",
    "DEFAULT_RARER_THAN",
    "DEFAULT_SINCE",
    "DEFAULT_WAIT",
    "HUB_MODES",
    "RECORD_MODES",
    "RuntimeOptions",
    "add_options",
    "any_given",
]

DEFAULT_WAIT = 30.0
#: Fewer production hits than this give ``inconclusive``: with 10 hits, anything the evidence
#: did not show is only known to be rarer than 26% of calls (the rule of three, 95%).
DEFAULT_MIN_HITS = 10
#: The wait for evidence goes on until anything unseen is shown rarer than this, at 95%
#: confidence: 29 hits, what one source sends at the default snapshot rate (1/s) in the
#: default 30 s wait, or two sources in 15 s (see docs/explanation/comparison.md).
DEFAULT_RARER_THAN = 0.1
DEFAULT_SINCE = "1h"
#: pytest-recording's record modes, for the evidence file (the hub is the network).
RECORD_MODES = ("none", "once", "new_episodes", "all", "rewrite")
#: Record modes that read the hub (``once`` only when the file does not exist yet).
HUB_MODES = ("new_episodes", "all", "rewrite")
ENV_HUB = "PYTEST_RUNTIME_HUB"
#: The client token, one name for the plugin and the CLI (``python -m sensor``). Never an
#: option: a token on a command line leaks into ``ps``.
ENV_TOKEN = "SENSOR_CLIENT_TOKEN"
#: The plugin's former name for it: still read, with a deprecation note.
ENV_TOKEN_OLD = "PYTEST_RUNTIME_TOKEN"


def add_options(parser: pytest.Parser) -> None:
    """Add the ``runtime`` group and the matching ini keys."""
    group = parser.getgroup("runtime", "runtime probes (pytest-runtime)")
    group.addoption(
        "--runtime-probe",
        action="store_true",
        default=False,
        help="place the marked probes on live sources through the hub and compare their "
        "evidence with the test-time states",
    )
    group.addoption(
        "--runtime-hub",
        metavar="URL",
        default=None,
        help=f"hub URL (default: ${ENV_HUB}, then ini runtime_hub); "
        f"the client token is read from ${ENV_TOKEN}, as python -m sensor does",
    )
    group.addoption(
        "--runtime-service",
        metavar="NAME",
        default=None,
        help="service whose sources receive the probes when a marker names none "
        "(default: ini runtime_service, else the hub's only live service; required when the "
        "hub has several)",
    )
    group.addoption(
        "--runtime-wait",
        metavar="SECONDS",
        default=None,
        help=f"longest wait for production hits (default: ini runtime_wait, then {DEFAULT_WAIT:g})",
    )
    group.addoption(
        "--runtime-min-hits",
        metavar="N",
        default=None,
        help="production hits wanted per probe; fewer gives the verdict inconclusive "
        f"(default: ini runtime_min_hits, then {DEFAULT_MIN_HITS})",
    )
    group.addoption(
        "--runtime-rarer-than",
        metavar="RATE",
        default=None,
        help="wait until anything the evidence did not show is rarer than RATE of calls at 95%% "
        "confidence (the rule of three: about 3/RATE hits), or until the wait ends: 5%%, 0.01 "
        "(default: ini runtime_rarer_than, then "
        + f"{DEFAULT_RARER_THAN:.0%}".replace("%", "%%")
        + ")",
    )
    group.addoption(
        "--runtime-since",
        metavar="WHEN",
        default=None,
        help="oldest evidence to use: a duration such as 30m, 2h, 1d, an ISO time or epoch "
        f"seconds (default: ini runtime_since, then {DEFAULT_SINCE} for the hub and no limit "
        "for evidence files)",
    )
    group.addoption(
        "--runtime-evidence",
        metavar="PATH",
        action="append",
        default=[],
        help="read production evidence from this JSON Lines file or directory of *.jsonl "
        "files instead of the hub (repeatable); for a path outside the project write "
        "--runtime-evidence=PATH: given after a space, pytest counts it when it chooses the "
        "rootdir",
    )
    group.addoption(
        "--runtime-record",
        metavar="PATH",
        default=None,
        help="write the evidence fetched from the hub to this JSON Lines file (the same as "
        "--runtime-evidence PATH --runtime-record-mode rewrite)",
    )
    group.addoption(
        "--runtime-record-mode",
        metavar="MODE",
        default=None,
        choices=RECORD_MODES,
        help="how the --runtime-evidence file is used, as pytest-recording's --record-mode "
        "(the hub is the network): none (read the file only), once (read it if it exists, "
        "else read the hub and write it), new_episodes (read both, add the hub's new hits to "
        "it), all (read the hub, add its hits to the file), rewrite (read the hub, replace the "
        "file); default: none with --runtime-evidence",
    )
    group.addoption(
        "--runtime-version",
        metavar="VERSION",
        default=None,
        help="service version whose standing evidence to compare with: a version, 'live' "
        "(the versions of the service's live sources, the default) or 'any'",
    )
    group.addoption(
        "--runtime-publish",
        action="store_true",
        default=False,
        help="collect the suite (no test runs) and make the hub's standing probes of the "
        "service equal to its runtime_probe markers: place new ones, keep unchanged ones, "
        "retire the others",
    )
    group.addoption(
        "--runtime-dry-run",
        action="store_true",
        default=False,
        help="with --runtime-publish: show what would be placed, kept and retired, change nothing",
    )
    group.addoption(
        "--runtime-strict",
        action="store_true",
        default=None,
        help="fail on diverged probes too, not only on violated ones (default: ini runtime_strict)",
    )
    group.addoption(
        "--runtime-report-json",
        metavar="PATH",
        default=None,
        help="write one JSON report entry per probe and test to this file",
    )
    group.addoption(
        "--runtime-baseline",
        metavar="PATH",
        default=None,
        help="fail only on divergences not listed in this baseline file "
        "(default: ini runtime_baseline)",
    )
    group.addoption(
        "--runtime-write-baseline",
        action="store_true",
        default=False,
        help="write the current divergences to the --runtime-baseline file and do not fail on them",
    )
    group.addoption(
        "--runtime-replay",
        metavar="N",
        default=None,
        help="call each function marked replay=True on up to N distinct production argument "
        "states (rare states first) and compare the outcomes with production's; the states "
        "come from --runtime-evidence files or the hub's stored evidence (--runtime-hub)",
    )
    group.addoption(
        "--runtime-fail-under",
        metavar="PCT",
        default=None,
        help="fail the run when the state coverage (production shapes the tests had), or the "
        "share of production-run lines the tests ran, is below PCT percent (like "
        "--cov-fail-under; default: ini runtime_fail_under)",
    )
    parser.addini("runtime_hub", "hub URL for --runtime-probe", default="")
    parser.addini(
        "runtime_fail_under",
        "fail when state coverage or production-line coverage is below this percent",
        default="",
    )
    parser.addini("runtime_service", "default service selector for probes", default="")
    parser.addini("runtime_wait", "longest wait for production hits in seconds", default="")
    parser.addini("runtime_min_hits", "production hits wanted per probe", default="")
    parser.addini(
        "runtime_rarer_than",
        "wait until anything unseen is rarer than this share of calls (95% confidence)",
        default="",
    )
    parser.addini("runtime_since", "oldest evidence to use", default="")
    parser.addini("runtime_strict", "fail on diverged probes too", type="bool", default=False)
    parser.addini(
        "runtime_plumbing",
        "set server plumbing aside in comparisons (WSGI environ and ASGI scope server keys, "
        "streams, database handles); false compares it as data",
        type="bool",
        default=True,
    )
    parser.addini("runtime_baseline", "baseline file of accepted divergences", default="")


_OPTION_DESTS = (
    "runtime_probe",
    "runtime_hub",
    "runtime_service",
    "runtime_wait",
    "runtime_min_hits",
    "runtime_rarer_than",
    "runtime_since",
    "runtime_evidence",
    "runtime_record",
    "runtime_record_mode",
    "runtime_version",
    "runtime_publish",
    "runtime_dry_run",
    "runtime_strict",
    "runtime_report_json",
    "runtime_baseline",
    "runtime_write_baseline",
    "runtime_replay",
    "runtime_fail_under",
)
_INI_KEYS = (
    "runtime_hub",
    "runtime_service",
    "runtime_wait",
    "runtime_min_hits",
    "runtime_rarer_than",
    "runtime_since",
    "runtime_strict",
    "runtime_baseline",
    "runtime_fail_under",
)


def any_given(config: pytest.Config) -> bool:
    """True when any option, ini key or environment variable of the plugin is set.

    The common run sets none: then there is nothing to parse or validate at start-up.
    """
    if ENV_HUB in os.environ:  # set, even blank: a blank one is an error to report
        return True
    if any(config.getoption(dest) not in (None, False, [], "") for dest in _OPTION_DESTS):
        return True
    return any(config.getini(key) not in (None, False, "", []) for key in _INI_KEYS)


def _hub_from_env() -> str | None:
    """``$PYTEST_RUNTIME_HUB`` checked as ``python -m sensor`` checks it: blank or not a URL is an
    error naming the variable, never a silent fall-back to the ini key."""
    from sensor.config import check_hub_url
    from sensor.errors import ConfigError

    raw = os.environ.get(ENV_HUB)
    if raw is None:
        return None
    try:
        return check_hub_url(ENV_HUB, raw)
    except ConfigError:
        expected = "an http:// or https:// URL such as https://hub:8765"
        raise OptionError(ENV_HUB, raw, expected) from None


@dataclasses.dataclass(frozen=True)
class RuntimeOptions:
    """Every plugin setting, resolved from the command line, environment and ini file."""

    probe: bool = False
    hub: str | None = None
    token: str | None = None
    token_variable: str = ENV_TOKEN  #: the environment variable the token came from
    service: str | None = None
    wait: float = DEFAULT_WAIT
    min_hits: int = DEFAULT_MIN_HITS
    rarer_than: float = DEFAULT_RARER_THAN  #: the confidence bound the wait aims for
    rarer_than_given: bool = False  #: set explicitly (option or ini), not the default
    since: float = 0.0  #: epoch seconds
    since_given: bool = False  #: set explicitly (option or ini), not the default
    evidence: tuple[str, ...] = ()
    record: str | None = None
    strict: bool = False
    report_json: str | None = None
    baseline: str | None = None
    write_baseline: bool = False
    replay: int = 0  #: production states replayed per replay probe (0: no replay)
    fail_under: float | None = None  #: percent of state and line coverage required
    #: set server plumbing aside in comparisons (ini ``runtime_plumbing``)
    plumbing: bool = True
    #: pytest-recording's mode for the evidence file (None: no mode given)
    record_mode: str | None = None
    #: whose standing evidence to compare with: a version, "live" or "any"
    version: str = "live"
    publish: bool = False
    dry_run: bool = False

    @property
    def deprecations(self) -> list[str]:
        """Notes about deprecated settings this run used."""
        notes = []
        if self.token_variable == ENV_TOKEN_OLD:
            notes.append(
                f"runtime: {ENV_TOKEN_OLD} is deprecated: set {ENV_TOKEN} instead (the same "
                "client token; python -m sensor reads it too)"
            )
        if self.record and self.record_mode is None:
            notes.append(
                f"runtime: --runtime-record {self.record} is the old spelling of "
                f"--runtime-evidence {self.record} --runtime-record-mode rewrite (still works)"
            )
        return notes

    @property
    def cassette(self) -> str | None:
        """The evidence file a record mode reads and writes (None: no record mode)."""
        if self.record_mode is None:
            return None
        return self.evidence[0] if self.evidence else None

    @property
    def reads_file(self) -> bool:
        """True when the comparison uses the evidence file(s)."""
        if not self.evidence:
            return False
        if self.record_mode in ("all", "rewrite"):
            return False
        if self.record_mode == "once":
            return not self.probe  # the file existed at start
        return True

    @property
    def writes_file(self) -> str | None:
        """The evidence file this run writes (record modes, or the old --runtime-record)."""
        if self.record_mode in HUB_MODES or (self.record_mode == "once" and self.probe):
            return self.cassette
        return self.record

    @property
    def wants_production(self) -> bool:
        """True when the run compares with production evidence (live or recorded)."""
        return self.probe or bool(self.evidence)

    @property
    def active(self) -> bool:
        """True when any option asks the plugin for work beyond test-time capture."""
        return (
            self.wants_production
            or self.publish
            or bool(self.report_json or self.record or self.write_baseline or self.replay)
        )

    @classmethod
    def from_config(cls, config: pytest.Config, *, now: float | None = None) -> RuntimeOptions:
        """Resolve every setting (command line, then environment, then ini); validate each."""
        opt = config.getoption

        def ini(name: str) -> str:
            return str(config.getini(name) or "").strip()

        hub = opt("runtime_hub") or _hub_from_env() or ini("runtime_hub") or None
        token = os.environ.get(ENV_TOKEN) or None
        token_variable = ENV_TOKEN
        if token is None and os.environ.get(ENV_TOKEN_OLD):
            token, token_variable = os.environ[ENV_TOKEN_OLD], ENV_TOKEN_OLD
        record_mode = opt("runtime_record_mode")
        evidence = tuple(opt("runtime_evidence") or ())
        probe = bool(opt("runtime_probe"))
        # With a record mode, the mode decides whether the hub is read (as pytest-recording's
        # decides whether the network is), whatever --runtime-probe says.
        if record_mode in HUB_MODES:
            probe = True
        elif record_mode == "once":
            probe = len(evidence) == 1 and not os.path.exists(evidence[0])
        elif record_mode == "none":
            probe = False
        if opt("runtime_publish"):
            probe = False  # publishing runs no test: --runtime-probe in addopts has nothing to do
        strict_opt = opt("runtime_strict")
        strict = bool(config.getini("runtime_strict")) if strict_opt is None else bool(strict_opt)
        options = cls(
            probe=probe,
            hub=hub.rstrip("/") if hub else None,
            token=token,
            token_variable=token_variable,
            service=opt("runtime_service") or ini("runtime_service") or None,
            wait=parse_seconds("--runtime-wait", opt("runtime_wait") or ini("runtime_wait")),
            min_hits=parse_min_hits(
                "--runtime-min-hits", opt("runtime_min_hits") or ini("runtime_min_hits")
            ),
            rarer_than=parse_rate(
                "--runtime-rarer-than", opt("runtime_rarer_than") or ini("runtime_rarer_than")
            ),
            rarer_than_given=bool(opt("runtime_rarer_than") or ini("runtime_rarer_than")),
            since=parse_since(
                "--runtime-since", opt("runtime_since") or ini("runtime_since"), now=now
            ),
            since_given=bool(opt("runtime_since") or ini("runtime_since")),
            evidence=evidence,
            record=opt("runtime_record"),
            record_mode=record_mode,
            version=str(opt("runtime_version") or "live"),
            publish=bool(opt("runtime_publish")),
            dry_run=bool(opt("runtime_dry_run")),
            strict=strict,
            report_json=opt("runtime_report_json"),
            baseline=opt("runtime_baseline") or ini("runtime_baseline") or None,
            write_baseline=bool(opt("runtime_write_baseline")),
            replay=parse_count("--runtime-replay", opt("runtime_replay")),
            fail_under=parse_percent(
                "--runtime-fail-under", opt("runtime_fail_under") or ini("runtime_fail_under")
            ),
            plumbing=bool(config.getini("runtime_plumbing")),
        )
        if (
            options.fail_under is not None
            and not opt("runtime_fail_under")
            and not options.wants_production
        ):
            # The ini key is a project default for runs that compare with production; a
            # local run without evidence has nothing to gate (the command-line option errs).
            options = dataclasses.replace(options, fail_under=None)
        options.check()
        return options

    def check(self) -> None:
        """Reject combinations that cannot mean anything."""
        if self.record_mode is not None:
            self._check_record_mode()
        if self.publish and (self.evidence or self.record_mode):
            raise OptionError(
                "--runtime-publish", True, "no evidence file or record mode (it runs no test)"
            )
        if self.publish and not self.hub:
            raise OptionError(
                "--runtime-hub",
                None,
                f"a hub URL for --runtime-publish (option, ${ENV_HUB} or ini runtime_hub)",
            )
        if self.dry_run and not self.publish:
            raise OptionError("--runtime-dry-run", True, "--runtime-publish too")
        if not self.version.strip():
            raise OptionError("--runtime-version", self.version, "a version, 'live' or 'any'")
        if self.probe and self.evidence and self.record_mode is None:
            raise OptionError(
                "--runtime-probe with --runtime-evidence",
                list(self.evidence),
                "one source of production evidence: the hub or recorded files",
            )
        if self.probe and not self.hub:
            raise OptionError(
                "--runtime-hub",
                None,
                f"a hub URL for --runtime-probe (option, ${ENV_HUB} or ini runtime_hub)",
            )
        if self.hub and not re.match(r"^https?://[^\s/]+", self.hub):
            raise OptionError("--runtime-hub", self.hub, "an http:// or https:// URL")
        if self.record and not self.probe:
            raise OptionError(
                "--runtime-record", self.record, "--runtime-probe too (it records hub evidence)"
            )
        if self.replay and not (self.evidence or self.hub):
            raise OptionError(
                "--runtime-replay",
                self.replay,
                "production states to replay: --runtime-evidence files, or a hub "
                f"(--runtime-hub, ${ENV_HUB} or ini runtime_hub) with stored evidence",
            )
        if self.fail_under is not None and not self.wants_production:
            raise OptionError(
                "--runtime-fail-under",
                self.fail_under,
                "production evidence to measure coverage against (--runtime-probe or "
                "--runtime-evidence)",
            )
        if self.record and self.record_mode is not None:
            raise OptionError(
                "--runtime-record",
                self.record,
                "no --runtime-record-mode as well: the mode's file is --runtime-evidence",
            )
        if self.write_baseline and not self.baseline:
            raise OptionError(
                "--runtime-write-baseline", True, "a --runtime-baseline PATH to write to"
            )

    def _check_record_mode(self) -> None:
        mode = self.record_mode
        if len(self.evidence) != 1:
            raise OptionError(
                "--runtime-record-mode",
                mode,
                f"exactly one --runtime-evidence PATH (the file it reads and writes), got "
                f"{len(self.evidence)}",
            )
        path = self.evidence[0]
        if os.path.isdir(path) and mode != "none":
            raise OptionError(
                "--runtime-evidence", path, f"a file to write with --runtime-record-mode {mode}"
            )
        if mode == "none" and not os.path.exists(path):
            raise OptionError(
                "--runtime-evidence",
                path,
                "an existing evidence file with --runtime-record-mode none (record it first "
                "with once or rewrite)",
            )
        if self.probe and not self.hub:
            raise OptionError(
                "--runtime-hub",
                None,
                f"a hub URL for --runtime-record-mode {mode} (it reads the hub), option, "
                f"${ENV_HUB} or ini runtime_hub",
            )


def parse_seconds(option: str, text: object, default: float = DEFAULT_WAIT) -> float:
    """A non-negative number of seconds (``30``, ``2.5``, ``1m``)."""
    if text in (None, ""):
        return default
    value = _duration(str(text))
    if value is None:
        raise OptionError(option, text, "seconds >= 0, such as 30, 2.5 or 1m")
    return value


def parse_min_hits(option: str, text: object, default: int = DEFAULT_MIN_HITS) -> int:
    """A positive whole number of hits."""
    if text in (None, ""):
        return default
    try:
        value = int(str(text))
    except ValueError:
        raise OptionError(option, text, "a whole number >= 1") from None
    if value < 1:
        raise OptionError(option, text, "a whole number >= 1")
    return value


def parse_count(option: str, text: object) -> int:
    """A whole number >= 1, or 0 when not given."""
    if text in (None, ""):
        return 0
    try:
        value = int(str(text))
    except ValueError:
        raise OptionError(option, text, "a whole number of states >= 1, such as 200") from None
    if value < 1:
        raise OptionError(option, text, "a whole number of states >= 1, such as 200")
    return value


def parse_percent(option: str, text: object) -> float | None:
    """A percentage from 0 to 100 (``80``, ``80%``, ``92.5``), or None when not given."""
    if text in (None, ""):
        return None
    raw = str(text).strip().removesuffix("%")
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 100.0:
        raise OptionError(option, text, "a percentage from 0 to 100, such as 80")
    return value


def parse_rate(option: str, text: object, default: float = DEFAULT_RARER_THAN) -> float:
    """A rate strictly between 0 and 1: ``0.05`` or ``5%``."""
    if text in (None, ""):
        return default
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 < value < 1.0:
        raise OptionError(
            option, text, "a rate between 0 and 1, such as 0.05, or a percentage such as 5%"
        )
    return value


def _duration(text: str) -> float | None:
    from sensor.timespec import parse_duration

    return parse_duration(text)


def parse_since(option: str, text: object, *, now: float | None = None) -> float:
    """Epoch seconds from a duration before now (``30m``), an ISO time or epoch seconds.

    The same parser as the CLI's ``hits --since`` (:mod:`sensor.timespec`).
    """
    from sensor.timespec import TIME_EXPECTED, parse_time

    raw = DEFAULT_SINCE if text in (None, "") else str(text)
    try:
        return parse_time(raw, now=now)
    except ValueError:
        raise OptionError(option, text, TIME_EXPECTED) from None


#: the plugin's options whose value is a path: pytest takes such a value, given after a space,
#: for a test path when it chooses the rootdir (see :func:`rootdir_moved`)
PATH_OPTIONS = (
    "--runtime-evidence",
    "--runtime-record",
    "--runtime-report-json",
    "--runtime-baseline",
)


def rootdir_moved(config: pytest.Config) -> str | None:
    """Say so when a path option's value, given after a space, moved pytest's rootdir.

    pytest chooses the rootdir (and the ini file) before it loads plugins, so it does not know
    ``--runtime-evidence`` yet: it reads ``--runtime-evidence ../../x`` as an unknown flag
    followed by a test path, and ``../../x`` takes part in the common ancestor. No plugin hook
    runs early enough to change that; ``--runtime-evidence=../../x`` is one token and is not
    counted. This recomputes the rootdir without those values and names the option when they
    changed it.
    """
    import inspect
    import itertools
    import shlex
    from pathlib import Path

    import pytest

    if config.known_args_namespace.rootdir:
        return None  # --rootdir decides, not the arguments
    args = shlex.split(os.environ.get("PYTEST_ADDOPTS", "")) + list(config.invocation_params.args)
    here = Path(config.invocation_params.dir)
    spaced = [
        (arg, value)
        for arg, value in itertools.pairwise(args)
        if arg in PATH_OPTIONS and (here / value).exists()
    ]
    if not spaced:
        return None
    try:
        from _pytest.config.findpaths import determine_setup
    except ImportError:  # pragma: no cover - a pytest without it: nothing to compare
        return None
    ns = config.known_args_namespace
    given = config.args_source == pytest.Config.ArgsSource.ARGS
    kwargs = {
        "inifile": ns.inifilename,
        "override_ini": ns.override_ini,
        "args": [str(a) for a in config.args] if given else [],
        "rootdir_cmd_arg": None,
        "invocation_dir": here,
    }
    accepted = inspect.signature(determine_setup).parameters
    try:
        found = determine_setup(**{k: v for k, v in kwargs.items() if k in accepted})
    except Exception:  # a private pytest function: its failure is not the user's
        return None
    expected = Path(found[0])
    if expected == config.rootpath:
        return None
    option, value = spaced[0]
    return (
        f"pytest-runtime: {option} {value} moved pytest's rootdir from {expected} to "
        f"{config.rootpath}: pytest chooses the rootdir before it knows plugin options, and "
        "takes an option's value given after a space for a test path, so node ids and the ini "
        f"file change; write {option}={value} (or pass --rootdir)"
    )
