// Package tests holds nslab's integration tests: they build real labs as
// root, assert what must and must not be reachable, and check that nothing
// of nslab is left on the machine afterwards.
package tests
