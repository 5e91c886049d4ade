#!/usr/bin/env bash
# make test-rootless: the integration suite of tests/ as an ordinary user
# (docs/rootless.md, "Tests"). Run as root: it builds the test binary and
# the nslab CLI as root (the user needs no Go toolchain), makes the user if
# missing (NSLAB_TEST_USER, default nslab-test: a system user with no home
# and no login shell), gives it a HOME and an XDG_RUNTIME_DIR of its own
# (mode 0700) in a temporary directory, and runs the suite as that user.
# The test binary then runs itself again in a user namespace of its own
# (tests/helpers_test.go, runRootless), where every test runs as root of
# that namespace; the tests that are root-only by nature skip, saying so,
# and any other skip fails this script.
#
# usage: tests/rootless.sh [GO] [test binary flags...]
set -euo pipefail
GO=${1:-go}
shift || true
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "test-rootless: run as root: it makes an ordinary user and runs the suite as that user" >&2
  exit 2
fi
for prog in setpriv useradd; do
  command -v "$prog" >/dev/null || { echo "test-rootless: needs $prog (util-linux, passwd)" >&2; exit 2; }
done
user=${NSLAB_TEST_USER:-nslab-test}
if ! id -u "$user" >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --user-group "$user"
  echo "test-rootless: made the user $user"
fi
uid=$(id -u "$user")
gid=$(id -g "$user")

work=$(mktemp -d /tmp/nslab-rootless-XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
t0=$(date +%s.%N)
"$GO" build -buildvcs=auto -o "$work/nslab" ./cmd/nslab
"$GO" test -c -o "$work/tests.test" ./tests
# What the tests read relative to their package directory, copied: the
# checkout may be closed to the user (a 0700 home).
for d in tests/testdata topologies emulator/nslabtest/testdata graph/testdata; do
  mkdir -p "$work/src/$(dirname "$d")"
  cp -r "$d" "$work/src/$d"
done
chmod -R a+rX "$work/src"
mkdir -m 700 "$work/home" "$work/run"
chown "$uid:$gid" "$work/home" "$work/run"
t1=$(date +%s.%N)

log=$work/test.log
set +e
(
  cd "$work/src/tests"
  env -i PATH="$PATH" TERM="${TERM:-dumb}" LANG="${LANG:-C.UTF-8}" ${CI:+CI=$CI} \
    HOME="$work/home" XDG_RUNTIME_DIR="$work/run" USER="$user" LOGNAME="$user" \
    NSLAB_TEST_CLI="$work/nslab" \
    timeout --kill-after=30s 25m \
    setpriv --reuid="$uid" --regid="$gid" --init-groups \
    "$work/tests.test" -test.count=1 -test.timeout=20m -test.v "$@"
) >"$log" 2>&1
code=$?
set -e
t2=$(date +%s.%N)

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }
passed=$(grep -c -E '^\s*--- PASS' "$log" || true)
failed=$(grep -c -E '^\s*--- FAIL' "$log" || true)
skipped=$(grep -c -E '^\s*--- SKIP' "$log" || true)
reason='^\s+[a-z_0-9]+_test\.go:[0-9]+: root only: '
rootonly=$(grep -c -E "$reason" "$log" || true)
if [ "$code" != 0 ]; then
  cat "$log"
fi
echo "test-rootless: skipped, root only by nature:"
grep -E -B1 "$reason" "$log" | grep -E -e '--- SKIP' -e 'root only' | sed 's/^/  /' || true
echo "test-rootless: as $user (uid $uid): $passed passed, $failed failed, $skipped skipped ($rootonly root only) in $(secs "$t1" "$t2") s (building $(secs "$t0" "$t1") s); exit $code"
if [ "$code" = 0 ] && [ "$skipped" != "$rootonly" ]; then
  echo "test-rootless: a test skipped that is not root-only by nature (the suite must not skip):" >&2
  grep -E -A1 '^\s*--- SKIP' "$log" >&2
  exit 1
fi
exit "$code"
