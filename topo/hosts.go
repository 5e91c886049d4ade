package topo

import (
	"bytes"
	"fmt"
)

// HostsFile returns the /etc/hosts that processes in the lab see: the
// machine's localhost lines and every node of the lab by name.
func (p *Plan) HostsFile() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# /etc/hosts of nslab lab %q (the machine's own file is unchanged)\n", p.Lab)
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, n := range p.Nodes {
		for _, fam := range []int{4, 6} {
			if a, ok := n.FirstAddr(fam); ok {
				fmt.Fprintf(&b, "%s\t%s\n", a, n.Name)
			}
		}
	}
	return b.Bytes()
}
