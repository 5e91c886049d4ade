package proc

import (
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
)

// This process is alive with its start time; a process that has ended,
// reaped or a zombie, is not; a wrong start time is another process.
func TestAlive(t *testing.T) {
	st, err := StartTime(os.Getpid())
	require.NoError(t, err)
	require.True(t, Alive(os.Getpid(), st))
	require.False(t, Alive(os.Getpid(), st+1), "a reused PID")

	cmd := exec.Command("true")
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	// Not yet reaped: a zombie once it has exited.
	require.Eventually(t, func() bool {
		_, err := StartTime(pid)
		return err == ErrExited
	}, 5e9, 1e6)
	require.NoError(t, cmd.Wait())
	_, err = StartTime(pid)
	require.ErrorIs(t, err, ErrExited)
	_, err = StartTime(0)
	require.Error(t, err)
}
