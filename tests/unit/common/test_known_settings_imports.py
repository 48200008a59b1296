"""A service's warning about a misspelt ``FINOPS_*`` variable knows every service's variables
without importing their code: ``known_settings()`` imported every service's settings module
(and the CLI's, and argon2 and bcrypt through auth's), none of which finops-common declares,
so a per-service image warned about another service's valid fleet-wide variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys

OTHERS = ("finops.auth", "finops.ingest", "finops.optimizer", "finops.healer", "finops.experiments",
          "finops.cli", "argon2", "bcrypt")  # fmt: skip


def test_known_settings_imports_no_service_module() -> None:
    script = (
        "import json, sys\n"
        "from finops.common.settings import known_settings, warn_about_unknown_settings\n"
        "warn_about_unknown_settings({'FINOPS_KAFKA_ACK': '1'})\n"
        "known = known_settings()\n"
        f"others = sorted(m for m in sys.modules if m.split('.')[0] in {OTHERS!r} or "
        f"'.'.join(m.split('.')[:2]) in {OTHERS!r})\n"
        "print(json.dumps({'others': others, 'known': sorted(known)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    answer = json.loads(done.stdout.splitlines()[-1])
    assert answer["others"] == []
    # yet the other services' variables (auth's, the healer's, the stack's) are known
    assert {
        "FINOPS_ARGON2_TIME_COST",
        "FINOPS_BREAKER_COOLDOWN_S",
        "FINOPS_BIND_HOST",
        "FINOPS_KAFKA_ACKS",
    } <= set(answer["known"])
