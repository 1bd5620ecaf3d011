#!/usr/bin/env python3
"""Offline validation of the deployment files.

Checks, without a Docker engine, a cluster or the network:

- Dockerfile: hadolint, plus what this project relies on (non-root runtime
  user, exposed ports, STOPSIGNAL, cargo features and packages that exist,
  a Rust toolchain new enough for the locked dependencies, COPY sources
  present in the build context).
- docker-compose.yml: the Compose Specification JSON schema (the copy
  vendored by check-jsonschema), after variable interpolation as Compose
  does it, plus references (depends_on, healthchecks, volumes, build
  context) and the store URLs it documents.
- deploy/**.yaml: every Kubernetes object against the Kubernetes OpenAPI
  schemas (kubernetes-validate, strict: unknown fields are errors) for each
  version in --k8s-versions; Agones objects against the openAPIV3Schema of
  their CRD (strict the same way); then cross-references and invariants
  (selectors, ports, probes, Secrets and ConfigMaps, grace periods that
  cover the shutdown flush, autoscaler settings).

Run it through scripts/validate-deploy.sh, which installs the pinned tools.
`--self-test` also proves that deliberately broken copies are rejected.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import kubernetes_validate
import yaml

try:
    _LOADER = yaml.CSafeLoader
except AttributeError:  # PyYAML without libyaml: slower, same result.
    _LOADER = yaml.SafeLoader

GAME_PORT = 4080
ADMIN_PORT = 9090
# Seconds a pod's grace period must leave beyond preStop + shutdown.timeout.
SHUTDOWN_MARGIN_S = 10
# A spot instance is reclaimed this long after its interruption notice.
SPOT_NOTICE_S = 120
DEFAULT_SHUTDOWN_TIMEOUT_S = 90.0
DEFAULT_MAX_PLAYERS = 1000
STORE_SCHEMES = {"sqlite", "postgres", "postgresql", "dynamodb", "dataapi", "memory"}
# Backends the image must carry (cargo features of craft-server).
SERVER_BACKENDS = ("sqlite", "postgres", "dynamodb", "dataapi")
CRAFT_IMAGE = re.compile(r"(^|/)craft-server(:|@|$)")


# --------------------------------------------------------------------------
# Results


@dataclass
class Check:
    """One named check and what it found."""

    name: str
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Options:
    """Where the files and tools are."""

    root: Path
    crds: Path | None
    k8s_versions: list[str]
    server_bin: Path | None
    hadolint: str | None
    check_jsonschema: str | None


def load_yaml_docs(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as f:
        return [d for d in yaml.load_all(f, Loader=_LOADER) if d is not None]


def parse_duration(text: str) -> float:
    """Seconds in a humantime / Compose duration such as 90s, 1m30s, 500ms."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    text = str(text).strip().replace(" ", "")
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


# --------------------------------------------------------------------------
# Kubernetes objects


@dataclass
class Obj:
    """A Kubernetes object from a file under deploy/."""

    path: Path
    index: int
    doc: dict

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.doc.get("apiVersion", ""))

    @property
    def name(self) -> str:
        return str((self.doc.get("metadata") or {}).get("name", ""))

    @property
    def namespace(self) -> str | None:
        return (self.doc.get("metadata") or {}).get("namespace")

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}[{self.index}] {self.kind}/{self.name}"


def helm_values_file(path: Path) -> bool:
    return path.name.endswith(".values.yaml") or path.name == "values.yaml"


def load_objects(root: Path) -> tuple[list[Obj], list[str]]:
    objs: list[Obj] = []
    errors: list[str] = []
    deploy = root / "deploy"
    files = sorted(p for p in deploy.rglob("*") if p.suffix in (".yaml", ".yml"))
    if not files:
        errors.append("deploy/: no YAML files")
    for path in files:
        if helm_values_file(path):
            continue
        try:
            docs = load_yaml_docs(path)
        except yaml.YAMLError as e:
            errors.append(f"{path.relative_to(root)}: invalid YAML: {e}")
            continue
        for i, doc in enumerate(docs):
            if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
                errors.append(f"{path.relative_to(root)}[{i}]: not a Kubernetes object (apiVersion, kind)")
                continue
            objs.append(Obj(path, i, doc))
    return objs, errors


# --- Agones CRDs ----------------------------------------------------------

_OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def structural_to_jsonschema(schema: Any, strict: bool) -> Any:
    """A Kubernetes structural schema as a JSON schema (draft 4).

    nullable, x-kubernetes-int-or-string and x-kubernetes-preserve-unknown-fields
    become plain JSON schema. With `strict`, an object schema that lists its
    properties rejects any other field, as `kubectl apply` with server-side
    strict field validation does (the API server would otherwise drop it
    silently). CEL rules (x-kubernetes-validations) are not evaluated.
    """
    if isinstance(schema, list):
        return [structural_to_jsonschema(s, strict) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: structural_to_jsonschema(v, strict) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = structural_to_jsonschema(value, strict)
        elif key in ("description", "title", "example", "x-kubernetes-validations"):
            continue
        else:
            out[key] = value
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["type"] = ["integer", "string"]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if out.pop("x-kubernetes-embedded-resource", False):
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if out.pop("nullable", False) and "type" in out:
        t = out["type"]
        out["type"] = (t if isinstance(t, list) else [t]) + ["null"]
    if strict and "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    for k in [k for k in out if k.startswith("x-kubernetes-")]:
        del out[k]
    return out


_CRD_CACHE: dict[tuple[str, float], dict[tuple[str, str], Any]] = {}


def crd_validators(path: Path) -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> a jsonschema validator, for each served CRD version."""
    key = (str(path), path.stat().st_mtime)
    if key in _CRD_CACHE:
        return _CRD_CACHE[key]
    validators: dict[tuple[str, str], Any] = {}
    for doc in load_yaml_docs(path):
        if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        group, kind = spec["group"], spec["names"]["kind"]
        for version in spec.get("versions", []):
            if not version.get("served", False):
                continue
            raw = version["schema"]["openAPIV3Schema"]
            schema = structural_to_jsonschema(raw, strict=True)
            props = schema.setdefault("properties", {})
            props["apiVersion"] = {"const": f"{group}/{version['name']}"}
            props["kind"] = {"const": kind}
            props["metadata"] = _OBJECT_META
            schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
            props.pop("status", None)  # Written by the controller, never by us.
            schema["additionalProperties"] = False
            jsonschema.Draft4Validator.check_schema(schema)
            validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft4Validator(schema)
    _CRD_CACHE[key] = validators
    return validators


def json_path(path: Iterable[Any]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top)"


def check_k8s_schemas(opts: Options, objs: list[Obj]) -> Check:
    check = Check(f"Kubernetes schemas (strict; {', '.join(opts.k8s_versions)}) and Agones CRDs")
    crds: dict[tuple[str, str], Any] = {}
    agones_groups = {"agones.dev", "autoscaling.agones.dev", "allocation.agones.dev", "multicluster.agones.dev"}
    if opts.crds is None or not opts.crds.is_file():
        check.errors.append(
            f"Agones CRDs not found ({opts.crds}): set CRAFT_AGONES_CRDS to agones-crds.yaml"
        )
    else:
        crds = crd_validators(opts.crds)
        check.notes.append(f"Agones CRDs: {opts.crds} ({len(crds)} kinds)")
    for obj in objs:
        group = obj.api_version.split("/")[0] if "/" in obj.api_version else ""
        if group in agones_groups:
            validator = crds.get((obj.api_version, obj.kind))
            if validator is None:
                if crds:
                    check.errors.append(f"{obj.where(opts.root)}: no CRD for {obj.api_version} {obj.kind}")
                continue
            errs = sorted(validator.iter_errors(obj.doc), key=lambda e: [str(p) for p in e.absolute_path])
            for e in errs[:10]:
                check.errors.append(f"{obj.where(opts.root)}: {json_path(e.absolute_path)}: {e.message}")
            continue
        for version in opts.k8s_versions:
            try:
                kubernetes_validate.validate(obj.doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                check.errors.append(
                    f"{obj.where(opts.root)} (Kubernetes {e.version}): {json_path(e.path)}: {e.message}"
                )
            except kubernetes_validate.SchemaNotFoundError as e:
                check.errors.append(f"{obj.where(opts.root)}: {e.message}")
                break
    return check


# --- Cross-references and invariants ---------------------------------------


@dataclass
class Workload:
    """A pod template and where it comes from."""

    obj: Obj
    labels: dict
    pod: dict
    # Ports Agones adds to the game server container: (container, port).
    agones_ports: list[tuple[str, int]] = field(default_factory=list)

    @property
    def namespace(self) -> str | None:
        return self.obj.namespace


def workloads(objs: list[Obj]) -> list[Workload]:
    out = []
    for obj in objs:
        spec = obj.doc.get("spec") or {}
        if obj.kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
            tpl = spec.get("template") or {}
            out.append(Workload(obj, (tpl.get("metadata") or {}).get("labels") or {}, tpl.get("spec") or {}))
        elif obj.kind == "Fleet":
            gs = (spec.get("template") or {}).get("spec") or {}
            tpl = gs.get("template") or {}
            pod = tpl.get("spec") or {}
            containers = pod.get("containers") or []
            game = gs.get("container") or (containers[0].get("name") if containers else "")
            ports = [(p.get("container") or game, p.get("containerPort")) for p in gs.get("ports") or []]
            out.append(Workload(obj, (tpl.get("metadata") or {}).get("labels") or {}, pod, ports))
    return out


def selects(selector: dict, labels: dict) -> bool:
    structured = "matchLabels" in selector or "matchExpressions" in selector
    match = (selector.get("matchLabels") or {}) if structured else selector
    if any(labels.get(k) != v for k, v in (match or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return bool(match) or bool(selector.get("matchExpressions"))


def container_ports(w: Workload, container: dict) -> dict[str, int]:
    ports = {p.get("name", str(p.get("containerPort"))): p.get("containerPort") for p in container.get("ports") or []}
    for cname, port in w.agones_ports:
        if cname == container.get("name") and port:
            ports.setdefault(f"agones:{port}", port)
    return ports


def preStop_seconds(container: dict) -> float:
    pre = ((container.get("lifecycle") or {}).get("preStop")) or {}
    if "sleep" in pre:
        return float(pre["sleep"].get("seconds", 0))
    command = (pre.get("exec") or {}).get("command") or []
    if command and Path(str(command[0])).name == "sleep" and len(command) == 2:
        return parse_duration(command[1] if re.search(r"[a-z]$", str(command[1])) else f"{command[1]}s")
    if pre:
        return float("nan")  # Unknown duration: the caller reports it.
    return 0.0


def arg_value(args: list[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def craft_config(obj_index: dict, w: Workload, container: dict) -> tuple[dict | None, str | None, str | None]:
    """The craft-server TOML a container reads: (parsed, text, where) or Nones."""
    args = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    path = arg_value(args, "--config")
    if not path:
        for env in container.get("env") or []:
            if env.get("name") == "CRAFT_CONFIG":
                path = env.get("value")
    if not path:
        return None, None, None
    volumes = {v.get("name"): v for v in w.pod.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        mount_path = mount.get("mountPath", "").rstrip("/")
        if not path.startswith(mount_path + "/"):
            continue
        key = mount.get("subPath") or path[len(mount_path) + 1 :]
        vol = volumes.get(mount.get("name")) or {}
        cm_name = (vol.get("configMap") or {}).get("name")
        cm = obj_index.get(("ConfigMap", w.namespace, cm_name))
        if cm is None:
            return None, None, None
        text = (cm.doc.get("data") or {}).get(key)
        if text is None:
            raise ValueError(f"ConfigMap {cm_name} has no key {key!r} (mounted as {path})")
        return tomllib.loads(text), text, f"ConfigMap {cm_name} key {key}"
    raise ValueError(f"--config {path} is not in any mounted volume")


def on_demand_only(pod: dict) -> bool:
    selector = json.dumps(pod.get("nodeSelector") or {})
    return "ON_DEMAND" in selector or "on-demand" in selector


def self_draining_on_rebalance(objs: list[Obj]) -> list[str]:
    """craft-server containers outside Agones, possibly on spot, that drain
    (and exit) on a rebalance recommendation: their controller restarts them."""
    index = {(o.kind, o.namespace, o.name): o for o in objs}
    found = []
    for w in workloads(objs):
        if w.obj.kind == "Fleet" or on_demand_only(w.pod):
            continue
        for c in w.pod.get("containers") or []:
            if not CRAFT_IMAGE.search(str(c.get("image", ""))):
                continue
            try:
                config = craft_config(index, w, c)[0] or {}
            except (ValueError, tomllib.TOMLDecodeError):
                continue  # Reported by check_references.
            imds = config.get("imds") or {}
            if imds.get("enabled", "auto") != "off" and imds.get("drain_on_rebalance", True):
                found.append(f"{w.obj.kind}/{w.obj.name}")
    return found


def check_references(opts: Options, objs: list[Obj]) -> Check:
    check = Check("Kubernetes references and invariants")
    err = check.errors
    root = opts.root
    index = {(o.kind, o.namespace, o.name): o for o in objs}
    namespaces = {o.name for o in objs if o.kind == "Namespace"}
    wls = workloads(objs)
    cluster_dir = root / "deploy" / "cluster"

    for o in objs:
        if o.kind in ("Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass", "StorageClass"):
            continue
        if cluster_dir in o.path.parents:
            continue
        if o.namespace not in namespaces:
            err.append(f"{o.where(root)}: namespace {o.namespace!r} is not one of the Namespaces in deploy/ {sorted(namespaces)}")

    def exists(kind: str, ns: str | None, name: str | None) -> bool:
        return (kind, ns, name) in index

    for w in wls:
        where = w.obj.where(root)
        pod = w.pod
        if not w.labels:
            err.append(f"{where}: pod template has no labels")
        sa = pod.get("serviceAccountName")
        if sa and sa != "default" and not exists("ServiceAccount", w.namespace, sa):
            err.append(f"{where}: serviceAccountName {sa} is not defined in deploy/")
        psc = pod.get("securityContext") or {}
        for vol in pod.get("volumes") or []:
            if "configMap" in vol and not vol["configMap"].get("optional") and not exists("ConfigMap", w.namespace, vol["configMap"].get("name")):
                err.append(f"{where}: volume {vol.get('name')}: ConfigMap {vol['configMap'].get('name')} is not defined")
            if "secret" in vol and not vol["secret"].get("optional") and not exists("Secret", w.namespace, vol["secret"].get("secretName")):
                err.append(f"{where}: volume {vol.get('name')}: Secret {vol['secret'].get('secretName')} is not defined")
        vol_names = {v.get("name") for v in pod.get("volumes") or []}
        vct = {(t.get("metadata") or {}).get("name") for t in (w.obj.doc.get("spec") or {}).get("volumeClaimTemplates") or []}
        for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            cwhere = f"{where} container {c.get('name')}"
            csc = c.get("securityContext") or {}
            if not (csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
                err.append(f"{cwhere}: runAsNonRoot is not true")
            if csc.get("allowPrivilegeEscalation") is not False:
                err.append(f"{cwhere}: allowPrivilegeEscalation is not false")
            res = c.get("resources") or {}
            for k in ("cpu", "memory"):
                if k not in (res.get("requests") or {}):
                    err.append(f"{cwhere}: no resources.requests.{k}")
            if "memory" not in (res.get("limits") or {}):
                err.append(f"{cwhere}: no resources.limits.memory")
            for m in c.get("volumeMounts") or []:
                if m.get("name") not in vol_names | vct:
                    err.append(f"{cwhere}: volumeMount {m.get('name')} has no volume")
            for src in c.get("envFrom") or []:
                for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                    ref = src.get(key)
                    if ref and not ref.get("optional") and not exists(kind, w.namespace, ref.get("name")):
                        err.append(f"{cwhere}: envFrom {kind} {ref.get('name')} is not defined")
            for env in c.get("env") or []:
                vf = env.get("valueFrom") or {}
                for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                    ref = vf.get(key)
                    if not ref or ref.get("optional"):
                        continue
                    target = index.get((kind, w.namespace, ref.get("name")))
                    if target is None:
                        err.append(f"{cwhere}: env {env.get('name')}: {kind} {ref.get('name')} is not defined")
                    elif ref.get("key") not in {**(target.doc.get("data") or {}), **(target.doc.get("stringData") or {})}:
                        err.append(f"{cwhere}: env {env.get('name')}: {kind} {ref.get('name')} has no key {ref.get('key')}")
            ports = container_ports(w, c)
            for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
                probe = c.get(probe_name) or {}
                for handler in ("httpGet", "tcpSocket", "grpc"):
                    port = (probe.get(handler) or {}).get("port")
                    if isinstance(port, str) and port not in ports:
                        err.append(f"{cwhere}: {probe_name} port {port!r} is not a named container port {sorted(ports)}")
                path = (probe.get("httpGet") or {}).get("path")
                if not CRAFT_IMAGE.search(str(c.get("image", ""))) or not path:
                    continue
                # A full server is "not ready" but alive: liveness on
                # /readyz would restart it; readiness on /healthz would
                # keep sending players to it.
                want = "/readyz" if probe_name == "readinessProbe" else "/healthz"
                if path != want:
                    err.append(f"{cwhere}: {probe_name} checks {path}, expected {want}")

            if not CRAFT_IMAGE.search(str(c.get("image", ""))):
                continue
            # craft-server containers: admin port, config, grace period.
            args = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
            try:
                config, _, cfg_where = craft_config(index, w, c)
            except (ValueError, tomllib.TOMLDecodeError) as e:
                err.append(f"{cwhere}: config: {e}")
                config, cfg_where = None, None
            if config is None and cfg_where is None:
                check.notes.append(f"{cwhere}: no --config file: server defaults assumed")
            config = config or {}
            env_admin = next((e.get("value") for e in c.get("env") or [] if e.get("name") == "CRAFT_ADMIN_LISTEN"), None)
            admin = arg_value(args, "--admin-listen") or env_admin or config.get("admin_listen")
            if not admin:
                err.append(f"{cwhere}: no admin listener (--admin-listen): probes and metrics need it")
            elif int(str(admin).rsplit(":", 1)[1]) not in ports.values():
                err.append(f"{cwhere}: admin listener {admin} is not a container port {sorted(ports.values())}")
            try:
                timeout = parse_duration(config.get("shutdown", {}).get("timeout", f"{DEFAULT_SHUTDOWN_TIMEOUT_S}s"))
            except ValueError as e:
                err.append(f"{cwhere}: shutdown.timeout: {e}")
                timeout = DEFAULT_SHUTDOWN_TIMEOUT_S
            listen = str(config.get("listen", f"0.0.0.0:{GAME_PORT}"))
            game_port = int(listen.rsplit(":", 1)[1])
            if game_port not in ports.values():
                err.append(f"{cwhere}: game port {game_port} (listen = {listen}) is not exposed {sorted(ports.values())}")
            try:
                notice = parse_duration(config.get("shutdown", {}).get("notice", "0s"))
            except ValueError as e:
                err.append(f"{cwhere}: shutdown.notice: {e}")
                notice = 0
            pre = preStop_seconds(c) + notice
            grace = pod.get("terminationGracePeriodSeconds", 30)
            if pre != pre:  # NaN
                err.append(f"{cwhere}: preStop hook of unknown duration: use sleep")
            elif grace < pre + timeout + SHUTDOWN_MARGIN_S:
                err.append(
                    f"{cwhere}: terminationGracePeriodSeconds {grace} < preStop + shutdown.notice {pre:g} s + shutdown.timeout "
                    f"{timeout:g} s + {SHUTDOWN_MARGIN_S} s margin: the flush could be killed"
                )
            if not on_demand_only(pod) and grace > SPOT_NOTICE_S:
                err.append(
                    f"{cwhere}: terminationGracePeriodSeconds {grace} > {SPOT_NOTICE_S} s: on spot capacity the node "
                    "is gone before that; shorten shutdown.timeout or pin the pod to on-demand nodes"
                )
            if w.obj.kind == "Fleet":
                gs = w.obj.doc["spec"]["template"]["spec"]
                max_players = int(config.get("max_players", DEFAULT_MAX_PLAYERS))
                agones_cfg = config.get("agones") or {}
                counter = agones_cfg.get("counter", "players")
                if agones_cfg.get("player_count", "counter") == "counter":
                    players = ((gs.get("counters") or {}).get(counter) or {}).get("capacity")
                    if players != max_players:
                        err.append(
                            f"{where}: counters.{counter}.capacity {players} != max_players {max_players} "
                            "(the server reports its player count in this Counter)"
                        )
                health = gs.get("health") or {}
                try:
                    ping = parse_duration(agones_cfg.get("health_interval", "2s"))
                except ValueError as e:
                    err.append(f"{cwhere}: agones.health_interval: {e}")
                    ping = 2.0
                if not health.get("disabled") and ping * 2 > health.get("periodSeconds", 5):
                    err.append(
                        f"{where}: health.periodSeconds {health.get('periodSeconds', 5)} leaves no room for "
                        f"agones.health_interval {ping:g} s: keep at least two pings per period"
                    )
                if game_port not in [p for _, p in w.agones_ports]:
                    err.append(f"{where}: no Agones port with containerPort {game_port} (the game port)")

    for w in wls:
        if w.obj.kind != "Fleet":
            continue
        gs = w.obj.doc["spec"]["template"]["spec"]
        names = [c.get("name") for c in w.pod.get("containers") or []]
        if gs.get("container") and gs["container"] not in names:
            err.append(f"{w.obj.where(root)}: spec.template.spec.container {gs['container']!r} is not a container {names}")
        if len(names) > 1 and not gs.get("container"):
            err.append(f"{w.obj.where(root)}: several containers: name the game server in spec.template.spec.container")

    def selected(o: Obj, selector: dict) -> list[Workload]:
        return [w for w in wls if w.namespace == o.namespace and selects(selector, w.labels)]

    for o in objs:
        spec = o.doc.get("spec") or {}
        if o.kind in ("Deployment", "StatefulSet", "DaemonSet"):
            sel = spec.get("selector") or {}
            labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            if not selects(sel, labels):
                err.append(f"{o.where(root)}: selector does not match its own pod template labels")
        if o.kind == "Service":
            hits = selected(o, spec.get("selector") or {})
            if len(hits) != 1:
                err.append(f"{o.where(root)}: selector matches {len(hits)} workloads {[w.obj.name for w in hits]}, expected 1")
            for w in hits:
                ports = {}
                for c in w.pod.get("containers") or []:
                    ports.update(container_ports(w, c))
                for p in spec.get("ports") or []:
                    tp = p.get("targetPort", p.get("port"))
                    if (isinstance(tp, str) and tp not in ports) or (isinstance(tp, int) and tp not in ports.values()):
                        err.append(f"{o.where(root)}: targetPort {tp!r} is not a port of {w.obj.name} {sorted(ports)}")
                if spec.get("type") == "LoadBalancer":
                    ann = (o.doc.get("metadata") or {}).get("annotations") or {}
                    need = {
                        "service.beta.kubernetes.io/aws-load-balancer-type": "external",
                        "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
                    }
                    for k, v in need.items():
                        if ann.get(k) != v:
                            err.append(f"{o.where(root)}: annotation {k} should be {v!r}")
                    if "service.beta.kubernetes.io/aws-load-balancer-scheme" not in ann:
                        err.append(f"{o.where(root)}: no aws-load-balancer-scheme annotation")
                    hc = ann.get("service.beta.kubernetes.io/aws-load-balancer-healthcheck-port")
                    if hc and hc != "traffic-port" and int(hc) not in ports.values():
                        err.append(f"{o.where(root)}: NLB health check port {hc} is not a port of {w.obj.name}")
        if o.kind == "PodDisruptionBudget":
            hits = selected(o, spec.get("selector") or {})
            if len(hits) != 1:
                err.append(f"{o.where(root)}: selector matches {len(hits)} workloads, expected 1")
            if "maxUnavailable" not in spec and "minAvailable" not in spec:
                err.append(f"{o.where(root)}: neither maxUnavailable nor minAvailable")
        if o.kind == "FleetAutoscaler":
            fleet = index.get(("Fleet", o.namespace, spec.get("fleetName")))
            if fleet is None:
                err.append(f"{o.where(root)}: fleetName {spec.get('fleetName')!r} is not a Fleet in {o.namespace}")
            policy = spec.get("policy") or {}
            buf = policy.get("buffer") or {}
            if policy.get("type") == "Buffer" and buf:
                size, lo, hi = buf.get("bufferSize"), buf.get("minReplicas", 0), buf.get("maxReplicas", 0)
                if isinstance(size, int):
                    if lo < size:
                        err.append(f"{o.where(root)}: minReplicas {lo} < bufferSize {size} (Agones refuses it)")
                    if hi <= size:
                        err.append(f"{o.where(root)}: maxReplicas {hi} <= bufferSize {size}")
                elif isinstance(size, str) and not re.fullmatch(r"[1-9][0-9]?%", size):
                    err.append(f"{o.where(root)}: bufferSize {size!r} is neither an integer nor 1%-99%")
                if lo > hi:
                    err.append(f"{o.where(root)}: minReplicas {lo} > maxReplicas {hi}")
        if o.kind == "RoleBinding":
            for s in o.doc.get("subjects") or []:
                if s.get("kind") == "ServiceAccount" and not exists("ServiceAccount", s.get("namespace", o.namespace), s.get("name")):
                    err.append(f"{o.where(root)}: subject ServiceAccount {s.get('name')} is not defined")
        if o.kind == "Secret":
            if o.doc.get("data"):
                err.append(f"{o.where(root)}: use stringData with placeholders; base64 data looks like a real secret")
            for k, v in (o.doc.get("stringData") or {}).items():
                if "REPLACE_" not in str(v):
                    err.append(f"{o.where(root)}: stringData.{k} is not a REPLACE_... placeholder")
            if o.path.name != "secret.example.yaml" and "example" not in o.path.name:
                err.append(f"{o.where(root)}: a Secret outside an *example* file would be applied with placeholder values")
        if o.kind == "ConfigMap" and o.name == "cluster-autoscaler-priority-expander":
            err.extend(f"{o.where(root)}: {e}" for e in priority_expander_errors(o.doc))
    return check


def priority_expander_errors(doc: dict) -> list[str]:
    errors = []
    text = (doc.get("data") or {}).get("priorities")
    if text is None:
        return ["no data.priorities"]
    try:
        prios = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as e:
        return [f"data.priorities is not YAML: {e}"]
    if not isinstance(prios, dict) or not prios:
        return ["data.priorities must map priorities to lists of node group regexps"]
    seen: dict[str, Any] = {}
    for prio, patterns in prios.items():
        if not isinstance(prio, int) or prio < 0:
            errors.append(f"priority {prio!r} is not a non-negative integer")
        if not isinstance(patterns, list) or not patterns:
            errors.append(f"priority {prio!r}: expected a list of regular expressions")
            continue
        for p in patterns:
            try:
                re.compile(str(p))
            except re.error as e:
                errors.append(f"priority {prio!r}: bad regular expression {p!r}: {e}")
            if p in seen:
                errors.append(f"{p!r} listed under both {seen[p]} and {prio}")
            seen[p] = prio
    if doc.get("metadata", {}).get("namespace") != "kube-system":
        errors.append("cluster-autoscaler reads it from its own namespace (kube-system)")
    return errors


def check_helm_values(opts: Options, objs: list[Obj]) -> Check:
    check = Check("aws-node-termination-handler values")
    files = sorted((opts.root / "deploy").rglob("*.values.yaml"))
    nth = [p for p in files if "node-termination-handler" in p.name]
    if not nth:
        check.errors.append("deploy/: no aws-node-termination-handler values file")
    graces = [
        w.pod.get("terminationGracePeriodSeconds", 30)
        for w in workloads(objs)
        if any(CRAFT_IMAGE.search(str(c.get("image", ""))) for c in w.pod.get("containers") or [])
    ]
    rebalancing = self_draining_on_rebalance(objs)
    for path in nth:
        rel = path.relative_to(opts.root)
        try:
            docs = load_yaml_docs(path)
        except yaml.YAMLError as e:
            check.errors.append(f"{rel}: invalid YAML: {e}")
            continue
        values = docs[0] if len(docs) == 1 and isinstance(docs[0], dict) else None
        if values is None:
            check.errors.append(f"{rel}: expected one mapping of chart values")
            continue
        if values.get("enableSpotInterruptionDraining") is not True:
            check.errors.append(f"{rel}: enableSpotInterruptionDraining must be true")
        pod_grace = values.get("podTerminationGracePeriod", -1)
        if not isinstance(pod_grace, int):
            check.errors.append(f"{rel}: podTerminationGracePeriod must be an integer")
        elif pod_grace >= 0 and graces and pod_grace < max(graces):
            check.errors.append(
                f"{rel}: podTerminationGracePeriod {pod_grace} cuts the game servers' {max(graces)} s grace period short (use -1)"
            )
        if rebalancing and values.get("enableRebalanceDraining") is not True:
            check.errors.append(
                f"{rel}: enableRebalanceDraining is off, but {rebalancing[0]} drains itself on a rebalance "
                "recommendation (imds.drain_on_rebalance): its Deployment would restart it on the doomed node "
                "over and over; drain the node too, or set imds.drain_on_rebalance = false"
            )
        node_grace = values.get("nodeTerminationGracePeriod", SPOT_NOTICE_S)
        if not isinstance(node_grace, int) or node_grace > SPOT_NOTICE_S:
            check.errors.append(f"{rel}: nodeTerminationGracePeriod must be an integer <= {SPOT_NOTICE_S} (the spot notice)")
    return check


def check_server_config(opts: Options, objs: list[Obj]) -> Check:
    """Every craft-server TOML in a ConfigMap, parsed by craft-server itself."""
    check = Check("craft-server accepts the ConfigMap settings")
    tomls = [
        (o, key, text)
        for o in objs
        if o.kind == "ConfigMap"
        for key, text in (o.doc.get("data") or {}).items()
        if key.endswith(".toml")
    ]
    if not tomls:
        check.errors.append("no craft-server TOML in any ConfigMap")
    for o, key, text in tomls:
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            check.errors.append(f"{o.where(opts.root)} {key}: invalid TOML: {e}")
    if opts.server_bin is None:
        check.notes.append("craft-server binary not given (--server-bin): TOML syntax checked only")
        return check
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAFT_")}
    with tempfile.TemporaryDirectory() as tmp:
        for o, key, text in tomls:
            path = Path(tmp) / key
            path.write_text(text, encoding="utf-8")
            proc = subprocess.run(
                [str(opts.server_bin), "--config", str(path), "config"],
                capture_output=True, text=True, env=env, timeout=60, check=False,
            )
            if proc.returncode != 0:
                msg = (proc.stderr or proc.stdout).strip().splitlines()
                check.errors.append(f"{o.where(opts.root)} {key}: craft-server refuses it: {' | '.join(msg[-3:])}")
    return check


# --------------------------------------------------------------------------
# docker-compose.yml

_INTERP = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: Any, env: dict[str, str], errors: list[str], where: str = "") -> Any:
    """Compose-style ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR:+alt}, $$."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, errors, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, errors, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("named")
        op, arg = m.group("op"), m.group("arg") or ""
        val = env.get(name)
        unset_or_empty = not val
        if op in (":-", "-"):
            return arg if (val is None if op == "-" else unset_or_empty) else val
        if op in (":?", "?"):
            if val is None if op == "?" else unset_or_empty:
                errors.append(f"{where}: required variable {name} is missing: {arg}")
                return ""
            return val
        if op in (":+", "+"):
            return "" if (val is None if op == "+" else unset_or_empty) else arg
        if val is None:
            errors.append(f"{where}: variable {name} is not set and has no default")
            return ""
        return val

    return _INTERP.sub(sub, value)


def compose_env(root: Path) -> dict[str, str]:
    """The variables Compose would see: only the project's .env (the CI's own
    environment must not change the verdict)."""
    env: dict[str, str] = {}
    dotenv = root / ".env"
    if dotenv.is_file():
        for line in dotenv.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env[k.strip()] = v.strip().strip("'\"")
    return env


def store_url_errors(url: str, services: set[str]) -> list[str]:
    scheme = url.split(":", 1)[0].lower()
    if scheme not in STORE_SCHEMES:
        return [f"store URL {url!r}: unknown scheme {scheme!r}"]
    errors = []
    hosts = re.findall(r"(?:@|//)([A-Za-z0-9_.-]+)(?::\d+)?(?=/|\?|$)", url.split("?", 1)[0])
    hosts += re.findall(r"endpoint=https?://([A-Za-z0-9_.-]+)", url)
    for host in hosts:
        if scheme in ("dynamodb", "dataapi") and url.split("?", 1)[0].endswith(host):
            continue  # The table / database name, not a host.
        if host not in services and host not in ("localhost", "127.0.0.1"):
            errors.append(f"store URL {url!r}: host {host!r} is not a service of the compose file")
    return errors


def check_compose(opts: Options) -> Check:
    check = Check("docker-compose.yml (Compose Specification schema, references)")
    err = check.errors
    root = opts.root
    path = root / "docker-compose.yml"
    if not path.is_file():
        err.append("docker-compose.yml is missing")
        return check
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as e:
        err.append(f"docker-compose.yml: invalid YAML: {e}")
        return check
    model = interpolate(raw, compose_env(root), err)
    if opts.check_jsonschema:
        with tempfile.TemporaryDirectory() as tmp:
            resolved = Path(tmp) / "compose.json"
            resolved.write_text(json.dumps(model), encoding="utf-8")
            for target, label in ((path, "as written"), (resolved, "interpolated")):
                proc = subprocess.run(
                    [opts.check_jsonschema, "--builtin-schema", "vendor.compose-spec", "--output-format", "text", str(target)],
                    capture_output=True, text=True, check=False,
                )
                if proc.returncode != 0:
                    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
                    err.append(f"docker-compose.yml ({label}) fails the Compose Specification schema:")
                    err.extend("    " + ln.replace(str(target), "docker-compose.yml") for ln in lines[:15])
    else:
        err.append("check-jsonschema is not available")

    services: dict = (model or {}).get("services") or {}
    names = set(services)
    volumes = set(((model or {}).get("volumes") or {}).keys())
    published: dict[str, str] = {}
    for name, svc in services.items():
        svc = svc or {}
        deps = svc.get("depends_on") or {}
        deps = {d: {"condition": "service_started"} for d in deps} if isinstance(deps, list) else deps
        for dep, spec in deps.items():
            if dep not in names:
                err.append(f"services.{name}.depends_on: {dep} is not a service")
                continue
            if (spec or {}).get("condition") == "service_healthy":
                hc = (services[dep] or {}).get("healthcheck") or {}
                if not hc or hc.get("disable"):
                    err.append(f"services.{name}.depends_on.{dep}: service_healthy, but {dep} has no healthcheck")
        build = svc.get("build")
        if build is not None:
            ctx = root / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = ctx / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
            if not ctx.is_dir():
                err.append(f"services.{name}.build: context {ctx.relative_to(root)} does not exist")
            elif not dockerfile.is_file():
                err.append(f"services.{name}.build: {dockerfile.relative_to(root)} does not exist")
        for vol in svc.get("volumes") or []:
            src = vol.split(":", 1)[0] if isinstance(vol, str) else (vol.get("source") if vol.get("type", "volume") == "volume" else None)
            if src and not src.startswith((".", "/", "~")) and src not in volumes:
                err.append(f"services.{name}.volumes: named volume {src} is not declared under volumes:")
        for port in svc.get("ports") or []:
            spec = str(port) if not isinstance(port, dict) else f"{port.get('host_ip', '')}:{port.get('published')}:{port.get('target')}"
            parts = spec.split(":")
            if len(parts) >= 2:
                key = ":".join(parts[:-1])
                if key in published:
                    err.append(f"services.{name}.ports: {key} is also published by {published[key]}")
                published[key] = name
        image = str(svc.get("image", ""))
        entry = svc.get("entrypoint")
        if build is not None or CRAFT_IMAGE.search(image):
            env = svc.get("environment") or {}
            env = dict(e.split("=", 1) for e in env) if isinstance(env, list) else env
            if entry is None:  # craft-server itself
                store = env.get("CRAFT_STORE")
                if store:
                    err.extend(f"services.{name}: {e}" for e in store_url_errors(str(store), names))
                grace = svc.get("stop_grace_period")
                need = DEFAULT_SHUTDOWN_TIMEOUT_S + SHUTDOWN_MARGIN_S
                try:
                    if grace is None or parse_duration(grace) < need:
                        err.append(f"services.{name}: stop_grace_period {grace} < shutdown.timeout + margin ({need:g} s)")
                except ValueError as e:
                    err.append(f"services.{name}: stop_grace_period: {e}")
    # The alternatives documented in the header must name real services.
    documented = re.findall(r"CRAFT_STORE='([^']+)'", text)
    if not documented:
        err.append("docker-compose.yml: the header documents no CRAFT_STORE='...' alternatives")
    schemes = set()
    for url in documented:
        err.extend(f"docker-compose.yml header: {e}" for e in store_url_errors(url, names))
        schemes.add(url.split(":", 1)[0])
    for backend in SERVER_BACKENDS:
        if backend not in schemes:
            err.append(f"docker-compose.yml header: no CRAFT_STORE example for the {backend} backend")
    return check


# --------------------------------------------------------------------------
# Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined; comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def dockerignore_excludes(root: Path, rel: str) -> bool:
    """Whether .dockerignore keeps `rel` (a path in the build context) out."""
    path = root / ".dockerignore"
    if not path.is_file():
        return False
    excluded = False
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.strip("/")
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch(p, pattern) or fnmatch(p, pattern.replace("**/", "")) for p in prefixes):
            excluded = not negate
    return excluded


_RUST_CACHE: dict[bytes, tuple[tuple[int, int] | None, str]] = {}


def cargo_min_rust(root: Path) -> tuple[tuple[int, int] | None, str]:
    """The highest rust-version among the workspace and its locked dependencies."""
    lock = root / "Cargo.lock"
    key = lock.read_bytes() if lock.is_file() else b""
    if key and key in _RUST_CACHE:
        return _RUST_CACHE[key]
    result = _cargo_min_rust(root)
    if key and result[0] is not None:
        _RUST_CACHE[key] = result
    return result


def _cargo_min_rust(root: Path) -> tuple[tuple[int, int] | None, str]:
    try:
        host = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, timeout=60, check=False).stdout
        triple = re.search(r"^host: (\S+)", host, re.M)
        # Offline, cargo knows only the dependencies of the platforms it
        # built for: look at this host's (the image builds linux ones too).
        platform = ["--filter-platform", triple.group(1)] if triple else []
        proc = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked", "--offline", *platform],
            cwd=root, capture_output=True, text=True, timeout=300, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"cargo metadata unavailable ({e})"
    if proc.returncode != 0:
        return None, "cargo metadata failed offline (dependencies not fetched yet?)"
    best: tuple[tuple[int, int], str] | None = None
    for pkg in json.loads(proc.stdout)["packages"]:
        rv = pkg.get("rust_version")
        if not rv:
            continue
        ver = tuple(int(x) for x in rv.split(".")[:2])
        if best is None or ver > best[0]:
            best = (ver, f"{pkg['name']} {pkg['version']}")
    return (best[0], best[1]) if best else (None, "no rust-version declared")


def check_dockerfile(opts: Options) -> Check:
    check = Check("Dockerfile (hadolint, stages, ports, features, build context)")
    err = check.errors
    root = opts.root
    path = root / "Dockerfile"
    if not path.is_file():
        err.append("Dockerfile is missing")
        return check
    if opts.hadolint:
        cfg = root / ".hadolint.yaml"
        cmd = [opts.hadolint, "--no-color"] + (["--config", str(cfg)] if cfg.is_file() else []) + [str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            err.append("hadolint:")
            err.extend("    " + ln.replace(str(path), "Dockerfile") for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip())
    else:
        err.append("hadolint is not available")
    text = path.read_text(encoding="utf-8")
    ins = dockerfile_instructions(text)
    args = {}
    for word, rest in ins:
        if word == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args[k.strip()] = v.strip().strip('"')
    stages = [i for i, (w, _) in enumerate(ins) if w == "FROM"]
    if len(stages) < 2:
        err.append("not a multi-stage build")
        return check
    final = ins[stages[-1] :]
    base = final[0][1].split()[0]
    base_resolved = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), base)
    if not re.match(r"^(debian:[a-z]+-slim|gcr\.io/distroless/cc)", base_resolved):
        err.append(f"runtime stage FROM {base_resolved}: expected debian:*-slim or distroless/cc")
    builder_base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), ins[stages[0]][1].split()[0])
    release = re.search(r"-(bookworm|trixie|bullseye)$", builder_base)
    if release and "debian" in base_resolved and release.group(1) not in base_resolved:
        err.append(f"builder {builder_base} and runtime {base_resolved} differ in Debian release (glibc)")
    users = [rest for w, rest in final if w == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        err.append("runtime stage does not switch to a non-root USER")
    exposed = {int(p.split("/")[0]) for w, rest in final if w == "EXPOSE" for p in rest.split()}
    for port in (GAME_PORT, ADMIN_PORT):
        if port not in exposed:
            err.append(f"runtime stage does not EXPOSE {port}")
    if ("STOPSIGNAL", "SIGTERM") not in final:
        err.append("runtime stage has no STOPSIGNAL SIGTERM")
    entry = " ".join(rest for w, rest in final if w in ("ENTRYPOINT", "CMD"))
    if "craft-server" not in entry or f":{ADMIN_PORT}" not in entry:
        err.append(f"ENTRYPOINT/CMD should start craft-server with --admin-listen on {ADMIN_PORT}")

    # Packages and features the build names must exist in the workspace.
    build_runs = " ".join(rest for w, rest in ins if w == "RUN" and "cargo build" in rest)
    if not build_runs:
        err.append("no RUN cargo build")
    packages = re.findall(r"-p\s+([\w-]+)", build_runs)
    for pkg in ("craft-server", "dataapi-local"):
        if pkg not in packages:
            err.append(f"cargo build does not build {pkg}")
    crates = {}
    for manifest in (root / "crates").glob("*/Cargo.toml"):
        data = tomllib.loads(manifest.read_text(encoding="utf-8"))
        crates[data.get("package", {}).get("name")] = data
    for pkg in packages:
        if pkg not in crates:
            err.append(f"cargo -p {pkg}: no such workspace crate")
    features = args.get("CRAFT_FEATURES", "")
    server_features = set((crates.get("craft-server") or {}).get("features", {}))
    for feat in features.replace(",", " ").split():
        pkg, _, name = feat.rpartition("/")
        if (pkg or "craft-server") == "craft-server" and name not in server_features:
            err.append(f"CRAFT_FEATURES names {feat}, not a feature of craft-server {sorted(server_features)}")
    for backend in SERVER_BACKENDS:
        if f"craft-server/{backend}" not in features.split():
            err.append(f"CRAFT_FEATURES lacks craft-server/{backend}: the image must carry every backend")
    cook = " ".join(rest for w, rest in ins if w == "RUN" and "chef cook" in rest)
    if cook and "${CRAFT_FEATURES}" not in cook:
        err.append("cargo chef cook does not use the same features as cargo build: the dependency cache would miss")

    # Rust toolchain new enough.
    rust = args.get("RUST_VERSION")
    if not rust:
        err.append("no ARG RUST_VERSION")
    else:
        have = tuple(int(x) for x in rust.split(".")[:2])
        ws = tomllib.loads((root / "Cargo.toml").read_text(encoding="utf-8"))
        ws_rv = ws.get("workspace", {}).get("package", {}).get("rust-version")
        if ws_rv and have < tuple(int(x) for x in ws_rv.split(".")[:2]):
            err.append(f"RUST_VERSION {rust} < workspace rust-version {ws_rv}")
        need, why = cargo_min_rust(root)
        if need is None:
            check.notes.append(f"locked dependencies' rust-version not checked: {why}")
        elif have < need:
            err.append(f"RUST_VERSION {rust} < {need[0]}.{need[1]} required by {why}")
        else:
            check.notes.append(f"RUST_VERSION {rust} >= {need[0]}.{need[1]} ({why})")

    # Every COPY source from the context must be in it.
    for word, rest in ins:
        if word != "COPY" or "--from=" in rest:
            continue
        parts = [p for p in rest.split() if not p.startswith("--")]
        for src in parts[:-1]:
            if not (root / src).exists():
                err.append(f"COPY {src}: not in the repository")
            elif dockerignore_excludes(root, src.rstrip("/")):
                err.append(f"COPY {src}: excluded by .dockerignore")
    return check


# --------------------------------------------------------------------------
# Driver


def run_checks(opts: Options) -> list[Check]:
    objs, load_errors = load_objects(opts.root)
    checks = []
    load = Check("deploy/ parses")
    load.errors = load_errors
    checks.append(load)
    for fn in (
        lambda: check_dockerfile(opts),
        lambda: check_compose(opts),
        lambda: check_k8s_schemas(opts, objs),
        lambda: check_references(opts, objs),
        lambda: check_helm_values(opts, objs),
        lambda: check_server_config(opts, objs),
    ):
        try:
            checks.append(fn())
        except Exception as e:  # A crash is a failed check, with its reason.
            crashed = Check(getattr(fn, "__name__", "check"))
            crashed.errors.append(f"crashed: {type(e).__name__}: {e}")
            checks.append(crashed)
    return checks


def report(checks: list[Check], out=sys.stdout, verbose: bool = True) -> int:
    failed = 0
    for c in checks:
        status = "ok  " if not c.errors else "FAIL"
        failed += bool(c.errors)
        if verbose or c.errors:
            print(f"[validate-deploy] {status} {c.name}", file=out)
        for e in c.errors:
            print(f"    {e}", file=out)
        if verbose:
            for n in c.notes:
                print(f"    note: {n}", file=out)
    return failed


# Deliberate mistakes, each of which must be caught by the named check.
# (name, file, text to replace, replacement, substring expected in an error)
MUTATIONS: list[tuple[str, str, str, str, str]] = [
    ("Agones port policy typo", "deploy/agones/fleet.yaml",
     "portPolicy: Dynamic", "portPolicy: Dinamic", "portPolicy: 'Dinamic' is not one of"),
    ("Agones unknown field", "deploy/agones/fleet.yaml",
     "failureThreshold: 3\n      sdkServer:", "failureThreshold: 3\n        initialDelay: 5\n      sdkServer:", "'initialDelay' was unexpected"),
    ("Agones pod template: unknown container field", "deploy/agones/fleet.yaml",
     "imagePullPolicy: IfNotPresent", "imagePulPolicy: IfNotPresent", "'imagePulPolicy' was unexpected"),
    ("Fleet: players counter is not max_players", "deploy/agones/fleet.yaml",
     "capacity: 200", "capacity: 500", "counters.players.capacity 500 != max_players 200"),
    ("Fleet: health period shorter than two SDK pings", "deploy/agones/fleet.yaml",
     "periodSeconds: 5", "periodSeconds: 3", "leaves no room for agones.health_interval"),
    ("FleetAutoscaler without maxReplicas", "deploy/agones/fleetautoscaler.yaml",
     "      maxReplicas: 50\n", "", "'maxReplicas' is a required property"),
    ("FleetAutoscaler minReplicas below the buffer", "deploy/agones/fleetautoscaler.yaml",
     "minReplicas: 2", "minReplicas: 1", "minReplicas 1 < bufferSize 2"),
    ("FleetAutoscaler names no Fleet", "deploy/agones/fleetautoscaler.yaml",
     "fleetName: craft", "fleetName: craft-typo", "is not a Fleet"),
    ("Deployment: unknown probe field", "deploy/deployment/deployment.yaml",
     "path: /readyz", "paht: /readyz", "'paht' was unexpected"),
    ("Deployment: port as a string", "deploy/deployment/deployment.yaml",
     "containerPort: 9090", "containerPort: \"9090\"", "is not of type 'integer'"),
    ("Deployment: grace period shorter than the flush", "deploy/deployment/deployment.yaml",
     "terminationGracePeriodSeconds: 120", "terminationGracePeriodSeconds: 30", "the flush could be killed"),
    ("Deployment: liveness on /readyz", "deploy/deployment/deployment.yaml",
     "livenessProbe:\n            httpGet:\n              path: /healthz", "livenessProbe:\n            httpGet:\n              path: /readyz",
     "livenessProbe checks /readyz, expected /healthz"),
    ("Deployment: probe on a port that does not exist", "deploy/deployment/deployment.yaml",
     "path: /readyz\n              port: admin", "path: /readyz\n              port: metrics", "'metrics' is not a named container port"),
    ("Deployment: Secret that does not exist", "deploy/deployment/deployment.yaml",
     "name: craft-store", "name: craft-stor", "Secret craft-stor is not defined"),
    ("Service selects nothing", "deploy/deployment/service.yaml",
     "  selector:\n    app.kubernetes.io/name: craft-server\n    app.kubernetes.io/instance: craft-nlb",
     "  selector:\n    app.kubernetes.io/name: craft-server\n    app.kubernetes.io/instance: craft-nbl",
     "selector matches 0 workloads"),
    ("Service without the NLB target type", "deploy/deployment/service.yaml",
     "aws-load-balancer-nlb-target-type: ip", "aws-load-balancer-nlb-target-type: instance", "nlb-target-type should be 'ip'"),
    ("ConfigMap: shutdown.timeout longer than the grace period", "deploy/base/configmap.yaml",
     'timeout = "90s"', 'timeout = "115s"', "the flush could be killed"),
    ("ConfigMap: setting craft-server does not know", "deploy/base/configmap.yaml",
     "max_players = 200", "max_player = 200", "craft-server refuses it"),
    ("Secret with a real-looking value", "deploy/secret.example.yaml",
     'PGPASSWORD: "REPLACE_WITH_DATABASE_PASSWORD"', 'PGPASSWORD: "hunter2"', "is not a REPLACE_... placeholder"),
    ("Priority expander: bad regular expression", "deploy/cluster/cluster-autoscaler-priority-expander.yaml",
     "- .*craft-spot-.*", "- .*craft-spot-(.*", "bad regular expression"),
    ("NTH values: rebalance drain off while the servers drain on it", "deploy/cluster/aws-node-termination-handler.values.yaml",
     "enableRebalanceDraining: true", "enableRebalanceDraining: false", "would restart it on the doomed node"),
    ("NTH values: spot draining off", "deploy/cluster/aws-node-termination-handler.values.yaml",
     "enableSpotInterruptionDraining: true", "enableSpotInterruptionDraining: false", "enableSpotInterruptionDraining must be true"),
    ("compose: condition typo", "docker-compose.yml",
     "condition: service_healthy\n      dynamodb:", "condition: service_healty\n      dynamodb:", "fails the Compose Specification schema"),
    ("compose: depends on a missing service", "docker-compose.yml",
     "      dynamodb:\n        condition: service_healthy", "      dynamo:\n        condition: service_healthy", "dynamo is not a service"),
    ("compose: store URL names a missing service", "docker-compose.yml",
     "endpoint=http://dynamodb:8000&create=true' docker", "endpoint=http://ddb:8000&create=true' docker", "host 'ddb' is not a service"),
    ("compose: stop grace shorter than the flush", "docker-compose.yml",
     "stop_grace_period: 100s", "stop_grace_period: 10s", "stop_grace_period 10s"),
    ("Dockerfile: runtime as root", "Dockerfile",
     "USER 10001:10001", "USER root", "non-root USER"),
    ("Dockerfile: feature craft-server lacks", "Dockerfile",
     "craft-server/dataapi\"", "craft-server/dataapi craft-server/mysql\"", "not a feature of craft-server"),
    ("Dockerfile: no STOPSIGNAL", "Dockerfile",
     "STOPSIGNAL SIGTERM", "", "no STOPSIGNAL SIGTERM"),
    ("Dockerfile: COPY of an ignored path", ".dockerignore",
     "!scripts/craft-healthcheck\n", "", "excluded by .dockerignore"),
]

# Caught only when a craft-server binary parses the settings.
NEEDS_SERVER_BIN = {"craft-server refuses it"}

COPIED = ["Dockerfile", ".dockerignore", ".hadolint.yaml", "docker-compose.yml", "deploy", "scripts/craft-healthcheck",
          "Cargo.toml", "Cargo.lock", "crates", "craft-server.example.toml"]


def self_test(opts: Options) -> int:
    """Validates pristine and deliberately broken copies; every break must be caught."""
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="validate-deploy-") as tmp:
        pristine = Path(tmp) / "pristine"
        for rel in COPIED:
            src = opts.root / rel
            if src.is_dir():
                shutil.copytree(src, pristine / rel, ignore=shutil.ignore_patterns("target", "*.db"))
            elif src.exists():
                (pristine / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, pristine / rel)

        def verdict(root: Path) -> list[Check]:
            sub = copy.copy(opts)
            sub.root = root
            return run_checks(sub)

        base = verdict(pristine)
        if any(c.errors for c in base):
            print("[self-test] FAIL the unmodified copy does not validate:")
            report(base, verbose=False)
            failed += 1
        else:
            print("[self-test] ok   the unmodified copy validates")
            passed += 1
        skipped = 0
        for i, (name, rel, old, new, expect) in enumerate(MUTATIONS):
            if expect in NEEDS_SERVER_BIN and opts.server_bin is None:
                print(f"[self-test] skip {name}: needs --server-bin")
                skipped += 1
                continue
            broken = Path(tmp) / f"m{i}"
            shutil.copytree(pristine, broken, symlinks=True)
            target = broken / rel
            text = target.read_text(encoding="utf-8")
            if old not in text:
                print(f"[self-test] FAIL {name}: {rel} no longer contains {old!r}: update MUTATIONS")
                failed += 1
                continue
            target.write_text(text.replace(old, new, 1), encoding="utf-8")
            errors = [e for c in verdict(broken) for e in c.errors]
            if any(expect in e for e in errors):
                print(f"[self-test] ok   {name}: caught")
                passed += 1
            else:
                print(f"[self-test] FAIL {name}: not caught (expected {expect!r}); errors were:")
                for e in errors[:10]:
                    print(f"    {e}")
                failed += 1
            shutil.rmtree(broken)
    print(f"validate-deploy-self-test: {passed} passed, {failed} failed, {skipped} skipped")
    return failed


def find_crds(root: Path) -> Path | None:
    env = os.environ.get("CRAFT_AGONES_CRDS")
    if env:
        return Path(env)
    for up in (root.parent, root.parent.parent):
        candidate = up / "shared" / "schemas" / "agones-crds.yaml"
        if candidate.is_file():
            return candidate
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--crds", type=Path, help="agones-crds.yaml (default: $CRAFT_AGONES_CRDS, else ../shared/schemas/)")
    parser.add_argument("--k8s-versions", default="1.31.0,1.37.0", help="Kubernetes versions to validate against")
    parser.add_argument("--server-bin", type=Path, help="a craft-server binary: also have it parse the ConfigMap settings")
    parser.add_argument("--self-test", action="store_true", help="also prove that broken copies are rejected")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    server_bin = args.server_bin if args.server_bin and args.server_bin.is_file() else None
    if args.server_bin and server_bin is None:
        print(f"[validate-deploy] note: {args.server_bin} does not exist; TOML syntax checked only")
    bindir = Path(sys.executable).parent
    opts = Options(
        root=root,
        crds=args.crds or find_crds(root),
        k8s_versions=[v.strip() for v in args.k8s_versions.split(",") if v.strip()],
        server_bin=server_bin,
        hadolint=shutil.which("hadolint", path=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"),
        check_jsonschema=shutil.which("check-jsonschema", path=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"),
    )
    checks = run_checks(opts)
    failed = report(checks)
    print(f"validate-deploy: {len(checks) - failed} passed, {failed} failed")
    if args.self_test:
        failed += self_test(opts)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
