package topo

import (
	"github.com/nslab/nslab/impair"
)

// HostEnd is the name the host attachment's impairment gives the host's
// end: [host.impair.from.host] is the direction from the host into the
// lab.
const HostEnd = "host"

// impairment resolves a link's impairment table, placing each problem at
// its key under path ("links[2].impair.from.home.rate").
func (r *resolver) impairment(path, obj string, spec *impair.Spec, a, b string) impair.Link {
	if spec == nil {
		return impair.Link{}
	}
	l, ps := spec.Resolve(a, b)
	for _, p := range ps {
		key := "impair"
		if p.Path != "" {
			key += "." + p.Path
		}
		r.c.add(path+"."+key, obj, "%s: %s", key, p.Msg)
	}
	return l
}
