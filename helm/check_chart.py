"""Offline checks of the driftwatch Helm chart; run through helm/test.sh.

The chart is rendered by Helm's Go SDK (helm-python-sdk), so what is checked
is what `helm template` would print. Each problem found is reported on its
own line and the script exits 1 if there is any; on success it leaves in
--out what tests/helm_chart.rs needs to check the chart against a real
Prometheus and a real driftwatch:

  rules.yml         the PrometheusRule's groups, as a Prometheus rule file
  queries.json      every rule expression and dashboard query, Grafana
                    variables replaced, with where each one comes from
  metric-names.txt  every driftwatch_* metric name those use, one a line
"""

import argparse
import copy
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

# The Kubernetes versions the manifests are validated against: the oldest
# the chart supports (Chart.yaml kubeVersion) and the newest with schemas.
KUBE_VERSIONS = ["1.25.0", "1.37.0"]
# Custom resources of the Prometheus Operator: no schema here, so their
# structure is checked by hand below.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
RELEASE = "dw"
NAMESPACE = "ml"
PORT = 9871
METRIC_NAME = re.compile(r"\bdriftwatch_[a-z_]+\b")

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


class StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping, which
    PyYAML would otherwise resolve silently to the last value (and the API
    server would reject or, worse, also take the last)."""


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_documents(text, where):
    try:
        return [d for d in yaml.load_all(text, Loader=StrictLoader) if d is not None]
    except yaml.YAMLError as e:
        problem(where, f"not valid YAML: {e}")
        return []


def render(chart, values, where):
    """Renders the chart; returns (documents, NOTES text) or None."""
    try:
        files = chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    except helm.HelmError as e:
        problem(where, f"render failed: {e}")
        return None
    docs, notes = [], ""
    for name, text in sorted(files.items()):
        if name.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in load_documents(text, f"{where}: {name}"):
            docs.append((name, doc))
    return docs, notes


def render_error(chart, values):
    """The error of a render that should fail, or None if it succeeded."""
    try:
        chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    except helm.HelmError as e:
        return str(e)
    return None


def validate(docs, where):
    for template, doc in docs:
        here = f"{where}: {template}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        for key in ("apiVersion", "kind", "metadata"):
            if key not in doc:
                problem(here, f"has no {key}")
        labels = doc.get("metadata", {}).get("labels", {})
        if labels.get("app.kubernetes.io/instance") != RELEASE:
            problem(here, "lacks the app.kubernetes.io/instance label")
        if doc.get("kind") in CRD_KINDS:
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                problem(here, f"Kubernetes {version} schema: {e.message} at {list(e.path)}")
            except kubernetes_validate.SchemaNotFoundError:
                problem(here, f"no Kubernetes {version} schema for {doc.get('apiVersion')} {doc.get('kind')}")


def by_kind(docs, kind):
    return [doc for _, doc in docs if doc.get("kind") == kind]


def one(docs, kind, where, name_suffix=None):
    found = [
        d for d in by_kind(docs, kind)
        if name_suffix is None or d["metadata"]["name"].endswith(name_suffix)
    ]
    if len(found) != 1:
        problem(where, f"expected one {kind}{' *' + name_suffix if name_suffix else ''}, found {len(found)}")
        return None
    return found[0]


def check_config_file(driftwatch, text, where):
    """Runs `driftwatch check-config` on a configuration text."""
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write(text)
        path = f.name
    run = subprocess.run([driftwatch, "check-config", path], capture_output=True, text=True)
    Path(path).unlink()
    if run.returncode != 0:
        problem(where, f"driftwatch check-config refused driftwatch.yml:\n{run.stdout}{run.stderr}")


def driftwatch_config(docs, where, driftwatch):
    """The rendered driftwatch.yml, checked by driftwatch itself."""
    found = [d for d in by_kind(docs, "ConfigMap") if "driftwatch.yml" in d.get("data", {})]
    if len(found) != 1:
        problem(where, f"expected one ConfigMap with a driftwatch.yml, found {len(found)}")
        return None
    text = found[0]["data"]["driftwatch.yml"]
    check_config_file(driftwatch, text, f"{where}: ConfigMap driftwatch.yml")
    return yaml.safe_load(text)


def container(pod_spec, name, where):
    found = [c for c in pod_spec.get("containers", []) if c.get("name") == name]
    if len(found) != 1:
        problem(where, f"expected one container named {name}, found {len(found)}")
        return None
    return found[0]


EXPECTED_ARGS = [
    "--config.file=/etc/driftwatch/driftwatch.yml",
    f"--web.listen-address=0.0.0.0:{PORT}",
    "--storage.path=/var/lib/driftwatch",
]
HARDENED = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
}


def check_driftwatch_container(c, volumes, where, persistence):
    """The driftwatch container, wherever it is rendered."""
    args = c.get("args", [])
    if args[: len(EXPECTED_ARGS)] != EXPECTED_ARGS:
        problem(where, f"driftwatch args start {args[:3]}, expected {EXPECTED_ARGS}")
    ports = c.get("ports", [])
    if not any(p.get("name") == "http-metrics" and p.get("containerPort") == PORT for p in ports):
        problem(where, f"no container port {PORT} named http-metrics: {ports}")
    for probe, path in (("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")):
        got = c.get(probe, {}).get("httpGet", {}).get("path")
        if got != path:
            problem(where, f"{probe} path is {got!r}, expected {path}")
    if not c.get("resources", {}).get("requests"):
        problem(where, "driftwatch has no resource requests")
    sc = c.get("securityContext", {})
    for key, value in HARDENED.items():
        if sc.get(key) != value:
            problem(where, f"securityContext.{key} is {sc.get(key)!r}, expected {value!r}")
    if sc.get("capabilities", {}).get("drop") != ["ALL"]:
        problem(where, "securityContext.capabilities.drop is not [ALL]")
    if sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problem(where, "securityContext.seccompProfile.type is not RuntimeDefault")
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in volumes}
    config_volume = volumes.get(mounts.get("/etc/driftwatch"), {})
    if "configMap" not in config_volume:
        problem(where, "/etc/driftwatch is not mounted from a ConfigMap")
    data_volume = volumes.get(mounts.get("/var/lib/driftwatch"))
    if data_volume is None:
        problem(where, "/var/lib/driftwatch is not mounted")
    elif persistence and "persistentVolumeClaim" not in data_volume:
        problem(where, "persistence is on but /var/lib/driftwatch is not a PersistentVolumeClaim")
    elif not persistence and "emptyDir" not in data_volume:
        problem(where, "persistence is off but /var/lib/driftwatch is not an emptyDir")
    return config_volume.get("configMap", {}).get("name"), data_volume


def check_workload(docs, values, where, driftwatch):
    """The Deployment (StatefulSet when sharded), its ConfigMap and Service,
    as every mode renders them."""
    config = driftwatch_config(docs, where, driftwatch)
    sharded = values.get("mode") == "sharded"
    deployment = one(docs, "StatefulSet" if sharded else "Deployment", where)
    if deployment is None:
        return config, None
    template = deployment["spec"]["template"]
    pod = template["spec"]
    volumes = list(pod.get("volumes", []))
    if sharded:
        volumes += check_shards(docs, deployment, values, where)
    annotations = template["metadata"].get("annotations", {})
    if not re.fullmatch(r"[0-9a-f]{64}", str(annotations.get("checksum/config", ""))):
        problem(where, f"pod template has no checksum/config annotation: {annotations}")
    pod_sc = pod.get("securityContext", {})
    if pod_sc.get("runAsNonRoot") is not True or pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problem(where, f"pod securityContext is not hardened: {pod_sc}")
    persistence = values.get("persistence", {}).get("enabled", False)
    c = container(pod, "driftwatch", where)
    if c is not None:
        cm_name, data = check_driftwatch_container(c, volumes, where, persistence)
        cms = [d["metadata"]["name"] for d in by_kind(docs, "ConfigMap")]
        if cm_name not in cms:
            problem(where, f"the config volume names ConfigMap {cm_name}, which is not rendered ({cms})")
        if persistence and not sharded and data is not None and "persistentVolumeClaim" in data:
            claim = data["persistentVolumeClaim"]["claimName"]
            if claim not in [d["metadata"]["name"] for d in by_kind(docs, "PersistentVolumeClaim")]:
                problem(where, f"the data volume names claim {claim}, which is not rendered")
            if deployment["spec"].get("strategy", {}).get("type") != "Recreate":
                problem(where, "a Deployment with a ReadWriteOnce claim should use the Recreate strategy")
    service = one(docs, "Service", where)
    if service is not None:
        ports = service["spec"]["ports"]
        if not any(p.get("name") == "http-metrics" and p.get("port") == PORT for p in ports):
            problem(where, f"the Service has no port {PORT} named http-metrics: {ports}")
        selector = service["spec"]["selector"]
        pod_labels = template["metadata"]["labels"]
        if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
            problem(where, f"the Service selector {selector} does not match the pod labels {pod_labels}")
    return config, deployment


def check_shards(docs, statefulset, values, where):
    """mode: sharded: one pod per shard, each told the total by flag and its
    index by its own name, named through a headless Service. Returns the
    claim templates as the volumes they become in each pod."""
    spec = statefulset["spec"]
    shards = values.get("sharding", {}).get("shards", 3)
    if spec.get("replicas") != shards:
        problem(where, f"the StatefulSet has {spec.get('replicas')} replicas, expected {shards} shards")
    services = {d["metadata"]["name"]: d for d in by_kind(docs, "Service")}
    service = services.get(spec.get("serviceName"))
    if service is None:
        problem(where, f"the StatefulSet's serviceName {spec.get('serviceName')!r} is not a rendered Service")
    elif service["spec"].get("clusterIP") != "None":
        problem(where, "the StatefulSet's Service is not headless (clusterIP: None)")
    c = container(spec["template"]["spec"], "driftwatch", where) or {}
    args = c.get("args", [])
    if f"--shard.total={shards}" not in args:
        problem(where, f"driftwatch args lack --shard.total={shards}: {args}")
    if any(a.startswith("--shard.index") for a in args):
        problem(where, "every shard would take the same --shard.index; the index comes from POD_NAME")
    env = {e.get("name"): e for e in c.get("env", [])}
    field = env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    if field != "metadata.name":
        problem(where, f"POD_NAME is not the pod's metadata.name from the downward API: {env.get('POD_NAME')}")
    if by_kind(docs, "PersistentVolumeClaim"):
        problem(where, "a sharded StatefulSet should make its claims from volumeClaimTemplates")
    return [{"name": t["metadata"]["name"], "persistentVolumeClaim": {"claimName": t["metadata"]["name"]}}
            for t in spec.get("volumeClaimTemplates", [])]


def check_service_monitor(docs, where):
    sm = one(docs, "ServiceMonitor", where)
    if sm is None:
        return
    if sm.get("apiVersion") != "monitoring.coreos.com/v1":
        problem(where, f"ServiceMonitor apiVersion is {sm.get('apiVersion')}")
    spec = sm.get("spec", {})
    selector = spec.get("selector", {}).get("matchLabels", {})
    services = by_kind(docs, "Service")
    matched = [s for s in services if selector and all(s["metadata"]["labels"].get(k) == v for k, v in selector.items())]
    if len(matched) != 1:
        problem(where, f"the ServiceMonitor selector {selector} matches {len(matched)} Services")
    endpoints = spec.get("endpoints", [])
    if not endpoints:
        problem(where, "the ServiceMonitor has no endpoints")
    port_names = {p.get("name") for s in matched for p in s["spec"]["ports"]}
    for e in endpoints:
        if e.get("port") not in port_names:
            problem(where, f"ServiceMonitor endpoint port {e.get('port')!r} is not a port of the Service")
        if e.get("path", "/metrics") != "/metrics":
            problem(where, f"ServiceMonitor endpoint path is {e.get('path')}")
        for key in ("interval", "scrapeTimeout"):
            if key in e and not re.fullmatch(r"(\d+(ms|s|m|h))+", str(e[key])):
                problem(where, f"ServiceMonitor {key} {e[key]!r} is not a duration")


def check_prometheus_rule(docs, where, out, promtool):
    """Structure of the PrometheusRule, then promtool on its groups."""
    rule = one(docs, "PrometheusRule", where)
    if rule is None:
        return None
    if rule.get("apiVersion") != "monitoring.coreos.com/v1":
        problem(where, f"PrometheusRule apiVersion is {rule.get('apiVersion')}")
    groups = rule.get("spec", {}).get("groups")
    if not isinstance(groups, list) or not groups:
        problem(where, "PrometheusRule has no spec.groups")
        return None
    for group in groups:
        if set(group) - {"name", "interval", "rules", "limit", "partial_response_strategy"}:
            problem(where, f"rule group has unknown keys {sorted(group)}")
        for r in group.get("rules", []):
            if not r.get("alert") or not r.get("expr"):
                problem(where, f"rule without alert or expr: {r}")
            for key in ("summary", "description"):
                if not r.get("annotations", {}).get(key):
                    problem(where, f"alert {r.get('alert')} has no {key} annotation")
    path = out / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    run = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    if run.returncode != 0:
        problem(where, f"promtool check rules:\n{run.stdout}{run.stderr}")
    return groups


GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
# What each Grafana variable becomes in a query sent to Prometheus.
VARIABLE_VALUES = {"threshold": "3", "__rate_interval": "1m", "__interval": "1m", "__range": "1h"}


def substitute(expr):
    def value(match):
        name = match.group(1) or match.group(2)
        return VARIABLE_VALUES.get(name, ".*")
    return GRAFANA_VARIABLE.sub(value, expr)


def check_dashboard(text, where):
    """Returns the dashboard's queries as (origin, raw) pairs."""
    try:
        dash = json.loads(text)
    except json.JSONDecodeError as e:
        problem(where, f"not valid JSON: {e}")
        return []
    queries = []
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    for name in ("datasource", "source", "metric", "model", "threshold"):
        if name not in variables:
            problem(where, f"no template variable {name}")
    threshold = variables.get("threshold", {})
    if threshold.get("type") != "constant" or str(threshold.get("query")) != "3":
        problem(where, f"the threshold variable is not a constant 3: {threshold}")
    for name in ("source", "metric", "model"):
        v = variables.get(name, {})
        query = v.get("query", {})
        query = query.get("query") if isinstance(query, dict) else query
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", str(query or ""))
        if not m:
            problem(where, f"variable {name} is not a label_values query: {query!r}")
            continue
        if m.group(2) != name:
            problem(where, f"variable {name} takes the values of label {m.group(2)}")
        queries.append((f"dashboard variable {name}", f"count by ({m.group(2)}) ({m.group(1)})"))
    ids = set()
    panels = []
    for panel in dash.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    if not panels:
        problem(where, "the dashboard has no panels")
    for panel in panels:
        title = panel.get("title")
        if panel.get("id") in ids:
            problem(where, f"panel id {panel.get('id')} is used twice")
        ids.add(panel.get("id"))
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets", [])
        if not targets:
            problem(where, f"panel {title!r} has no query")
        for t in targets:
            expr = t.get("expr", "").strip()
            if not expr:
                problem(where, f"panel {title!r} target {t.get('refId')} has an empty query")
                continue
            if t.get("datasource", {}).get("uid") != "${datasource}":
                problem(where, f"panel {title!r} target {t.get('refId')} does not use the datasource variable")
            queries.append((f"dashboard panel {title!r} query {t.get('refId')}", expr))
    return queries


def check_readme(readme, driftwatch):
    """The plain sidecar Pod of the README's Kubernetes section."""
    where = "README.md ## Kubernetes"
    text = readme.read_text()
    m = re.search(r"^## Kubernetes\n(.*?)(?=^## )", text, re.S | re.M)
    if not m:
        problem(where, "no '## Kubernetes' section before another '## ' section")
        return
    blocks = re.findall(r"```yaml\n(.*?)```", m.group(1), re.S)
    pods = [b for b in blocks if re.search(r"^kind: Pod$", b, re.M)]
    if len(pods) != 1:
        problem(where, f"expected one yaml block with a Pod, found {len(pods)}")
        return
    docs = [("README", d) for d in load_documents(pods[0], where)]
    for _, doc in docs:
        doc.setdefault("metadata", {}).setdefault("labels", {})["app.kubernetes.io/instance"] = RELEASE
    validate(docs, where)
    config = driftwatch_config(docs, where, driftwatch)
    pod = one(docs, "Pod", where)
    if pod is None or config is None:
        return
    c = container(pod["spec"], "driftwatch", where)
    if c is not None:
        check_driftwatch_container(c, pod["spec"].get("volumes", []), where, persistence=False)
    if len(pod["spec"].get("containers", [])) != 2:
        problem(where, "the Pod should hold the model server and driftwatch")
    urls = [s.get("scrape", {}).get("url") for s in config.get("sources", [])]
    if "http://127.0.0.1:8080/metrics" not in urls:
        problem(where, f"driftwatch.yml does not scrape http://127.0.0.1:8080/metrics: {urls}")


def check_embedded(chart_dir, where, driftwatch):
    """A parent chart that includes driftwatch as a sidecar of its own pod
    through the chart's named templates, as values.yaml describes."""
    with tempfile.TemporaryDirectory() as tmp:
        parent = Path(tmp) / "model-server"
        (parent / "templates").mkdir(parents=True)
        shutil.copytree(chart_dir, parent / "charts" / "driftwatch")
        (parent / "Chart.yaml").write_text(
            "apiVersion: v2\nname: model-server\nversion: 1.0.0\n"
            "dependencies:\n  - name: driftwatch\n    version: 0.1.0\n"
        )
        (parent / "values.yaml").write_text(
            "driftwatch:\n  mode: embedded\n  config:\n    sources:\n"
            "      - name: model\n        scrape:\n          url: http://127.0.0.1:8080/metrics\n"
            "        watch:\n          - metric: model_accuracy\n            direction: lower_is_worse\n"
        )
        (parent / "templates" / "deployment.yaml").write_text(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-model\n"
            "  labels:\n    app.kubernetes.io/instance: {{ .Release.Name }}\n"
            "spec:\n  selector:\n    matchLabels: {app: model}\n  template:\n"
            "    metadata:\n      labels: {app: model}\n    spec:\n"
            "      securityContext:\n        runAsNonRoot: true\n        seccompProfile: {type: RuntimeDefault}\n"
            "      containers:\n        - name: model-server\n          image: model:1\n"
            "        {{- include \"driftwatch.sidecarContainer\" (index .Subcharts \"driftwatch\") | nindent 8 }}\n"
            "      volumes:\n"
            "        {{- include \"driftwatch.volumes\" (index .Subcharts \"driftwatch\") | nindent 8 }}\n"
        )
        try:
            chart = helm.Chart.load(parent)
        except helm.HelmError as e:
            problem(where, f"cannot load the parent chart: {e}")
            return
        rendered = render(chart, None, where)
    if rendered is None:
        return
    docs, _ = rendered
    validate(docs, where)
    if by_kind(docs, "Service") or len(by_kind(docs, "Deployment")) != 1:
        problem(where, "mode: embedded should render no Deployment or Service of its own")
    driftwatch_config(docs, where, driftwatch)
    deployment = one(docs, "Deployment", where)
    if deployment is not None:
        pod = deployment["spec"]["template"]["spec"]
        c = container(pod, "driftwatch", where)
        if c is not None:
            name, _ = check_driftwatch_container(c, pod.get("volumes", []), where, persistence=False)
            if name not in [d["metadata"]["name"] for d in by_kind(docs, "ConfigMap")]:
                problem(where, f"the sidecar's config volume names ConfigMap {name}, which is not rendered")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--chart", type=Path, required=True)
    parser.add_argument("--readme", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--driftwatch", required=True)
    parser.add_argument("--promtool", required=True)
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("rules.yml", "queries.json", "metric-names.txt"):
        (out / stale).unlink(missing_ok=True)

    print(f"Helm SDK {helm.helm_sdk_version()} (helm-python-sdk {helm.__version__}), "
          f"kubernetes-validate {kubernetes_validate.version.__version__}")
    lint = helm.lint(args.chart, strict=True)
    for m in lint.get("messages", []):
        if m.get("severity", 0) >= 2:
            problem("helm lint", f"{m.get('path')}: {m.get('error')}")
    for e in lint.get("errors", []):
        problem("helm lint", e)

    chart = helm.Chart.load(args.chart)
    dashboard_file = (args.chart / "dashboards" / "driftwatch.json").read_text()
    queries = check_dashboard(dashboard_file, "dashboards/driftwatch.json")
    rule_groups = None
    ci_files = sorted((args.chart / "ci").glob("*.yaml"))
    if not ci_files:
        problem("ci/", "no values files")
    kinds_seen = set()
    for path in ci_files:
        where = f"ci/{path.name}"
        values = yaml.safe_load(path.read_text()) or {}
        rendered = render(chart, values, where)
        if rendered is None:
            continue
        docs, notes = rendered
        kinds_seen |= {d.get("kind") for _, d in docs}
        print(f"{where}: {len(docs)} manifests: {', '.join(sorted(d['kind'] for _, d in docs))}")
        if "driftwatch" not in notes:
            problem(where, "NOTES.txt rendered empty")
        validate(docs, where)
        config, deployment = check_workload(docs, values, where, args.driftwatch)
        if values.get("mode") == "sidecar" and deployment is not None:
            pod = deployment["spec"]["template"]["spec"]
            names = [c.get("name") for c in pod.get("containers", [])]
            if len(names) != 2 or "driftwatch" not in names:
                problem(where, f"the sidecar demo pod should hold a model server and driftwatch: {names}")
            urls = [s.get("scrape", {}).get("url") for s in (config or {}).get("sources", [])]
            if not any(u and u.startswith("http://127.0.0.1:") for u in urls):
                problem(where, f"the sidecar's driftwatch does not scrape its neighbour on 127.0.0.1: {urls}")
        if values.get("serviceMonitor", {}).get("enabled"):
            check_service_monitor(docs, where)
        if values.get("prometheusRule", {}).get("enabled"):
            rule_groups = check_prometheus_rule(docs, where, out, args.promtool) or rule_groups
        if values.get("grafanaDashboard", {}).get("enabled"):
            cm = one(docs, "ConfigMap", where, "-dashboard")
            if cm is not None:
                if cm["metadata"]["labels"].get("grafana_dashboard") != "1":
                    problem(where, "the dashboard ConfigMap is not labelled grafana_dashboard: \"1\"")
                if cm.get("data", {}).get("driftwatch.json") != dashboard_file:
                    problem(where, "the dashboard ConfigMap does not hold dashboards/driftwatch.json as it is")
        if values.get("persistence", {}).get("enabled") and values.get("mode") != "sharded":
            one(docs, "PersistentVolumeClaim", where)
    for kind in ("Deployment", "StatefulSet", "Service", "ConfigMap", "ServiceAccount", "PersistentVolumeClaim",
                 "ServiceMonitor", "PrometheusRule"):
        if kind not in kinds_seen:
            problem("ci/", f"no values file renders a {kind}")
    if rule_groups is None:
        problem("ci/", "no values file renders the PrometheusRule")

    # A change of configuration must change the pod template, so that
    # `helm upgrade` rolls the pods.
    base = yaml.safe_load((args.chart / "values.yaml").read_text())
    changed = copy.deepcopy(base)
    changed["config"]["global"]["interval"] = "30s"
    checksums = []
    for values in (base, changed):
        rendered = render(chart, values, "checksum/config")
        deployments = by_kind(rendered[0], "Deployment") if rendered else []
        if deployments:
            checksums.append(deployments[0]["spec"]["template"]["metadata"]["annotations"].get("checksum/config"))
    if len(checksums) == 2 and checksums[0] == checksums[1]:
        problem("checksum/config", "a changed configuration leaves the annotation unchanged")
    default = render(chart, None, "values.yaml defaults")
    if default:
        validate(default[0], "values.yaml defaults")
        check_workload(default[0], base, "values.yaml defaults", args.driftwatch)

    # Values the chart must refuse, with a message that says why.
    for bad, expect in (
        ({"mode": "daemonset"}, "mode must be"),
        ({"persistence": {"enabled": True}, "replicaCount": 2}, "replicaCount 1"),
        ({"serviceMonitor": {"enabled": True}, "service": {"enabled": False}}, "needs service.enabled"),
        ({"mode": "sharded", "service": {"enabled": False}}, "needs service.enabled"),
        ({"mode": "sharded", "sharding": {"shards": 0}}, "at least 1"),
    ):
        error = render_error(chart, bad)
        if error is None or expect not in error:
            problem("refused values", f"{bad} should fail with {expect!r}, got {error!r}")

    check_embedded(args.chart, "embedded in a parent chart", args.driftwatch)
    check_readme(args.readme, args.driftwatch)

    for group in rule_groups or []:
        for r in group.get("rules", []):
            queries.append((f"rule {r.get('alert') or r.get('record')}", str(r.get("expr"))))
    names = sorted({n for _, q in queries for n in METRIC_NAME.findall(q)})
    (out / "queries.json").write_text(json.dumps(
        [{"origin": o, "raw": q, "expr": substitute(q)} for o, q in queries], indent=2) + "\n")
    (out / "metric-names.txt").write_text("".join(f"{n}\n" for n in names))

    if problems:
        print(f"{len(problems)} problems with the chart:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        sys.exit(1)
    print(f"chart OK: {len(ci_files)} values files, {len(queries)} queries, "
          f"{len(names)} metric names, written to {out}")


if __name__ == "__main__":
    main()
