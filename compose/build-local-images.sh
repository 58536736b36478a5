#!/usr/bin/env bash
# Builds combo-local/envoy, combo-local/python and combo-local/etcd FROM scratch, with no pull:
# each binary with exactly the shared libraries `ldd` names and the dynamic
# loader. Usage: build-local-images.sh ENVOY_BINARY [NATIVE_MODULE]
# (the Envoy image then also has the libraries the native module links to).
set -euo pipefail
envoy_bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The shared libraries a binary links to, and its dynamic loader.
libs() {
  ldd "$1" | awk '/=> \//{print $3} /^[ \t]*\//{print $1}'
}

# Copies each binary and every library it links to, at the same paths.
rootfs() {
  local root=$1; shift
  for bin in "$@"; do
    install -D "$bin" "$root$bin"
    libs "$bin" | while read -r lib; do
      install -D "$(readlink -f "$lib")" "$root$lib"
    done
  done
  mkdir -p "$root/tmp" "$root/etc"
  echo 'root:x:0:0:root:/:/bin/bash' > "$root/etc/passwd"
}

# Envoy, plus bash and grep for the healthcheck in docker-compose.yml.
mkdir -p "$work/envoy"
rootfs "$work/envoy/rootfs" /bin/bash /bin/grep
install -D "$envoy_bin" "$work/envoy/rootfs/usr/local/bin/envoy"
for bin in "$envoy_bin" ${2:+"$2"}; do
  libs "$bin" | while read -r lib; do
    install -D "$(readlink -f "$lib")" "$work/envoy/rootfs$lib"
  done
done
cat > "$work/envoy/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/bin
ENTRYPOINT []
CMD ["envoy", "--version"]
DOCKERFILE
docker build -q -t combo-local/envoy:v1.40.0 "$work/envoy"

# Python 3 with its standard library (tests and caches left out).
mkdir -p "$work/python"
rootfs "$work/python/rootfs" /usr/bin/python3.11
ln -s python3.11 "$work/python/rootfs/usr/bin/python3"
mkdir -p "$work/python/rootfs/usr/lib"
tar -C /usr/lib --exclude='python3.11/test' --exclude='__pycache__' --exclude='python3.11/idlelib' \
  --exclude='python3.11/tkinter' --exclude='python3.11/ensurepip' -cf - python3.11 | tar -C "$work/python/rootfs/usr/lib" -xf -
cat > "$work/python/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/bin:/bin
CMD ["python3", "--version"]
DOCKERFILE
docker build -q -t combo-local/python:3 "$work/python"

# etcd (Debian's etcd-server binary).
mkdir -p "$work/etcd"
rootfs "$work/etcd/rootfs" "$(command -v etcd)"
cat > "$work/etcd/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin
CMD ["etcd", "--version"]
DOCKERFILE
docker build -q -t combo-local/etcd:3 "$work/etcd"

docker run --rm combo-local/envoy:v1.40.0 envoy --version
docker run --rm combo-local/etcd:3 etcd --version
docker run --rm combo-local/python:3 python3 --version
