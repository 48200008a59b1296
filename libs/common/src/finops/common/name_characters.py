"""The characters no name may hold: one rule for every name the platform takes.

A name (an event's agent, task type, model, an id, a config or feature key; the healer's
advice request's; an experiment's and its variants' labels) is something a person reads in a
table, a log line, a metric label or a terminal, and matches against what they typed. So none
may hold:

* a control character (Unicode category Cc: U+0000-U+001F, U+007F-U+009F): a line break, a
  tab, an ANSI escape (``\\x1b[2J``) or a C1 control splits a log line, forges a table row or
  drives the terminal;
* a line or paragraph separator (Zl, Zp: U+2028, U+2029), which many log viewers and editors
  end a line at, as at ``\\n``;
* a format character (Cf): invisible, yet it changes what is shown or makes two names look
  alike: bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069: ``abc`` shown
  as ``cba``), zero-width space, joiners and marks (U+200B-U+200F), the word joiner and
  invisible operators (U+2060-U+2064), a byte order mark (U+FEFF), a soft hyphen (U+00AD),
  tag characters (U+E0000-U+E007F) and the rest of Cf. So is a name holding an emoji
  sequence joined by U+200D (a zero-width joiner) or a flag written with tag characters.
  The zero-width non-joiner and joiner are taken only where a script needs them: after a
  virama, and the non-joiner between two letters of a joining script (:data:`ZWNJ`).

The list below is Unicode's (14.0, Python 3.11's ``unicodedata``), plus the Egyptian format
controls Unicode 15 adds (U+13439-U+1343F); ``tests/unit/common/test_name_characters.py``
checks it against ``unicodedata``. The SDK (``finops.client._names``, which has no server
dependencies) holds a copy of :data:`REFUSED_IN_NAMES` and of :func:`name_refusal`, checked
to be these by ``tests/unit/client/test_sdk_control_characters.py``.
"""

from __future__ import annotations

import re
import unicodedata

#: C0 controls (U+0000-U+001F): never raw inside a JSON string, only escaped
C0 = "\x00-\x1f"
#: every other character :data:`REFUSED_IN_NAMES` holds: DEL and C1 (Cc), the line and
#: paragraph separators (Zl, Zp) and the format characters (Cf)
NOT_C0 = (
    "\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
#: the characters no name may hold: Cc, Zl, Zp and Cf
REFUSED_IN_NAMES = re.compile(f"[{C0}{NOT_C0}]")

NAME_CHARACTERS_MESSAGE = (
    "a name must not hold a control character (U+0000-U+001F, U+007F-U+009F), a line or "
    "paragraph separator (U+2028, U+2029) or an invisible format character (a bidi override "
    "or isolate, a zero-width space or joiner, a byte order mark: Unicode category Cf)"
)


#: the zero-width non-joiner and joiner: format characters, yet words of some scripts need
#: them, so a name takes them where IDNA does (RFC 5892, appendix A.1 and A.2, "ContextJ"):
#: either after a virama (Devanagari and the other Indic scripts shape conjuncts with them),
#: and the non-joiner between two letters of a joining script (Persian writes "می‌خواهم"),
#: marks between them aside. Elsewhere (between Latin letters, in an emoji sequence, at an
#: end) they are refused as every other format character: there they only make two names
#: look alike.
ZWNJ, ZWJ = "\u200c", "\u200d"
#: the letters of the joining scripts (Arabic, Syriac, N'Ko, Mongolian and their extended
#: blocks; IDNA reads Unicode's joining types, which Python's ``unicodedata`` does not have)
JOINING_LETTERS = re.compile(
    "[\u0620-\u06ff\u0700-\u074f\u0750-\u077f\u07c0-\u07ff\u0860-\u08ff"
    "\u1800-\u18af\ufb50-\ufdff\ufe70-\ufeff]"
)
VIRAMA = 9  # the canonical combining class of a virama


def joiner_allowed(value: str, at: int) -> bool:
    r"""Whether the joiner at ``value[at]`` (:data:`ZWNJ` or :data:`ZWJ`) stands where a
    script needs it (see :data:`ZWNJ`).

    >>> joiner_allowed("क्\u200cष", 2), joiner_allowed("\u0645\u06cc\u200c\u062e", 2)
    (True, True)
    >>> joiner_allowed("sum\u200cmarize", 3), joiner_allowed("\U0001f469\u200d\U0001f4bb", 1)
    (False, False)
    """
    if at > 0 and unicodedata.combining(value[at - 1]) == VIRAMA:
        return True
    if value[at] != ZWNJ:
        return False
    before, after = at - 1, at + 1
    while before >= 0 and unicodedata.category(value[before]) == "Mn":
        before -= 1
    while after < len(value) and unicodedata.category(value[after]) == "Mn":
        after += 1
    return (
        before >= 0
        and after < len(value)
        and all(
            unicodedata.category(value[i]).startswith("L") and JOINING_LETTERS.match(value[i])
            for i in (before, after)
        )
    )


def refused_character(value: str) -> str | None:
    r"""The first character of ``value`` no name may hold, or None.

    >>> refused_character("summarize"), refused_character("naïve résumé 東京\u00a0x")
    (None, None)
    >>> refused_character("invoice\u202egpj.exe")
    '\u202e'
    >>> refused_character("\u0645\u06cc\u200c\u062e"), refused_character("sum\u200cmarize")
    (None, '\u200c')
    """
    for found in REFUSED_IN_NAMES.finditer(value):
        if found[0] not in (ZWNJ, ZWJ) or not joiner_allowed(value, found.start()):
            return found[0]
    return None


def name_refusal(char: str) -> str:
    r"""What a name holding ``char`` is refused with: the rule, then the character's code point
    (and its Unicode name, where it has one).

    >>> name_refusal("\u202e").split("; ")[-1]
    'got U+202E (RIGHT-TO-LEFT OVERRIDE)'
    >>> name_refusal("\n").split("; ")[-1]
    'got U+000A'
    """
    name = unicodedata.name(char, "")
    return f"{NAME_CHARACTERS_MESSAGE}; got U+{ord(char):04X}" + (f" ({name})" if name else "")
