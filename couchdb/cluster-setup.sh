#!/bin/sh
# Joins CouchDB nodes into one cluster with the _cluster_setup API, then runs
# setup-kpi-user.sh on it (POSIX sh + curl). compose.yaml's `cluster` profile
# runs it once, in its own container, after the nodes answer.
#
#   COUCHDB_NODES (couchdb1 couchdb2 couchdb3)   host names, the first coordinates;
#                                                each node's NODENAME is its host name
#   COUCHDB_USER, COUCHDB_PASSWORD               the admin, the same on every node
#   KPI_SETUP_WAIT_SECONDS (180)                 how long to wait for the nodes
#   and what setup-kpi-user.sh reads (KPI_COUCHDB_USER, KPI_COUCHDB_PASSWORD, KPI_DB …)
#
# Idempotent: a node that is already enabled, already added or a cluster
# that is already finished is taken as it is, so it is safe to run again
# (after a restart, with a node replaced).
set -euf

here=$(dirname "$0")
# shellcheck source=couchdb/http.sh
. "$here/http.sh"

fail() {
  echo "cluster-setup: $*" >&2
  exit 1
}

nodes=${COUCHDB_NODES:-couchdb1 couchdb2 couchdb3}
admin=${COUCHDB_USER:?"set COUCHDB_USER, the admin of every node"}
admin_password=${COUCHDB_PASSWORD:?"set COUCHDB_PASSWORD"}
wait_seconds=${KPI_SETUP_WAIT_SECONDS:-180}
count=0
for node in $nodes; do count=$((count + 1)); done
coordinator=${nodes%% *}
url="http://$coordinator:5984"

admin_auth=$(credentials_file "$admin" "$admin_password")
trap 'rm -f "$admin_auth"' EXIT
quoted_admin=$(json_escape "$admin")
quoted_password=$(json_escape "$admin_password")

# 1. Every node answers, and knows the admin.
for node in $nodes; do
  wait_up "http://$node:5984" "$wait_seconds" || fail "node $node is not up"
  require_admin "$admin_auth" "http://$node:5984" || fail "COUCHDB_USER is not an admin of $node: every node needs the same admin"
done

# 2. One uuid for the cluster (replication checkpoints are keyed by it): the coordinator's.
request "$admin_auth" GET "$url/_node/_local/_config/couchdb/uuid"
[ "$status" = 200 ] || fail "cannot read the uuid of $coordinator: $status $body"
uuid=$body
for node in $nodes; do
  request "$admin_auth" GET "http://$node:5984/_node/_local/_config/couchdb/uuid"
  if [ "$body" != "$uuid" ]; then
    request "$admin_auth" PUT "http://$node:5984/_node/_local/_config/couchdb/uuid" "$uuid"
    [ "$status" = 200 ] || fail "cannot set the uuid of $node: $status $body"
    echo "cluster-setup: $node takes the cluster's uuid"
  fi
done

# 3. enable_cluster on each node. The official image binds every address and
#    has its admin already, which CouchDB counts as enabled: then it answers
#    400 "Cluster is already enabled", which is as good.
for node in $nodes; do
  request "$admin_auth" POST "http://$node:5984/_cluster_setup" \
    "{\"action\":\"enable_cluster\",\"bind_address\":\"0.0.0.0\",\"username\":\"$quoted_admin\",\"password\":\"$quoted_password\",\"port\":5984,\"node_count\":\"$count\"}"
  case "$status:$body" in
    201:*) echo "cluster-setup: $node enabled" ;;
    400:*enabled*) echo "cluster-setup: $node was enabled already" ;;
    *) fail "enable_cluster on $node: $status $body" ;;
  esac
done

# _membership: cluster_nodes are the members (the _nodes database), all_nodes
# the nodes connected now (mem3_httpd); a connected node need not be a member.
membership_list() {
  printf '%s' "$body" | sed -n "s/.*\"$1\":\[\([^]]*\)\].*/\1/p"
}

# 4. add_node, from the coordinator, for every other node not yet a member.
for node in $nodes; do
  [ "$node" = "$coordinator" ] && continue
  request "$admin_auth" GET "$url/_membership"
  case "$(membership_list cluster_nodes)" in
    *"\"couchdb@$node\""*)
      echo "cluster-setup: $node is a member already"
      continue
      ;;
  esac
  request_retrying "$wait_seconds" "$admin_auth" POST "$url/_cluster_setup" \
    "{\"action\":\"add_node\",\"host\":\"$node\",\"port\":5984,\"username\":\"$quoted_admin\",\"password\":\"$quoted_password\"}"
  case "$status" in
    201) echo "cluster-setup: $node added" ;;
    409) echo "cluster-setup: $node was added already" ;;
    *) fail "add_node $node: $status $body" ;;
  esac
done

# 5. finish_cluster: the system databases, once, for the whole cluster.
request_retrying "$wait_seconds" "$admin_auth" POST "$url/_cluster_setup" '{"action":"finish_cluster"}'
case "$status:$body" in
  201:*) echo "cluster-setup: cluster finished" ;;
  400:*finished*) echo "cluster-setup: cluster was finished already" ;;
  *) fail "finish_cluster: $status $body" ;;
esac

# 6. Every node a member (cluster_nodes) and connected (all_nodes).
waited=0
while :; do
  request "$admin_auth" GET "$url/_membership"
  members=$(membership_list cluster_nodes)
  connected=$(membership_list all_nodes)
  missing=''
  for node in $nodes; do
    case "$members|$connected" in
      *"\"couchdb@$node\""*'|'*"\"couchdb@$node\""*) ;;
      *) missing="$missing $node" ;;
    esac
  done
  [ -z "$missing" ] && break
  [ "$waited" -ge "$wait_seconds" ] && fail "nodes not members or not connected after ${wait_seconds}s:$missing ($body)"
  sleep 2
  waited=$((waited + 2))
done
request "$admin_auth" GET "$url/_cluster_setup"
echo "cluster-setup: $count nodes connected ($body)"

# 7. kpi-live's user and databases, on the cluster. exec runs no EXIT trap:
#    the admin's credentials file goes first.
rm -f "$admin_auth"
trap - EXIT
export COUCHDB_URL="$url"
exec sh "$here/setup-kpi-user.sh"
