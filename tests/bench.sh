#!/usr/bin/env bash
# make bench: nslab's benchmarks, as medians, side by side with Mininet when
# it is installed, all in one run on this machine. Writes bench-out/.
#   tests/bench.sh [BENCHTIME]     BENCHTIME as for go test (default 5x)
#   B2B_CYCLES=N tests/bench.sh    cycles of each back-to-back loop (default 10)
#   BIG=0 tests/bench.sh           without the 10,000-node labs (saves ~3 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
benchtime=${1:-5x}
out=bench-out
mkdir -p "$out"
[ "$(id -u)" = 0 ] || { echo "bench: run as root (the benchmarks build real labs)" >&2; exit 1; }

thresh3=$(cat /proc/sys/net/ipv4/neigh/default/gc_thresh3)

# Mininet raises machine-wide limits when it starts (the neighbour table
# among them, which changes how nslab's pingall runs): put back what it
# changes once its runs are over.
mn_keys="fs.file-max net.core.wmem_max net.core.rmem_max net.ipv4.tcp_rmem net.ipv4.tcp_wmem net.core.netdev_max_backlog net.ipv4.neigh.default.gc_thresh1 net.ipv4.neigh.default.gc_thresh2 net.ipv4.neigh.default.gc_thresh3 net.ipv4.route.max_size kernel.pty.max"
saved_sysctls=$(sysctl -e $mn_keys 2>/dev/null || true)
restore_sysctls() {
  while IFS= read -r line; do
    [ -n "$line" ] && sysctl -qw "${line%% = *}=${line#* = }" >/dev/null 2>&1 || true
  done <<<"$saved_sysctls"
}
trap restore_sysctls EXIT

echo "== nslab benchmarks (go test -bench; medians per benchmark)"
# Labs: -benchtime $benchtime builds of each. Probes: 500 samples each.
{
  go test -run '^$' -bench 'UpDown' -benchtime "$benchtime" -timeout 60m ./tests/
  go test -run '^$' -bench 'ExecTrue|Ping$|PingAll50$|NslabtestLab10' -benchtime 500x -timeout 20m ./tests/
  go test -run '^$' -bench 'PingAll50Cold' -benchtime 20x -timeout 20m ./tests/
  go test -run '^$' -bench 'Punch$' -benchtime 500x -timeout 20m ./tests/
  go test -run '^$' -bench 'PunchGrid' -benchtime "$benchtime" -timeout 20m ./tests/
  # Capture of a TCP stream at full veth speed: plain, to a pcapng file,
  # to nowhere, headers only (each iteration a one-second stream of each).
  go test -run '^$' -bench 'CaptureTCPStream' -benchtime "$benchtime" -timeout 20m ./tests/
  # Validating files of 1,000 and 10,000 hosts (target: under 0.5 s, linear
  # in size) and files with 2,000 and 20,000 unknown keys.
  go test -run '^$' -bench 'Validate|UnknownKeys' -benchtime "$benchtime" -timeout 10m ./topo/
  # Link impairments: linear,100 plain, with a rate on every link and with
  # rate and loss, built alternately; one run-time change, 500 calls.
  go test -run '^$' -bench 'ImpairUpLinear100' -benchtime "$benchtime" -timeout 30m ./tests/
  go test -run '^$' -bench 'ImpairChange' -benchtime 500x -timeout 20m ./tests/
  # Where a build's impairments phase goes, request by request.
  go test -run '^$' -bench 'ApplyNewParts' -benchtime 3x -timeout 10m ./impair/
  # Back to back: labs built, pinged once and torn down in a loop, each
  # cycle at once after the last (what a suite of many tests pays).
  go test -run '^$' -bench 'BackToBack' -benchtime "${B2B_CYCLES:-10}x" -timeout 30m ./tests/
  # Two-port switches three ways (a bridge, a tc mirred wire, a direct
  # veth): 100 built in throwaway namespaces and released, isolated and
  # back to back (issue 18 point 3).
  go test -run '^$' -bench 'TwoPortSwitches' -benchtime "$benchtime" -timeout 30m ./tests/
} | tee "$out/go-bench.txt"

# Without root (docs/rootless.md): the same builds and exec in
# tests/rootlessmain, run as root and as an ordinary user (uid 65534, in a
# user namespace of its own), alternately, side by side.
echo "== root and an ordinary user (tests/rootlessmain)"
go test -c -o "$out/rootlessmain.test" ./tests/rootlessmain/
chmod 755 "$out" "$out/rootlessmain.test"
rl_test=$(realpath "$out/rootlessmain.test")
rl_home=$(mktemp -d)
chown 65534:65534 "$rl_home"
: >"$out/rootless-bench.txt"
for who in root user root user; do
  if [ "$who" = root ]; then as=(); else as=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$rl_home" XDG_RUNTIME_DIR="$rl_home"); fi
  (cd tests/rootlessmain &&
    "${as[@]}" "$rl_test" -test.run '^$' -test.bench 'UpDown' -test.benchtime "$benchtime" &&
    "${as[@]}" "$rl_test" -test.run '^$' -test.bench 'ExecTrue' -test.benchtime 500x) |
    sed -n "s/^Benchmark/$who-Benchmark/p" | tee -a "$out/rootless-bench.txt"
done
rm -rf "$rl_home"

# Where the time goes (issue 18 point 4): nslab up and down as processes
# for single,100-1000 and linear,25-200, their CPU beside the kernel's,
# isolated and back to back; a data file and a plot.
echo "== where the time goes (tests/costs)"
go run ./tests/costs -nslab ./bin/nslab -json "$out/costs.json" -svg "$out/scale.svg" -md "$out/costs.md" >/dev/null

# Big labs (issue 18 point 1): the cost per node of single,10000 against
# single,1000 (up, down, the kernel's work after down, kernel memory and
# nslab's memory). About 3 minutes; BIG=0 leaves it out.
rm -f "$out/big.md"
if [ "${BIG:-1}" != 0 ]; then
  echo "== big labs: single,1000 against single,10000 (tests/costs)"
  go run ./tests/costs -nslab ./bin/nslab -labs "single,1000;single,10000" -reps 3 -cycles 1 \
    -json "$out/big.json" -svg "$out/big.svg" -md "$out/big.md" >/dev/null
fi

metric() { # metric BENCH UNIT -> value
  awk -v b="$1" -v u="$2" '$1 ~ "^"b"(-[0-9]+)?$" { for (i = 2; i < NF; i++) if ($(i+1) == u) print $i }' "$out/go-bench.txt"
}

mn_median() { # mn_median TOPO RUNS [TEST] -> median seconds of a whole mn run, runs back to back
  local topo=$1 runs=$2 test=${3:-none} t=()
  for _ in $(seq "$runs"); do
    local s e
    s=$(date +%s.%N)
    mn --switch lxbr --controller none --topo "$topo" --test "$test" >/dev/null 2>&1
    e=$(date +%s.%N)
    t+=("$(echo "$e - $s" | bc)")
  done
  printf '%s\n' "${t[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

{
  echo "# nslab benchmark report ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, kernel $(uname -r))"
  echo
  echo "up: until the lab is usable; down: until Down returns (names released); gone: until the kernel has removed every interface of the lab; freed: until it has freed every namespace."
  echo
  echo "| topology | up ms | down ms | gone ms | freed ms |"
  echo "|---|---|---|---|---|"
  for b in Single10 Single100 Single500 Single1000 Linear100; do
    echo "| $b | $(metric BenchmarkUpDown$b up-ms) | $(metric BenchmarkUpDown$b down-ms) | $(metric BenchmarkUpDown$b gone-ms) | $(metric BenchmarkUpDown$b freed-ms) |"
  done
  echo
  echo "| probe | median ms |"
  echo "|---|---|"
  echo "| exec of /bin/true in a node | $(metric BenchmarkExecTrue median-ms) |"
  echo "| one in-process ping | $(metric BenchmarkPing median-ms) |"
  echo "| pingall, 50 hosts (2,450 probes), repeated on one lab | $(metric BenchmarkPingAll50 median-ms) |"
  echo "| pingall, 50 hosts, the first on a new lab (no neighbour entry yet) | $(metric BenchmarkPingAll50Cold median-ms) |"
  echo "| a 10-host lab up and down through nslabtest | $(metric BenchmarkNslabtestLab10 median-ms) |"
  echo "| one hole punch: both mappings learned, punched at once (target < 50) | $(metric BenchmarkPunch median-ms) |"
  echo
  rl() { # rl WHO BENCH UNIT -> median of the runs
    awk -v b="$1-$2" -v u="$3" '$1 ~ "^"b"(-[0-9]+)?$" { for (i = 2; i < NF; i++) if ($(i+1) == u) print $i }' "$out/rootless-bench.txt" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
  }
  echo "Without root (docs/rootless.md): the same labs as root and as an ordinary user in a user namespace of its own (tests/rootlessmain; medians; target: within 20 %, exec under 2 ms)."
  echo
  echo "| | root | ordinary user |"
  echo "|---|---|---|"
  for b in Single100:single,100 Linear100:linear,100; do
    echo "| ${b#*:} up ms | $(rl root BenchmarkUpDown${b%%:*} up-ms) | $(rl user BenchmarkUpDown${b%%:*} up-ms) |"
    echo "| ${b#*:} down ms | $(rl root BenchmarkUpDown${b%%:*} down-ms) | $(rl user BenchmarkUpDown${b%%:*} down-ms) |"
  done
  echo "| exec of /bin/true ms | $(rl root BenchmarkExecTrue median-ms) | $(rl user BenchmarkExecTrue median-ms) |"
  echo
  echo "impair linear,100: up plain $(metric BenchmarkImpairUpLinear100 plain-up-ms) ms, with rate $(metric BenchmarkImpairUpLinear100 rate-up-ms) ms (+$(metric BenchmarkImpairUpLinear100 rate-added-ms)), with rate+loss $(metric BenchmarkImpairUpLinear100 loss-up-ms) ms (+$(metric BenchmarkImpairUpLinear100 loss-added-ms)); one change: median $(metric BenchmarkImpairChangeRate median-us) µs (target: under 50 ms added, under 1,000 µs a change)."
  echo "(The impairments phase alone: $(metric BenchmarkImpairUpLinear100 rate-phase-ms) ms with rate, $(metric BenchmarkImpairUpLinear100 loss-phase-ms) ms with rate+loss, eBPF loss where the kernel has no netem; one change of rate and loss: median $(metric BenchmarkImpairChangeRateLoss median-us) µs.)"
  for v in up down; do
    c="BenchmarkApplyNewParts/$v"
    echo "(Rate and eBPF loss on 200 new interfaces $v, a direction: TBF $(metric $c tbf-us) µs, pfifo $(metric $c fifo-us), clsact $(metric $c clsact-us), map $(metric $c map-us), classifier $(metric $c filter-us); all $(metric $c total-ms) ms.)"
  done
  echo
  c=BenchmarkCaptureTCPStream
  echo "Capture of a TCP stream at full veth speed (in-process iperf, 1 s; the sender's interface, both directions; default 4 MiB buffer): plain $(metric $c plain-Gbit/s) Gbit/s;"
  echo "to a pcapng file $(metric $c file-Gbit/s) Gbit/s (cost $(metric $c file-cost-%) %, kernel drops $(metric $c file-drops/run) of $(metric $c file-pkts/run) packets a run);"
  echo "to nowhere $(metric $c discard-Gbit/s) Gbit/s (cost $(metric $c discard-cost-%) %, drops $(metric $c discard-drops/run) of $(metric $c discard-pkts/run));"
  echo "headers only (-s 128) to a file $(metric $c headers-Gbit/s) Gbit/s (cost $(metric $c headers-cost-%) %, drops $(metric $c headers-drops/run) of $(metric $c headers-pkts/run))."
  echo
  echo "The hole-punch grid (every pair of NAT presets in every order, $(metric BenchmarkPunchGrid labs) labs each built, punched and torn down, 4 at a time): $(metric BenchmarkPunchGrid grid-s) s (target < 10 s)."
  echo
  echo "Back to back: each lab resolved, built, pinged once (first host to last) and torn down, the next cycle at once after Down, ${B2B_CYCLES:-10} cycles; drain: after the last Down, until the kernel has removed every interface."
  echo
  echo "| lab | cycle ms (median) | mean ms per cycle | drain ms |"
  echo "|---|---|---|---|"
  for b in Linear100:linear,100 Linear100EBPF:"linear,100 --datapath ebpf" Single100:single,100 Tree34:tree,3,4 Tree34EBPF:"tree,3,4 --datapath ebpf" NAT10:"NAT, 10 nodes"; do
    echo "| ${b#*:} | $(metric BenchmarkBackToBack${b%%:*} cycle-ms) | $(metric BenchmarkBackToBack${b%%:*} mean-ms) | $(metric BenchmarkBackToBack${b%%:*} drain-ms) |"
  done
  echo
  echo "Two-port switches, 100 built and released (a bridge, a tc mirred wire, nslab's eBPF learning switch, a direct veth; tests/datapath_bench_test.go):"
  echo
  echo "| switch made of | build ms | gone ms after release | per switch ms (build + gone) | slowest namespace creation meanwhile ms | back to back: cycle ms | drain ms |"
  echo "|---|---|---|---|---|---|---|"
  for b in bridge:"a Linux bridge" wire:"tc mirred wire" learning:"eBPF learning switch (datapath ebpf)" direct:"nothing: a direct veth"; do
    k=${b%%:*} t=BenchmarkTwoPortSwitches
    echo "| ${b#*:} | $(metric $t $k-build-ms) | $(metric $t $k-gone-ms) | $(metric $t $k-per-switch-ms) | $(metric $t $k-netns-ms) | $(metric $t $k-cycle-ms) | $(metric $t $k-drain-ms) |"
  done
  echo
  cat "$out/costs.md"
  echo
  echo "Plot of up, down and back-to-back time against size: $out/scale.svg (data: $out/costs.json)."
  echo
  if [ -f "$out/big.md" ]; then
    echo "Big labs, each size alone on a quiet kernel (target: cost per node at 10,000 within 1.3× of that at 1,000):"
    echo
    cat "$out/big.md"
    echo
  fi
  rss() { ./bin/nslab -v run --test none --name "bench-rss-$$" --topo "$1" 2>&1 | sed -n 's/.*max_rss_kib=\([0-9]*\).*/\1/p' | tail -1; }
  echo "Neighbour table limit during the benchmarks: net.ipv4.neigh.default.gc_thresh3 = $thresh3 (1,024 by default; at that limit a 50-host matrix runs in waves and every repeat is a first run)."
  echo
  echo "Peak memory of the nslab process (no process per node): single,10 $(rss single,10) KiB; single,1000 $(rss single,1000) KiB."
  echo
  if command -v mn >/dev/null; then
    runs=3
    mn_s=$(mn_median linear,100 $runs)
    up=$(metric BenchmarkUpDownLinear100 up-ms)
    down=$(metric BenchmarkUpDownLinear100 down-ms)
    gone=$(metric BenchmarkUpDownLinear100 gone-ms)
    ns_s=$(echo "scale=4; ($up + $gone) / 1000" | bc)
    nd_s=$(echo "scale=4; ($up + $down) / 1000" | bc)
    echo "Mininet \`mn --switch lxbr --controller none --topo linear,100 --test none\`: median of $runs runs ${mn_s} s;"
    echo "nslab linear,100 up + gone (until the kernel has removed every interface): ${ns_s} s; ratio $(echo "scale=1; $mn_s / $ns_s" | bc)x."
    echo "(up + down, until Down returns: ${nd_s} s; $(echo "scale=1; $mn_s / $nd_s" | bc)x.)"
    echo "Mininet back to back (--test pingpair, ${B2B_CYCLES:-10} runs in a row, median s): linear,100 $(mn_median linear,100 "${B2B_CYCLES:-10}" pingpair), single,100 $(mn_median single,100 "${B2B_CYCLES:-10}" pingpair), tree,3,4 $(mn_median tree,3,4 "${B2B_CYCLES:-10}" pingpair)."
  else
    echo "Mininet is not installed (apt-get install mininet): no side-by-side figure."
  fi
} | tee "$out/report.md"
