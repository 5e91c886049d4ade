package impair

import (
	"errors"
	"fmt"
	"strings"

	inetns "github.com/nslab/nslab/internal/netns"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Kernel is what the running kernel can do for link impairments. Find it
// once with DetectKernel and keep the value: Check and Apply read it, and
// nothing in this package remembers it. A Kernel written by hand (for
// example with Netem false on a kernel that has it) makes Apply use the
// other mechanism, which is how tests exercise both.
type Kernel struct {
	Netem  bool // the netem qdisc (sch_netem): delay, jitter, loss, duplicate, corrupt, reorder
	TBF    bool // the token bucket filter qdisc (sch_tbf): rate
	HTB    bool // the hierarchical token bucket qdisc (sch_htb): rate where TBF is missing
	Clsact bool // the clsact qdisc (sch_ingress): a hook for classifiers on egress
	BPF    bool // eBPF programs as direct-action classifiers (cls_bpf): loss without netem

	// Release is the kernel's release (uname -r), named in the advice of
	// Check's errors.
	Release string
}

// MissingError is Check's error: what a direction asks for that the
// kernel cannot do, and what to install. errors.Is(err,
// errors.ErrUnsupported) holds for it.
type MissingError struct {
	Fields  []string // the fields asked for, as a topology names them: "delay", "jitter"
	Feature string   // "netem qdisc (sch_netem)"
	Config  string   // "CONFIG_NET_SCH_NETEM"
	Release string   // uname -r, "" when unknown
	Also    string   // a note after the advice, or ""
}

func (e *MissingError) Error() string {
	what := "link " + strings.Join(e.Fields, ", ")
	if n := len(e.Fields); n > 1 {
		what = "link " + strings.Join(e.Fields[:n-1], ", ") + " and " + e.Fields[n-1]
	}
	verb := "needs"
	if len(e.Fields) > 1 {
		verb = "need"
	}
	rel := e.Release
	if rel == "" {
		rel = "$(uname -r)"
	}
	s := fmt.Sprintf("%s %s the kernel's %s, which this kernel lacks: install your distribution's extra kernel modules (Debian/Ubuntu: linux-modules-extra-%s) or use a kernel with %s",
		what, verb, e.Feature, rel, e.Config)
	if e.Also != "" {
		s += " (" + e.Also + ")"
	}
	return s
}

// Is makes errors.Is(err, errors.ErrUnsupported) true.
func (e *MissingError) Is(target error) bool { return target == errors.ErrUnsupported }

// Check reports, before anything is built, whether the kernel can do what
// d asks; its error names the missing kernel feature and what to install.
// Where netem is missing, random and Gilbert-Elliott loss are done by an
// eBPF classifier instead, and rate needs only TBF or HTB; delay, jitter,
// duplication, corruption and reordering need netem.
func (k Kernel) Check(d Direction) error {
	var netem []string
	if d.Delay != 0 {
		netem = append(netem, "delay")
	}
	if d.Jitter != 0 {
		netem = append(netem, "jitter")
	}
	if d.Duplicate != 0 {
		netem = append(netem, "duplicate")
	}
	if d.Corrupt != 0 {
		netem = append(netem, "corrupt")
	}
	if d.Reorder != 0 {
		netem = append(netem, "reorder")
	}
	if !k.Netem && len(netem) > 0 {
		return &MissingError{Fields: netem, Feature: "netem qdisc (sch_netem)", Config: "CONFIG_NET_SCH_NETEM", Release: k.Release}
	}
	if !k.Netem && tcWantsLoss(d) && !(k.Clsact && k.BPF) {
		return &MissingError{Fields: []string{"loss"}, Feature: "netem qdisc (sch_netem)", Config: "CONFIG_NET_SCH_NETEM", Release: k.Release,
			Also: "nslab's loss without netem, an eBPF classifier, needs the clsact qdisc and cls_bpf (CONFIG_NET_SCH_INGRESS, CONFIG_NET_CLS_BPF, CONFIG_BPF_SYSCALL), and this kernel or user lacks them too"}
	}
	if d.Rate != 0 && !k.TBF && !k.HTB {
		return &MissingError{Fields: []string{"rate"}, Feature: "TBF or HTB qdisc (sch_tbf, sch_htb)", Config: "CONFIG_NET_SCH_TBF", Release: k.Release}
	}
	return nil
}

// tcWantsLoss reports whether d drops packets at random.
func tcWantsLoss(d Direction) bool { return d.Loss != 0 || d.LossModel != nil }

// DetectKernel finds out what the running kernel can do by trying it: in
// a throwaway network namespace (never the caller's), it creates each
// qdisc on the loopback device and loads and attaches nslab's loss
// program, so that features built as loadable modules count as present.
// A feature is missing when the kernel does not know it (ENOENT, or ENOSYS
// and EINVAL for eBPF); any other failure is returned as an error.
func DetectKernel() (Kernel, error) {
	k := Kernel{Release: tcRelease()}
	ns, err := tcThrowawayNetns()
	if err != nil {
		return k, fmt.Errorf("detect kernel features: %w", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return k, fmt.Errorf("detect kernel features: netlink handle: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return k, fmt.Errorf("detect kernel features: loopback: %w", err)
	}
	c, err := tcConnOf(h)
	if err != nil {
		return k, fmt.Errorf("detect kernel features: %w", err)
	}
	idx := lo.Attrs().Index
	try := func(name string, q tcQdisc) (bool, error) {
		q.parent = netlink.HANDLE_ROOT
		err := c.qdiscModify(idx, unix.RTM_NEWQDISC, unix.NLM_F_CREATE|unix.NLM_F_EXCL, q)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("detect kernel features: try %s: %w", name, err)
		}
		if err := c.qdiscDelete(idx, q.handle, q.parent); err != nil {
			return true, fmt.Errorf("detect kernel features: remove the trial %s: %w", name, err)
		}
		return true, nil
	}
	n := tcNetem{limit: 1000, latency: 1000}
	if k.Netem, err = try("netem", n.qdisc(tcNetemMajor)); err != nil {
		return k, err
	}
	tbf := tcTBF{rate: 125000, buffer: tcTicks(15000, 125000), limit: 15000}
	if k.TBF, err = try("tbf", tbf.qdisc()); err != nil {
		return k, err
	}
	if k.HTB, err = try("htb", tcHTBQdisc()); err != nil {
		return k, err
	}
	err = c.qdiscModify(idx, unix.RTM_NEWQDISC, unix.NLM_F_CREATE|unix.NLM_F_EXCL, tcClsact())
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP):
		return k, nil // without clsact, no eBPF classifier on egress either
	case err != nil:
		return k, fmt.Errorf("detect kernel features: try clsact: %w", err)
	}
	k.Clsact = true
	k.BPF, err = bpfTryAttach(h, idx)
	return k, err
}

// tcRelease is uname -r.
func tcRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// tcThrowawayNetns makes a new network namespace (internal/netns.New: a
// fresh locked thread that is discarded if it cannot switch back) and
// returns it as a handle, which owns its descriptor from then on.
func tcThrowawayNetns() (netns.NsHandle, error) {
	ns, err := inetns.New(nil)
	if err != nil {
		return -1, fmt.Errorf("new network namespace: %w", err)
	}
	return netns.NsHandle(ns.Fd()), nil
}
