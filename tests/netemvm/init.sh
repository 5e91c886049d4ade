#!/bin/busybox sh
# /init of the throwaway netem VM that tests/netemvm boots. Its console is
# the host harness's input: lines starting with "NETEMVM " are its markers,
# everything else is the go test -v output, shown as it comes.
#
# The archive holds busybox, the modules with /lib/modules/order (dependencies
# first), and per run /netemvm/tests ("DIR NAME" a line: run /netemvm/DIR/NAME
# in /netemvm/DIR, where the package's testdata is) and /netemvm/args (one
# argument of the test binaries a line).
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TMPDIR=/tmp
# Tests may allow for the emulated CPU's timing (impair's delay bounds).
export NSLAB_NETEMVM=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
ip link set lo up
echo "NETEMVM BOOTED kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"

ok=1
while read -r m; do
	insmod "/lib/modules/$m.ko" || { echo "NETEMVM INSMOD-FAILED $m"; ok=0; }
done < /lib/modules/order

set --
while IFS= read -r a; do set -- "$@" "$a"; done < /netemvm/args
if [ $ok = 1 ]; then
	while read -r dir name; do
		(cd "/netemvm/$dir" && exec "./$name" -test.v "$@")
		echo "NETEMVM EXIT $name $?"
	done < /netemvm/tests
fi
echo "NETEMVM DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
