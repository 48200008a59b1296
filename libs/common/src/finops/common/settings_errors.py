"""A settings class's validation error as one line per variable, for the CLI and the services.

A service started with a malformed setting (``FINOPS_REDIS_URL=notaurl``) should say which
variable is wrong and why, in one line, rather than end in pydantic's multi-line dump or a
client library's traceback; the ``finops`` command says it the same way.
"""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_core import ErrorDetails

#: parts of a variable's name that say its value may hold a secret (a URL's password)
SECRET_MARKERS = ("URL", "PASSWORD", "SECRET", "TOKEN", "KEY")


def pydantic_message(problem: ErrorDetails) -> str:
    """Pydantic's message for one problem without the ``Value error, `` (or ``Assertion failed,
    ``) it puts before what a validator raised.

    Examples
    --------
    >>> pydantic_message({"type": "value_error", "loc": (), "msg": "Value error, too many",
    ...                   "input": 3})
    'too many'
    >>> pydantic_message({"type": "int_parsing", "loc": (), "msg": "Input should be an integer",
    ...                   "input": "x"})
    'Input should be an integer'
    """
    message = problem["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def settings_problems(error: ValidationError, prefix: str = "FINOPS_") -> str:
    """``FINOPS_OPTIMIZER_WORKERS=9: Input should be less than or equal to 6``, per variable,
    joined by ``; `` (without the value of one that may hold a secret, such as a URL).

    Examples
    --------
    >>> from pydantic import Field
    >>> from pydantic_settings import BaseSettings, SettingsConfigDict
    >>> class StackSettings(BaseSettings):
    ...     model_config = SettingsConfigDict(env_prefix="FINOPS_")
    ...     optimizer_workers: int = Field(1, le=6)
    ...     redis_url: str = Field("redis://x", pattern="^redis://")
    >>> try:
    ...     StackSettings(optimizer_workers="9", redis_url="http://:pw@h")
    ... except ValidationError as exc:
    ...     for problem in settings_problems(exc).split("; "):
    ...         print(problem)
    FINOPS_OPTIMIZER_WORKERS=9: Input should be less than or equal to 6
    FINOPS_REDIS_URL: String should match pattern '^redis://'
    """
    problems = []
    for problem in error.errors():
        if not problem["loc"]:  # a rule over several settings: its message names them
            problems.append(pydantic_message(problem))
            continue
        variable = prefix + "_".join(str(part) for part in problem["loc"]).upper()
        if not any(marker in variable for marker in SECRET_MARKERS):
            variable = f"{variable}={problem.get('input')}"
        problems.append(f"{variable}: {pydantic_message(problem)}")
    return "; ".join(problems)
