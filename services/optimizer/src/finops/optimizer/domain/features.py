"""Cheap request features.

:func:`prompt_features` turns a prompt (and its input-token count) into a handful of numbers
computed in a single pass of C-level string operations -- a few microseconds per prompt.  Only
the prompt text and the token count are used, never an outcome.

The per-arm contextual quality model that reads them is
:class:`~finops.optimizer.domain.residual_quality.ResidualQualityModel`.
"""

from __future__ import annotations

import math
import re

__all__ = ["COST_FEATURE", "prompt_features"]

#: feature used by the cost model (not by the quality model)
COST_FEATURE = "input_tokens"

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CHOICE = re.compile(r"^\s*\(?[A-Ja-j][.)]\s", re.MULTILINE)
_CODE_CHARS = "{}[];=<>_\\"
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_DECIMAL = re.compile(r"\d\.\d")
_CURRENCY = "$\u20ac\u00a3\u00a5"


def _number_value(token: str) -> float:
    try:
        return float(token.replace(",", ""))
    except ValueError:
        return 0.0


def prompt_features(prompt: str | None, input_tokens: float | None = None) -> dict[str, float]:
    """Numeric features of a prompt.

    Parameters
    ----------
    prompt
        The prompt text (may be ``None`` or empty).
    input_tokens
        Input-token count if known; otherwise estimated as ``ceil(len(prompt) / 4)``.

    Returns
    -------
    dict
        ``input_tokens`` (raw, used for the cost estimate) plus scale-free text statistics used by
        the quality model: length, sentence structure, how many and how large the numbers are,
        answer choices, code-like characters, percent / fraction / currency / decimal markers.

    Examples
    --------
    >>> f = prompt_features("What is 12 + 30?\\nA. 42\\nB. 43\\nAnswer:", input_tokens=12)
    >>> f["input_tokens"], f["choices"], f["questions"]
    (12.0, 2.0, 1.0)
    >>> round(f["log_input_tokens"], 3), round(f["log_max_number"], 3)
    (2.565, 3.784)
    """
    text = prompt or ""
    n_chars = len(text)
    tokens = float(input_tokens) if input_tokens is not None else float(math.ceil(n_chars / 4))
    words = text.split()
    n_words = len(words)
    numbers = _NUMBER.findall(text)
    n_digits = sum(map(len, numbers))
    inv_chars = 1.0 / n_chars if n_chars else 0.0
    code = 0
    for ch in _CODE_CHARS:
        code += text.count(ch)
    sentences = max(1, len(_SENTENCE_END.findall(text)))
    max_number = max(map(_number_value, numbers)) if numbers else 0.0
    return {
        COST_FEATURE: tokens,
        "log_input_tokens": math.log1p(tokens),
        "log_words": math.log1p(n_words),
        "chars_per_word": n_chars / n_words if n_words else 0.0,
        "log_sentences": math.log1p(sentences),
        "words_per_sentence": n_words / sentences,
        "log_numbers": math.log1p(len(numbers)),
        "log_distinct_numbers": math.log1p(len(set(numbers))),
        "log_max_number": math.log1p(max_number if max_number > 0 else 0.0),
        "digit_frac": n_digits * inv_chars,
        "max_number_len": float(max(map(len, numbers))) if numbers else 0.0,
        "log_lines": math.log1p(text.count("\n")),
        "questions": float(text.count("?")),
        "choices": float(len(_CHOICE.findall(text))),
        "code_frac": code * inv_chars,
        "distinct_word_frac": len(set(words)) / n_words if n_words else 0.0,
        "has_percent": 1.0 if "%" in text or "percent" in text else 0.0,
        "has_fraction": 1.0 if "/" in text else 0.0,
        "has_currency": 1.0 if any(c in text for c in _CURRENCY) else 0.0,
        "has_decimal": 1.0 if _DECIMAL.search(text) else 0.0,
    }
