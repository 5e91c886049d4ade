//go:build !netem

package impair

import (
	"testing"

	"github.com/vishvananda/netlink"
)

// One loss program serves many interfaces (LossPrograms): each keeps its
// own loss under its index, and clearing one leaves the others.
func TestSharedLossProgram(t *testing.T) {
	t.Parallel()
	k := noNetem(detect(t))
	l := newVethLab(t)
	// A second pair in a's namespace, so that a has two interfaces with
	// indexes of their own.
	la := netlink.NewLinkAttrs()
	la.Name = "va2"
	if err := l.ha.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "vb2"}); err != nil {
		t.Fatal(err)
	}
	va2, err := l.ha.LinkByName("va2")
	if err != nil {
		t.Fatal(err)
	}
	i2 := va2.Attrs().Index
	var s LossPrograms
	defer s.Close()
	for _, c := range []struct {
		idx  int
		loss float64
	}{{l.ia, 10}, {i2, 30}} {
		if err := ApplyShared(l.ha, c.idx, Direction{Loss: c.loss}, k, &s); err != nil {
			t.Fatal(err)
		}
	}
	progOf := func(idx int) int {
		fs, err := bpfFilters(l.ha, idx, netlink.HANDLE_MIN_EGRESS)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if b, ok := bpfOurs(f); ok {
				return b.Id
			}
		}
		t.Fatalf("no loss classifier on interface %d", idx)
		return 0
	}
	if a, b := progOf(l.ia), progOf(i2); a != b {
		t.Errorf("two programs (%d, %d), want one shared", a, b)
	}
	for _, c := range []struct {
		idx  int
		want string
	}{{l.ia, "loss 10%"}, {i2, "loss 30%"}} {
		d, err := Read(l.ha, c.idx)
		if err != nil || d.String() != c.want {
			t.Errorf("interface %d reads %q (%v), want %q", c.idx, d, err, c.want)
		}
	}
	// A change is one map entry; the other interface keeps its own.
	if err := ApplyShared(l.ha, l.ia, Direction{Loss: 50}, k, &s); err != nil {
		t.Fatal(err)
	}
	if err := Clear(l.ha, i2); err != nil {
		t.Fatal(err)
	}
	if d, _ := Read(l.ha, l.ia); d.String() != "loss 50%" {
		t.Errorf("after the change: %q", d)
	}
	if d, _ := Read(l.ha, i2); !d.IsZero() {
		t.Errorf("after clear: %q", d)
	}
	// The loss still works: half of what va sends is lost.
	got, _, _ := l.oneWay(t, 400, 0)
	if lost := 400 - got; lost < 140 || lost > 260 {
		t.Errorf("%d of 400 lost at 50%%", lost)
	}
}
