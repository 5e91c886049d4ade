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
# run runs the test binary as the user, with the flags given.
run() {
  (
    cd "$work/src/tests"
    env -i PATH="$PATH" TERM="${TERM:-dumb}" LANG="${LANG:-C.UTF-8}" ${CI:+CI=$CI} \
      HOME="$work/home" XDG_RUNTIME_DIR="$work/run" USER="$user" LOGNAME="$user" \
      NSLAB_TEST_CLI="$work/nslab" \
      timeout --kill-after=30s 25m \
      setpriv --reuid="$uid" --regid="$gid" --init-groups \
      "$work/tests.test" -test.count=1 -test.timeout=20m -test.v "$@"
  ) >>"$log" 2>&1
}
# TestBigLabs runs last, by itself: under root it waits until the kernel
# has freed its 10,000 namespaces (the count is in /sys/kernel/slab, which
# only root reads), and without that wait the tests after it found the
# kernel still dismantling them (a switch's ports not up after 10 s).
# NSLAB_TEST_SKIP skips more tests (a -test.skip pattern of top-level
# tests, without slashes).
set +e
run -test.skip "${NSLAB_TEST_SKIP:+$NSLAB_TEST_SKIP|}^TestBigLabs\$" "$@"
code=$?
run -test.run '^TestBigLabs$' -test.skip "${NSLAB_TEST_SKIP:-^\$}" "$@"
code2=$?
[ "$code" != 0 ] || code=$code2
set -e
t2=$(date +%s.%N)

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }
count() { grep -c -E "$1" "$log" || true; }
reason='^\s+[a-z_0-9]+_test\.go:[0-9]+: root only: '
rootonly=$(count "$reason")
skipped=$(count '^\s*--- SKIP')
if [ "$code" != 0 ]; then
  cat "$log"
fi
echo "test-rootless: skipped, root only by nature:"
awk '/^ +[a-z_0-9]+_test\.go:[0-9]+: root only: / { sub(/^ +[a-z_0-9]+_test\.go:[0-9]+: /, ""); why = $0 }
  /^ *--- SKIP: / && why != "" { print "  " $3 ": " why; why = "" }' "$log"
echo "test-rootless: the slowest tests:"
awk '/^--- (PASS|FAIL): / { d = $4; gsub(/[()s]/, "", d); printf "  %-40s %7.1f s\n", $3, d }' "$log" | sort -k2 -rn | sed -n 1,5p
echo "test-rootless: as $user (uid $uid): tests $(count '^--- PASS') passed, $(count '^--- FAIL') failed, $(count '^--- SKIP') skipped;" \
  "with subtests $(count '^\s*--- PASS') passed, $(count '^\s*--- FAIL') failed, $skipped skipped ($rootonly root only);" \
  "$(secs "$t1" "$t2") s (building $(secs "$t0" "$t1") s); exit $code"
if [ "$code" = 0 ] && [ "$skipped" != "$rootonly" ]; then
  echo "test-rootless: a test skipped that is not root-only by nature (the suite must not skip):" >&2
  grep -E -A1 '^\s*--- SKIP' "$log" >&2
  exit 1
fi
exit "$code"
