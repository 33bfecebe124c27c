#!/bin/sh
# nginx's entrypoint in docker/compose.yaml: renders docker/nginx.conf for the public URLs the app
# uses (PORTCULLIS_ISSUER, PORTCULLIS_API_URL, the same variables the app services read), then
# runs nginx in the foreground. nginx answers only those hosts and forwards exactly them as Host
# (issue 19, R2): a request naming any other host gets 421 and never reaches the app.
#
#   NGINX_TEMPLATE  the template (default /etc/nginx/portcullis/nginx.conf)
#   NGINX_CONF      where the rendered file goes (default /tmp/nginx.conf)
#   --render-only   render and exit (the artifact tests use it)
set -eu

# authority URL: host[:port] of an https URL, lower-cased, without the default port 443.
authority() {
  case "$1" in https://*) ;; *) echo "nginx: $1 is not an https URL" >&2; exit 1 ;; esac
  printf '%s' "$1" | sed -E 's#^https://([^/?#]+).*$#\1#' | tr 'A-Z' 'a-z' | sed -E 's/:443$//'
}
# hostname AUTHORITY: the name nginx matches against the Host header (server_name).
hostname_of() { printf '%s' "$1" | sed -E 's/:[0-9]+$//'; }

PORTCULLIS_AUTH_AUTHORITY="$(authority "${PORTCULLIS_ISSUER:?PORTCULLIS_ISSUER must be set}")"
PORTCULLIS_API_AUTHORITY="$(authority "${PORTCULLIS_API_URL:?PORTCULLIS_API_URL must be set}")"
PORTCULLIS_AUTH_HOSTNAME="$(hostname_of "$PORTCULLIS_AUTH_AUTHORITY")"
PORTCULLIS_API_HOSTNAME="$(hostname_of "$PORTCULLIS_API_AUTHORITY")"
export PORTCULLIS_AUTH_AUTHORITY PORTCULLIS_API_AUTHORITY PORTCULLIS_AUTH_HOSTNAME PORTCULLIS_API_HOSTNAME

conf="${NGINX_CONF:-/tmp/nginx.conf}"
# Only these four names are substituted: nginx's own $variables pass through untouched.
envsubst '${PORTCULLIS_AUTH_AUTHORITY} ${PORTCULLIS_API_AUTHORITY} ${PORTCULLIS_AUTH_HOSTNAME} ${PORTCULLIS_API_HOSTNAME}' \
  <"${NGINX_TEMPLATE:-/etc/nginx/portcullis/nginx.conf}" >"$conf"
if [ "${1:-}" = "--render-only" ]; then exit 0; fi
exec nginx -c "$conf" -g 'daemon off;'
