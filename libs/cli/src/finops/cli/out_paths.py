"""Where a command writes what a user asked for (a report, a plot), checked before the work.

A command makes no folder the user did not ask for: a file option (``--out``, ``--plot``)
needs its folder to exist; a folder option (``--reports``) is made if missing, but not the
folders above it. A path that fails is one line, ``error: --out PATH: …``, exit status 2.
"""

from __future__ import annotations

import os
from pathlib import Path

from finops.cli.failures import CliError


def check_file_to_write(option: str, path: Path) -> None:
    """Refuse ``path`` unless it can be written in a folder that exists."""
    folder = path.parent
    if not folder.exists():
        raise CliError(f"{option} {path}: the folder {folder} does not exist", 2)
    if not folder.is_dir():
        raise CliError(f"{option} {path}: {folder} is not a folder", 2)
    if path.is_dir() or not os.access(folder, os.W_OK):
        raise CliError(f"{option} {path}: cannot write there", 2)


def check_folder_to_make(option: str, folder: Path) -> None:
    """Refuse ``folder`` unless it is a folder that can be written, or can be made in a
    folder that exists."""
    if folder.exists():
        if not folder.is_dir():
            raise CliError(f"{option} {folder}: not a folder", 2)
        if not os.access(folder, os.W_OK):
            raise CliError(f"{option} {folder}: cannot write there", 2)
        return
    parent = folder.parent
    if not parent.exists():
        raise CliError(f"{option} {folder}: the folder {parent} does not exist", 2)
    if not parent.is_dir():
        raise CliError(f"{option} {folder}: {parent} is not a folder", 2)
    if not os.access(parent, os.W_OK):
        raise CliError(f"{option} {folder}: cannot create it there", 2)
