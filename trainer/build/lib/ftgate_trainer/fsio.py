"""Durable file operations: atomic replace, fsync, checksums."""

import hashlib
import json
import os
import time

from . import hooks
from .layout import MANIFEST_JSON

CHUNK = 1 << 16


def fsync_dir(path):
    """Flushes a directory's entries (renames, creations) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable(path, data):
    """Writes bytes to path (a fresh file), flushes and fsyncs it."""
    delay = hooks.slow_write()
    with open(path, "wb") as f:
        for off in range(0, max(len(data), 1), CHUNK):
            f.write(data[off:off + CHUNK])
            if delay:
                f.flush()
                time.sleep(delay)
        f.flush()
        os.fsync(f.fileno())


def replace_atomic(path, data):
    """Replaces path with data: temp file in the same directory, fsync, rename, fsync dir."""
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, ".%s.tmp-%d" % (os.path.basename(path), os.getpid()))
    try:
        write_durable(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(d)


def replace_json(path, obj):
    """Atomically replaces path with obj as indented JSON."""
    replace_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def append_line(path, obj):
    """Appends obj as one JSON line with a single write on an O_APPEND descriptor."""
    line = (json.dumps(obj, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def sha256_file(path):
    """Returns the hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def manifest_of(root):
    """Returns {relative path: {"size", "sha256"}} for every regular file under root,
    except manifest.json itself."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if rel == MANIFEST_JSON:
                continue
            files[rel] = {"size": os.path.getsize(full), "sha256": sha256_file(full)}
    return files


def fsync_tree(root):
    """Fsyncs every directory under root (files are fsynced when written)."""
    for dirpath, _, _ in os.walk(root, topdown=False):
        fsync_dir(dirpath)
