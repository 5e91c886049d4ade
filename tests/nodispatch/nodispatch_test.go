// Package nodispatch is a test package whose TestMain forgets
// nslabtest.Main: a lab with an echo service must fail at once with what
// to do, and never run this package's tests again inside the node (which
// built labs from inside labs, each starting the next).
package nodispatch

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/emulator/nslabtest"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { os.Exit(m.Run()) } // no Dispatch, on purpose

func TestEchoWithoutDispatchFailsAtOnce(t *testing.T) {
	top := topo.NewBuilder(nslabtest.UniqueName("nodisp")).Host("a").Echo("a", 3478).Topology()
	plan, err := topo.Resolve(top)
	require.NoError(t, err)
	t0 := time.Now()
	lab, err := emulator.Up(context.Background(), plan, emulator.Options{})
	if err == nil {
		lab.Down()
	}
	require.ErrorContains(t, err, "must call emulator.Dispatch first in main")
	require.Less(t, time.Since(t0), 5*time.Second, "no wait for a service that will never be ready")
	_, err = os.Stat("/run/netns/" + top.Name + ".a")
	require.True(t, os.IsNotExist(err), "rolled back")
}
