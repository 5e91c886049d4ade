package emulator

import (
	"context"
	"fmt"

	"github.com/nslab/nslab/impair"
	"github.com/nslab/nslab/internal/ebpfswitch"
	"github.com/nslab/nslab/topo"
	"github.com/vishvananda/netlink"
)

// A switch with the "ebpf" datapath (topo.DatapathEBPF) has no bridge:
// its ports are plain veth ends in its namespace, and nslab's eBPF
// learning switch (internal/ebpfswitch) forwards what enters each of them.
// The lab loads the program once, before anything is built, so that a
// kernel or user that cannot is refused at once; the "ebpf switches"
// phase registers each switch's ports in its maps and attaches it to
// every port. Nothing to undo: the filters go with the ports, and the
// kernel frees program and maps with the last filter.

// hasEBPFSwitch reports whether the plan has a switch of the "ebpf"
// datapath.
func hasEBPFSwitch(p *topo.Plan) bool {
	for _, n := range p.Nodes {
		if n.Kind == topo.KindSwitch && n.Datapath == topo.DatapathEBPF {
			return true
		}
	}
	return false
}

// loadEBPFSwitches loads the switch program for a plan that needs it
// (nil, nil for one that does not). k is what checkImpairments found the
// kernel can do, nil when the plan has no impairment (then it is found
// out here).
func loadEBPFSwitches(p *topo.Plan, k *impair.Kernel) (*ebpfswitch.Switches, error) {
	if !hasEBPFSwitch(p) {
		return nil, nil
	}
	s, err := ebpfswitch.Load(ebpfSize(p))
	if err != nil {
		return nil, fmt.Errorf("lab %q: a switch with datapath %q needs nslab's eBPF switch program, which this kernel or user cannot load (it needs cls_bpf, the clsact qdisc and the privilege to load eBPF programs; leave datapath out for a bridge): %w",
			p.Lab, topo.DatapathEBPF, err)
	}
	// Loading needs neither the clsact qdisc nor cls_bpf, attaching does:
	// both are tried on a throwaway interface (impair.DetectKernel), so
	// that a kernel without them is refused before anything is built.
	if k == nil {
		detected, err := impair.DetectKernel()
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("lab %q: eBPF switches: %w", p.Lab, err)
		}
		k = &detected
	}
	if !k.Clsact || !k.BPF {
		s.Close()
		return nil, fmt.Errorf("lab %q: a switch with datapath %q needs the kernel's clsact qdisc (CONFIG_NET_SCH_INGRESS) and eBPF classifiers (CONFIG_NET_CLS_BPF), which kernel %s lacks: leave datapath out for a bridge",
			p.Lab, topo.DatapathEBPF, k.Release)
	}
	return s, nil
}

// ebpfSize is what the switch program's maps must hold for plan p: its
// eBPF switches, their ports, and for each switch the interfaces of its
// L2 segment, whose MACs it may learn.
func ebpfSize(p *topo.Plan) ebpfswitch.Size {
	var z ebpfswitch.Size
	for _, n := range p.Nodes {
		if n.Kind != topo.KindSwitch || n.Datapath != topo.DatapathEBPF {
			continue
		}
		z.Switches++
		seg := -1
		for _, i := range n.Ifaces {
			if i.Port {
				z.Ports++
				seg = i.Segment
			}
		}
		if seg >= 0 && seg < len(p.Segments) {
			z.MACs += len(p.Segments[seg].Members)
		}
	}
	return z
}

// ebpfSwitches is the build's phase that makes every eBPF switch: its
// ports in the program's maps, and the program on each port's ingress,
// a switch a worker.
func (b *builder) ebpfSwitches(ctx context.Context) error {
	s := b.lab.ebpf
	if s == nil {
		return nil
	}
	var sws []int // node indexes, which number the switches in the maps
	for _, i := range b.switches {
		if b.handles[i].node.Datapath == topo.DatapathEBPF {
			sws = append(sws, i)
		}
	}
	return parallel(ctx, len(sws), b.opts.Workers, func(k int) error {
		h := b.handles[sws[k]]
		var ports []int
		for _, i := range h.node.Ifaces {
			if i.Port {
				ports = append(ports, i.Index)
			}
		}
		if err := s.Add(uint32(sws[k]+1), ports); err != nil {
			return fmt.Errorf("switch %q: %w", h.node.Name, err)
		}
		return h.netlink(func(nh *netlink.Handle) error {
			for _, p := range ports {
				if err := s.Attach(nh, p); err != nil {
					return fmt.Errorf("switch %q: %w", h.node.Name, err)
				}
			}
			return nil
		})
	})
}
