#!/usr/bin/env bash
# The webhook's certificates without cert-manager: a private CA and a serving certificate
# for the Service spiderpool-rs-webhook.kube-system.svc (openssl), the Secret
# spiderpool-rs-webhook-tls the controller mounts, and the CA in the caBundle of both webhook
# configurations.
#
#   bash backend-kube/deploy/gen-certs.sh            # before applying controller.yaml
#   kubectl apply -f backend-kube/deploy/webhook.yaml
#   bash backend-kube/deploy/gen-certs.sh --patch    # once the configurations exist
#
# Without --patch the script patches the configurations if they already exist. Re-running it
# makes a new CA and certificate (then restart the controller: it reads them at start).
# Needs: openssl, kubectl (with rights on Secrets in kube-system and on webhook
# configurations). Environment: NAMESPACE (kube-system), SERVICE (spiderpool-rs-webhook),
# SECRET (spiderpool-rs-webhook-tls), DAYS (3650), OUT (a temporary directory, kept if set).
set -euo pipefail

NAMESPACE=${NAMESPACE:-kube-system}
SERVICE=${SERVICE:-spiderpool-rs-webhook}
SECRET=${SECRET:-spiderpool-rs-webhook-tls}
CONFIG=${CONFIG:-spiderpool-rs-webhook}
DAYS=${DAYS:-3650}
PATCH_ONLY=false
[ "${1:-}" = "--patch" ] && PATCH_ONLY=true

if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
else
  OUT=$(mktemp -d)
  trap 'rm -rf "$OUT"' EXIT
fi

if ! $PATCH_ONLY || [ ! -f "$OUT/ca.crt" ]; then
  if $PATCH_ONLY; then
    # Patching alone: take the CA from the Secret written earlier.
    kubectl -n "$NAMESPACE" get secret "$SECRET" -o jsonpath='{.data.ca\.crt}' \
      | base64 -d > "$OUT/ca.crt"
  else
    openssl req -x509 -newkey rsa:2048 -nodes -days "$DAYS" -sha256 \
      -keyout "$OUT/ca.key" -out "$OUT/ca.crt" -subj "/CN=spiderpool-rs-webhook-ca" 2>/dev/null
    cat > "$OUT/server.ext" <<EXT
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:${SERVICE}, DNS:${SERVICE}.${NAMESPACE}, DNS:${SERVICE}.${NAMESPACE}.svc, DNS:${SERVICE}.${NAMESPACE}.svc.cluster.local
EXT
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$OUT/tls.key" -out "$OUT/tls.csr" \
      -subj "/CN=${SERVICE}.${NAMESPACE}.svc" 2>/dev/null
    openssl x509 -req -in "$OUT/tls.csr" -CA "$OUT/ca.crt" -CAkey "$OUT/ca.key" \
      -CAcreateserial -days "$DAYS" -sha256 -extfile "$OUT/server.ext" -out "$OUT/tls.crt" \
      2>/dev/null
    kubectl -n "$NAMESPACE" create secret generic "$SECRET" --type=kubernetes.io/tls \
      --from-file=tls.crt="$OUT/tls.crt" --from-file=tls.key="$OUT/tls.key" \
      --from-file=ca.crt="$OUT/ca.crt" --dry-run=client -o yaml | kubectl apply -f -
    echo "secret $NAMESPACE/$SECRET written"
  fi
fi

CA_BUNDLE=$(base64 < "$OUT/ca.crt" | tr -d '\n')
for kind in mutatingwebhookconfiguration validatingwebhookconfiguration; do
  if ! kubectl get "$kind" "$CONFIG" >/dev/null 2>&1; then
    echo "$kind $CONFIG not found yet: apply webhook.yaml, then run: $0 --patch"
    continue
  fi
  count=$(kubectl get "$kind" "$CONFIG" -o jsonpath='{range .webhooks[*]}x{end}')
  patch="["
  for ((i = 0; i < ${#count}; i++)); do
    [ "$i" -gt 0 ] && patch+=","
    patch+="{\"op\":\"add\",\"path\":\"/webhooks/$i/clientConfig/caBundle\",\"value\":\"$CA_BUNDLE\"}"
  done
  patch+="]"
  kubectl patch "$kind" "$CONFIG" --type=json -p "$patch"
  echo "$kind $CONFIG: caBundle set on ${#count} webhooks"
done
