#!/usr/bin/env bash
# Validates the Kubernetes manifests in deploy/k8s/:
#   1. renders the base and every overlay with `kubectl kustomize`;
#   2. validates every rendered document (and the example Secret) against the Kubernetes
#      OpenAPI schemas, strictly (unknown fields are errors), with the PyPI package
#      kubernetes-validate, installed into .venv-k8s/;
#   3. checks fedflow's own rules: every container has gRPC liveness and readiness probes on
#      its containerPort (readiness with service ""), its config file listens on that port,
#      Services target it, and every ConfigMap/Secret key the pods read exists.
# Exits non-zero on the first stage that fails, listing every problem it found.
#
# Environment: K8S_VERSIONS (default "1.29.0 1.37.0"): Kubernetes versions to validate against.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
K8S_DIR="$ROOT/deploy/k8s"
VENV="$ROOT/.venv-k8s"
KV_VERSION="1.37.0"
K8S_VERSIONS="${K8S_VERSIONS:-1.29.0 1.37.0}"

die() {
    echo "validate-k8s: $*" >&2
    exit 1
}

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        return 1
    fi
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    echo "validate-k8s: installing $* with apt-get" >&2
    as_root apt-get update -qq >&2 || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# kubectl (for `kubectl kustomize`).
if ! command -v kubectl >/dev/null 2>&1; then
    apt_install kubectl || true
    command -v kubectl >/dev/null 2>&1 ||
        die "kubectl not found and 'apt-get install -y kubectl' did not provide it; install kubectl (>= 1.27) and rerun"
fi
kubectl kustomize --help >/dev/null 2>&1 || die "this kubectl has no 'kustomize' subcommand; install kubectl >= 1.27"

# kubernetes-validate in its own venv.
if ! "$VENV/bin/python" -c "import sys, kubernetes_validate.version as v; sys.exit(v.__version__ != '$KV_VERSION')" 2>/dev/null; then
    command -v python3 >/dev/null 2>&1 || die "python3 not found"
    if [ ! -x "$VENV/bin/python" ]; then
        rm -rf "$VENV"
        if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
            rm -rf "$VENV"
            apt_install python3-venv || true
            python3 -m venv "$VENV" || die "cannot create a venv at $VENV (python3 -m venv; on Debian: apt-get install python3-venv)"
        fi
    fi
    echo "validate-k8s: installing kubernetes-validate==$KV_VERSION into ${VENV#"$ROOT"/}" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KV_VERSION" ||
        die "pip install kubernetes-validate==$KV_VERSION failed"
fi

# Render.
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
targets=(base)
for overlay in "$K8S_DIR"/overlays/*/; do
    [ -f "$overlay/kustomization.yaml" ] && targets+=("overlays/$(basename "$overlay")")
done
[ "${#targets[@]}" -gt 1 ] || die "no overlays found under deploy/k8s/overlays"
files=()
for target in "${targets[@]}"; do
    file="$OUT/${target//\//_}.yaml"
    kubectl kustomize "$K8S_DIR/$target" >"$file" || die "kubectl kustomize deploy/k8s/$target failed"
    echo "rendered deploy/k8s/$target ($(grep -c '^kind:' "$file") documents)"
    files+=("$target=$file")
done
files+=("base/database-secret.example.yaml=$K8S_DIR/base/database-secret.example.yaml")

# The TLS Secrets, made the way an operator makes them: `fedflow pki init` for each overlay's
# party, then scripts/k8s-tls-secrets.sh (needs the fedflow binary: cargo build --bins).
FEDFLOW_BIN="${FEDFLOW_BIN:-$ROOT/target/debug/fedflow}"
[ -x "$FEDFLOW_BIN" ] || die "$FEDFLOW_BIN not found: build it first (cargo build --workspace --bins) or set FEDFLOW_BIN"
parties=()
for overlay in "$K8S_DIR"/overlays/party-*/; do
    parties+=("$(basename "$overlay" | sed 's/^party-//')")
done
for party in "${parties[@]}"; do
    "$FEDFLOW_BIN" pki init --party "$party" --out "$OUT/pki/$party" >/dev/null ||
        die "fedflow pki init --party $party failed"
done
for party in "${parties[@]}"; do
    peers=()
    for other in "${parties[@]}"; do
        [ "$other" = "$party" ] || peers+=("$other=$OUT/pki/$other/ca.crt")
    done
    "$ROOT/scripts/k8s-tls-secrets.sh" "$party" "$OUT/pki/$party" "${peers[@]}" >"$OUT/tls-$party.yaml" ||
        die "scripts/k8s-tls-secrets.sh $party failed"
    echo "made the TLS Secrets of party $party from fedflow pki"
    files+=("tls-secrets-$party.yaml=$OUT/tls-$party.yaml")
done

# Validate.
"$VENV/bin/python" - "$K8S_VERSIONS" "${files[@]}" <<'PY'
import re
import sys

import yaml
import kubernetes_validate

versions = sys.argv[1].split()
errors = []


def err(where, msg):
    errors.append(f"{where}: {msg}")


targets = []  # (label, [documents])
for arg in sys.argv[2:]:
    label, path = arg.split("=", 1)
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    if not docs:
        err(label, "no documents")
    targets.append((label, docs))

# 1. Schemas.
print(f"schemas (kubernetes-validate {kubernetes_validate.version.__version__}, strict, Kubernetes {', '.join(versions)}):")
for label, docs in targets:
    for doc in docs:
        name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        ok = True
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                err(f"{label} {name}", f"k8s {version}: {path}: {e.message}")
                ok = False
            except Exception as e:  # unknown kind/apiVersion included: never skipped silently
                err(f"{label} {name}", f"k8s {version}: {getattr(e, 'message', e)}")
                ok = False
        print(f"  {'ok  ' if ok else 'FAIL'} {label}: {name}")

# 2. fedflow's rules, per rendered target.
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
example_secret = next(
    (d for label, docs in targets if label.endswith("example.yaml") for d in docs if d.get("kind") == "Secret"),
    {},
)
secret_keys = set((example_secret.get("stringData") or {}) | (example_secret.get("data") or {}))
# The TLS Secrets made from `fedflow pki`, per party.
tls_secrets = {}
for label, docs in targets:
    m = re.match(r"tls-secrets-(.+)\.yaml$", label)
    if m:
        tls_secrets[m.group(1)] = {d["metadata"]["name"]: set(d.get("data") or {}) for d in docs}

print("probes, ports and references:")
for label, docs in targets:
    if label.endswith("example.yaml") or label.startswith("tls-secrets-"):
        continue
    party = label.split("party-", 1)[1] if "party-" in label else None
    configmaps = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d.get("kind") == "ConfigMap"}
    workloads = [d for d in docs if d.get("kind") in POD_KINDS]
    if not workloads:
        err(label, "no workloads rendered")
    for w in workloads:
        wname = f"{w['kind']}/{w['metadata']['name']}"
        before = len(errors)
        pod = w["spec"]["template"]["spec"]
        pod_labels = w["spec"]["template"]["metadata"].get("labels") or {}
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        for c in pod.get("containers") or []:
            where = f"{label} {wname} container {c['name']}"
            ports = c.get("ports") or []
            named = [p for p in ports if p.get("name") == "grpc"]
            if len(named) == 1:
                port = named[0]["containerPort"]
            elif len(ports) == 1:
                port = ports[0]["containerPort"]
            else:
                err(where, "needs one containerPort (or one named grpc)")
                continue
            for kind in ("livenessProbe", "readinessProbe"):
                probe = c.get(kind) or {}
                grpc = probe.get("grpc")
                if grpc is None:
                    err(where, f"{kind} is not a grpc probe")
                elif grpc.get("port") != port:
                    err(where, f"{kind}.grpc.port {grpc.get('port')} != containerPort {port}")
            readiness = (c.get("readinessProbe") or {}).get("grpc") or {}
            if readiness.get("service", None) != "":
                err(where, 'readinessProbe.grpc.service must be "" (the server as a whole)')

            # ConfigMap / Secret keys read through the environment.
            for e in c.get("env") or []:
                ref = e.get("valueFrom") or {}
                if "configMapKeyRef" in ref:
                    r = ref["configMapKeyRef"]
                    if r["key"] not in configmaps.get(r["name"], {}):
                        err(where, f"env {e['name']}: ConfigMap {r['name']} has no key {r['key']}")
                if "secretKeyRef" in ref:
                    r = ref["secretKeyRef"]
                    if r["name"] != "fedflow-database" or r["key"] not in secret_keys:
                        err(where, f"env {e['name']}: Secret {r['name']} key {r['key']} is not in the example Secret")

            # Secret volumes of the gateway: the TLS Secrets `fedflow pki` gave this party, and
            # every route's CA file a key of the partners' Secret.
            mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts") or []}
            for vname, mpath in mounts.items():
                secret = (volumes.get(vname) or {}).get("secret")
                if not secret or party is None:
                    continue
                made = tls_secrets.get(party, {})
                if secret["secretName"] not in made:
                    err(where, f"volume {vname}: Secret {secret['secretName']} is not one scripts/k8s-tls-secrets.sh makes")
                    continue
                for e in c.get("env") or []:
                    value = e.get("value") or ""
                    if e["name"].endswith("__CA") and value.startswith(mpath.rstrip("/") + "/"):
                        key = value[len(mpath.rstrip("/")) + 1:]
                        if key not in made[secret["secretName"]]:
                            err(where, f"env {e['name']}: {value} is not a key of Secret {secret['secretName']}")

            # The config file the container is given must be mounted and listen on the port.
            args = c.get("args") or []
            if "--config" not in args or args.index("--config") + 1 >= len(args):
                err(where, "no --config FILE argument")
                continue
            config_path = args[args.index("--config") + 1]
            text = None
            for m in c.get("volumeMounts") or []:
                prefix = m["mountPath"].rstrip("/") + "/"
                vol = volumes.get(m["name"], {})
                if config_path.startswith(prefix) and "configMap" in vol:
                    rel = config_path[len(prefix):]
                    cm = vol["configMap"]
                    items = {i["path"]: i["key"] for i in cm.get("items") or []} or None
                    key = items.get(rel) if items is not None else rel
                    text = configmaps.get(cm["name"], {}).get(key)
            if text is None:
                err(where, f"{config_path} is not a key of a rendered ConfigMap mounted there")
                continue
            listen = re.search(r'^\s*listen\s*=\s*"([^"]*)"', text, re.M)
            if not listen or listen.group(1) != f"0.0.0.0:{port}":
                err(where, f"{config_path}: grpc.listen is {listen and listen.group(1)!r}, want '0.0.0.0:{port}'")

        # Services selecting this workload target its gRPC port.
        cports = {p.get("name"): p["containerPort"] for c in pod.get("containers") or [] for p in c.get("ports") or []}
        selected = False
        for s in (d for d in docs if d.get("kind") == "Service"):
            sel = s["spec"].get("selector") or {}
            if not sel or any(pod_labels.get(k) != v for k, v in sel.items()):
                continue
            selected = True
            for p in s["spec"]["ports"]:
                target = p.get("targetPort", p["port"])
                resolved = cports.get(target) if isinstance(target, str) else target
                if resolved not in cports.values() or resolved != p["port"]:
                    err(f"{label} Service/{s['metadata']['name']}", f"port {p['port']} targets {target!r}, not the container's port")
        if not selected:
            err(f"{label} {wname}", "no Service selects it")
        print(f"  {'ok  ' if len(errors) == before else 'FAIL'} {label}: {wname}")

if errors:
    print(f"\n{len(errors)} problem(s):", file=sys.stderr)
    for e in errors:
        print(f"  {e}", file=sys.stderr)
    sys.exit(1)
total = sum(len(docs) for _, docs in targets)
print(f"all {total} documents valid")
PY
