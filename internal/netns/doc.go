// Package netns is nslab's handle on Linux network namespaces, in the
// spirit of containernetworking/plugins' pkg/ns: New creates one, a Pinner
// pins it under a name as iproute2 does (a bind mount in /run/netns), Open
// opens one by path, and an NS runs code inside its namespace (Do) or
// hands its descriptor (Fd) to sockets that carry the namespace. It is the
// one way the engine reaches a node's namespace.
//
// setns changes the namespace of one OS thread, and a goroutine may move
// between threads, so code runs inside a namespace only on a fresh
// goroutine locked to its thread: Do switches the thread back afterwards
// and unlocks it only if that worked (otherwise the runtime discards the
// thread when the goroutine ends), and Discard never unlocks it, for work
// that changes more of the thread than its network namespace (starting a
// program in a node). No other thread ever switches, so any goroutine that
// is not inside Do or Discard runs in the namespace the process started
// in; still, what depends on the calling thread's namespace is read from
// /proc/thread-self, never /proc/self (the main thread's: a program whose
// main thread was retired inside a namespace would see that one). Nothing
// here relies on the program's main goroutine being locked to the main
// thread.
//
// A socket keeps the namespace it was created in: open it inside Do, then
// use it from any goroutine.
package netns
