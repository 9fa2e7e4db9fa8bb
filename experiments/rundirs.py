"""Ownership of run and sweep directories: which ones this tool may write into or replace.

The tool deletes only what it created. A directory is *ours* when its marker file
(``manifest.json`` for a run, ``sweep.json`` for a sweep) is a JSON object written by
memespread: it carries ``"tool": "memespread"`` (manifests written before the marker
existed are recognised by their shape). Writing a new run or sweep to a target path:

* the path does not exist, or is an empty directory: the run is written there;
* it holds a run (or sweep) of this tool: refused unless ``overwrite``; with
  ``overwrite`` the new run is written into a sibling staging directory that the tool
  creates, and only once it has succeeded is the old directory renamed away, the new one
  renamed in and the old one deleted (:func:`replace_dir_atomically`); a failed new run
  leaves the old one untouched. A run directory holding anything the tool did not write
  (:func:`experiments.run_contents.foreign_entries`, e.g. a researcher's notes) is never
  replaced: refused before the new run starts, and checked again before the swap;
* anything else (a directory with other files, a run where a sweep is expected): refused,
  ``overwrite`` or not, and nothing is touched;
* an existing file: :class:`NotADirectoryError` (an I/O error).

While a process writes a run directory it holds an exclusive lock on the directory's
:data:`LOCK_FILE` (:func:`writing_lock`), so two processes never write one run at once:
the second gets a :class:`RunDirError`. Replacing a run (``overwrite``) holds the old
run's lock from the start of the new run to the swap, so a run still being written (or
resumed) is never replaced under its writer. The operating system releases the lock when
the process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from experiments.run_contents import describe_foreign, foreign_entries
from sim.output import make_temp_dir

#: The marker value of the ``"tool"`` key in every manifest and sweep file we write.
TOOL = "memespread"

#: The marker file of a run directory.
RUN_MARKER = "manifest.json"

#: The marker file of a sweep directory.
SWEEP_MARKER = "sweep.json"

DirKind = Literal["run", "sweep"]


class RunDirError(Exception):
    """The tool refuses to write into or replace a directory (invalid input: exit 2)."""


class Plan(Enum):
    """What writing to a target directory will do."""

    CREATE = "create"  # write into it (absent or empty)
    REPLACE = "replace"  # write into a staging sibling, then swap it in


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON object stored in ``path``, or None if it is missing, unreadable or not one.

    Never raises: a corrupt, truncated, binary or non-object file gives None.
    """
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read(64 * 1024 * 1024))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def tool_marker() -> dict[str, str]:
    """The key a manifest or sweep file carries to mark it as ours: ``{"tool": TOOL}``."""
    return {"tool": TOOL}


def is_run_manifest(data: Any) -> bool:
    """Whether a parsed manifest is one that memespread wrote for a run."""
    if not isinstance(data, dict):
        return False
    if "tool" in data:
        return data["tool"] == TOOL and "sweep" not in data
    # Manifests written before the marker existed.
    return (
        isinstance(data.get("config"), dict)
        and isinstance(data.get("status"), str)
        and isinstance(data.get("packages"), dict)
        and "steps_completed" in data
    )


def is_sweep_manifest(data: Any) -> bool:
    """Whether a parsed ``sweep.json`` is one that memespread wrote."""
    if not isinstance(data, dict):
        return False
    if "tool" in data:
        return data["tool"] == TOOL and "sweep" in data
    return isinstance(data.get("sweep"), dict) and "axes" in data and "n_runs" in data


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory holding a run of this tool (its ``manifest.json``)."""
    path = Path(path)
    return path.is_dir() and is_run_manifest(read_json_object(path / RUN_MARKER))


def is_sweep_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory holding a sweep of this tool (its ``sweep.json``)."""
    path = Path(path)
    return path.is_dir() and is_sweep_manifest(read_json_object(path / SWEEP_MARKER))


def first_run(sweep_dir: Path) -> Path | None:
    """The first run directory of a sweep in sorted path order (None if it has none).

    Walks down the first subdirectory at each level of ``runs/`` (``topology=ring/
    seed=3``), so a sweep of many runs is not listed to find one.
    """
    node = sweep_dir / "runs"
    while node.is_dir():
        if is_run_dir(node):
            return node
        children = sorted(p for p in node.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not children:
            return None
        node = children[0]
    return None


def is_ours(path: str | os.PathLike[str], kind: DirKind) -> bool:
    """:func:`is_run_dir` or :func:`is_sweep_dir`, by ``kind``."""
    return is_run_dir(path) if kind == "run" else is_sweep_dir(path)


#: The file a process locks while it writes a run directory (removed when it is done; one
#: left by a killed process is harmless: the lock died with the process).
LOCK_FILE = ".memespread.lock"


def is_empty_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory with no entries but possibly a :data:`LOCK_FILE`.

    Only an empty regular file counts as a lock file (the tool never writes into it): a
    file of that name holding anything is somebody's, so the directory is not empty.
    Unfinished writes of a first manifest count as nothing too
    (:func:`discard_unfinished_manifests`): a run killed before its manifest was in
    place leaves only them, and a sweep rerun must start that run again.
    """
    try:
        with os.scandir(path) as entries:
            return all(_is_lock_file(e) or _is_unfinished_manifest(e) for e in entries)
    except NotADirectoryError:
        return False


#: Name pattern of an unfinished atomic write of a run's manifest (sim.output's temporary
#: files are ``.NAME.<random>.tmp`` beside ``NAME``).
UNFINISHED_MANIFEST = ".manifest.json.*.tmp"


def _is_unfinished_manifest(entry: os.DirEntry[str]) -> bool:
    return entry.is_file(follow_symlinks=False) and fnmatch.fnmatchcase(
        entry.name, UNFINISHED_MANIFEST
    )


def discard_unfinished_manifests(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the unfinished manifest writes in an otherwise empty run directory.

    Call it only while holding the directory's write lock (:func:`writing_lock`): a run
    holds it from before its first manifest write, so such a file found then belongs to
    a process that died mid-write (``kill -9`` of a sweep while a worker started a run).
    Nothing is deleted unless the directory is empty but for them and the lock file.

    Returns:
        The files deleted.
    """
    if not is_empty_dir(directory):
        return []
    removed = sorted(p for p in Path(directory).glob(UNFINISHED_MANIFEST) if p.is_file())
    for path in removed:
        path.unlink()
    return removed


def _is_lock_file(entry: os.DirEntry[str]) -> bool:
    return (
        entry.name == LOCK_FILE
        and entry.is_file(follow_symlinks=False)
        and entry.stat(follow_symlinks=False).st_size == 0
    )


@contextlib.contextmanager
def writing_lock(directory: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the exclusive write lock of an existing run directory for the body.

    The lock is an ``flock`` on ``directory/LOCK_FILE`` (created if needed and never
    written; removed at the end while still held, unless somebody wrote into it). A
    process that dies releases it.

    Raises:
        RunDirError: Another process holds the lock (it is writing this run now).
    """
    path = Path(directory) / LOCK_FILE
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirError(
                f"run directory {directory} is being written by another memespread process; "
                "wait for it to end (or stop it), then resume the run or choose another name"
            ) from None
        try:
            yield
        finally:
            # A file with content is not ours to delete; nor is a file that has taken the
            # name since (the directory was replaced while we held the lock).
            if os.fstat(fd).st_size == 0 and _names_open_file(path, fd):
                path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _names_open_file(path: Path, fd: int) -> bool:
    """Whether ``path`` (not followed if a symlink) is the file open as ``fd``."""
    try:
        named = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def refuse_dotdot(target: Path, kind: DirKind) -> None:
    """Refuse a run or sweep directory path that ends in ``..``.

    Such a directory is never empty, so never written into; an absent ``new/..`` would
    be made by creating ``new``, and then name the directory holding it.

    Raises:
        RunDirError: ``target``'s last component is ``..``.
    """
    if target.name == "..":
        raise RunDirError(
            f"{target}: a {kind} directory path cannot end in '..'; give the directory by "
            f"its name ({os.path.abspath(target)})"
        )


def plan_target(
    target: str | os.PathLike[str],
    *,
    overwrite: bool,
    kind: DirKind,
    elsewhere: str | None = None,
) -> Plan:
    """Decide how a new run (or sweep) may be written to ``target``, touching nothing.

    Args:
        target: The run (or sweep) directory asked for.
        overwrite: Whether replacing an existing run (sweep) of this tool is allowed.
        kind: ``"run"`` or ``"sweep"``: what ``target`` must hold to be replaced.
        elsewhere: How the caller's user picks another directory, as the errors name it
            after "choose another" (e.g. ``"--name or --run-dir"`` for a fork); default
            the config's ``name``/``output_dir`` and ``--run-dir`` (``--sweep-dir``).

    Returns:
        :attr:`Plan.CREATE` when ``target`` is absent or an empty directory,
        :attr:`Plan.REPLACE` when it holds a ``kind`` of this tool and ``overwrite``.

    Raises:
        RunDirError: ``target`` holds a ``kind`` of this tool and not ``overwrite``, or a
            run with files the tool did not write (never replaced); or it is a
            non-empty directory that is not one (never replaced); or it has no name
            (``/``), ends in ``..``, or is ``.`` to be replaced.
        NotADirectoryError: ``target`` is an existing file.
    """
    target = Path(target)
    if elsewhere is None:
        flag = "--run-dir" if kind == "run" else "--sweep-dir"
        elsewhere = f"name/output_dir or {flag}"
    if not Path(os.path.abspath(target)).name:
        raise RunDirError(f"{target}: cannot be a {kind} directory (it has no name)")
    refuse_dotdot(target, kind)
    if not target.exists() and not target.is_symlink():
        return Plan.CREATE
    if not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(target))
    if is_empty_dir(target):
        return Plan.CREATE
    if is_ours(target, kind):
        if overwrite and not target.name:
            # Renaming "." fails (EBUSY) only after the new run is done: refuse it now.
            raise RunDirError(
                f"{target}: a {kind} directory given as '.' cannot be replaced; "
                f"give it by its name ({os.path.abspath(target)}) to --overwrite it"
            )
        if overwrite:
            refuse_foreign_entries(target, kind)
            return Plan.REPLACE
        what = "resume it (memespread resume)" if kind == "run" else "rerun the sweep to finish it"
        raise RunDirError(
            f"{kind} directory {target} already exists; pass overwrite=True (--overwrite) to "
            f"replace it, {what}, or choose another {elsewhere}"
        )
    other: DirKind = "run" if kind == "sweep" else "sweep"
    if is_ours(target, other):
        found = f"it holds a memespread {other}, not a {kind}"
    else:
        found = f"it is not a memespread {kind} directory (no {kind} {_marker(kind)} in it)"
    raise RunDirError(
        f"{target} exists and {found}; refusing to write into or replace it, "
        f"{'even with --overwrite' if overwrite else 'overwrite or not'}: "
        f"choose another {elsewhere}"
    )


def refuse_foreign_entries(target: str | os.PathLike[str], kind: DirKind = "run") -> None:
    """Refuse to replace a run directory that holds files this tool did not write.

    Replacing deletes the old directory whole, so a file a researcher saved into a run
    directory would go with it (:func:`experiments.run_contents.foreign_entries`). A
    sweep directory is never replaced, so ``kind="sweep"`` checks nothing.

    Raises:
        RunDirError: ``target`` holds entries the tool did not write (the message names
            them).
    """
    if kind != "run":
        return
    foreign = foreign_entries(target)
    if foreign:
        raise RunDirError(describe_foreign(target, foreign))


def _marker(kind: DirKind) -> str:
    return RUN_MARKER if kind == "run" else SWEEP_MARKER


def staging_dir(target: str | os.PathLike[str]) -> Path:
    """A new, empty sibling of ``target`` to write a replacement into (created here).

    Named ``.NAME.new-XXXXXXXX`` next to ``target`` (same filesystem, so the final rename
    is cheap and atomic); its parent is created if needed.
    """
    target = Path(os.path.abspath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    return make_temp_dir(target.parent, _staging_prefix(target))


def _staging_prefix(target: Path) -> str:
    """The name prefix of ``target``'s staging directories (``target`` absolute)."""
    return f".{target.name}.new-"


def replace_dir_atomically(new_dir: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Put the finished ``new_dir`` at ``target``, deleting the directory it replaces.

    When ``target`` exists it is first renamed into a fresh holding directory next to it,
    then ``new_dir`` is renamed to ``target``, then the holder is deleted. Each rename is
    atomic; between the two, ``target`` is briefly absent. If the second rename fails the
    old directory is put back, so either the old or the new directory ends up at
    ``target``, never neither.

    Args:
        new_dir: A directory this tool created (e.g. by :func:`staging_dir`).
        target: Where it goes; if it exists, it must be a directory this tool may replace
            (the caller checked with :func:`plan_target`).

    Returns:
        ``target``.
    """
    new_dir = Path(new_dir)
    target = Path(target)
    if not target.exists() and not target.is_symlink():
        os.rename(new_dir, target)
        return target
    absolute = Path(os.path.abspath(target))
    holder = Path(tempfile.mkdtemp(prefix=f".{absolute.name}.old-", dir=absolute.parent))
    old = holder / absolute.name
    try:
        os.rename(target, old)
    except BaseException:
        holder.rmdir()  # nothing moved: leave no empty holder behind
        raise
    try:
        os.rename(new_dir, target)
    except BaseException:
        os.rename(old, target)
        holder.rmdir()
        raise
    shutil.rmtree(holder, ignore_errors=True)
    return target


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike[str], plan: Plan) -> Iterator[Path]:
    """The directory to write a new run (or sweep) for ``target`` into.

    With ``Plan.CREATE`` it is ``target`` itself (created here). Otherwise it is a fresh
    :func:`staging_dir`: if the body raises, the staging directory is deleted and
    ``target`` is left untouched; if the body succeeds, the staging directory replaces
    ``target`` (:func:`replace_dir_atomically`), unless ``target`` is a run that now holds
    files the tool did not write (saved there while the body ran): then both are kept
    and :class:`RunDirError` names the staging directory. While it is replaced, ``target``'s
    write lock (:func:`writing_lock`) is held from before the staging directory is made
    until the swap, so a run that another process is still writing there (a ``run`` or
    ``resume`` in another terminal) is never replaced under it.

    Raises:
        RunDirError: With ``Plan.REPLACE``, another process is writing ``target`` (then
            nothing is created), or ``target`` gained files the tool did not write.
    """
    target = Path(target)
    if plan is Plan.CREATE:
        target.mkdir(parents=True, exist_ok=True)
        yield target
        return
    with writing_lock(target):
        discard_stale_staging(target)
        work = staging_dir(target)
        try:
            yield work
        except BaseException:
            discard_dir(work)
            raise
        foreign = foreign_entries(target) if is_run_dir(target) else []
        if foreign:
            # Saved there while the new run ran: keep both, the new run where it is.
            raise RunDirError(
                f"{describe_foreign(target, foreign)}; the old run was left as it was and "
                f"the new one is in {work}"
            )
        replace_dir_atomically(work, target)


@contextlib.contextmanager
def locked_run_dir(target: str | os.PathLike[str], plan: Plan) -> Iterator[Path]:
    """:func:`staged_dir` for a new run, with the run directory's write lock held.

    The directory written into is locked (:func:`writing_lock`) for the whole body, so a
    ``resume`` of the run (its manifest says "running") is refused while it is written.

    Raises:
        RunDirError: With ``Plan.CREATE``, another process wrote into ``target`` since
            :func:`plan_target` found it empty (nothing of it is touched); with
            ``Plan.REPLACE``, another process is writing ``target``.
    """
    with staged_dir(target, plan) as work, writing_lock(work):
        if plan is Plan.CREATE and not is_empty_dir(work):
            raise RunDirError(
                f"run directory {target} was written by another memespread process since "
                "this one checked it was empty; nothing of it was touched"
            )
        if plan is Plan.CREATE:
            discard_unfinished_manifests(work)
        yield work


def discard_stale_staging(target: str | os.PathLike[str]) -> list[Path]:
    """Delete the staging directories that killed replacements of ``target`` left.

    Call it only while holding ``target``'s write lock: every replacement holds it from
    before it makes its staging directory until the swap, so any staging sibling found
    then belongs to a process that died (``kill -9`` of ``run --overwrite``). Deleted
    are the siblings named ``.NAME.new-*`` (:func:`staging_dir`) that are directories
    (not symlinks) and are empty or hold a run or sweep of this tool; anything else of
    that name is left alone.

    Returns:
        The directories deleted.
    """
    absolute = Path(os.path.abspath(target))
    removed = []
    for path in sorted(absolute.parent.glob(glob.escape(_staging_prefix(absolute)) + "*")):
        if path.is_symlink() or not path.is_dir():
            continue
        if is_empty_dir(path) or is_run_dir(path) or is_sweep_dir(path):
            discard_dir(path)
            removed.append(path)
    return removed


def discard_dir(path: str | os.PathLike[str]) -> None:
    """Delete a directory this tool created (a staging directory); missing is fine."""
    shutil.rmtree(path, ignore_errors=True)
