"""`finops keys rotate` drops the key before the previous one. When that key signed tokens
less than a token lifetime ago (two rotations in a row), those tokens, still unexpired, are
refused from then on: the command said nothing of it. It now warns, naming the key."""

from __future__ import annotations

import os
import time
from pathlib import Path

from typer.testing import CliRunner

from finops.auth.adapters.keystore import CURRENT_KEY_FILE, KeyStore
from finops.auth.settings import AuthSettings
from finops.cli.main import app

PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "NO_COLOR": "1", "COLUMNS": "300"}


def rotate(root: Path):
    env = {**PLAIN, "FINOPS_DATA_DIR": str(root)}
    return CliRunner().invoke(app, ["keys", "rotate"], env=env, prog_name="finops")


def test_a_second_rotation_within_a_token_lifetime_warns_naming_the_dropped_key(tmp_path):
    first = KeyStore(AuthSettings(data_dir=tmp_path)).load().current.kid  # auth's first key

    once = rotate(tmp_path)  # the first key becomes the previous one: nothing dropped
    assert (once.exit_code, once.stderr) == (0, "")

    twice = rotate(tmp_path)  # drops the first key, which signed until a moment ago
    assert twice.exit_code == 0
    assert twice.stderr.startswith(f"warning: the key dropped, {first}, signed tokens until ")
    assert twice.stderr.endswith(
        " s ago: those not yet expired (tokens live 900 s) are refused from now on; leave one"
        " token lifetime between two rotations\n"
    )


def test_a_rotation_a_token_lifetime_after_the_last_one_says_nothing_more(tmp_path):
    KeyStore(AuthSettings(data_dir=tmp_path)).load()
    assert rotate(tmp_path).exit_code == 0
    current = tmp_path / "keys" / CURRENT_KEY_FILE
    long_ago = time.time() - 901  # the previous key last signed more than 900 s ago
    os.utime(current, (long_ago, long_ago))

    later = rotate(tmp_path)
    assert (later.exit_code, later.stderr) == (0, "")
