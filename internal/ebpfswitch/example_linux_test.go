package ebpfswitch_test

import (
	"fmt"

	"github.com/nslab/nslab/internal/ebpfswitch"
)

// A lab loads the program once, makes each switch of its ports (by
// interface index), then attaches the program to every port with
// Attach (through a netlink handle in the switch's namespace). Until a
// frame has come in by a port, the switch has learnt nothing.
func ExampleSwitches() {
	s, err := ebpfswitch.Load(ebpfswitch.Size{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	fmt.Println(s.Add(1, []int{10, 11, 12}))
	port, err := s.Learnt(1, [6]byte{0x02, 0, 0, 0, 0, 0x01})
	fmt.Println(port, err)
	fmt.Println(s.Add(2, make([]int, ebpfswitch.MaxPorts+1)) != nil)
	// Output:
	// <nil>
	// 0 <nil>
	// true
}
