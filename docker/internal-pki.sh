#!/bin/sh
# Certificates for the internal network of docker/compose.yaml (issue 20, S7): a private CA, a
# server certificate for the auth containers (DNS:auth) and one for the API containers (DNS:api)
# that the API also presents as its client certificate on the auth server's mTLS-only listener,
# where it fetches the signing keys (JWKS_URL=https://auth:3443/jwks). nginx verifies both
# upstreams against the CA. Nothing on the internal network is plain http.
#
#   sh docker/internal-pki.sh [DIR]      # DIR defaults to docker/secrets
#
# Writes internal_ca, auth_tls_cert, auth_tls_key, api_tls_cert and api_tls_key. The CA's private
# key is thrown away, so nobody can issue another certificate the services would trust: run the
# script again to renew all of them (PKI_DAYS, default 730), then `docker compose up -d`.
set -eu
out="${1:-$(dirname "$0")/secrets}"
days="${PKI_DAYS:-730}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key "$work/ca.key"
openssl req -x509 -new -key "$work/ca.key" -sha256 -days "$days" -subj '/CN=Portcullis internal CA' \
  -addext 'basicConstraints=critical,CA:TRUE,pathlen:0' -addext 'keyUsage=critical,keyCertSign,cRLSign' \
  -out "$out/internal_ca"

# leaf NAME COMMON_NAME SUBJECT_ALT_NAMES EXTENDED_KEY_USAGES
leaf() {
  key "$out/$1_tls_key"
  openssl req -new -key "$out/$1_tls_key" -subj "/CN=$2" -out "$work/$1.csr"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectAltName=%s\nextendedKeyUsage=%s\n' "$3" "$4" >"$work/$1.ext"
  openssl x509 -req -in "$work/$1.csr" -CA "$out/internal_ca" -CAkey "$work/ca.key" -sha256 -days "$days" \
    -set_serial "0x$(openssl rand -hex 16)" -extfile "$work/$1.ext" -out "$out/$1_tls_cert" 2>/dev/null
}
leaf auth auth DNS:auth serverAuth
leaf api portcullis-api DNS:api serverAuth,clientAuth

# The containers read the files as their own users (node 1000, nginx's root master): world-readable
# files inside docker/secrets, a directory only you can enter (chmod 0700, see compose.yaml).
chmod 0644 "$out/internal_ca" "$out/auth_tls_cert" "$out/auth_tls_key" "$out/api_tls_cert" "$out/api_tls_key"
