"""Every check of deploy/ that needs no Docker engine (``make deploy-check``).

* compose.yaml against the compose-spec JSON schema (check-jsonschema's vendored copy);
* each kustomization rendered by ``kubectl kustomize`` and every resource checked against the
  Kubernetes OpenAPI schemas (kubernetes-validate, strict: an unknown field fails); Strimzi's
  kinds (KafkaTopic, Kafka, KafkaNodePool) and the Prometheus Operator's (PodMonitor) have no
  schema there: the KafkaTopic resources are checked by ``gen_topics.py --check`` and
  tests/unit/deploy instead, and k8s/kafka and k8s/monitoring are only rendered;
* the alert rules with ``promtool check rules`` and ``promtool test rules``, and Prometheus'
  configuration with ``promtool check config``;
* the Dockerfile with hadolint;
* deploy/ against the code (tests/unit/deploy): every FINOPS_* variable compose and the
  manifests set is a setting a service reads, every metric the alerts and the dashboard query
  is exported, the probed and scraped paths are routes, the alerts' jobs are the scraped ones.

``kubectl`` and ``promtool`` come from Debian's packages, unpacked into ``.tools/deploy`` by the
Makefile; the others are dev dependencies in ``.venv``. The production overlay reads its
secrets from files that are never committed: it is rendered from a copy with placeholder files.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
KUSTOMIZATIONS = ("base", "overlays/production", "kafka", "monitoring")
PRODUCTION_SECRET_FILES = ("database-url", "redis-url", "jwt-private-key-pem")


@dataclass(frozen=True)
class Tools:
    bin_dir: Path  # the virtual environment's bin/
    kubectl: Path
    promtool: Path


def run(title: str, command: list[str], cwd: Path | None = None) -> bool:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    print(f"{'ok  ' if result.returncode == 0 else 'FAIL'} {title}")
    if result.returncode != 0:
        print(result.stdout + result.stderr, file=sys.stderr)
    return result.returncode == 0


def render_kustomizations(tools: Tools, into: Path) -> list[tuple[str, Path]]:
    """Render each kustomization into a file; raise when one does not render."""
    tree = into / "k8s"
    shutil.copytree(DEPLOY / "k8s", tree)
    secrets = tree / "overlays" / "production" / "secrets"
    secrets.mkdir(exist_ok=True)
    for name in PRODUCTION_SECRET_FILES:
        (secrets / name).write_text("rendered-by-deploy-check")
    rendered = []
    for name in KUSTOMIZATIONS:
        out = into / (name.replace("/", "-") + ".yaml")
        with out.open("w") as handle:
            subprocess.run(
                [str(tools.kubectl), "kustomize", str(tree / name)], stdout=handle, check=True
            )
        rendered.append((name, out))
    return rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", type=Path, required=True, help="the virtual environment's bin/")
    parser.add_argument("--kubectl", type=Path, required=True)
    parser.add_argument("--promtool", type=Path, required=True)
    args = parser.parse_args(argv)
    tools = Tools(args.bin.resolve(), args.kubectl.resolve(), args.promtool.resolve())
    prometheus = DEPLOY / "prometheus"
    checks = [
        run(
            "compose.yaml: compose-spec schema",
            [
                str(tools.bin_dir / "check-jsonschema"),
                "--builtin-schema",
                "vendor.compose-spec",
                str(DEPLOY / "compose.yaml"),
            ],
        ),
        run(
            "k8s/base/topics.yaml: generated from the topic registry",
            [str(tools.bin_dir / "python"), str(DEPLOY / "gen_topics.py"), "--check"],
        ),
        run(
            "prometheus/alerts.yaml: promtool check rules",
            [str(tools.promtool), "check", "rules", "alerts.yaml"],
            cwd=prometheus,
        ),
        run(
            "prometheus/alerts_test.yaml: promtool test rules",
            [str(tools.promtool), "test", "rules", "alerts_test.yaml"],
            cwd=prometheus,
        ),
        run(
            "prometheus/prometheus.yml: promtool check config",
            [str(tools.promtool), "check", "config", "prometheus.yml"],
            cwd=prometheus,
        ),
        run("Dockerfile: hadolint", [str(tools.bin_dir / "hadolint"), str(DEPLOY / "Dockerfile")]),
        run(
            "tests/unit/deploy: settings, metrics, routes and scrape jobs against the code",
            [str(tools.bin_dir / "pytest"), "-q", "-p", "no:cacheprovider", "tests/unit/deploy"],
            cwd=ROOT,
        ),
    ]
    with tempfile.TemporaryDirectory(prefix="finops-deploy-check-") as scratch:
        try:
            rendered = render_kustomizations(tools, Path(scratch))
        except subprocess.CalledProcessError as error:
            print(f"FAIL kubectl kustomize: {error}", file=sys.stderr)
            return 1
        for name, manifest in rendered:
            checks.append(
                run(
                    f"k8s/{name}: kubectl kustomize + Kubernetes schemas (CRD kinds: none)",
                    [
                        str(tools.bin_dir / "kubernetes-validate"),
                        "--strict",
                        "--quiet",
                        "--no-warn",
                        str(manifest),
                    ],
                )
            )
    failed = checks.count(False)
    print(f"deploy checks: {len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
