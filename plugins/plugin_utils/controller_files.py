# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files written on the controller: what a write would change, and one atomic writer.

Used by the audit's report step (audit_run.write_run_reports: the reports, latest.* and the baseline,
all or none) and by the echo action's journal (echo_controller.write_journal). Free of Ansible
imports, so that it is unit-tested as plain Python.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple


class ControllerFileError(Exception):
    """A file cannot be written as asked; the message names the option or the destination."""


@dataclass(frozen=True)
class FileSpec:
    """One file to write: an absolute controller path and its bytes."""

    dest: str
    data: bytes
    # Created, never replaced: another writer's file with other content fails the task instead.
    exclusive: bool = False


@dataclass(frozen=True)
class FilePlan:
    """What writing a FileSpec with a mode would change, from the file as it is now."""

    dest: str
    data: bytes
    mode: int
    exists: bool
    before_mode: Optional[int]
    content_changed: bool
    # Only in check mode: an earlier task (skipped in check mode) may still create the directory.
    directory_missing: bool = False
    exclusive: bool = False

    @property
    def mode_changed(self) -> bool:
        return self.exists and self.before_mode != self.mode

    @property
    def changed(self) -> bool:
        return self.content_changed or self.mode_changed

    @property
    def status(self) -> str:
        if not self.exists:
            return "created"
        if self.content_changed:
            return "updated"
        return "mode_changed" if self.mode_changed else "unchanged"


def _same_content(path: str, data: bytes) -> bool:
    with open(path, "rb") as stream:
        return stream.read() == data


def plan_file(spec: FileSpec, mode: int, check_mode: bool = False) -> FilePlan:
    """What writing ``spec`` would change; refuses, naming the file, what a write would fail on.

    In check mode a missing directory is allowed (reported as a file to create): the task that
    creates it does not run in check mode either.
    """
    dest = spec.dest
    directory = os.path.dirname(dest)
    try:
        dir_stat = os.stat(directory)
    except FileNotFoundError:
        if check_mode:
            return FilePlan(dest, spec.data, mode, exists=False, before_mode=None, content_changed=True,
                            directory_missing=True)
        raise ControllerFileError("%s: the directory %s does not exist on the controller" % (dest, directory)) from None
    except NotADirectoryError:
        raise ControllerFileError("%s: %s is not a directory" % (dest, directory)) from None
    except OSError as exc:
        raise ControllerFileError("%s: cannot reach the directory %s (%s)" % (dest, directory, exc.strerror)) from None
    if not stat.S_ISDIR(dir_stat.st_mode):
        raise ControllerFileError("%s: %s is not a directory" % (dest, directory))
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ControllerFileError("%s: the directory %s is not writable by this user" % (dest, directory))
    try:
        current = os.lstat(dest)
    except FileNotFoundError:
        return FilePlan(dest, spec.data, mode, exists=False, before_mode=None, content_changed=True,
                        exclusive=spec.exclusive)
    except OSError as exc:
        raise ControllerFileError("%s: cannot read it (%s)" % (dest, exc.strerror)) from None
    if stat.S_ISDIR(current.st_mode):
        raise ControllerFileError("%s is a directory, not a file" % dest)
    if stat.S_ISLNK(current.st_mode):
        if spec.exclusive:
            raise ControllerFileError(_TAKEN % dest)
        # Replaced by a regular file, never followed (as ansible.builtin.copy without follow).
        return FilePlan(dest, spec.data, mode, exists=True, before_mode=None, content_changed=True)
    if not stat.S_ISREG(current.st_mode):
        raise ControllerFileError("%s exists and is not a regular file" % dest)
    try:
        # Different sizes settle it without reading a report of tens of MB.
        same = current.st_size == len(spec.data) and _same_content(dest, spec.data)
    except OSError as exc:
        raise ControllerFileError("%s: cannot read it (%s)" % (dest, exc.strerror)) from None
    if spec.exclusive and not same:
        raise ControllerFileError(_TAKEN % dest)
    return FilePlan(dest, spec.data, mode, exists=True, before_mode=stat.S_IMODE(current.st_mode),
                    content_changed=not same)


_NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK)
_TAKEN = "%s already exists with other content (written by another run at the same time?); it is never replaced"


def atomic_write(path: str, data: bytes, mode: int, sync: bool = True, exclusive: bool = False) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old file or the new one, never a part.

    The temporary file is a hidden one in the same directory (os.replace cannot cross file systems,
    and globs such as ``*.json`` skip it); it is removed if anything fails. An existing file's owner
    and group are kept when this user may set them, as ansible.builtin.copy does. ``sync`` flushes
    the data to disk before the rename, so that a crash leaves the old file rather than an empty one.
    """
    temporary = _write_temporary(path, data, mode, sync)
    try:
        _put_in_place(temporary, path, data, exclusive)
    except BaseException:
        _discard(temporary)
        raise
    if sync:
        _sync_directory(os.path.dirname(path) or ".")


def _write_temporary(path: str, data: bytes, mode: int, sync: bool) -> str:
    """``data`` in a new hidden file beside ``path``, with ``mode``; removed again if that fails."""
    directory = os.path.dirname(path) or "."
    # A short prefix: NAME_MAX (255) must hold it plus mkstemp's random part.
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path)[:64], suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            if sync:
                stream.flush()
                os.fsync(stream.fileno())
        os.chmod(temporary, mode)
    except BaseException:
        _discard(temporary)
        raise
    return temporary


def _link_temporary(source: str, path: str) -> Optional[str]:
    """A new hidden name beside ``path`` for the complete temporary file ``source``, or None where links fail."""
    directory = os.path.dirname(path) or "."
    for _attempt in range(100):
        temporary = os.path.join(directory, ".%s.%s.tmp" % (os.path.basename(path)[:64], os.urandom(6).hex()))
        try:
            os.link(source, temporary)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno in _NO_HARD_LINKS or exc.errno == errno.EXDEV:
                return None
            raise
        return temporary
    return None


def _put_in_place(temporary: str, path: str, data: bytes, exclusive: bool) -> None:
    if exclusive:
        _link_new(temporary, path, data)
    else:
        _keep_owner(path, temporary)
        os.replace(temporary, path)


def _discard(temporary: str) -> None:
    try:
        os.unlink(temporary)
    except OSError:
        pass


def _link_new(temporary: str, path: str, data: bytes) -> None:
    """Give the complete temporary file the name ``path`` only if nothing has that name yet.

    link() fails when the name exists, unlike rename(): a writer that got there first since the
    plan keeps its file. The same content counts as written (two runs of one report).
    """
    try:
        try:
            os.link(temporary, path)
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            # A file system without hard links: reserve the name, then put the file in its place.
            reserved = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                placeholder = os.fstat(reserved)
            finally:
                os.close(reserved)
            try:
                os.replace(temporary, path)
            except BaseException:
                # An empty reservation left behind would read as another run's file on the next try.
                _remove_if_same(path, placeholder)
                raise
            return
    except FileExistsError:
        try:
            same = _same_content(path, data)
        except OSError:
            same = False
        if not same:
            raise ControllerFileError(_TAKEN % path) from None
    os.unlink(temporary)


def _remove_if_same(path: str, placeholder: os.stat_result) -> None:
    try:
        current = os.lstat(path)
        if (current.st_dev, current.st_ino) == (placeholder.st_dev, placeholder.st_ino) and current.st_size == 0:
            os.unlink(path)
    except OSError:
        pass


def _keep_owner(path: str, temporary: str) -> None:
    try:
        current = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(current.st_mode):
        return
    written = os.stat(temporary)
    if (current.st_uid, current.st_gid) != (written.st_uid, written.st_gid):
        try:
            os.chown(temporary, current.st_uid, current.st_gid)
        except PermissionError:
            pass


def _sync_directory(directory: str) -> None:
    # Makes the rename itself durable; not every file system allows it, and the data is already safe.
    try:
        handle = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def apply_plans(plans: Sequence[FilePlan], done: Optional[List[FilePlan]] = None) -> None:
    """Make every file what its plan says, all or none as far as this machine allows.

    Every new content goes to its temporary file first: a full disk or a quota fails there, before
    any file is replaced, and nothing changes (a set such as the reports' latest.* must never mix
    two runs). Then each is put in place by a rename or link, which needs no space. ``done``
    collects the plans applied, for the error message of a failure in that second step. Plans that
    share one content object (a report and its latest.* copy) share one file where the file system
    allows hard links: the data is written and flushed once.
    """
    done = [] if done is None else done
    staged: List[Tuple[FilePlan, Optional[str]]] = []
    written: dict = {}  # (id of a content object, mode) -> its first temporary file
    placed = 0  # staged[:placed] are in place, in order
    try:
        for plan in plans:
            try:
                temporary = None
                if plan.content_changed:
                    first = written.get((id(plan.data), plan.mode))
                    temporary = _link_temporary(first, plan.dest) if first else None
                    if temporary is None:
                        temporary = _write_temporary(plan.dest, plan.data, plan.mode, True)
                    written.setdefault((id(plan.data), plan.mode), temporary)
                staged.append((plan, temporary))
            except OSError as exc:
                raise ControllerFileError("%s: cannot write it (%s); no file was changed"
                                          % (plan.dest, exc.strerror or exc)) from None
        for plan, temporary in staged:
            try:
                if temporary is not None:
                    _put_in_place(temporary, plan.dest, plan.data, plan.exclusive)
                elif plan.mode_changed:
                    os.chmod(plan.dest, plan.mode)
            except OSError as exc:
                raise ControllerFileError("%s: cannot write it (%s)" % (plan.dest, exc.strerror or exc)) from None
            placed += 1
            done.append(plan)
    finally:
        for _plan, temporary in staged[placed:]:
            if temporary is not None:
                _discard(temporary)
    for directory in sorted({os.path.dirname(plan.dest) or "." for plan, temporary in staged if temporary}):
        _sync_directory(directory)
