#!/usr/bin/env bash
# Runs a command as on a machine without ping, tcpdump, iperf3 and the
# like: PATH becomes one directory of links to every program on the real
# PATH but those. `make test` runs the suite with the machine's tools;
# `make test-without-tools` runs the tests of node commands again this way.
set -euo pipefail
hide=(ping ping4 ping6 tcpdump iperf iperf3 nc ncat netcat curl wget socat)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do
  [ -d "$d" ] || continue
  for f in "$d"/*; do
    n=${f##*/}
    [ -x "$f" ] && [ ! -e "$dir/$n" ] || continue
    case " ${hide[*]} " in *" $n "*) continue ;; esac
    ln -s "$f" "$dir/$n"
  done
done
chmod 755 "$dir"
for n in "${hide[@]}"; do
  if PATH=$dir command -v "$n" >/dev/null; then echo "without-tools: $n still found" >&2; exit 1; fi
done
PATH=$dir "$@"
