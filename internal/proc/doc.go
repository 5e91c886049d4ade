// Package proc reads what nslab needs to know of a process from /proc:
// whether it still runs and when it started, so that a PID recorded in a
// lab's record is never taken for another process that reused it.
package proc
