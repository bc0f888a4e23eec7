#!/usr/bin/env bash
# Sets up what the tests need, runs the whole suite, and ends with one line: "N passed, N failed, N skipped".
# The embedded backend needs nothing installed: SQLite ships inside Microsoft.Data.Sqlite. The design tooling's tests
# validate generated AsyncAPI documents with the official parser (@asyncapi/parser on Node.js) and alert rules with
# promtool; both are installed here. The PostgreSQL backend runs on a private PostgreSQL 15 cluster started here.
set -uo pipefail
cd "$(dirname "$0")"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
results="$(pwd)/artifacts/test-results"
rm -rf "$results"
mkdir -p "$results"

# Tools the tests run: Node.js + npm (the AsyncAPI parser, Mermaid), promtool (Debian's prometheus
# package), Chromium (the generated catalog site is rendered in it, headless, through Playwright) and nats-server.
# Installed from Debian packages when missing. A policy-rc.d stops the packages' daemons from starting: the tests need
# only the promtool binary, and no service may listen on anything but loopback.
need=()
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# nats-server: the generated JetStream streams and consumers are created on a real server (loopback only, temp folder).
{ command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ]; } || need+=(nats-server)
# PostgreSQL 15: the PostgreSQL backend's tests run on a private cluster started below (the package's own cluster and
# service stay off).
pg_bin=/usr/lib/postgresql/15/bin
[ -x "$pg_bin/initdb" ] || need+=(postgresql-15)
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null && $SUDO chmod +x /usr/sbin/policy-rc.d && created_policy=1
  fi
  $SUDO apt-get update -qq >/dev/null 2>&1
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || echo "warning: could not install ${need[*]}; the tests that need them will fail"
  [ "$created_policy" -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
fi
if [ ! -d tools/node/node_modules/@asyncapi/parser ] || [ ! -d tools/node/node_modules/mermaid ]; then
  (cd tools/node && npm install --no-audit --no-fund --silent) || echo "warning: could not install the Node tools (AsyncAPI parser, Mermaid); their tests will fail"
fi

# A private PostgreSQL 15 cluster for this run: a temporary folder, 127.0.0.1 and a free port only, stopped at the end.
# initdb refuses to run as root, so as root the cluster belongs to the postgres account the package created.
pg_dir=""
pg_as=""
stop_postgres() {
  if [ -n "$pg_dir" ] && [ -d "$pg_dir" ]; then
    $pg_as "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate -w stop >/dev/null 2>&1
    rm -rf "$pg_dir"
  fi
}
trap stop_postgres EXIT
if [ -x "$pg_bin/initdb" ]; then
  pg_dir=$(mktemp -d /tmp/factum-pg.XXXXXX)
  pg_as=""
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$pg_dir"; pg_as="runuser -u postgres --"; fi
  pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)))
  if $pg_as "$pg_bin/initdb" -D "$pg_dir/data" -U factum --auth=trust -E UTF8 --locale=C.UTF-8 >"$pg_dir/initdb.log" 2>&1 \
     && $pg_as "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 start \
          -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$pg_dir -c max_connections=300 -c synchronous_commit=on -c fsync=on" >/dev/null 2>&1 \
     && $pg_as "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U factum factum_test >/dev/null 2>&1; then
    export FACTUM_TEST_POSTGRES="postgres://factum:factum@127.0.0.1:$pg_port/factum_test"
    export FACTUM_TEST_POSTGRES_CTL="$pg_bin/pg_ctl -D $pg_dir/data"
  else
    echo "warning: could not start PostgreSQL 15 (see $pg_dir); the PostgreSQL backend's tests will fail"
    cat "$pg_dir/initdb.log" "$pg_dir/server.log" 2>/dev/null | tail -20
  fi
else
  echo "warning: PostgreSQL 15 is not installed; the PostgreSQL backend's tests will fail"
fi

dotnet build Factum.slnx -c Release -nologo -clp:ErrorsOnly
build_rc=$?
if [ $build_rc -ne 0 ]; then
  echo "build failed"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

dotnet test Factum.slnx -c Release --no-build --nologo \
  --blame-hang-timeout 5min --logger "trx" --results-directory "$results" -- RunConfiguration.TreatNoTestsAsError=false
test_rc=$?

# Count outcomes from the TRX files, so the closing line reflects every test project.
passed=0; failed=0; skipped=0
attr() { sed -n "s/.*<Counters[^>]* $1=\"\([0-9]*\)\".*/\1/p" "$2" | head -n1; }
while IFS= read -r -d '' trx; do
  p=$(attr passed "$trx"); f=$(attr failed "$trx"); e=$(attr error "$trx"); n=$(attr notExecuted "$trx")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0} + ${e:-0})); skipped=$((skipped + ${n:-0}))
done < <(find "$results" -name '*.trx' -print0)
if [ "$test_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$test_rc" -eq 0 ] && [ "$failed" -eq 0 ]
