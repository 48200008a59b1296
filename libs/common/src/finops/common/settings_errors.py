"""A settings class's validation error as one line per variable, for the CLI and the services.

A service started with a malformed setting (``FINOPS_REDIS_URL=notaurl``) should say which
variable is wrong and why, in one line, rather than end in pydantic's multi-line dump or a
client library's traceback; the ``finops`` command says it the same way.
"""

from __future__ import annotations

import os
import re
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import SettingsError

#: parts of a variable's name that say its value may hold a secret (a URL's password)
SECRET_MARKERS = ("URL", "PASSWORD", "SECRET", "TOKEN", "KEY")


#: the exit status of a service whose settings were refused (finops.common.runner): it would
#: fail the same way at every start, so the local stack's supervisor does not start it again
SETTINGS_REFUSED = 2

#: what ends a settings class's construction when one of its values is malformed: a value
#: that fails its checks (ValidationError), or one of a list or other complex field that is
#: not JSON (pydantic-settings' SettingsError: ``FINOPS_FALLBACK_MODELS=gpt-4o,claude``)
SETTINGS_ERRORS = (ValidationError, SettingsError)


def settings_error_line(error: ValidationError | SettingsError, prefix: str = "FINOPS_") -> str:
    """The one line (without ``error: ``) that says what is wrong with the settings."""
    if isinstance(error, ValidationError):
        return settings_problems(error, prefix)
    return unparsed_setting(error, prefix)


def unparsed_setting(error: SettingsError, prefix: str = "FINOPS_") -> str:
    """A setting pydantic-settings could not parse (a list or other complex field reads its
    variable as JSON), naming the variable, with its value unless it may hold a secret.

    Examples
    --------
    >>> import os
    >>> os.environ["FINOPS_FALLBACK_MODELS"] = "gpt-4o,claude"
    >>> error = SettingsError(
    ...     'error parsing value for field "fallback_models" from source "EnvSettingsSource"')
    >>> print(unparsed_setting(error))
    FINOPS_FALLBACK_MODELS=gpt-4o,claude: should be JSON (a list such as ["a", "b"], or an object)
    >>> del os.environ["FINOPS_FALLBACK_MODELS"]
    >>> print(unparsed_setting(SettingsError("something else")))
    a setting could not be read: something else
    """
    named = re.search(r'field "([^"]+)"', str(error))
    if named is None:
        return f"a setting could not be read: {error}"
    variable = prefix + named.group(1).upper()
    value = _environ_value(variable)
    if value is not None and not any(marker in variable for marker in SECRET_MARKERS):
        variable = f"{variable}={value}"
    return f'{variable}: should be JSON (a list such as ["a", "b"], or an object)'


def _as_written(variable: str, refused: Any) -> Any:
    """The refused value as the environment spells it (a validator may have changed its
    case, ``verbose`` to ``VERBOSE``), or as refused when it did not come from there (an
    argument, which wins over the environment)."""
    given = _environ_value(variable)
    same = given is not None and given.strip().casefold() == str(refused).strip().casefold()
    return given if same else refused


def _environ_value(variable: str) -> str | None:
    """The variable's value as pydantic-settings reads it (names are case-insensitive)."""
    for name, value in os.environ.items():
        if name.upper() == variable:
            return value
    return None


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
            variable = f"{variable}={_as_written(variable, problem.get('input'))}"
        problems.append(f"{variable}: {pydantic_message(problem)}")
    return "; ".join(problems)
