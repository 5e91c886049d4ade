package ebpfswitch

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// MaxPorts is the most ports one switch may have: the flood is unrolled
// in the program, one step a port.
const MaxPorts = 64

const (
	name      = "nslab_switch"
	filterPri = 1
	filterHnd = 0x51ac

	offIfindex = 40 // __sk_buff.ifindex: the port the frame came in by

	actOK       = 0 // TC_ACT_OK: not a switch port, let it be
	actShot     = 2 // TC_ACT_SHOT: dropped
	actStolen   = 4 // TC_ACT_STOLEN: consumed (the flood sent its copies)
	fdbEntries  = 65536
	portEntries = 16384
)

// Size is how big a lab's maps are: its switches, their ports together,
// and the MACs they may learn together (each switch the MACs of its L2
// segment). The maps take memory only for what is in them, so sizing
// them for the whole lab costs nothing until frames are learnt; when the
// MAC table is full, a switch floods what it could not learn. Zero
// fields take defaults (16,384 switches and ports, 65,536 MACs).
type Size struct {
	Switches, Ports, MACs int
}

func entries(n, def int) uint32 {
	if n <= 0 {
		return uint32(def)
	}
	return uint32(min(n, 1<<28))
}

// fdbKey is the key of the learnt MACs: a switch and a MAC.
type fdbKey struct {
	Switch uint32
	MAC    [6]byte
	_      [2]byte
}

// floodValue is a switch's ports, in the flood map.
type floodValue struct {
	N    uint32
	Port [MaxPorts]uint32
}

// Switches is one loaded program and its maps, for every switch of a lab.
// Close it once every filter holds the program (the kernel frees program
// and maps with the last filter).
type Switches struct {
	prog              *ebpf.Program
	fdb, ports, flood *ebpf.Map
}

// Load creates the maps, sized for a lab of size, and loads the program.
func Load(size Size) (_ *Switches, err error) {
	s := &Switches{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.fdb, err = ebpf.NewMap(&ebpf.MapSpec{Name: "nslab_fdb", Type: ebpf.Hash, KeySize: 12, ValueSize: 4,
		MaxEntries: entries(size.MACs, fdbEntries), Flags: unix.BPF_F_NO_PREALLOC}); err != nil {
		return nil, fmt.Errorf("create the switch's mac table: %w", err)
	}
	if s.ports, err = ebpf.NewMap(&ebpf.MapSpec{Name: "nslab_ports", Type: ebpf.Hash, KeySize: 4, ValueSize: 4,
		MaxEntries: entries(size.Ports, portEntries), Flags: unix.BPF_F_NO_PREALLOC}); err != nil {
		return nil, fmt.Errorf("create the switch's port map: %w", err)
	}
	if s.flood, err = ebpf.NewMap(&ebpf.MapSpec{Name: "nslab_flood", Type: ebpf.Hash, KeySize: 4, ValueSize: 4 + 4*MaxPorts,
		MaxEntries: entries(size.Switches, portEntries), Flags: unix.BPF_F_NO_PREALLOC}); err != nil {
		return nil, fmt.Errorf("create the switch's flood map: %w", err)
	}
	if s.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: ebpf.SchedCLS, License: "GPL",
		Instructions: instructions(s.fdb.FD(), s.ports.FD(), s.flood.FD())}); err != nil {
		return nil, fmt.Errorf("load the switch program: %w", err)
	}
	return s, nil
}

// Close gives back this process's hold on the program and maps.
func (s *Switches) Close() {
	if s == nil {
		return
	}
	if s.prog != nil {
		s.prog.Close()
	}
	for _, m := range []*ebpf.Map{s.fdb, s.ports, s.flood} {
		if m != nil {
			m.Close()
		}
	}
}

// Add makes switch id of the ports given by interface index (in the
// switch's namespace; unique among the ports of every switch s serves).
func (s *Switches) Add(id uint32, ports []int) error {
	if len(ports) > MaxPorts {
		return fmt.Errorf("switch %d: %d ports, more than the %d an eBPF switch has", id, len(ports), MaxPorts)
	}
	v := floodValue{N: uint32(len(ports))}
	for i, p := range ports {
		v.Port[i] = uint32(p)
		if err := s.ports.Update(uint32(p), id, ebpf.UpdateNoExist); err != nil {
			return fmt.Errorf("switch %d: port %d: %w", id, p, err)
		}
	}
	if err := s.flood.Update(id, v, ebpf.UpdateNoExist); err != nil {
		return fmt.Errorf("switch %d: %w", id, err)
	}
	return nil
}

// Attach puts the program on port ifindex's ingress, through h, a route
// netlink handle in the switch's namespace: `tc qdisc add dev PORT
// clsact; tc filter add dev PORT ingress prio 1 handle 0x51ac bpf da`.
func (s *Switches) Attach(h *netlink.Handle, ifindex int) error {
	q := &netlink.GenericQdisc{QdiscType: "clsact",
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Parent: netlink.HANDLE_CLSACT, Handle: netlink.MakeHandle(0xffff, 0)}}
	if err := h.QdiscAdd(q); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("port %d: clsact: %w", ifindex, err)
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: ifindex, Parent: netlink.HANDLE_MIN_INGRESS,
			Handle: filterHnd, Priority: filterPri, Protocol: unix.ETH_P_ALL},
		Fd: s.prog.FD(), Name: name, DirectAction: true,
	}
	if err := h.FilterAdd(f); err != nil {
		return fmt.Errorf("port %d: attach the switch program: %w", ifindex, err)
	}
	return nil
}

// Learnt reports the port switch id learnt mac behind, 0 if none.
func (s *Switches) Learnt(id uint32, mac [6]byte) (int, error) {
	var port uint32
	err := s.fdb.Lookup(fdbKey{Switch: id, MAC: mac}, &port)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, nil
	}
	return int(port), err
}

// copyMAC copies the MAC at fp+off into the key's MAC (fp-28), two bytes
// at a time (the verifier wants stack accesses aligned to their size).
func copyMAC(off int16) asm.Instructions {
	var in asm.Instructions
	for i := int16(0); i < 6; i += 2 {
		in = append(in,
			asm.LoadMem(asm.R1, asm.RFP, off+i, asm.Half),
			asm.StoreMem(asm.RFP, -28+i, asm.R1, asm.Half))
	}
	return in
}

// lookup calls bpf_map_lookup_elem(m, fp+key).
func lookup(m int, key int16) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, m),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(key)),
		asm.FnMapLookupElem.Call(),
	}
}

// instructions is the program. Registers: r6 the skb, r7 the port the
// frame came in by, r8 its switch, r9 the switch's flood entry. Stack:
// fp-16..fp-5 the frame's destination and source MACs, fp-32..fp-21 an
// fdbKey, fp-36 a port, fp-4 a u32 key.
func instructions(fdb, ports, flood int) asm.Instructions {
	var in asm.Instructions
	add := func(is ...asm.Instruction) { in = append(in, is...) }
	add(asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R7, asm.R6, offIfindex, asm.Word),
		asm.StoreMem(asm.RFP, -4, asm.R7, asm.Word))
	// r8 = ports[r7]; not a port of a switch: let the frame be.
	add(lookup(ports, -4)...)
	add(asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R8, asm.R0, 0, asm.Word))
	// The MACs: skb_load_bytes(skb, 0, fp-16, 12).
	add(asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -16),
		asm.Mov.Imm(asm.R4, 12),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"))
	// Learn: fdb[{switch, source}] = r7, unless it is there already.
	add(asm.StoreMem(asm.RFP, -32, asm.R8, asm.Word),
		asm.StoreImm(asm.RFP, -22, 0, asm.Half))
	add(copyMAC(-10)...)
	add(lookup(fdb, -32)...)
	add(asm.JEq.Imm(asm.R0, 0, "learn"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.JEq.Reg(asm.R1, asm.R7, "forward"),
		asm.StoreMem(asm.RFP, -36, asm.R7, asm.Word).WithSymbol("learn"),
		asm.LoadMapPtr(asm.R1, fdb),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -32),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -36),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call())
	// Forward: a group address (broadcast, multicast) is flooded.
	add(asm.LoadMem(asm.R1, asm.RFP, -16, asm.Byte).WithSymbol("forward"),
		asm.And.Imm(asm.R1, 1),
		asm.JNE.Imm(asm.R1, 0, "flood"))
	// A known unicast address: out of its port (redirect to its egress),
	// unless that is the port it came by.
	add(copyMAC(-16)...)
	add(lookup(fdb, -32)...)
	add(asm.JEq.Imm(asm.R0, 0, "flood"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.JEq.Reg(asm.R1, asm.R7, "drop"),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return())
	// Flood: a copy out of every other port of the switch.
	add(asm.StoreMem(asm.RFP, -4, asm.R8, asm.Word).WithSymbol("flood"))
	add(lookup(flood, -4)...)
	add(asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.Mov.Reg(asm.R9, asm.R0),
		asm.LoadMem(asm.R8, asm.R9, 0, asm.Word)) // r8 = its number of ports
	for i := 0; i < MaxPorts; i++ {
		next := fmt.Sprintf("port%d", i+1)
		if i == MaxPorts-1 {
			next = "flooded"
		}
		add(asm.JLE.Imm(asm.R8, int32(i), "flooded").WithSymbol(fmt.Sprintf("port%d", i)),
			asm.LoadMem(asm.R2, asm.R9, int16(4+4*i), asm.Word),
			asm.JEq.Reg(asm.R2, asm.R7, next),
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R3, 0),
			asm.FnCloneRedirect.Call())
	}
	add(asm.Mov.Imm(asm.R0, actStolen).WithSymbol("flooded"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, actShot).WithSymbol("drop"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, actOK).WithSymbol("pass"),
		asm.Return())
	return in
}
