// Package selftest checks the netem harness (tests/netemvm) itself: its one
// test, built only with the netem tag, measures a netem delay over a veth
// pair between two namespaces of its own. make test-netem runs it beside
// the project's netem tests, natively or in the VM.
package selftest
