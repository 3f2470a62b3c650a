#!/bin/sh
# Serving certificate for the nfguard injector on clusters WITHOUT cert-manager.
#
#   manifests/gen-certs.sh [OUT_DIR]           # make the CA, the certificate and the caBundle
#   manifests/gen-certs.sh --apply [OUT_DIR]   # ... and install everything with kubectl
#
# What it makes (in OUT_DIR, default ./nfguard-certs):
#   ca.crt, ca.key    a private CA (10 years), used only to sign the webhook's certificate
#   tls.crt, tls.key  the serving certificate (1 year) for
#                     nfguard-injector.nfguard-system.svc[.cluster.local]
#   ca-bundle.b64     ca.crt in base64: the webhook's clientConfig.caBundle
#   secret.yaml       the Secret nfguard-injector-tls the Deployment mounts
#   cabundle-patch.json  JSON patch that sets caBundle on the MutatingWebhookConfiguration
#
# With --apply it runs:
#   kubectl apply -k manifests/core
#   kubectl apply -f OUT_DIR/secret.yaml
#   kubectl patch mutatingwebhookconfiguration nfguard-injector --type=json --patch-file OUT_DIR/cabundle-patch.json
#
# Rotation: run it again before tls.crt expires (keep ca.key to re-sign with the same CA,
# it is reused when present). The injector reloads the new files on its own.
# Keep ca.key secret: whoever has it can impersonate the webhook to the API server.
set -eu

APPLY=0
if [ "${1:-}" = "--apply" ]; then APPLY=1; shift; fi
OUT=${1:-./nfguard-certs}
SERVICE=nfguard-injector
NAMESPACE=nfguard-system
HERE=$(cd "$(dirname "$0")" && pwd)

command -v openssl >/dev/null || { echo "gen-certs.sh: openssl is required" >&2; exit 1; }
mkdir -p "$OUT"
umask 077

if [ ! -s "$OUT/ca.key" ]; then
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$OUT/ca.key" -out "$OUT/ca.crt" -days 3650 \
    -subj "/CN=nfguard-injector-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

cat > "$OUT/server.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$SERVICE.$NAMESPACE.svc,DNS:$SERVICE.$NAMESPACE.svc.cluster.local
EXT
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
  -keyout "$OUT/tls.key" -out "$OUT/tls.csr" -subj "/CN=$SERVICE.$NAMESPACE.svc" 2>/dev/null
openssl x509 -req -in "$OUT/tls.csr" -CA "$OUT/ca.crt" -CAkey "$OUT/ca.key" -CAcreateserial \
  -out "$OUT/tls.crt" -days 365 -extfile "$OUT/server.ext" 2>/dev/null
openssl verify -CAfile "$OUT/ca.crt" "$OUT/tls.crt" >/dev/null

b64() { openssl base64 -A -in "$1"; }
b64 "$OUT/ca.crt" > "$OUT/ca-bundle.b64"
cat > "$OUT/secret.yaml" <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: $SERVICE-tls
  namespace: $NAMESPACE
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$OUT/tls.crt")
  tls.key: $(b64 "$OUT/tls.key")
  ca.crt: $(b64 "$OUT/ca.crt")
YAML
printf '[{"op":"add","path":"/webhooks/0/clientConfig/caBundle","value":"%s"}]\n' \
  "$(cat "$OUT/ca-bundle.b64")" > "$OUT/cabundle-patch.json"
rm -f "$OUT/tls.csr" "$OUT/server.ext"

if [ "$APPLY" = 1 ]; then
  kubectl apply -k "$HERE/core"
  kubectl apply -f "$OUT/secret.yaml"
  kubectl patch mutatingwebhookconfiguration "$SERVICE" --type=json --patch-file "$OUT/cabundle-patch.json"
else
  echo "certificates written to $OUT; install with:"
  echo "  kubectl apply -k $HERE/core"
  echo "  kubectl apply -f $OUT/secret.yaml"
  echo "  kubectl patch mutatingwebhookconfiguration $SERVICE --type=json --patch-file $OUT/cabundle-patch.json"
fi
