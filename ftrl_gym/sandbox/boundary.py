"""The OS boundary around the zygote: bubblewrap's command line, and which layers this host provides.

bubblewrap (``bwrap``, Debian package ``bubblewrap``) is the maintained, audited tool Flatpak uses to put
a program into new Linux namespaces. The zygote runs inside it with:

- new PID, mount, IPC, network, UTS and (where possible) cgroup namespaces: host processes, ``/proc``,
  files and the network are out of sight;
- a file system of read-only binds only: the system libraries, the Python installation, RestrictedPython,
  mpmath (tool code sees it only through ``mpmath_proxy``) and the sandbox's own modules, plus
  ``/dev``'s basic devices and an empty, size-capped ``/tmp``;
- an unprivileged uid: bubblewrap maps the caller to uid 65534 in a user namespace, or, when the host
  runs as root (where user namespaces would map 65534 back to root), the zygote drops to the real uid
  65534 itself right after start;
- the zygote as the PID namespace's init (``--as-pid-1``): when it dies, the kernel kills every episode
  process, and the zygote's own exit waits for them. It exits when its socket to the host closes, so
  nothing in the sandbox outlives the host process. (Not ``--die-with-parent``: its parent-death signal
  follows the *thread* that started bubblewrap, and a host may start a sandbox from a short-lived
  thread.)

Where bubblewrap is missing or refused (no user namespaces, macOS), the zygote runs as a plain process and
the missing layers are named once in a warning; ``SandboxConfig(require_os_boundary=True)`` or the
environment variable ``FTRL_REQUIRE_OS_SANDBOX=1`` refuse to run instead.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from pathlib import Path

import RestrictedPython

SANDBOX_DIR = Path(__file__).resolve().parent
"""This package's folder: the only part of ftrl-gym the zygote can read."""

INSIDE_ROOT = "/opt/ftrl-sandbox"
"""Where the sandbox's modules and RestrictedPython are bound inside the boundary (the zygote's path)."""

UNPRIVILEGED_ID = 65534
"""uid and gid tool code runs as (``nobody`` on Debian)."""

TMPFS_BYTES = 1 << 20
"""Size of the empty ``/tmp`` inside the boundary (files cannot grow there anyway: ``RLIMIT_FSIZE=0``)."""

REQUIRE_ENV = "FTRL_REQUIRE_OS_SANDBOX"
"""Set to ``1`` to refuse to run tool code without every OS layer (CI sets it)."""

LAYERS = ("namespaces", "read-only file system", "unprivileged uid", "seccomp", "process per episode",
          "rlimits")
"""The OS layers, in the order the docs describe them."""

_warned: set[tuple[str, ...]] = set()


def bwrap_path() -> str | None:
    """The bubblewrap executable, or None when it is not installed."""
    return shutil.which("bwrap")


def python_paths() -> tuple[str, list[str]]:
    """The real Python executable and the installation folders it needs (bound read-only)."""
    executable = os.path.realpath(sys.executable)
    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix)}
    return executable, sorted(roots)


def _system_binds() -> list[str]:
    """Read-only binds (or symlinks, on merged-/usr systems) of the system's library folders."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("lib", "lib64", "lib32", "bin", "sbin"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args


def _readable_parents(path: str) -> list[str]:
    """Create the folders above a bind target as world-readable (bubblewrap makes them 0700, and the
    unprivileged uid could not reach, say, a Python installation under ``/root``). They hold nothing
    but the bind."""
    args: list[str] = []
    for parent in reversed(Path(path).parents[:-1]):
        if str(parent) not in ("/usr",):
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def mpmath_folder() -> str | None:
    """mpmath's package folder when it is installed (bound read-only for the sandbox's ``mpmath``, see
    ``mpmath_proxy``), else None. Found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("mpmath")
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(next(iter(spec.submodule_search_locations))).resolve())


def bwrap_command(bwrap: str, python_args: list[str]) -> list[str]:
    """The full command that starts the zygote inside bubblewrap.

    Args:
        bwrap: the bubblewrap executable.
        python_args: the Python command line to run inside (its paths as seen inside).
    """
    executable, roots = python_paths()
    restricted = str(Path(RestrictedPython.__file__).resolve().parent)
    libraries = ["--ro-bind", restricted, f"{INSIDE_ROOT}/RestrictedPython"]
    mpmath = mpmath_folder()
    if mpmath is not None:
        libraries += ["--ro-bind", mpmath, f"{INSIDE_ROOT}/mpmath"]
    args = [bwrap, "--new-session", "--as-pid-1", "--unshare-ipc", "--unshare-pid", "--unshare-net",
            "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    if os.geteuid() != 0:
        args += ["--unshare-user", "--uid", str(UNPRIVILEGED_ID), "--gid", str(UNPRIVILEGED_ID),
                 "--disable-userns", "--cap-drop", "ALL"]
    else:
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    args += _system_binds()
    for root in roots:
        if not root.startswith("/usr/"):
            args += _readable_parents(root) + ["--ro-bind", root, root]
    if not executable.startswith(tuple(roots) + ("/usr/",)):
        args += _readable_parents(executable) + ["--ro-bind", executable, executable]
    args += ["--ro-bind", str(SANDBOX_DIR), f"{INSIDE_ROOT}/ftrl_gym/sandbox",
             *libraries,
             "--dev", "/dev", "--perms", "1777", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp",
             "--chdir", "/tmp", "--clearenv", "--setenv", "PYTHONHASHSEED", "0", "--setenv", "LC_ALL",
             "C.UTF-8", "--"]
    return args + python_args


def required(config_flag: bool) -> bool:
    """Whether a missing layer must stop the sandbox (the config flag or ``FTRL_REQUIRE_OS_SANDBOX=1``)."""
    return config_flag or os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def warn_missing(missing: list[str], why: str) -> None:
    """Say once per process and set of missing layers that tool code runs with less isolation."""
    key = tuple(missing)
    if not missing or key in _warned:
        return
    _warned.add(key)
    warnings.warn(
        f"ftrl-gym sandbox: running tool code without these OS layers: {', '.join(missing)} ({why}). "
        "RestrictedPython and the remaining layers still apply. Install bubblewrap and libseccomp "
        "(Debian: apt-get install bubblewrap libseccomp2) for the full boundary, or pass "
        f"SandboxConfig(require_os_boundary=True) / set {REQUIRE_ENV}=1 to refuse to run without it.",
        RuntimeWarning, stacklevel=4)
