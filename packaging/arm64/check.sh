#!/usr/bin/env bash
# `make check-arm64`: the gateway on an emulated Raspberry Pi OS (Debian bookworm arm64, Python 3.11).
#
# Builds (once, cached) an arm64 Debian root with debootstrap under qemu-user, installs ONLY '.[edge]' in a
# venv inside it (plus the test runner), and runs there: `xiaoqu profile validate`, `xiaoqu edge check`,
# the detector, profile and contract tests, and a gateway for ~30 s against a simulated Modbus device (on
# the host) and the host's broker on 127.0.0.1, asserting its telemetry arrived.
#
# Needs root (debootstrap, chroot, binfmt_misc). Cache: $XQ_ARM64_CACHE (default /var/cache/xiaoqu-arm64),
# one root per Debian suite; delete it to rebuild. Broker: $XQ_ARM64_MQTT (default mqtt://127.0.0.1:1883).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
SUITE=${XQ_ARM64_SUITE:-bookworm}
MIRROR=${XQ_ARM64_MIRROR:-http://deb.debian.org/debian}
CACHE=${XQ_ARM64_CACHE:-/var/cache/xiaoqu-arm64}
ROOT=$CACHE/$SUITE
HOST_PY=${HOST_PY:-$REPO/.venv/bin/python}
MQTT=${XQ_ARM64_MQTT:-mqtt://127.0.0.1:1883}
T0=$SECONDS
step() { echo "== arm64 [$((SECONDS - T0)) s] $*"; }

[ "$(id -u)" = 0 ] || { echo "check-arm64 needs root (debootstrap, chroot, binfmt_misc)" >&2; exit 2; }
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
[ -x /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
if ((${#need[@]})); then
  step "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi

# arm64 binaries run through qemu-aarch64 via binfmt_misc (the 'F' flag: the interpreter is opened now,
# so it works inside the chroot without a copy of qemu there).
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  update-binfmts --import qemu-aarch64 >/dev/null 2>&1 || true
  update-binfmts --enable qemu-aarch64
fi

mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT

if [ ! -e "$ROOT/.xq-debootstrap-done" ]; then
  step "debootstrap $SUITE arm64 into $ROOT (first run only)"
  rm -rf "$ROOT.tmp"
  mkdir -p "$CACHE"
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip \
    "$SUITE" "$ROOT.tmp" "$MIRROR"
  rm -rf "$ROOT"
  mv "$ROOT.tmp" "$ROOT"
  touch "$ROOT/.xq-debootstrap-done"
fi

# /proc and /dev for Python; NOT /sys: onnxruntime's CPU detection segfaults under qemu when it is there.
for m in proc dev; do
  mkdir -p "$ROOT/$m"
  if [ "$m" = proc ]; then mount -t proc proc "$ROOT/proc"; else mount --bind /dev "$ROOT/dev"; fi
  mounted+=("$ROOT/$m")
done
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"  # pip reaches the package index from inside
# Trust what the host trusts (a CI network may intercept TLS with its own CA) and use its proxy, if any.
cp -L /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/xq-host-ca.crt"
ROOT_ENV=(HOME=/root PATH=/opt/xiaoqu/venv/bin:/usr/bin:/bin LANG=C.UTF-8 PIP_CERT=/etc/xq-host-ca.crt
          SSL_CERT_FILE=/etc/xq-host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180)
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  [ -n "${!v:-}" ] && ROOT_ENV+=("$v=${!v}")
done
in_root() { chroot "$ROOT" /usr/bin/env -i "${ROOT_ENV[@]}" "$@"; }
step "root: $(in_root uname -m), $(in_root python3 --version)"

step "copying the source tree and installing '.[edge]' (the venv and pip's cache persist in the root)"
rm -rf "$ROOT/opt/xiaoqu/src"
mkdir -p "$ROOT/opt/xiaoqu/src"
git ls-files -z --cached --others --exclude-standard | tar -C "$REPO" --null -T - -cf - | tar -C "$ROOT/opt/xiaoqu/src" -xf -
[ -x "$ROOT/opt/xiaoqu/venv/bin/python" ] || in_root python3 -m venv /opt/xiaoqu/venv
in_root pip install -q '/opt/xiaoqu/src[edge]'
# The test runner and the detector tests' fixtures (skimage's sample photos) — test tools, not the gateway.
in_root pip install -q pytest pytest-asyncio pytest-timeout hypothesis scikit-image
if in_root python -c 'import psycopg' 2>/dev/null; then
  echo "the edge install pulled in psycopg" >&2; exit 1
fi

step "xiaoqu profile validate"
# the profiles as installed (from /, so that the source tree's copy is not the one imported)
in_root sh -c 'cd / && xiaoqu profile validate "$(python -c "import device_profiles as p, os; print(os.path.dirname(p.__file__))")"'
step "xiaoqu edge check"
in_root sh -c 'cd /opt/xiaoqu/src && xiaoqu edge check --config edge/examples/gateway.yaml'

step "tests: detectors (real ONNX), profiles, contract"
# Timing-sensitive tests (integration, real time) are left out: emulation is ~10x slower.
in_root sh -c 'cd /opt/xiaoqu/src && python -m pytest -q --timeout 900 \
  tests/edge/video/test_detectors.py tests/device_profiles tests/contract'

step "a gateway for ~30 s against a simulated Modbus device and the host's broker ($MQTT)"
"$HOST_PY" packaging/arm64/gateway_smoke.py --root "$ROOT" --mqtt "$MQTT" --seconds 30 -- \
  chroot "$ROOT" /usr/bin/env -i "${ROOT_ENV[@]}" xiaoqu edge run --config /tmp/xq-arm64-gateway.yaml

step "OK: arm64 checks passed in $((SECONDS - T0)) s"
