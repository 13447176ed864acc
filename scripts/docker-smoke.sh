#!/bin/sh
# Builds the kpi-live image and checks it the way an operator would, on the
# embedded store (no CouchDB needed): it starts and answers /health, counts
# what it is sent, runs as uid 1000 and cannot write its code, turns
# `healthy`, stops cleanly on `docker stop`, and keeps every blob, counted
# once, across a graceful restart and a SIGKILL. Needs Docker; removes its
# container and volume at the end. Exit 0 when every check passes.
#
#   scripts/docker-smoke.sh
#   NODE_IMAGE=my-registry/node:22-bookworm-slim scripts/docker-smoke.sh   # another base
#
#   IMAGE (kpi-live:smoke)   tag to build and run
#   NODE_IMAGE               passed as --build-arg NODE_IMAGE when set
#   SMOKE_PORT (3499)        loopback port the container is published on
#   SMOKE_BLOBS (600)        blobs sent (at 200/s, from inside the container)
#   SKIP_BUILD=1             run an image built before
set -euf

cd "$(dirname "$0")/.."
image=${IMAGE:-kpi-live:smoke}
port=${SMOKE_PORT:-3499}
blobs=${SMOKE_BLOBS:-600}
name="kpi-live-smoke-$$"
volume="$name-data"
base="http://127.0.0.1:$port"
failures=0

say() { printf 'docker-smoke: %s\n' "$*"; }
check() { # check DESCRIPTION COMMAND...
  what=$1
  shift
  if "$@"; then say "ok    $what"; else
    say "FAIL  $what"
    failures=$((failures + 1))
  fi
}
cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker volume rm "$volume" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

now_ms() { # GNU date has milliseconds; others get whole seconds
  case $(date +%N) in
    *N*) echo $(($(date +%s) * 1000)) ;;
    *) date +%s%3N ;;
  esac
}
health_field() { # the first "FIELD":"value" of /health, value only
  curl -s -m 3 "$base/health" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" | head -n 1
}
wait_for() { # wait_for SECONDS FIELD VALUE: until /health shows it; prints the ms it took
  started=$(now_ms)
  deadline=$((started + $1 * 1000))
  while [ "$(health_field "$2")" != "$3" ]; do
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
  echo $(($(now_ms) - started))
}
within() { # within SECONDS FIELD VALUE WHAT: ok with the time it took, or a failure
  if ms=$(wait_for "$1" "$2" "$3"); then say "ok    $4 (${ms} ms)"; else
    say "FAIL  $4 (not within $1 s)"
    failures=$((failures + 1))
  fi
}
dialogs() { # dialogs counted in the last hour, as /api/kpis answers
  curl -s -m 5 -H "Authorization: Bearer $token" "$base/api/kpis?range=3600000" | sed -n 's/.*"total":{[^}]*"dialogs":\([0-9]*\).*/\1/p' | head -n 1
}

if [ "${SKIP_BUILD:-}" != 1 ]; then
  say "building $image${NODE_IMAGE:+ on $NODE_IMAGE}"
  if [ -n "${NODE_IMAGE:-}" ]; then
    docker build -q --build-arg "NODE_IMAGE=$NODE_IMAGE" -t "$image" . >/dev/null
  else
    docker build -q -t "$image" . >/dev/null
  fi
fi

docker volume create "$volume" >/dev/null
docker run -d --name "$name" -v "$volume:/data" -p "127.0.0.1:$port:3434" "$image" >/dev/null
ms=$(wait_for 60 phase live) || {
  docker logs "$name" 2>&1 | tail -n 20
  say "FAIL  the service did not become live within 60 s"
  exit 1
}
say "ok    live ${ms} ms after docker run"
token=$(docker exec "$name" cat /data/access-token)

check 'runs as uid 1000' test "$(docker exec "$name" id -u)" = 1000
check 'cannot write its code' sh -c "! docker exec '$name' touch /app/package.json 2>/dev/null"
check 'the access token file is 0600' test "$(docker exec "$name" stat -c %a /data/access-token)" = 600
check '/health/ready answers 200' test "$(curl -s -o /dev/null -w '%{http_code}' "$base/health/ready")" = 200
check '/metrics needs the token' test "$(curl -s -o /dev/null -w '%{http_code}' "$base/metrics")" = 401
check '/metrics answers with it' test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$base/metrics")" = 200

duration=$(((blobs + 199) / 200))
sent=$(docker exec "$name" node bin/kpi-live.js simulate --url http://127.0.0.1:3434 --rate 200 --duration "$duration" 2>&1 |
  sed -n 's/.*accepted \([0-9]*\), rejected.*/\1/p' | tail -n 1)
say "sent: $sent blobs accepted"
counted_equals_sent() {
  for _ in $(seq 1 50); do
    [ "$(dialogs)" = "$sent" ] && return 0
    sleep 0.2
  done
  say "      dialogs counted: $(dialogs), accepted: $sent"
  return 1
}
check "every accepted blob counted once ($sent)" counted_equals_sent

say 'waiting for the image HEALTHCHECK (start period 30 s)'
healthy() {
  for _ in $(seq 1 90); do
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$name")" = healthy ] && return 0
    sleep 1
  done
  return 1
}
check 'HEALTHCHECK says healthy' healthy

started=$(now_ms)
docker stop -t 30 "$name" >/dev/null
say "docker stop took $(($(now_ms) - started)) ms"
check 'docker stop ends it with exit 0' test "$(docker inspect -f '{{.State.ExitCode}}' "$name")" = 0
docker start "$name" >/dev/null
within 60 phase live 'live again after a graceful restart'
check 'after a graceful restart: the lease taken at once' test "$(health_field role)" = follower
check "after a graceful restart: still $sent, counted once" counted_equals_sent

docker kill -s KILL "$name" >/dev/null
docker start "$name" >/dev/null
within 60 phase live 'dashboards served after a SIGKILL and start'
check "after a SIGKILL: still $sent, counted once" counted_equals_sent
# the old lease (default ttl 15 s) runs out before this instance follows the feed again
within 40 role follower 'following the feed again after the SIGKILL (its old lease ran out)'
check "after the takeover: still $sent, counted once" counted_equals_sent

if [ "$failures" -gt 0 ]; then
  say "$failures check(s) failed"
  docker logs "$name" 2>&1 | tail -n 20
  exit 1
fi
say 'all checks passed'
