"""Seccomp filters for the sandbox's processes, compiled by libseccomp (its documented C API, via ctypes).

libseccomp is the library systemd, Docker, Podman and bubblewrap's callers use to build BPF filters: it
resolves syscall names per architecture, kills calls of foreign ABIs (32-bit ``int 0x80``, x32) and emits
the filter. Only its stable, documented entry points are used: ``seccomp_init``, ``seccomp_rule_add_array``,
``seccomp_syscall_resolve_name``, ``seccomp_load`` and ``seccomp_release``.

Filters stack: the zygote loads :data:`ZYGOTE_DENIED` once, and every episode process adds
:data:`EPISODE_DENIED` on top after it is forked, so an episode can neither start processes nor signal,
trace or connect to anything, whatever code runs in it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_MASKED_EQ = 7
_SCMP_ACT_ERRNO = 0x00050000

CLONE_NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
"""``clone`` flags that make a new namespace: refused everywhere in the sandbox."""

ZYGOTE_DENIED = (
    # running other programs
    "execve", "execveat",
    # inspecting or changing other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    # new network endpoints (the zygote talks to the host over inherited descriptors and socketpairs)
    "socket",
    # file systems and namespaces
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "move_mount", "open_tree", "fsopen",
    "fsmount", "fsconfig", "fspick", "mount_setattr",
    # kernel interfaces a tool never needs, several of them past sources of privilege escalation
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key", "init_module", "finit_module", "delete_module", "kexec_load",
    "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "personality",
    "iopl", "ioperm", "lookup_dcookie", "name_to_handle_at", "open_by_handle_at", "nfsservctl",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
    "vhangup", "uselib", "mknod", "mknodat",
)
"""Syscalls the zygote (and so every episode process) may never make; they fail with ``EPERM``."""

EPISODE_DENIED = (
    # process and thread creation: nothing an episode starts can outlive it
    "fork", "vfork", "clone",
    # signals to any process (an episode has no reason to signal even itself)
    "kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_send_signal", "pidfd_open",
    # local endpoints, privilege changes
    "socketpair", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
    "setfsuid", "setfsgid", "prctl",
)
"""Syscalls an episode process adds to :data:`ZYGOTE_DENIED`; they fail with ``EPERM``."""


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def _errno_action(code: int) -> int:
    return _SCMP_ACT_ERRNO | (code & 0xFFFF)


def _library() -> ctypes.CDLL | None:
    """The libseccomp shared library, or None when it is not installed."""
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_load.restype = ctypes.c_int
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_export_bpf.restype = ctypes.c_int
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.restype = None
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


_LIB = _library()


def available() -> bool:
    """Whether libseccomp could be loaded in this process."""
    return _LIB is not None


class SeccompError(OSError):
    """A filter could not be built or loaded."""


def _add(lib: ctypes.CDLL, ctx: int, action: int, name: str, conditions: list[_ArgCmp]) -> None:
    number = lib.seccomp_syscall_resolve_name(name.encode())
    if number < 0:  # __NR_SCMP_ERROR: no such syscall on this architecture (e.g. an old kernel's list)
        return
    array = (_ArgCmp * max(len(conditions), 1))(*conditions)
    result = lib.seccomp_rule_add_array(ctx, action, number, len(conditions), array)
    if result < 0:
        raise SeccompError(-result, f"seccomp_rule_add_array({name}) failed: {errno.errorcode.get(-result, result)}")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
_BPF_INSTRUCTION_BYTES = 8


class CompiledFilter:
    """A filter compiled once to BPF (``seccomp_export_bpf``), loaded cheaply into many forked processes.

    Args:
        denied: syscall names that fail with ``EPERM`` (see :func:`load_filter`).
    """

    def __init__(self, denied: tuple[str, ...]) -> None:
        self.program = _build(denied, deny_namespace_clones=False, export=True) or b""
        self._libc = ctypes.CDLL(None, use_errno=True)

    def load(self) -> None:
        """Install the filter in this process (which must already have ``no_new_privs`` set, as every
        process under the zygote's filter does).

        Raises:
            SeccompError: the kernel refused the filter.
        """
        prog = _SockFprog(len(self.program) // _BPF_INSTRUCTION_BYTES, self.program)
        if self._libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
            code = ctypes.get_errno()
            raise SeccompError(code, f"prctl(PR_SET_SECCOMP) failed: {errno.errorcode.get(code, code)}")


def load_filter(denied: tuple[str, ...], *, deny_namespace_clones: bool = False) -> None:
    """Build a filter that allows everything but ``denied`` (``EPERM``) and load it into this process.

    Args:
        denied: syscall names that fail with ``EPERM``.
        deny_namespace_clones: also refuse ``clone`` with any namespace flag, and ``clone3`` (whose flags
            a filter cannot read) with ``ENOSYS`` so that the C library falls back to ``clone``.

    Raises:
        SeccompError: libseccomp is missing, or the kernel refused the filter.
    """
    _build(denied, deny_namespace_clones=deny_namespace_clones, export=False)


def _build(denied: tuple[str, ...], *, deny_namespace_clones: bool, export: bool) -> bytes | None:
    """Build the filter; load it, or (``export``) return its BPF program instead."""
    lib = _LIB
    if lib is None:
        raise SeccompError(errno.ENOSYS, "libseccomp is not installed (Debian: apt-get install libseccomp2)")
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise SeccompError(errno.ENOMEM, "seccomp_init failed")
    try:
        for name in denied:
            _add(lib, ctx, _errno_action(errno.EPERM), name, [])
        _add(lib, ctx, _errno_action(errno.ENOSYS), "clone3", [])
        if deny_namespace_clones:
            for flag in CLONE_NAMESPACE_FLAGS.values():
                _add(lib, ctx, _errno_action(errno.EPERM), "clone", [_ArgCmp(0, SCMP_CMP_MASKED_EQ, flag, flag)])
        if export:
            return _export(lib, ctx)
        result = lib.seccomp_load(ctx)
        if result < 0:
            raise SeccompError(-result, f"seccomp_load failed: {errno.errorcode.get(-result, result)}")
        return None
    finally:
        lib.seccomp_release(ctx)


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    """The BPF program of a filter context, written by libseccomp through a pipe."""
    read_fd, write_fd = os.pipe()
    try:
        result = lib.seccomp_export_bpf(ctx, write_fd)
        if result < 0:
            raise SeccompError(-result, f"seccomp_export_bpf failed: {errno.errorcode.get(-result, result)}")
        os.close(write_fd)
        write_fd = -1
        chunks = []
        while chunk := os.read(read_fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
