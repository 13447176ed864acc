#!/bin/sh
# Starts a CouchDB node of compose.yaml (official couchdb:3 image) with
# kpi-live's settings, then hands over to the image's own entrypoint.
#
#   KPI_COUCHDB_ROLE=single (default): local.ini
#   KPI_COUCHDB_ROLE=cluster: local.ini + cluster.ini; COUCHDB_SECRET,
#     COUCHDB_ERLANG_COOKIE and NODENAME must be set (compose cannot require
#     them itself: it checks required variables in every profile at once)
#
# The settings are copied into local.d rather than mounted there: the image's
# entrypoint touches, chowns and chmods files in local.d and stops when it
# cannot. They are named to sort before docker.ini, where CouchDB keeps the
# settings it changes at run time.
set -eu

here=$(dirname "$0")
local_d=/opt/couchdb/etc/local.d
role=${KPI_COUCHDB_ROLE:-single}

require() {
  eval "value=\${$1:-}"
  if [ -z "$value" ]; then
    echo "couchdb-start: $1 must be set for a cluster node ($2)" >&2
    exit 1
  fi
}

case "$role" in
  single)
    rm -f "$local_d/06-kpi-live-cluster.ini"
    ;;
  cluster)
    require COUCHDB_SECRET 'the same on every node: it signs session cookies'
    require COUCHDB_ERLANG_COOKIE 'the same on every node: it lets the nodes talk'
    require NODENAME 'the host name the other nodes reach this one by'
    cp "$here/cluster.ini" "$local_d/06-kpi-live-cluster.ini"
    ;;
  *)
    echo "couchdb-start: KPI_COUCHDB_ROLE must be single or cluster, not '$role'" >&2
    exit 1
    ;;
esac
cp "$here/local.ini" "$local_d/05-kpi-live.ini"

exec /usr/local/bin/docker-entrypoint.sh /opt/couchdb/bin/couchdb
