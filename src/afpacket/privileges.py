"""Giving up root once the capture is open (tcpdump's ``-Z USER``).

Opening an AF_PACKET socket needs CAP_NET_RAW; reading packets from its ring, decoding them and writing
files needs nothing. So the capture opens the socket, the ring and the output file as root, then calls
:func:`drop_privileges` before the first packet is read: packet parsing never runs with privileges.

After the drop the process

- has USER's uid and primary gid as its real, effective and saved ids (``setresgid``/``setresuid``), so
  it cannot switch back;
- has no supplementary groups (``setgroups([])``: root's groups are not kept, nor are USER's added);
- has no capabilities: the kernel clears the permitted and effective sets when a process whose uids
  included 0 makes all of them non-zero (unless PR_SET_KEEPCAPS, never set here); the ambient set is
  cleared and ``capset`` zeroes what might remain, and ``/proc/self/status`` is read back to check it;
- has PR_SET_NO_NEW_PRIVS set, so executing a set-uid or file-capability program gives nothing back.

Open descriptors stay usable: the packet socket and its mapped ring keep working, since the kernel
checks CAP_NET_RAW only when the socket is created. Files opened *later* (rotated ``-C``/``-G`` files,
a ``--stats-json`` summary) are created by USER, with USER as owner, so their directory must be
writable by USER: :func:`writable_as` checks that before anything is opened.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pwd
from collections.abc import Iterable

from .errors import AfPacketError, PermissionDeniedError

_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def lookup_user(user: str) -> pwd.struct_passwd:
    """The password entry of ``user`` (a name, or a numeric uid as tcpdump allows), or AfPacketError
    saying it does not exist. Root itself is refused: dropping to uid 0 would keep every privilege."""
    if not isinstance(user, str):
        raise TypeError(f"drop_privileges(): user must be a str, not {type(user).__name__}")
    pw: pwd.struct_passwd | None = None
    try:
        pw = pwd.getpwnam(user)
    except (KeyError, ValueError):  # ValueError: a NUL byte in the name
        if user.isascii() and user.isdigit():
            try:
                pw = pwd.getpwuid(int(user))
            except KeyError:
                pass
    if pw is None:
        raise AfPacketError(
            f"-Z {user}: no such user on this system; name an existing unprivileged account "
            "(e.g. nobody, or one made for captures with `useradd --system afpacket`)"
        )
    if pw.pw_uid == 0:
        raise AfPacketError(f"-Z {user}: that is root (uid 0), which keeps every privilege; name an "
                            "unprivileged account such as nobody")
    return pw


def writable_as(user: str, path: str, *, directory: bool = False) -> bool:
    """Whether ``user`` (with its primary group and no supplementary groups, as after the drop) can
    create or replace the file ``path``: write access to it if it exists, else to its directory. With
    ``directory`` true, ``path`` is a directory in which ``user`` must be able to create files.

    Answered by a forked child that really switches to the user and asks ``access()``, so ACLs, mount
    options and the sticky bit count exactly as they will later. Needs root; call it before threads start.
    """
    pw = lookup_user(user)
    if directory:
        target, mode = path, os.W_OK | os.X_OK
    elif os.path.lexists(path):
        target, mode = path, os.W_OK
    else:
        target, mode = os.path.dirname(os.path.abspath(path)) or "/", os.W_OK | os.X_OK
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which exits at once
        code = 1
        try:
            os.setgroups([])
            os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
            os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)
            code = 0 if os.access(target, mode) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def drop_privileges(user: str, chown: Iterable[str] = ()) -> None:
    """Become ``user`` for good: after this no root, no capabilities, no supplementary groups.

    Call it once the socket, ring and output file are open and before the first packet is read.
    ``chown`` lists files already created as root that must belong to ``user`` (the ``-w`` file, as
    tcpdump does; ``"-"`` is skipped), so the unprivileged process and its owner can reopen them.

    Raises AfPacketError when ``user`` does not exist or is root, PermissionDeniedError when the process
    cannot switch users (not root: run it as root, or leave out -Z), and AfPacketError if the drop did
    not stick (a uid or capability still set afterwards), naming what is left.
    """
    pw = lookup_user(user)
    uid, gid = pw.pw_uid, pw.pw_gid
    if os.geteuid() != 0:
        raise PermissionDeniedError(
            f"-Z {user}: switching users needs root (this process runs as uid {os.geteuid()}); "
            "run the capture as root with -Z, or without -Z as the user you want"
        )
    for path in chown:
        if path == "-":
            continue
        try:
            os.chown(path, uid, gid)
        except OSError as e:
            raise AfPacketError(f"-Z {user}: giving {path} to {user} failed ({e.strerror})") from None
    try:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise PermissionDeniedError(f"-Z {user}: switching to uid {uid} gid {gid} failed ({e.strerror})") from None
    _clear_capabilities()
    _verify(user, uid, gid)


def _clear_capabilities() -> None:
    """No new privileges on exec, empty ambient set, and capset() of all-zero sets for this thread.

    setresuid() above already emptied the permitted and effective sets (the kernel's rule for leaving
    uid 0 without PR_SET_KEEPCAPS); this makes the result not depend on that rule alone."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise AfPacketError(f"prctl(PR_SET_NO_NEW_PRIVS) failed ({os.strerror(ctypes.get_errno())})")
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)  # EINVAL before Linux 4.3: no ambient set
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise AfPacketError(f"capset() to no capabilities failed ({os.strerror(ctypes.get_errno())})")


def _verify(user: str, uid: int, gid: int) -> None:
    """Check what the kernel reports, not what was asked: every uid and gid is USER's, no groups, no
    capabilities in any set but the bounding one, and setuid(0) is refused."""
    status = process_status()
    left: list[str] = []
    if status.get("Uid", "").split() != [str(uid)] * 4:
        left.append(f"Uid {status.get('Uid')}")
    if status.get("Gid", "").split() != [str(gid)] * 4:
        left.append(f"Gid {status.get('Gid')}")
    if status.get("Groups", "").split():
        left.append(f"Groups {status.get('Groups')}")
    for name in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        if int(status.get(name, "0"), 16):
            left.append(f"{name} {status[name]}")
    try:
        os.setuid(0)
        left.append("setuid(0) succeeded")
    except PermissionError:
        pass
    if left:
        raise AfPacketError(f"-Z {user}: privileges remain after the switch ({', '.join(left)}); not capturing")


def process_status(pid: int | str = "self") -> dict[str, str]:
    """The fields of ``/proc/PID/status`` (``Uid``, ``CapEff``, ...) as name → value text."""
    fields: dict[str, str] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return fields
