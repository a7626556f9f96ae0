#!/usr/bin/env bash
# Prints the two Secrets a party's gateway needs for mutual TLS in Kubernetes, from the files
# `fedflow pki` made:
#
#   scripts/k8s-tls-secrets.sh PARTY PKI_DIR [PEER=CA_FILE ...] | kubectl apply -n fedflow-PARTY -f -
#
#   fedflow-gateway-tls   gateway.crt, gateway.key   from PKI_DIR (`fedflow pki init --out PKI_DIR`)
#   fedflow-partner-cas   party-<PEER>-ca.crt        each other party's ca.crt (their bundle)
#
# The CA key (PKI_DIR/ca.key) is never put in a Secret: keep it where certificates are issued.
# To rotate: `fedflow pki issue --party PARTY --dir PKI_DIR`, then run this again and apply;
# the kubelet updates the mounted files and the gateway re-reads them (no restart).
set -euo pipefail
[ "$#" -ge 2 ] || { sed -n '2,13p' "$0" >&2; exit 64; }
PARTY="$1"
DIR="$2"
shift 2
command -v kubectl >/dev/null 2>&1 || { echo "k8s-tls-secrets: kubectl not found" >&2; exit 69; }
for f in gateway.crt gateway.key; do
    [ -f "$DIR/$f" ] || { echo "k8s-tls-secrets: $DIR/$f not found (fedflow pki init --party $PARTY --out $DIR)" >&2; exit 66; }
done
kubectl create secret generic fedflow-gateway-tls --dry-run=client -o yaml \
    --from-file=gateway.crt="$DIR/gateway.crt" --from-file=gateway.key="$DIR/gateway.key"
echo "---"
args=()
for peer in "$@"; do
    id="${peer%%=*}"
    file="${peer#*=}"
    [ -f "$file" ] || { echo "k8s-tls-secrets: $file (party $id's CA) not found" >&2; exit 66; }
    args+=("--from-file=party-$id-ca.crt=$file")
done
kubectl create secret generic fedflow-partner-cas --dry-run=client -o yaml "${args[@]}"
