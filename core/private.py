"""The data folder is the server's alone: the folder 0700, what the server makes in it 0600.

The embedded store has no authentication and is reached through a socket in the data folder, and
the folder holds auth.json, the store's files, the jobs' logs and the uploads: no other local
user may enter it. `private_dir` makes the folder (or tightens an existing one), `private_file`
opens a file the owner alone can read, and `PRIVATE_UMASK` is the server process's umask
(server.main): every file and folder it, its store and its jobs make is the owner's alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
PRIVATE_UMASK = 0o077


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Make the folder `path` (and its parents), mode 0700 (an existing one is tightened)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    path.chmod(PRIVATE_DIR_MODE)
    return path


def private_file(path: str | os.PathLike[str], truncate: bool = False,
                 mode: int = PRIVATE_FILE_MODE) -> BinaryIO:
    """`path` opened to append bytes (`truncate`: emptied first), with the permissions `mode`
    (0600), an existing file's tightened too."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_TRUNC if truncate else os.O_APPEND)
    fd = os.open(path, flags, mode)
    try:
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb")
