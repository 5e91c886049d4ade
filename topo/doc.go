// Package topo is nslab's model of a lab, with no kernel in it: it builds
// and runs on any OS, needs no root, and changes nothing on the machine.
//
// A lab goes through three steps, and this package is the first two.
// Decode (or LoadFile) reads a TOML topology strictly into a Topology, with
// the position of every key; a Builder (or Generate, for Mininet's
// single, linear and tree and the routed fattree, ring and mesh) makes the
// same Topology from Go code. Resolve
// validates it, reporting every problem at once as Problems placed at
// file:line:col, and decides every name, interface, address, route, NAT
// rule and address family, giving a Plan. The third step, applying a Plan
// to the kernel and removing it again, is package emulator's.
//
// A Plan is not changed once resolved: what changes while a lab runs (a
// link set down) lives in the engine. `nslab validate` and the script
// checker work from a Plan alone.
package topo
