"""Rewriting the generated blocks of markdown files (``make docs``) or checking them."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path


def block_pattern(kind: str) -> re.Pattern[str]:
    r"""The generated blocks of one kind: ``<!-- generated: KIND SPEC -->`` ... ``<!-- end
    generated -->``, with the groups ``open``, ``spec``, ``body`` and ``close``.

    Examples
    --------
    >>> text = "<!-- generated: settings of a:B -->\nold\n<!-- end generated -->"
    >>> block_pattern("settings of").search(text)["spec"]
    'a:B'
    """
    return re.compile(
        rf"(?P<open><!-- generated: {re.escape(kind)} (?P<spec>[^>]*?) -->\n)"
        r"(?P<body>.*?)"
        r"(?P<close><!-- end generated -->)",
        re.DOTALL,
    )


def rewrite_files(argv: Sequence[str], regenerate: Callable[[str], str]) -> int:
    """Rewrite each file of ``argv`` with ``regenerate``; with ``--check`` among them, only
    report the stale ones and return 1 if there is one."""
    check = "--check" in argv
    stale = []
    for name in (a for a in argv if a != "--check"):
        path = Path(name)
        text = path.read_text()
        new = regenerate(text)
        if new != text:
            stale.append(name)
            if not check:
                path.write_text(new)
    for name in stale:
        print(f"{name}: {'stale' if check else 'rewritten'}")
    return 1 if check and stale else 0
