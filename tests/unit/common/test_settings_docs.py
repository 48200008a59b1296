"""docs/settings.md lists every setting of every service, as the code declares it."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

import finops.common.settings_docs as settings_docs
from finops.common.settings_docs import BLOCK, regenerate, render, settings_rows

ROOT = Path(__file__).resolve().parents[3]
SETTINGS_DOC = ROOT / "docs" / "settings.md"
MODULES = [
    "finops.common.settings",
    "finops.common.stream_settings",
    "finops.cli.stack.settings",
    *(f"finops.{p.parent.name}.settings" for p in ROOT.glob("services/*/src/finops/*/settings.py")),
]


def _settings_classes() -> set[str]:
    """Each module's settings classes but the bases of another class of that module (auth's
    ``AccountSettings``): the fields of those are in that class's table."""
    found = set()
    for name in MODULES:
        module = importlib.import_module(name)
        declared = {
            attr: value
            for attr, value in vars(module).items()
            if inspect.isclass(value)
            and issubclass(value, BaseSettings)
            and getattr(value, "__module__", None) == name
        }
        bases = {base for value in declared.values() for base in value.__mro__[1:]}
        found |= {f"{name}:{attr}" for attr, value in declared.items() if value not in bases}
    return found


def test_the_settings_page_is_current():
    text = SETTINGS_DOC.read_text()
    assert regenerate(text) == text, "docs/settings.md is stale: run `make docs`"


def test_every_settings_class_has_its_table():
    blocks = {m["spec"].strip() for m in BLOCK.finditer(SETTINGS_DOC.read_text())}
    assert blocks == _settings_classes()
    # the five services, the two shared classes and the local stack's
    assert len(blocks) == 8


def test_a_table_says_what_the_code_says_of_each_setting():
    class Demo(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="DEMO_")
        #: how long one call may take
        #: (seconds)
        timeout_s: float = 2.0
        token: str = Field(min_length=1)
        hosts: tuple[str, ...] = ("a:1", "b:2")
        proxies: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["10.0.0.5"])
        mode: str = "fast"  # or "safe"
        quiet: bool = False

    assert render(Demo) == (
        "| variable | default | what it is |\n|---|---|---|\n"
        "| `DEMO_TIMEOUT_S` | `2.0` | how long one call may take (seconds) |\n"
        "| `DEMO_TOKEN` | `required` |  |\n"
        '| `DEMO_HOSTS` | `["a:1", "b:2"]` |  |\n'
        "| `DEMO_PROXIES` | `10.0.0.5` |  |\n"
        '| `DEMO_MODE` | `fast` | or "safe" |\n'
        "| `DEMO_QUIET` | `false` |  |\n"
    )


def test_a_table_lists_only_what_its_class_declares():
    class Base(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="X_")
        shared: int = 1

    class Service(Base):
        shared: int = 2  # its own default
        own: str = "yes"

    assert [(r.variable, r.default) for r in settings_rows(Service)] == [
        ("X_SHARED", "2"),
        ("X_OWN", "yes"),
    ]
    assert [r.variable for r in settings_rows(Base)] == ["X_SHARED"]


def test_the_known_settings_list_is_current():
    # every service names a misspelt FINOPS_ variable from this list (fleet-wide variables of
    # other services included), without importing those services' settings
    assert settings_docs.KNOWN_SETTINGS_MODULE.read_text() == settings_docs.known_settings_source(
        settings_docs.settings_variables()
    ), "finops/common/known_settings.py is stale: run `make docs`"
    assert set(settings_docs.SETTINGS_CLASSES) == _settings_classes()


def test_the_known_settings_check_would_catch_a_variable_the_list_lacks(tmp_path, monkeypatch):
    from finops.common import known_settings
    from finops.common.settings import known_settings as known

    module = tmp_path / "known_settings.py"
    module.write_text(settings_docs.KNOWN_SETTINGS_MODULE.read_text())
    assert not settings_docs.rewrite_known_settings(check=True, path=module)
    # a settings class gains a variable: the list is stale until rewritten
    fields = settings_docs.settings_variables()
    monkeypatch.setattr(
        settings_docs, "settings_variables", lambda: sorted([*fields, "FINOPS_NEW_THING"])
    )
    assert settings_docs.rewrite_known_settings(check=True, path=module)
    assert "FINOPS_NEW_THING" not in module.read_text()
    assert settings_docs.rewrite_known_settings(check=False, path=module)
    assert '"FINOPS_NEW_THING",' in module.read_text()
    assert not settings_docs.rewrite_known_settings(check=True, path=module)
    # every class's variable is known at run time, and nothing else but the few read elsewhere
    assert set(fields) == known_settings.SETTINGS_VARIABLES
    assert {"FINOPS_BREAKER_COOLDOWN_S", "FINOPS_ARGON2_TIME_COST", "FINOPS_BIND_HOST"} <= known()
