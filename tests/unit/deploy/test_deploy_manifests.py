"""deploy/ stays true to the code: the KafkaTopic resources are the topic registry's, and the
alert rules and the Grafana dashboard query only metrics the services export."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest

from finops.common.topics import ALL_TOPICS

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
SERVICES = ("auth", "ingest", "optimizer", "healer", "experiments")
#: Series that come from outside the platform's code: Prometheus itself and kafka-exporter.
EXTERNAL_METRICS = {"up", "kafka_consumergroup_lag"}
SUFFIXES = {"counter": ("",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _gen_topics() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_topics", DEPLOY / "gen_topics.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_kafka_topics_are_the_ones_generated_from_the_registry():
    gen_topics = _gen_topics()
    committed = (DEPLOY / "k8s" / "base" / "topics.yaml").read_text()
    assert committed == gen_topics.render(), "stale: run `python deploy/gen_topics.py`"


def test_every_registry_topic_is_a_kafka_topic_with_production_replication():
    documents = list(yaml.safe_load_all((DEPLOY / "k8s" / "base" / "topics.yaml").read_text()))
    by_name = {doc["spec"]["topicName"]: doc for doc in documents}
    assert sorted(by_name) == sorted(spec.name for spec in ALL_TOPICS)
    for spec in ALL_TOPICS:
        resource = by_name[spec.name]
        assert resource["kind"] == "KafkaTopic"
        assert resource["spec"]["partitions"] == spec.partitions
        assert resource["spec"]["replicas"] == 3
        assert resource["spec"]["config"]["min.insync.replicas"] == 2
        assert resource["spec"]["config"]["cleanup.policy"] == spec.cleanup_policy


def test_the_generator_check_mode_reports_a_stale_file(tmp_path, monkeypatch):
    gen_topics = _gen_topics()
    stale = tmp_path / "topics.yaml"
    stale.write_text(gen_topics.render().replace("partitions: 3", "partitions: 4", 1))
    monkeypatch.setattr(gen_topics, "TOPICS_FILE", stale)
    assert gen_topics.main(["--check"]) == 1
    stale.write_text(gen_topics.render())
    assert gen_topics.main(["--check"]) == 0


def _exported_series_names() -> set[str]:
    """Every series name the five services can export, from the TYPE lines of their registry
    (a counter's TYPE line names it with ``_total`` already)."""
    for service in SERVICES:
        importlib.import_module(f"finops.{service}.app")
    spend = importlib.import_module("finops.optimizer.adapters.metrics").SPEND
    row = {"key": "k", "spend_usd": 1.0, "calls": 1, "success_rate": 1.0, "latency_p95_ms": 1.0}
    engine = SimpleNamespace(analytics=SimpleNamespace(bounded_totals=lambda k: {"model": [row]}))
    previous, spend.source = spend.source, lambda: engine
    try:
        text = generate_latest(REGISTRY).decode()
    finally:
        spend.source = previous
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE):
        names.update(name + suffix for suffix in SUFFIXES.get(kind, ("",)))
    return names


#: A metric name in PromQL: followed by its selector, a range, a closing parenthesis or ==.
METRIC_IN_QUERY = re.compile(r"\b(finops_[a-z0-9_]+|kafka_[a-z0-9_]+|up)\b(?=\s*[{\[)]|\s*==)")


def _queried_names(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in METRIC_IN_QUERY.findall(expr)}


def _alert_expressions() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "finops.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


@pytest.mark.parametrize(
    "source", [_alert_expressions, _dashboard_expressions], ids=["alerts", "dashboard"]
)
def test_queries_use_only_metrics_the_services_export(source):
    queried = _queried_names(source())
    assert len(queried) >= 5, queried  # the pattern found the names
    unknown = queried - _exported_series_names() - EXTERNAL_METRICS
    assert unknown == set()


#: A row of docs/metrics.md's alert table: | `Alert`, `Alert` | metrics | fires when |
ALERT_ROW = re.compile(r"^\| (`Finops\w+`(?:, `Finops\w+`)*) \| (.*?) \|", re.MULTILINE)


def _documented_alert_metrics() -> dict[str, set[str]]:
    """Each alert of docs/metrics.md's table, with the metric names its row gives."""
    rows = {}
    for alerts, metrics in ALERT_ROW.findall((ROOT / "docs" / "metrics.md").read_text()):
        names = set(re.findall(r"\b(?:finops_[a-z0-9_]+|kafka_[a-z0-9_]+|up)\b", metrics))
        for alert in re.findall(r"`(Finops\w+)`", alerts):
            rows[alert] = names
    return rows


def test_each_alert_has_a_row_naming_the_metrics_it_queries():
    """An alert rebased on other metrics must say so in docs/metrics.md (the provider error
    rate moved from the optimizer's gauges alone to the healer's counter by provider)."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    documented = _documented_alert_metrics()
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["alert"] in documented, rule["alert"]
            queried = _queried_names([rule["expr"]])
            assert queried, rule["alert"]
            assert queried <= documented[rule["alert"]], (rule["alert"], queried)


def test_the_metric_name_check_would_catch_a_misspelt_metric():
    queried = _queried_names(['sum(rate(finops_ingest_event_total{type="x"}[5m]))'])
    assert queried == {"finops_ingest_event_total"}
    assert queried - _exported_series_names() == {"finops_ingest_event_total"}


def _base_secret_placeholders() -> dict[str, str]:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "base" / "kustomization.yaml").read_text())
    (secret,) = [g for g in kustomization["secretGenerator"] if g["name"] == "finops-secrets"]
    return dict(literal.split("=", 1) for literal in secret["literals"])


@pytest.mark.parametrize(
    ("key", "setting"),
    [
        ("database-url", "database_url"),
        ("redis-url", "redis_url"),
        ("jwt-private-key-pem", "jwt_private_key_pem"),
    ],
)
def test_auth_refuses_each_placeholder_of_the_base_secret(key, setting):
    from pydantic import ValidationError

    from finops.auth.settings import AuthSettings

    placeholder = _base_secret_placeholders()[key]
    with pytest.raises(ValidationError, match="placeholder"):
        AuthSettings(environment="production", **{setting: placeholder})


@pytest.mark.parametrize("service", ["ingest", "optimizer", "healer", "experiments"])
@pytest.mark.parametrize(
    ("key", "setting"), [("database-url", "database_url"), ("redis-url", "redis_url")]
)
def test_every_service_refuses_the_base_secrets_placeholder_urls(service, key, setting):
    from pydantic import ValidationError

    placeholder = _base_secret_placeholders()[key]
    with pytest.raises(ValidationError, match="placeholder"):
        _settings_class(service)(environment="production", **{setting: placeholder})


SETTINGS_CLASSES = {
    "auth": "finops.auth.settings:AuthSettings",
    "ingest": "finops.ingest.settings:IngestSettings",
    "optimizer": "finops.optimizer.settings:OptimizerSettings",
    "healer": "finops.healer.settings:HealerSettings",
    "experiments": "finops.experiments.settings:ExperimentsSettings",
}


def _settings_class(service: str) -> type:
    module, name = SETTINGS_CLASSES[service].split(":")
    return getattr(importlib.import_module(module), name)


def _environment_names_read_by_some_service() -> set[str]:
    return {
        f"FINOPS_{field.upper()}"
        for service in SERVICES
        for field in _settings_class(service).model_fields
    }


def _k8s_documents() -> list[dict]:
    base = DEPLOY / "k8s" / "base"
    return [
        doc
        for path in sorted(base.glob("*.yaml"))
        if path.name not in {"kustomization.yaml", "topics.yaml"}
        for doc in yaml.safe_load_all(path.read_text())
    ]


def _all_containers(workload: dict) -> list[dict]:
    """A Deployment's or Job's containers, its init containers first."""
    pod = workload["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def _deployed_environment_names() -> dict[str, set[str]]:
    """Every FINOPS_* variable compose and the Kubernetes manifests set, by where."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    found = {"compose.yaml": set(compose["x-finops-env"])}
    for name, spec in compose["services"].items():
        environment = spec.get("environment") or {}
        if isinstance(environment, dict):
            found[f"compose {name}"] = {k for k in environment if k.startswith("FINOPS_")}
    for doc in _k8s_documents():
        where = f"k8s {doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "ConfigMap":
            found[where] = set(doc["data"])
        elif doc["kind"] in {"Deployment", "Job"}:
            found[where] = {e["name"] for c in _all_containers(doc) for e in c.get("env", [])}
    return found


def _environment_names_read_by(service: str) -> set[str]:
    return {f"FINOPS_{field.upper()}" for field in _settings_class(service).model_fields}


def test_every_variable_the_deployments_set_is_a_setting_a_service_reads():
    known = _environment_names_read_by_some_service()
    deployed = _deployed_environment_names()
    assert "FINOPS_KAFKA_ENABLE_IDEMPOTENCE" in deployed["compose.yaml"]
    assert "FINOPS_PARTITIONED_LEARNING" in deployed["compose optimizer-1"]
    unknown = {where: names - known for where, names in deployed.items() if names - known}
    assert unknown == {}


def test_a_variable_set_for_one_service_is_a_setting_of_that_service():
    """A setting given to one container (not the shared ConfigMap or x-finops-env) must be
    one that service reads: FINOPS_PARTITIONED_LEARNING on the healer would do nothing."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    deployed = _deployed_environment_names()
    shared = deployed["compose.yaml"]
    checked = 0
    for name, spec in compose["services"].items():
        service = spec.get("command", [None])[0]
        if service in SERVICES:
            own = deployed.get(f"compose {name}", set()) - shared
            assert own <= _environment_names_read_by(service), name
            checked += 1
    for doc in _k8s_documents():
        if doc["kind"] == "Deployment":
            service = doc["metadata"]["name"]
            where = f"k8s Deployment/{service}"
            assert deployed[where] <= _environment_names_read_by(service), where
            checked += 1
    assert checked == 11  # six compose services (two optimizer workers), five Deployments


def test_every_secret_key_a_pod_reads_is_in_the_secret_or_optional():
    """A secretKeyRef to a key the Secret lacks keeps the pod from starting
    (CreateContainerConfigError): each required key is in the base's placeholder Secret
    and in the production overlay's."""
    base = set(_base_secret_placeholders())
    overlay = yaml.safe_load(
        (DEPLOY / "k8s" / "overlays" / "production" / "kustomization.yaml").read_text()
    )
    (secret,) = [g for g in overlay["secretGenerator"] if g["name"] == "finops-secrets"]
    production = {entry.split("=", 1)[0] for entry in secret["files"]}
    required = {
        env["valueFrom"]["secretKeyRef"]["key"]
        for doc in _k8s_documents()
        if doc["kind"] in {"Deployment", "Job"}
        for container in _all_containers(doc)
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
        and not env["valueFrom"]["secretKeyRef"].get("optional", False)
    }
    assert required == {"database-url", "redis-url", "jwt-private-key-pem"}
    assert required <= base
    assert required <= production


def test_production_settings_of_compose_and_kubernetes_are_apache_kafkas():
    compose_env = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["x-finops-env"]
    (config,) = [d for d in _k8s_documents() if d["kind"] == "ConfigMap"]
    for env in (compose_env, config["data"]):
        # what the service gets: compose fills in ${REDIS_PASSWORD...} (a URL's password)
        settings = _settings_class("ingest")(
            **{k[len("FINOPS_") :].lower(): re.sub(r"\$\{[^}]*\}", "pw", v) for k, v in env.items()}
        )
        assert settings.kafka_enable_idempotence is True
        assert settings.kafka_acks == "all"
        assert settings.environment == "production"
    assert config["data"]["FINOPS_KAFKA_REPLICATION_FACTOR"] == "3"


@pytest.mark.parametrize("service", SERVICES)
def test_the_probed_and_scraped_paths_are_routes_of_the_service(service):
    (deployment,) = [
        d
        for d in _k8s_documents()
        if d["kind"] == "Deployment" and d["metadata"]["name"] == service
    ]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    paths = {
        container[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    paths.add(pod["metadata"]["annotations"]["prometheus.io/path"])
    assert paths == {"/healthz", "/readyz", "/metrics"}
    create_app = importlib.import_module(f"finops.{service}.app").create_app
    routes = {getattr(route, "path", None) for route in create_app().routes}
    assert paths <= routes


def _dev_tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def test_compose_file_validates_against_the_compose_spec_schema():
    result = subprocess.run(
        [
            _dev_tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(DEPLOY / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_passes_hadolint():
    result = subprocess.run(
        [_dev_tool("hadolint"), str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "")


def test_compose_starts_each_service_after_redis_the_schema_and_the_topics():
    """Each service needs Redis, the migrated schema and the declared topics at start-up:
    compose must wait for all three (PostgreSQL and Kafka through migrate and create-topics)."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = {
        name: spec
        for name, spec in compose["services"].items()
        if spec.get("command", [None])[0] in SERVICES
    }
    assert len(services) == 6, sorted(services)  # two optimizer workers
    for name, spec in services.items():
        waits = {dep: cond["condition"] for dep, cond in spec["depends_on"].items()}
        assert waits == {
            "redis": "service_healthy",
            "migrate": "service_completed_successfully",
            "create-topics": "service_completed_successfully",
        }, name
    assert compose["services"]["migrate"]["depends_on"]["postgres"]["condition"] == (
        "service_healthy"
    )
    assert compose["services"]["create-topics"]["depends_on"]["kafka"]["condition"] == (
        "service_healthy"
    )


def _service_down_jobs() -> set[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    (expr,) = [
        rule["expr"]
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "FinopsServiceDown"
    ]
    (jobs,) = re.findall(r'up\{job=~"([^"]+)"\}', expr)
    return set(jobs.split("|"))


def test_the_service_down_alert_selects_the_jobs_compose_and_kubernetes_scrape():
    """FinopsServiceDown selects `up` by job: compose's prometheus.yml and the PodMonitor of
    k8s/monitoring must name the services' jobs that way, or the alert never fires."""
    jobs = _service_down_jobs()
    assert jobs == set(SERVICES)
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert jobs <= {scrape["job_name"] for scrape in config["scrape_configs"]}
    monitors = list(
        yaml.safe_load_all((DEPLOY / "k8s" / "monitoring" / "podmonitors.yaml").read_text())
    )
    (services_monitor,) = [m for m in monitors if m["metadata"]["name"] == "finops-services"]
    label = services_monitor["spec"]["jobLabel"]
    (selected,) = services_monitor["spec"]["selector"]["matchExpressions"]
    assert (selected["key"], selected["operator"], set(selected["values"])) == (label, "In", jobs)
    (endpoint,) = services_monitor["spec"]["podMetricsEndpoints"]
    for deployment in (d for d in _k8s_documents() if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]
        assert pod["metadata"]["labels"][label] == deployment["metadata"]["name"]
        (container,) = pod["spec"]["containers"]
        assert endpoint["port"] in {port["name"] for port in container["ports"]}
        assert endpoint["path"] == pod["metadata"]["annotations"]["prometheus.io/path"]


def test_the_dashboard_asks_for_its_prometheus_instead_of_naming_one():
    """Imported into a Grafana of one's own (deploy/README.md, Kubernetes), a dashboard that
    names the compose datasource's uid shows "datasource not found" on every panel: each
    panel and query uses the dashboard's datasource variable instead."""
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "finops.json").read_text())
    (variable,) = dashboard["templating"]["list"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    wanted = {"type": "prometheus", "uid": "${" + variable["name"] + "}"}
    sources = [
        holder["datasource"]
        for panel in dashboard["panels"]
        for holder in (panel, *panel.get("targets", []))
        if "datasource" in holder
    ]
    assert len(sources) >= 10
    assert all(source == wanted for source in sources), sources


#: the services that read or write Kafka topics (auth keeps to PostgreSQL and Redis)
KAFKA_SERVICES = ("ingest", "optimizer", "healer", "experiments")
#: the services with a database schema (ingest keeps none)
SCHEMA_SERVICES = ("auth", "optimizer", "healer", "experiments")


def _init_containers(service: str) -> dict[str, dict]:
    (deployment,) = [
        doc
        for doc in _k8s_documents()
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == service
    ]
    pod = deployment["spec"]["template"]["spec"]
    volumes = {volume["name"] for volume in pod["volumes"]}
    found = {}
    for init in pod.get("initContainers", []):
        assert {mount["name"] for mount in init["volumeMounts"]} <= volumes
        assert init["envFrom"] == [{"configMapRef": {"name": "finops-config"}}]
        found[init["name"]] = init
    return found


@pytest.mark.parametrize("service", ["auth", *KAFKA_SERVICES])
def test_a_pod_waits_for_its_topics_and_its_schema_before_its_service_starts(service):
    inits = _init_containers(service)
    wanted = (["wait-topics"] if service in KAFKA_SERVICES else []) + (
        ["wait-schema"] if service in SCHEMA_SERVICES else []
    )
    assert list(inits) == wanted
    if "wait-topics" in inits:
        assert inits["wait-topics"]["args"] == ["wait-topics"]
    if "wait-schema" in inits:
        schema = inits["wait-schema"]
        assert schema["args"] == ["wait-schema", service]
        assert [variable["name"] for variable in schema["env"]] == ["FINOPS_DATABASE_URL"]


@pytest.mark.parametrize("manifest", ["auth", *KAFKA_SERVICES, "migrate-job"])
def test_no_pod_gets_kubernetes_service_link_variables(manifest):
    """Kubernetes sets ``<SERVICE>_PORT=tcp://…`` for every Service of the namespace unless
    told not to; a Service named ``finops-auth`` would set ``FINOPS_AUTH_PORT``, a setting's
    name, and the pod would refuse it."""
    documents = yaml.safe_load_all((DEPLOY / "k8s" / "base" / f"{manifest}.yaml").read_text())
    pods = [d["spec"]["template"]["spec"] for d in documents if d["kind"] in ("Deployment", "Job")]
    assert pods and all(pod["enableServiceLinks"] is False for pod in pods)


def test_readiness_probes_wait_longer_than_readyz_waits_for_a_check():
    # /readyz waits READY_CHECK_TIMEOUT_S for each check, then names the one that did not
    # answer; a probe that gives up first (Kubernetes 3 s, compose 2 s) never reads the reason
    from finops.common.http import READY_CHECK_TIMEOUT_S

    for deployment in _k8s_documents():
        if deployment["kind"] == "Deployment":
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            probe = container["readinessProbe"]
            assert probe["timeoutSeconds"] > READY_CHECK_TIMEOUT_S, deployment["metadata"]["name"]
    compose = (DEPLOY / "compose.yaml").read_text()
    (probe_timeout,) = re.findall(r"/readyz', timeout=(\d+(?:\.\d+)?)\)", compose)
    assert float(probe_timeout) > READY_CHECK_TIMEOUT_S


def _cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_the_auth_container_hashes_no_more_registrations_at_once_than_its_cores():
    # With cpu: "1" and the default of 2 registration hashes at once, registrations sent at
    # once took the whole core, leaving the logins' verifications nothing.
    from finops.auth.settings import AuthSettings

    deployment = next(yaml.safe_load_all((DEPLOY / "k8s" / "base" / "auth.yaml").read_text()))
    (container,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "auth"
    ]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    default = AuthSettings.model_fields["registration_hashes_in_flight"].default
    in_flight = int(env.get("FINOPS_REGISTRATION_HASHES_IN_FLIGHT") or default)
    cores = _cores(container["resources"]["limits"]["cpu"])
    assert in_flight <= max(1, int(cores) - 1)  # a core left for the logins, if it has two
