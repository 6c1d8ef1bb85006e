"""Checks of the deploy kit that no off-the-shelf tool makes, run by scripts/validate-deploy.sh
(with the pinned packages of deploy/tools/requirements.txt) after the real tools of each kind.

    validate.py systemd UNIT ENV_FILE        the unit's hardening, settings and stop timeout
    validate.py containerfile FILE CONTEXT   the Containerfile, parsed by dockerfile-parse
    validate.py kubernetes DIR               cross-references of the manifests and the pods'
                                             settings (the schemas: kubernetes-validate)
    validate.py grafana FILE                 the dashboard's model; every query parsed by promtool
    validate.py metrics FILE...              the metric names the PromQL of dashboards (.json) and
                                             rule files (.yml) use, as JSON (for the tests)

Settings are checked with electd's own parser (electd.config, from the repository's server/),
so a variable electd would ignore or reject is an error here. Each check prints `ok: ...` or
`error: ...` lines and exits 1 after any error.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "server"))

from electd.config import COMMANDS, ConfigError, load, settings_of  # noqa: E402

SERVE = COMMANDS["serve"]
KNOWN_ENV = {row.env for row in settings_of(*SERVE) if row.env}
# What a graceful stop may take: the leader command's grace, waiting for ZooKeeper to confirm
# the delete (up to a session timeout), the gRPC server's grace; plus a margin.
STOP_MARGIN = 10.0

errors: list[str] = []


def ok(text: str) -> None:
    print(f"ok: {text}")


def error(text: str) -> None:
    errors.append(text)
    print(f"error: {text}")


def node_settings(env: Mapping[str, str], where: str) -> dict[str, Any] | None:
    """Load `electd serve`'s settings from `env` as electd would; None (and an error) if it
    would refuse them. Unknown ELECTD_* names are errors too: electd would ignore them."""
    unknown = sorted(k for k in env if k.startswith("ELECTD_") and k not in KNOWN_ENV)
    for name in unknown:
        error(f"{where}: {name} is not a setting of `electd serve` (it would be ignored)")
    values: dict[str, Any] = {}
    try:
        for cls in SERVE:
            values.update(vars(load(cls, {}, env)))
    except ConfigError as exc:
        error(f"{where}: electd refuses it: {exc}")
        return None
    if unknown:
        return None
    ok(f"{where}: {len([k for k in env if k in KNOWN_ENV])} ELECTD_* settings accepted by electd")
    return values


def stop_budget(values: Mapping[str, Any]) -> float:
    return 2 * float(values["shutdown_grace"]) + float(values["session_timeout"]) + STOP_MARGIN


# --- systemd -----------------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """systemd's EnvironmentFile= format, as far as this kit uses it: KEY=VALUE lines, # or ;
    comments, optional quotes around the value."""
    env: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            error(f"{path.name}:{number}: not a KEY=VALUE line: {raw!r}")
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if key in env:
            error(f"{path.name}:{number}: {key} is set twice")
        env[key] = value
    return env


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def seconds(text: str) -> float:
    """A systemd time span ("30", "30s", "1min 30s", "500ms")."""
    units = {"": 1.0, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "ms": 0.001, "h": 3600.0}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text)
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s+", "", text):
        raise ValueError(f"not a time span: {text!r}")
    for number, unit in parts:
        if unit not in units:
            raise ValueError(f"unknown time unit in {text!r}")
        total += float(number) * units[unit]
    return total


# The hardening the kit promises (deploy/README.md), whatever systemd-analyze's score says: its
# score does not count a setting that another one implies (DynamicUser= implies several).
UNIT_POLICY = {
    "ProtectSystem": "strict",
    "PrivateTmp": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "MemoryDenyWriteExecute": "yes",
    "Restart": "on-failure",
    "KillMode": "mixed",
}


def check_systemd(unit_path: Path, env_path: Path) -> None:
    before = len(errors)
    unit = read_unit(unit_path)
    service = unit.get("Service", {})
    for key, want in UNIT_POLICY.items():
        if service.get(key, [None])[-1] != want:
            error(f"{unit_path.name}: {key}={want} is missing (found {service.get(key)})")
    if service.get("DynamicUser", ["no"])[-1] != "yes" and not service.get("User"):
        error(f"{unit_path.name}: neither DynamicUser=yes nor a User=: it would run as root")
    if not service.get("RestrictAddressFamilies"):
        error(f"{unit_path.name}: RestrictAddressFamilies= is missing")
    filters = service.get("SystemCallFilter", [])
    if not filters or "@system-service" not in filters[0].split():
        error(f"{unit_path.name}: SystemCallFilter= does not start from @system-service")
    try:
        if not 1 <= seconds(service.get("RestartSec", ["100ms"])[-1]) <= 30:
            error(f"{unit_path.name}: RestartSec= should be between 1 and 30 s")
    except ValueError as exc:
        error(f"{unit_path.name}: RestartSec: {exc}")
    if len(errors) == before:
        ok(f"{unit_path.name}: hardened as deploy/README.md says ({len(UNIT_POLICY) + 4} settings)")
    values = node_settings(read_env_file(env_path), env_path.name)
    files = service.get("EnvironmentFile", [])
    if not any(f.lstrip("-").endswith("/" + env_path.name) for f in files):
        error(f"{unit_path.name}: EnvironmentFile= does not read {env_path.name}")
    if values is not None:
        need = stop_budget(values)
        try:
            have = seconds(service.get("TimeoutStopSec", ["90s"])[-1])
        except ValueError as exc:
            error(f"{unit_path.name}: TimeoutStopSec: {exc}")
            return
        if have < need:
            error(
                f"{unit_path.name}: TimeoutStopSec={have:g}s is less than 2 x shutdown grace + "
                f"session timeout + {STOP_MARGIN:g} s = {need:g}s"
            )
        else:
            ok(f"{unit_path.name}: TimeoutStopSec={have:g}s covers a graceful stop ({need:g}s)")


# --- Containerfile -----------------------------------------------------------------------------

BASE = re.compile(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?")


def check_containerfile(path: Path, context: Path) -> None:
    parser = DockerfileParser(fileobj=path.open("rb"))
    instructions = [i for i in parser.structure if i["instruction"] != "COMMENT"]
    stages: list[list[dict[str, Any]]] = []
    for ins in instructions:
        if ins["instruction"] == "FROM":
            stages.append([])
        elif not stages:
            if ins["instruction"] != "ARG":
                error(f"{path.name}:{ins['startline'] + 1}: {ins['instruction']} before FROM")
            continue
        stages[-1].append(ins)
    if not stages:
        error(f"{path.name}: no FROM")
        return
    stage_names = set()
    for ins in instructions:
        words = ins["value"].split() if ins["instruction"] == "FROM" else []
        if len(words) == 3 and words[1].upper() == "AS":
            stage_names.add(words[2])
    for image in parser.parent_images:
        name = image.split()[0]
        if name not in stage_names and not BASE.fullmatch(name):
            error(f"{path.name}: base image {name!r} is not a pinned python:3.11.N-slim tag")
    ok(f"{path.name}: base images {sorted(set(parser.parent_images))} pinned")

    for ins in instructions:
        where = f"{path.name}:{ins['startline'] + 1}"
        if ins["instruction"] == "ADD":
            kind = "a remote URL" if re.search(r"\b[a-z]+://", ins["value"]) else "a local file"
            error(f"{where}: ADD of {kind}; use COPY (no downloads, no unpacking)")
        if ins["instruction"] == "RUN" and re.search(
            r"\b(curl|wget)\b.*\|\s*(ba)?sh", ins["value"]
        ):
            error(f"{where}: RUN pipes a download into a shell")
        if ins["instruction"] == "COPY" and "--from=" not in ins["value"]:
            words = [w for w in ins["value"].split() if not w.startswith("--")]
            for source in words[:-1]:
                if not (context / source).exists():
                    error(f"{where}: COPY source {source} is not in the build context {context}")
    if not any(
        i["instruction"] == "RUN" and re.search(r"\bpip install\b.*\s\.(\s|$)", i["value"])
        for i in instructions
    ):
        error(f"{path.name}: no RUN ... pip install ... . (electd from the repository)")

    final = stages[-1]
    users = [i["value"].split(":")[0].strip() for i in final if i["instruction"] == "USER"]
    if not users:
        error(f"{path.name}: the final stage sets no USER (it would run as root)")
    elif users[-1] in ("root", "0"):
        error(f"{path.name}: the final stage runs as {users[-1]}")
    elif not users[-1].isdigit():
        error(f"{path.name}: USER {users[-1]} is not numeric (runAsNonRoot cannot verify it)")
    else:
        ok(f"{path.name}: runs as uid {users[-1]}")

    checks = [i["value"] for i in final if i["instruction"] == "HEALTHCHECK"]
    if not checks or checks[-1].strip().upper() == "NONE":
        error(f"{path.name}: the final stage has no HEALTHCHECK")
    elif "/healthz" not in checks[-1] or not re.search(r"\bCMD\b", checks[-1]):
        error(f"{path.name}: the HEALTHCHECK does not ask /healthz")
    else:
        ok(f"{path.name}: HEALTHCHECK asks /healthz")

    env = {k: v for k, v in parser.envs.items() if k.startswith("ELECTD_")}
    values = node_settings(env, f"{path.name} ENV")
    exposed = {
        int(p.split("/")[0])
        for i in final
        if i["instruction"] == "EXPOSE"
        for p in i["value"].split()
    }
    if values is not None:
        before = len(errors)
        for name in ("listen", "http_listen"):
            port = values[name].port if values[name] is not None else None
            if port is None:
                error(f"{path.name}: ENV sets no {name} (the HEALTHCHECK needs HTTP)")
            elif port not in exposed:
                error(f"{path.name}: the {name} port {port} is not EXPOSEd ({sorted(exposed)})")
        if len(errors) == before:
            ok(f"{path.name}: EXPOSE {sorted(exposed)} matches ELECTD_LISTEN/ELECTD_HTTP_LISTEN")

    entry = [i["value"] for i in final if i["instruction"] == "ENTRYPOINT"]
    try:
        argv = json.loads(entry[-1]) if entry else None
    except json.JSONDecodeError:
        argv = None
    if not isinstance(argv, list) or [Path(argv[0]).name, *argv[1:]] != ["electd", "serve"]:
        error(f"{path.name}: ENTRYPOINT must be the exec form of `electd serve`, not {entry!r}")
    else:
        ok(f"{path.name}: ENTRYPOINT {argv}")
    signals = [i["value"].strip() for i in final if i["instruction"] == "STOPSIGNAL"]
    if signals and signals[-1] not in ("SIGTERM", "15"):
        error(f"{path.name}: STOPSIGNAL {signals[-1]}: electd stops gracefully on SIGTERM")


# --- Kubernetes --------------------------------------------------------------------------------


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_environment(
    container: Mapping[str, Any], configmaps: Mapping[str, Mapping[str, str]], pod: str, ns: str
) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef", {}).get("name")
        if ref is not None:
            if ref not in configmaps:
                error(f"envFrom names ConfigMap {ref}, which the kit does not define")
            env.update(configmaps.get(ref, {}))
    fields = {"metadata.name": pod, "metadata.namespace": ns}
    for item in container.get("env", []):
        if "value" in item:
            # $(VAR) refers to a variable defined before it (Kubernetes' dependent variables)
            env[item["name"]] = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                lambda m: env.get(m.group(1), m.group(0)),
                str(item["value"]),
            )
        else:
            path = item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            if path in fields:
                env[item["name"]] = fields[path]
    return env


def check_kubernetes(directory: Path) -> None:
    before = len(errors)
    docs: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.y*ml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc.get("kind", "?"), []).append(doc)
    sets = by_kind.get("StatefulSet", [])
    if len(sets) != 1:
        error(f"{directory.name}: expected one StatefulSet, found {len(sets)}")
        return
    sts = sets[0]
    spec = sts["spec"]
    template = spec["template"]
    labels = template["metadata"].get("labels", {})
    if not matches(spec["selector"].get("matchLabels", {}), labels):
        error("StatefulSet: selector does not match the pod template's labels")
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    governing = services.get(spec.get("serviceName", ""))
    if governing is None or governing["spec"].get("clusterIP") != "None":
        error(f"StatefulSet: serviceName {spec.get('serviceName')!r} is not a headless Service")
    pod_spec = template["spec"]
    containers = pod_spec["containers"]
    container = next((c for c in containers if c["name"] == "electd"), containers[0])
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    for name, svc in services.items():
        if not matches(svc["spec"].get("selector", {}), labels):
            error(f"Service {name}: selector does not match the StatefulSet's pods")
        for port in svc["spec"].get("ports", []):
            target = port.get("targetPort", port["port"])
            if target not in ports and target not in ports.values():
                error(f"Service {name}: targetPort {target!r} is no port of the container")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if not matches(pdb["spec"].get("selector", {}).get("matchLabels", {}), labels):
            error(f"PodDisruptionBudget {pdb['metadata']['name']}: selector matches no pod")
    if not by_kind.get("PodDisruptionBudget"):
        error("no PodDisruptionBudget")

    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind.get("ConfigMap", [])}
    pod = f"{sts['metadata']['name']}-0"
    env = pod_environment(container, configmaps, pod, "default")
    values = node_settings(env, f"pod {pod}'s environment")
    if values is None:
        return
    grpc_port, http_port = ports.get("grpc"), ports.get("http")
    if values["listen"].port != grpc_port:
        error(f"ELECTD_LISTEN port {values['listen'].port} is not the grpc port {grpc_port}")
    if values["http_listen"] is None or values["http_listen"].port != http_port:
        error(f"ELECTD_HTTP_LISTEN is not on the http port {http_port}")
    advertise = values["advertise"]
    want = f"{pod}.{spec.get('serviceName')}.default.svc"
    if advertise is None or not advertise.host.startswith(want) or advertise.port != grpc_port:
        error(f"ELECTD_ADVERTISE {advertise} is not the pod's name {want}...:{grpc_port}")
    if values["node_id"] != pod:
        error(f"ELECTD_NODE_ID {values['node_id']!r} is not the pod's name {pod!r}")

    ready, live = container.get("readinessProbe", {}), container.get("livenessProbe", {})
    if "grpc" in ready:
        if ready["grpc"].get("port") != grpc_port:
            error(f"readinessProbe: gRPC probe on {ready['grpc'].get('port')}, not {grpc_port}")
    elif ready.get("httpGet", {}).get("path") != "/readyz":
        error("readinessProbe: neither the gRPC health service nor /readyz")
    get = live.get("httpGet", {})
    if get.get("path") != "/healthz" or get.get("port") not in (*ports, *ports.values()):
        error("livenessProbe: not an httpGet of /healthz on a port of the container")
    grace = pod_spec.get("terminationGracePeriodSeconds", 30)
    if grace < stop_budget(values):
        error(
            f"terminationGracePeriodSeconds {grace} is less than 2 x shutdown grace + session "
            f"timeout + {STOP_MARGIN:g} s = {stop_budget(values):g}"
        )
    for name in services:
        if name.upper().replace("-", "_").startswith("ELECTD") and pod_spec.get(
            "enableServiceLinks", True
        ):
            error(f"Service {name}: without enableServiceLinks: false its links set ELECTD_* names")
    if not pod_spec.get("securityContext", {}).get("runAsNonRoot"):
        error("the pod does not insist on runAsNonRoot")
    if len(errors) == before:
        ok(
            f"{len(docs)} resources refer to each other consistently; probes on grpc {grpc_port} "
            f"and http {http_port}; terminationGracePeriodSeconds {grace} covers "
            f"{stop_budget(values):g} s"
        )


# --- PromQL and Grafana ------------------------------------------------------------------------

KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "atan2", "inf", "nan", "start", "end",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, labels or keywords)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers (and __name__ matchers: none here)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(r"(?<![A-Za-z0-9_.:$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[m.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if m.group(0).lower() in KEYWORDS:
            continue
        names.add(m.group(0))
    return names


GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s"}
SAMPLE_VALUES = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}


def dashboard_queries(dash: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and query variable."""
    out: list[tuple[str, str]] = []

    def panels(items: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    for panel in panels(dash.get("panels", [])):
        for target in panel.get("targets", []):
            out.append((f"panel {panel.get('title')!r} {target.get('refId')}", target.get("expr")))
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", q or "")
            if m:  # Grafana's own function around a PromQL selector
                out.append((f"variable {var['name']}", m.group(1)))
            else:
                out.append((f"variable {var['name']}", q))
    return out


def check_grafana(path: Path) -> None:
    before = len(errors)
    try:
        dash = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        error(f"{path.name}: not JSON: {exc}")
        return
    for key, kind in (("title", str), ("uid", str), ("schemaVersion", int), ("panels", list)):
        if not isinstance(dash.get(key), kind) or dash.get(key) in ("", []):
            error(f"{path.name}: {key} missing or not a {kind.__name__}")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", str(dash.get("uid", ""))):
        error(f"{path.name}: uid {dash.get('uid')!r} is not a Grafana uid")
    if not {"from", "to"} <= set(dash.get("time", {})):
        error(f"{path.name}: time.from/time.to missing")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ids: set[int] = set()
    boxes: list[tuple[str, int, int, int, int]] = []
    for panel in dash.get("panels", []):
        title = panel.get("title")
        pid = panel.get("id")
        if not isinstance(pid, int) or pid in ids:
            error(f"{path.name}: panel {title!r}: id {pid!r} missing or not unique")
        ids.add(pid if isinstance(pid, int) else -1)
        if not panel.get("type") or not title:
            error(f"{path.name}: panel {pid}: type or title missing")
        pos = panel.get("gridPos", {})
        if not all(isinstance(pos.get(k), int) for k in "hwxy"):
            error(f"{path.name}: panel {title!r}: gridPos needs integer h, w, x, y")
            continue
        if pos["x"] < 0 or pos["x"] + pos["w"] > 24:
            error(f"{path.name}: panel {title!r} does not fit the 24-column grid")
        for other, x, y, w, h in boxes:
            across = x < pos["x"] + pos["w"] and pos["x"] < x + w
            if across and y < pos["y"] + pos["h"] and pos["y"] < y + h:
                error(f"{path.name}: panel {title!r} overlaps panel {other!r}")
        boxes.append((title, pos["x"], pos["y"], pos["w"], pos["h"]))
        if panel.get("type") == "row":
            continue
        ds = panel.get("datasource", {})
        uid = ds.get("uid", "") if isinstance(ds, dict) else ""
        ref = re.fullmatch(r"\$\{?(\w+)\}?", uid)
        if ds.get("type") != "prometheus" or (
            ref and variables.get(ref.group(1), {}).get("type") != "datasource"
        ):
            error(f"{path.name}: panel {title!r}: datasource is not a Prometheus data source")
        targets = panel.get("targets", [])
        refs = [t.get("refId") for t in targets]
        if not targets or len(set(refs)) != len(refs) or None in refs:
            error(f"{path.name}: panel {title!r}: targets missing or refIds not unique")

    queries = dashboard_queries(dash)
    rules = []
    for where, expr in queries:
        if not isinstance(expr, str) or not expr.strip():
            error(f"{path.name}: {where}: empty query")
            continue
        for name in re.findall(r"\$\{?(\w+)", expr):
            if name not in variables and name not in GRAFANA_BUILTINS:
                error(f"{path.name}: {where}: ${name} is not a variable of the dashboard")

        def sample(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in SAMPLE_VALUES:
                return SAMPLE_VALUES[name]
            return ".*" if variables.get(name, {}).get("includeAll") else "x"

        concrete = re.sub(r"\$\{?(\w+)\}?", sample, expr)
        rules.append({"record": f"grafana:query:{len(rules)}", "expr": concrete})
    used = set().union(*(metric_names(q) for _, q in queries if isinstance(q, str)))
    wanted = {
        "electd_is_leader",
        "electd_leader_epoch",
        "electd_leader_changes_seen_total",
        "electd_lease_remaining_seconds",
        "electd_zookeeper_last_answer_age_seconds",
        "electd_grpc_requests_total",
        "electd_grpc_request_duration_seconds_bucket",
        "electd_watch_streams",
        "electd_zookeeper_session_expiries_total",
    }
    if wanted - used:
        error(f"{path.name}: no panel shows {', '.join(sorted(wanted - used))}")
    if not rules:
        return
    # promtool parses each query (Grafana's variables filled in) as a recording rule's expr.
    with tempfile.TemporaryDirectory() as tmp:
        rule_file = Path(tmp) / "grafana-queries.yml"
        rule_file.write_text(yaml.safe_dump({"groups": [{"name": "grafana", "rules": rules}]}))
        run = subprocess.run(
            ["promtool", "check", "rules", str(rule_file)], capture_output=True, text=True
        )
    output = (run.stdout + run.stderr).strip().replace(str(rule_file), path.name + " queries")
    print("\n".join("  promtool: " + line for line in output.splitlines()))
    if run.returncode != 0:
        error(f"{path.name}: promtool rejects a query")
    elif len(errors) == before:
        ok(f"{path.name}: {len(ids)} panels, {len(rules)} queries parsed by promtool")


def rule_queries(path: Path) -> list[str]:
    doc = yaml.safe_load(path.read_text()) or {}
    return [r["expr"] for g in doc.get("groups", []) for r in g.get("rules", []) if "expr" in r]


def print_metrics(paths: list[Path]) -> None:
    out: dict[str, list[str]] = {}
    for path in paths:
        if path.suffix == ".json":
            queries = [q for _, q in dashboard_queries(json.loads(path.read_text()))]
        else:
            queries = rule_queries(path)
        out[str(path)] = sorted(set().union(*(metric_names(q) for q in queries)))
    print(json.dumps(out, indent=1))


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    command, args = argv[0], [Path(a) for a in argv[1:]]
    if command == "systemd" and len(args) == 2:
        check_systemd(*args)
    elif command == "containerfile" and len(args) == 2:
        check_containerfile(*args)
    elif command == "kubernetes" and len(args) == 1:
        check_kubernetes(args[0])
    elif command == "grafana" and len(args) == 1:
        check_grafana(args[0])
    elif command == "metrics" and args:
        print_metrics(args)
    else:
        print(__doc__)
        return 2
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
