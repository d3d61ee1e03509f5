#!/usr/bin/env bash
# A real container registry on loopback for the tests: Debian's docker-registry (Distribution
# 2.8) over TLS with a self-signed certificate and htpasswd (bcrypt) logins.
#   Tools/scripts/registry.sh start DIR PORT   -> prints export lines:
#       HANGAR_TEST_REGISTRY=127.0.0.1:PORT, HANGAR_TEST_REGISTRY_USER, HANGAR_TEST_REGISTRY_PASSWORD,
#       HANGAR_TEST_REGISTRY_CA (the certificate), CONTAINERS_REGISTRIES_CONF (a registries.conf
#       naming this registry insecure, for podman started after this)
#   Tools/scripts/registry.sh stop DIR
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?folder for the registry}
case "$cmd" in
start)
    port=${3:?port}
    mkdir -p "$dir/data"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1
    user=hangar-test
    password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    htpasswd -Bbn "$user" "$password" >"$dir/htpasswd" 2>/dev/null
    cat >"$dir/config.yml" <<YML
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  tls:
    certificate: $dir/cert.pem
    key: $dir/key.pem
auth:
  htpasswd:
    realm: hangar-test
    path: $dir/htpasswd
YML
    # podman verifies TLS against its own trust (certs.d); the tests' engine is told this
    # registry is insecure instead, so /etc is left alone. Hangar's own registry calls verify
    # or not as the registry's ssl_verify setting says.
    cat >"$dir/registries.conf" <<CONF
[[registry]]
location = "127.0.0.1:$port"
insecure = true
CONF
    (cd "$dir" && exec nohup docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1) &
    echo $! >"$dir/registry.pid"
    for _ in $(seq 100); do
        # 401 from /v2/: up, and asking for a login.
        [ "$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$port/v2/")" = 401 ] && {
            echo "export HANGAR_TEST_REGISTRY=127.0.0.1:$port HANGAR_TEST_REGISTRY_USER=$user HANGAR_TEST_REGISTRY_PASSWORD=$password"
            echo "export HANGAR_TEST_REGISTRY_CA=$dir/cert.pem HANGAR_TEST_REGISTRY_LOG=$dir/registry.log CONTAINERS_REGISTRIES_CONF=$dir/registries.conf"
            exit 0
        }
        sleep 0.1
    done
    echo "the registry did not come up; see $dir/registry.log" >&2
    cat "$dir/registry.log" >&2
    exit 1
    ;;
stop)
    [ -f "$dir/registry.pid" ] && kill "$(cat "$dir/registry.pid")" 2>/dev/null || true
    rm -rf "$dir"
    ;;
esac
