#!/bin/sh
# Makes kpi-live's own CouchDB user and kpi-live's databases, as the CouchDB
# admin, so that kpi-live itself needs no admin rights (POSIX sh + curl).
#
#   COUCHDB_URL                      CouchDB, e.g. http://couchdb:5984 (no credentials in it)
#   COUCHDB_USER, COUCHDB_PASSWORD   a server admin
#   KPI_COUCHDB_USER (kpi_live)      kpi-live's user ...
#   KPI_COUCHDB_PASSWORD             ... and its password
#   KPI_DB (kpi_blobs), KPI_AGGREGATES_DB (<KPI_DB>_aggregates)   as kpi-live is configured
#   KPI_SETUP_WAIT_SECONDS (120)     how long to wait for CouchDB to answer
#
# The user goes to _users (no roles). Each database, made if missing, gets
# _security with the user as its only member and as a database admin
# (database admins may write kpi-live's design document and _security;
# server admins keep access through the _admin role). Running it again
# changes nothing but a changed password. If KPI_COUCHDB_USER is the admin,
# only the databases are made.
#
# What a non-admin user cannot do: CouchDB 3 lets only server admins _purge,
# so retention keeps the tombstones of removed blobs (docs/operations.md, Retention), and
# create databases, so a new kpi-live database needs this script again.
set -euf

here=$(dirname "$0")
# shellcheck source=couchdb/http.sh
. "$here/http.sh"

fail() {
  echo "setup-kpi-user: $*" >&2
  exit 1
}

url=${COUCHDB_URL:?"set COUCHDB_URL"}
url=${url%/}
admin=${COUCHDB_USER:?"set COUCHDB_USER, a CouchDB server admin"}
admin_password=${COUCHDB_PASSWORD:?"set COUCHDB_PASSWORD"}
user=${KPI_COUCHDB_USER:-kpi_live}
user_password=${KPI_COUCHDB_PASSWORD:?"set KPI_COUCHDB_PASSWORD, the password of the CouchDB user of kpi-live"}
db=${KPI_DB:-kpi_blobs}
aggregates_db=${KPI_AGGREGATES_DB:-${db}_aggregates}

case "$user" in
  '' | _* | *[!A-Za-z0-9_.@-]*) fail "KPI_COUCHDB_USER must be letters, digits or . _ @ - (not starting with _), not '$user'" ;;
esac
[ "${#user_password}" -ge 12 ] || fail 'KPI_COUCHDB_PASSWORD must have at least 12 characters'
databases="$db $aggregates_db ${db}_deploys ${db}_alerts ${db}_sessions"
for name in $databases; do
  # shellcheck disable=SC2016 # the $ is one of the characters CouchDB allows
  printf '%s' "$name" | grep -Eq '^[a-z][a-z0-9_$()+-]*$' ||
    fail "database name '$name' is not one CouchDB takes here: a lower-case letter, then a-z 0-9 _ \$ ( ) + -"
done

admin_auth=$(credentials_file "$admin" "$admin_password")
user_auth=$(credentials_file "$user" "$user_password")
trap 'rm -f "$admin_auth" "$user_auth"' EXIT

wait_up "$url" "${KPI_SETUP_WAIT_SECONDS:-120}" || fail "CouchDB at $url is not up"
require_admin "$admin_auth" "$url" || fail 'cannot continue without a server admin'

# _users: a single node makes it at start, a cluster at finish_cluster; made here if neither did.
request "$admin_auth" GET "$url/_users"
if [ "$status" = 404 ]; then
  request "$admin_auth" PUT "$url/_users"
  case "$status" in 201 | 202 | 412) ;; *) fail "cannot create _users: $status $body" ;; esac
fi

if [ "$user" = "$admin" ]; then
  echo "setup-kpi-user: kpi-live signs in as the admin ($admin): no user of its own to make"
else
  request "$user_auth" GET "$url/_session"
  case "$body" in
    *"\"name\":\"$user\""*)
      echo "setup-kpi-user: user $user exists and its password is the one given"
      ;;
    *)
      doc="org.couchdb.user:$user"
      request "$admin_auth" GET "$url/_users/$doc"
      rev=''
      case "$status" in
        200) rev=$(printf '%s' "$body" | sed -n 's/.*"_rev":"\([^"]*\)".*/\1/p') ;;
        404) ;;
        *) fail "cannot read _users/$doc: $status $body" ;;
      esac
      fields="\"_id\":\"$doc\",\"name\":\"$user\",\"type\":\"user\",\"roles\":[],\"password\":\"$(json_escape "$user_password")\""
      [ -z "$rev" ] || fields="$fields,\"_rev\":\"$rev\""
      request "$admin_auth" PUT "$url/_users/$doc" "{$fields}"
      case "$status" in
        201 | 202) if [ -n "$rev" ]; then echo "setup-kpi-user: user $user: password changed"; else echo "setup-kpi-user: user $user created"; fi ;;
        *) fail "cannot write _users/$doc: $status $body" ;;
      esac
      ;;
  esac
fi

if [ "$user" = "$admin" ]; then
  security='{"admins":{"names":[],"roles":["_admin"]},"members":{"names":["'"$user"'"],"roles":["_admin"]}}'
else
  security='{"admins":{"names":["'"$user"'"],"roles":["_admin"]},"members":{"names":["'"$user"'"],"roles":["_admin"]}}'
fi
for name in $databases; do
  request "$admin_auth" GET "$url/$name"
  case "$status" in
    200) made='exists' ;;
    404)
      request "$admin_auth" PUT "$url/$name"
      case "$status" in
        201 | 202) made='created' ;;
        412) made='exists' ;;
        *) fail "cannot create database $name: $status $body" ;;
      esac
      ;;
    *) fail "cannot read database $name: $status $body" ;;
  esac
  request "$admin_auth" PUT "$url/$name/_security" "$security"
  [ "$status" = 200 ] || fail "cannot set _security of $name: $status $body"
  echo "setup-kpi-user: database $name $made; members: $user and server admins"
done
