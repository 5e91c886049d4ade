package impair

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Loss without netem: a direct-action eBPF classifier on the clsact
// qdisc's egress hook (`tc filter add dev IF egress prio 1 handle 0x51ab
// bpf da obj ...`, assembled here instead), which drops a packet
// (TC_ACT_STOLEN) when a random number falls under a threshold read from a
// one-entry array map. A change of loss at run time is one update of that
// map, found again from the filter (filter -> program id -> map id), so
// nothing is pinned and no file is left behind; the kernel frees program
// and map with the filter.
//
// It drops every packet alike, ARP and IPv6 neighbour discovery included,
// as netem does: a lossy link loses whatever crosses it, and a lab behaves
// the same whichever of the two mechanisms its kernel offers. Like netem
// it sees what the qdisc layer sees: a GSO super-packet (TCP over a veth)
// is one packet to it.
//
// The models are netem's, step for step: random loss with netem's
// correlation (each draw mixed with the last: next = (rnd*(2^32-rho) +
// last*rho) >> 32), or the Gilbert-Elliott chain (in the good state: move
// to bad with p, then lose with 1-k; in the bad state: move to good with
// r, then keep with h). The chain's state is shared by all CPUs (a plain
// load and store: a rare lost update between two CPUs is harmless).
const (
	bpfName     = "nslab_loss"
	bpfPrio     = 1 // first on the hook
	bpfHandle   = 0x51ab
	bpfModeRand = 0
	bpfModeGE   = 1
)

// bpfLossValue is the map's one value; the program reads the fields at
// these offsets. Thresholds are fractions of 2^32 (so 100 % fits).
type bpfLossValue struct {
	Mode  uint32 // 0: random, 1: Gilbert-Elliott
	State uint32 // GE: 0 good, 1 bad (written by the program)
	Loss  uint64 // random: lose when rnd < Loss
	Rho1  uint64 // random: netem's correlation + 1, or 0 for none
	Last  uint64 // random: the last correlated draw (written by the program)
	P     uint64 // GE: good -> bad
	R     uint64 // GE: bad -> good
	H     uint64 // GE: kept in the bad state
	K     uint64 // GE: lost in the good state (netem's 1-k)
}

const (
	bpfOffMode  = 0
	bpfOffState = 4
	bpfOffLoss  = 8
	bpfOffRho1  = 16
	bpfOffLast  = 24
	bpfOffP     = 32
	bpfOffR     = 40
	bpfOffH     = 48
	bpfOffK     = 56
	bpfValSize  = 64

	// bpfOffIfindex is __sk_buff.ifindex: the device the packet leaves by.
	bpfOffIfindex = 40
	// bpfSharedEntries bounds the interfaces one shared program serves.
	bpfSharedEntries = 16384
)

// config is v without the state the program writes.
func (v bpfLossValue) config() bpfLossValue {
	v.State, v.Last = 0, 0
	return v
}

func bpfPct64(p float64) uint64 {
	if p <= 0 {
		return 0
	}
	if p >= 100 {
		return 1 << 32
	}
	return uint64(math.Round(p / 100 * (1 << 32)))
}

func bpfPctOf64(v uint64) float64 {
	return math.Round(float64(v)/(1<<32)*100*1e6) / 1e6
}

func bpfValueOf(d Direction) bpfLossValue {
	if m := d.LossModel; m != nil {
		return bpfLossValue{Mode: bpfModeGE, P: bpfPct64(m.P), R: bpfPct64(m.R), H: bpfPct64(m.H), K: bpfPct64(m.K)}
	}
	v := bpfLossValue{Mode: bpfModeRand, Loss: bpfPct64(d.Loss)}
	if c := tcPct32(d.LossCorrelation); c != 0 && v.Loss != 0 {
		v.Rho1 = uint64(c) + 1
	}
	return v
}

func (v bpfLossValue) fill(d *Direction) {
	if v.Mode == bpfModeGE {
		d.LossModel = &GilbertElliott{P: bpfPctOf64(v.P), R: bpfPctOf64(v.R), H: bpfPctOf64(v.H), K: bpfPctOf64(v.K)}
		return
	}
	d.Loss = bpfPctOf64(v.Loss)
	if v.Rho1 != 0 {
		d.LossCorrelation = tcPctOf32(uint32(v.Rho1 - 1))
	}
}

// bpfInstructions is the classifier, for the map whose fd is given.
func bpfInstructions(mapFD int) asm.Instructions {
	const (
		ok = 0 // TC_ACT_OK
		// shot drops the packet as lost on the wire: TC_ACT_STOLEN
		// consumes it and tells the sender's stack it was sent, as netem
		// does for its drops. TC_ACT_SHOT would report NET_XMIT_DROP, a
		// drop by the sender's own device, which a local TCP sender
		// retries at once without counting a loss: loss=5% on a host's
		// own direction then gave 0 retransmits and no slower flow.
		shot = 4 // TC_ACT_STOLEN
	)
	return asm.Instructions{
		// r6 = &value[skb->ifindex]: one map may hold the loss of many
		// interfaces (LossPrograms), each under its index.
		asm.LoadMem(asm.R2, asm.R1, bpfOffIfindex, asm.Word),
		asm.StoreMem(asm.RFP, -4, asm.R2, asm.Word),
		asm.LoadMapPtr(asm.R1, mapFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.Mov.Reg(asm.R6, asm.R0),
		asm.LoadMem(asm.R7, asm.R6, bpfOffMode, asm.Word),
		asm.JEq.Imm(asm.R7, bpfModeGE, "ge"),

		// Random loss, with netem's correlation.
		asm.LoadMem(asm.R8, asm.R6, bpfOffLoss, asm.DWord),
		asm.JEq.Imm(asm.R8, 0, "pass"),
		asm.FnGetPrandomU32.Call(),
		asm.LoadMem(asm.R9, asm.R6, bpfOffRho1, asm.DWord),
		asm.JEq.Imm(asm.R9, 0, "compare"),
		asm.LoadImm(asm.R2, 1<<32, asm.DWord),
		asm.Sub.Reg(asm.R2, asm.R9),
		asm.Mul.Reg(asm.R0, asm.R2), // rnd * (2^32 - rho)
		asm.LoadMem(asm.R3, asm.R6, bpfOffLast, asm.DWord),
		asm.Mul.Reg(asm.R3, asm.R9), // last * rho
		asm.Add.Reg(asm.R0, asm.R3),
		asm.RSh.Imm(asm.R0, 32),
		asm.StoreMem(asm.R6, bpfOffLast, asm.R0, asm.DWord),
		asm.JLT.Reg(asm.R0, asm.R8, "drop").WithSymbol("compare"),
		asm.Ja.Label("pass"),

		// Gilbert-Elliott.
		asm.LoadMem(asm.R7, asm.R6, bpfOffState, asm.Word).WithSymbol("ge"),
		asm.FnGetPrandomU32.Call(),
		asm.JEq.Imm(asm.R7, 0, "good"),
		asm.LoadMem(asm.R8, asm.R6, bpfOffR, asm.DWord), // bad state
		asm.JGE.Reg(asm.R0, asm.R8, "bad_loss"),
		asm.StoreImm(asm.R6, bpfOffState, 0, asm.Word),
		asm.FnGetPrandomU32.Call().WithSymbol("bad_loss"),
		asm.LoadMem(asm.R8, asm.R6, bpfOffH, asm.DWord),
		asm.JGE.Reg(asm.R0, asm.R8, "drop"),
		asm.Ja.Label("pass"),
		asm.LoadMem(asm.R8, asm.R6, bpfOffP, asm.DWord).WithSymbol("good"),
		asm.JGE.Reg(asm.R0, asm.R8, "good_loss"),
		asm.StoreImm(asm.R6, bpfOffState, 1, asm.Word),
		asm.FnGetPrandomU32.Call().WithSymbol("good_loss"),
		asm.LoadMem(asm.R8, asm.R6, bpfOffK, asm.DWord),
		asm.JLT.Reg(asm.R0, asm.R8, "drop"),

		asm.Mov.Imm(asm.R0, ok).WithSymbol("pass"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, shot).WithSymbol("drop"),
		asm.Return(),
	}
}

// bpfLoad makes a map of entries interfaces' losses, keyed by interface
// index (not preallocated: a shared map costs only what it holds), and
// the program that reads it. The caller closes both once the filters hold
// the program.
func bpfLoad(entries uint32) (*ebpf.Program, *ebpf.Map, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: bpfName, Type: ebpf.Hash, KeySize: 4, ValueSize: bpfValSize, MaxEntries: entries, Flags: unix.BPF_F_NO_PREALLOC})
	if err != nil {
		return nil, nil, fmt.Errorf("create the loss map: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: bpfName, Type: ebpf.SchedCLS, License: "GPL", Instructions: bpfInstructions(m.FD())})
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("load the loss program: %w", err)
	}
	return prog, m, nil
}

// LossPrograms shares one loss program among many interfaces whose
// indexes differ (nslab numbers a lab's interfaces uniquely across the
// lab), its map holding each interface's loss under its index: where
// the kernel has no netem, impairing the loss of every link of a lab
// then costs one verification of the program by the kernel, not one per
// direction (about 0.5 ms of CPU each). Interfaces of different
// namespaces may share one program; two interfaces with one index may
// not (the host's end of a host attachment, numbered by the kernel, gets
// a program of its own). The zero value is ready; Close gives back
// nslab's hold on the program and map, which the filters keep while they
// run.
type LossPrograms struct {
	mu   sync.Mutex
	prog *ebpf.Program
	m    *ebpf.Map
}

// get loads the shared program on first use.
func (s *LossPrograms) get() (*ebpf.Program, *ebpf.Map, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prog == nil {
		prog, m, err := bpfLoad(bpfSharedEntries)
		if err != nil {
			return nil, nil, err
		}
		s.prog, s.m = prog, m
	}
	return s.prog, s.m, nil
}

// Close releases the program and map (the kernel frees them once no
// filter runs the program).
func (s *LossPrograms) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prog != nil {
		s.prog.Close()
		s.m.Close()
		s.prog, s.m = nil, nil
	}
	return nil
}

func bpfFilter(ifindex, fd int) *netlink.BpfFilter {
	return &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex, Parent: netlink.HANDLE_MIN_EGRESS,
			Handle: bpfHandle, Priority: bpfPrio, Protocol: unix.ETH_P_ALL,
		},
		Fd: fd, Name: bpfName, DirectAction: true,
	}
}

func bpfOurs(f netlink.Filter) (*netlink.BpfFilter, bool) {
	b, ok := f.(*netlink.BpfFilter)
	if !ok {
		return nil, false
	}
	a := b.Attrs()
	return b, a.Handle == bpfHandle && a.Priority == bpfPrio && b.Name == bpfName
}

// bpfFilters lists the filters on clsact's egress (or ingress) hook of
// the interface.
func bpfFilters(h *netlink.Handle, ifindex int, parent uint32) ([]netlink.Filter, error) {
	var fs []netlink.Filter
	var err error
	for try := 0; try < 5; try++ {
		fs, err = h.FilterList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}, parent)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list tc filters: %w", err)
	}
	return fs, nil
}

// bpfMapOf opens the loss map of the program the filter runs.
func bpfMapOf(f *netlink.BpfFilter) (*ebpf.Map, error) {
	prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(f.Id))
	if err != nil {
		return nil, fmt.Errorf("open the loss program %d: %w", f.Id, err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return nil, fmt.Errorf("loss program %d: %w", f.Id, err)
	}
	ids, _ := info.MapIDs()
	if len(ids) != 1 {
		return nil, fmt.Errorf("loss program %d uses %d maps, not one", f.Id, len(ids))
	}
	m, err := ebpf.NewMapFromID(ids[0])
	if err != nil {
		return nil, fmt.Errorf("open the loss map %d: %w", ids[0], err)
	}
	if m.Type() != ebpf.Hash || m.KeySize() != 4 || m.ValueSize() != bpfValSize {
		m.Close()
		return nil, fmt.Errorf("loss map %d is not nslab's", ids[0])
	}
	return m, nil
}

// bpfApply puts loss v on the interface's egress (nil: removes nslab's
// classifier, and the clsact qdisc if nothing else uses it).
func bpfApply(h *netlink.Handle, c tcConn, ifindex int, v *bpfLossValue, clsact bool, shared *LossPrograms) error {
	var cur *netlink.BpfFilter
	others := 0
	if clsact {
		fs, err := bpfFilters(h, ifindex, netlink.HANDLE_MIN_EGRESS)
		if err != nil {
			return err
		}
		for _, f := range fs {
			if b, ok := bpfOurs(f); ok {
				cur = b
			} else {
				others++
			}
		}
	}
	if v == nil {
		if cur == nil {
			return nil
		}
		if m, err := bpfMapOf(cur); err == nil {
			m.Delete(uint32(ifindex)) // a shared map's entry goes with its filter
			m.Close()
		}
		if err := h.FilterDel(cur); err != nil {
			return fmt.Errorf("delete the loss classifier: %w", err)
		}
		if others > 0 {
			return nil
		}
		in, err := bpfFilters(h, ifindex, netlink.HANDLE_MIN_INGRESS)
		if err != nil {
			return err
		}
		if len(in) == 0 {
			q := tcClsact()
			if err := c.qdiscDelete(ifindex, q.handle, q.parent); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("delete clsact: %w", err)
			}
		}
		return nil
	}
	if cur != nil {
		m, err := bpfMapOf(cur)
		if err != nil {
			return err
		}
		defer m.Close()
		var old bpfLossValue
		if err := m.Lookup(uint32(ifindex), &old); err == nil && old.config() == v.config() {
			return nil
		}
		if err := m.Update(uint32(ifindex), v.config(), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("update the loss map: %w", err)
		}
		return nil
	}
	if !clsact {
		err := c.qdiscModify(ifindex, unix.RTM_NEWQDISC, unix.NLM_F_CREATE|unix.NLM_F_EXCL, tcClsact())
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add clsact: %w", err)
		}
	}
	var prog *ebpf.Program
	var m *ebpf.Map
	var err error
	if shared != nil {
		prog, m, err = shared.get()
	} else {
		prog, m, err = bpfLoad(1)
		if err == nil {
			defer prog.Close()
			defer m.Close()
		}
	}
	if err != nil {
		return err
	}
	if err := m.Update(uint32(ifindex), v.config(), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set the loss map: %w", err)
	}
	if err := h.FilterAdd(bpfFilter(ifindex, prog.FD())); err != nil {
		m.Delete(uint32(ifindex))
		return fmt.Errorf("attach the loss classifier on egress: %w", err)
	}
	return nil
}

// bpfRead reads nslab's loss classifier on the interface, nil if none.
func bpfRead(h *netlink.Handle, ifindex int) (*bpfLossValue, error) {
	fs, err := bpfFilters(h, ifindex, netlink.HANDLE_MIN_EGRESS)
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		if b, ok := bpfOurs(f); ok {
			m, err := bpfMapOf(b)
			if err != nil {
				return nil, err
			}
			defer m.Close()
			var v bpfLossValue
			if err := m.Lookup(uint32(ifindex), &v); err != nil {
				return nil, fmt.Errorf("read the loss map: %w", err)
			}
			v = v.config()
			return &v, nil
		}
	}
	return nil, nil
}

// bpfTryAttach loads the loss program and attaches it to the clsact
// qdisc already on interface idx (DetectKernel's trial, in a throwaway
// namespace). It reports false where the kernel has no BPF syscall, no
// cls_bpf, or refuses the program for lack of privilege.
func bpfTryAttach(h *netlink.Handle, idx int) (bool, error) {
	prog, m, err := bpfLoad(1)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return false, fmt.Errorf("detect kernel features: the verifier refused nslab's loss program: %w", err)
		}
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) || errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EINVAL) {
			return false, nil
		}
		return false, fmt.Errorf("detect kernel features: %w", err)
	}
	defer prog.Close()
	defer m.Close()
	if err := h.FilterAdd(bpfFilter(idx, prog.FD())); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
			return false, nil
		}
		return false, fmt.Errorf("detect kernel features: try cls_bpf: %w", err)
	}
	return true, nil
}
