# shellcheck shell=sh
# Shared by setup-kpi-user.sh and cluster-setup.sh (POSIX sh + curl; sourced,
# not run). Credentials and request bodies go to curl through files and
# stdin, never on its command line, where other processes could read them.

# Quotes a value for a JSON string (and for a curl config string): \ and ".
json_escape() {
  printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'
}

# A curl config file (mode 0600) that signs in as $1:$2; prints its path.
credentials_file() {
  file=$(mktemp)
  chmod 600 "$file"
  printf 'user = "%s:%s"\n' "$(json_escape "$1")" "$(json_escape "$2")" >"$file"
  printf '%s\n' "$file"
}

# request CREDENTIALS_FILE|- METHOD URL [BODY]
# Sets $status (HTTP status, 000 when there was no answer) and $body.
request() {
  answer=$(mktemp)
  if [ "$1" = - ]; then auth=''; else auth="--config $1"; fi
  # shellcheck disable=SC2086 # $auth is empty or two words on purpose
  if [ $# -ge 4 ]; then
    status=$(printf '%s' "$4" | curl -sS --max-time 30 $auth -o "$answer" -w '%{http_code}' -X "$2" \
      -H 'Content-Type: application/json' -H 'Accept: application/json' --data-binary @- "$3" 2>/dev/null) || true
  else
    status=$(curl -sS --max-time 30 $auth -o "$answer" -w '%{http_code}' -X "$2" -H 'Accept: application/json' "$3" 2>/dev/null) || true
  fi
  [ -n "$status" ] || status=000
  body=$(cat "$answer")
  rm -f "$answer"
}

# Waits until GET $1/_up answers 200 (at most $2 seconds).
wait_up() {
  waited=0
  while :; do
    request - GET "$1/_up"
    [ "$status" = 200 ] && return 0
    if [ "$waited" -ge "$2" ]; then
      echo "no answer 200 from $1/_up after ${2}s (last: $status $body)" >&2
      return 1
    fi
    sleep 2
    waited=$((waited + 2))
  done
}

# Fails unless the credentials sign in as a server admin of $2.
require_admin() {
  request "$1" GET "$2/_session"
  case "$body" in
    *'"roles":['*'"_admin"'*) return 0 ;;
  esac
  echo "COUCHDB_USER does not sign in as a server admin of $2 ($status $body)" >&2
  return 1
}

# request_retrying: as request, but asks again while there is no answer or a
# 5xx (a node still starting, nodes still connecting), for at most $2 seconds
# more than request's own; $1..: as request, shifted by one.
request_retrying() {
  limit=$1
  shift
  tried=0
  while :; do
    request "$@"
    case "$status" in
      000 | 5??) ;;
      *) return 0 ;;
    esac
    [ "$tried" -ge "$limit" ] && return 0
    sleep 2
    tried=$((tried + 2))
  done
}
