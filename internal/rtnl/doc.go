// Package rtnl is nslab's route netlink connection to one network
// namespace: the few requests the engine sends on its hot path (links,
// bridges, veth pairs, addresses, routes), each one message with the
// interface index known in advance, the readiness waits, and the
// neighbour table. A Conn is opened inside its namespace (Open, inside
// netns.New or netns.NS.Do, or Dial) and then used from any goroutine.
package rtnl
