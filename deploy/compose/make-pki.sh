#!/usr/bin/env bash
# The PKIs of docker-compose.yml's two parties, made with `fedflow pki init`: a CA per party
# and its gateway's certificate (URI SAN spiffe://fedflow/party/<id>, DNS party<id>-gateway).
#
#   deploy/compose/make-pki.sh [DIR]     DIR defaults to $FEDFLOW_PKI_DIR or deploy/compose/pki
#
# Existing parties are kept (run `fedflow pki issue --party <id> --dir DIR/<id>` to rotate a
# gateway certificate; the running gateway picks it up). The containers run as uid 10001: run
# as root, the gateway keys are given to that uid; otherwise they are made readable by all
# (good enough on a developer's machine, not for production, where the key belongs to the
# gateway's user only). $FEDFLOW names the fedflow CLI (default: fedflow on the PATH).
set -euo pipefail
OUT="${1:-${FEDFLOW_PKI_DIR:-deploy/compose/pki}}"
FEDFLOW="${FEDFLOW:-fedflow}"
for party in 9999 10000; do
    if [ -f "$OUT/$party/ca.crt" ]; then
        echo "party $party: keeping $OUT/$party"
    else
        "$FEDFLOW" pki init --party "$party" --out "$OUT/$party" --host "party$party-gateway"
    fi
done
if [ "$(id -u)" = 0 ]; then
    chown 10001:10001 "$OUT"/*/gateway.key
else
    chmod 0644 "$OUT"/*/gateway.key
    echo "warning: gateway keys in $OUT are readable by every user (the containers' uid 10001 must read them)" >&2
fi
