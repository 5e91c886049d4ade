package netns

import (
	"errors"
	"fmt"
	"runtime"

	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NS is an open network namespace: a file descriptor that keeps it alive,
// and the path it was opened from or pinned at.
type NS struct {
	fd   int
	path string
}

// Fd returns the namespace's file descriptor, for the sockets that take
// one (IFLA_NET_NS_FD, netlink's NetNS). It is -1 once closed.
func (ns *NS) Fd() int { return ns.fd }

// Path returns where the namespace is pinned, or was opened from: "" for a
// namespace not pinned yet, or the calling thread's (Current).
func (ns *NS) Path() string { return ns.path }

// Close closes the descriptor. A namespace that is neither pinned nor
// used by a process or socket goes with it. Closing twice does nothing.
func (ns *NS) Close() error {
	if ns == nil || ns.fd < 0 {
		return nil
	}
	err := unix.Close(ns.fd)
	ns.fd = -1
	return err
}

// Open opens the namespace at path (a pinned name such as
// /run/netns/NAME, or /proc/PID/ns/net).
func Open(path string) (*NS, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &NS{fd: fd, path: path}, nil
}

// Current opens the calling thread's namespace: the one nslab runs in,
// since only threads inside Do or Discard ever switch.
func Current() (*NS, error) {
	h, err := vnetns.Get() // /proc/PID/task/TID/ns/net: this thread's
	if err != nil {
		return nil, err
	}
	return &NS{fd: int(h)}, nil
}

// New creates a network namespace and runs setup inside it (sysctls, the
// sockets that must belong to it), all from one visit of a fresh locked
// thread, like `ip netns add` + `ip netns exec NS ...`. Nothing is pinned:
// the namespace disappears when the NS is closed before a Pinner pins it,
// unless setup left a socket in it. If setup fails, or switching back does,
// New closes the namespace and returns the error; what setup opened is the
// caller's to close.
func New(setup func() error) (*NS, error) {
	fd := -1
	err := onThread(func() (bool, error) {
		orig, err := vnetns.Get()
		if err != nil {
			return true, fmt.Errorf("open current namespace: %w", err)
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return true, fmt.Errorf("unshare network namespace: %w", err)
		}
		var werr error
		if setup != nil {
			werr = setup()
		}
		if werr == nil {
			fd, werr = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		}
		if err := vnetns.Set(orig); err != nil {
			if fd >= 0 {
				unix.Close(fd)
				fd = -1
			}
			return false, fmt.Errorf("switch back to the original namespace: %w", err)
		}
		return true, werr
	})
	if err != nil {
		return nil, err
	}
	return &NS{fd: fd}, nil
}

// Do runs fn on a fresh goroutine locked to its OS thread, inside the
// namespace, and switches the thread back. If switching back fails, the
// thread stays locked and the runtime discards it when the goroutine ends,
// so no other goroutine ever runs in the wrong namespace. Sockets fn opens
// stay in the namespace and can be used from any goroutine afterwards;
// goroutines fn starts do not run in it.
func (ns *NS) Do(fn func() error) error {
	if ns == nil || ns.fd < 0 {
		return errors.New("namespace is closed")
	}
	return onThread(func() (bool, error) {
		orig, err := vnetns.Get()
		if err != nil {
			return true, fmt.Errorf("open current namespace: %w", err)
		}
		defer orig.Close()
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			return true, fmt.Errorf("enter namespace: %w", err)
		}
		ferr := fn()
		if err := vnetns.Set(orig); err != nil {
			return false, fmt.Errorf("switch back from namespace: %w", err)
		}
		return true, ferr
	})
}

// Set switches the calling thread into the namespace. Call it only inside
// Discard, whose thread is thrown away afterwards.
func (ns *NS) Set() error {
	if ns == nil || ns.fd < 0 {
		return errors.New("namespace is closed")
	}
	return unix.Setns(ns.fd, unix.CLONE_NEWNET)
}

// Discard runs fn on a fresh goroutine locked to its OS thread and never
// unlocks it: the runtime discards the thread when fn returns. fn may
// change whatever it likes of the thread (its namespaces with Set and
// setns, its file-system context, its working directory), and start a
// program that inherits them; nothing of it outlives the call.
func Discard(fn func() error) error {
	return onThread(func() (bool, error) { return false, fn() })
}

// onThread runs fn on a fresh goroutine locked to its OS thread. fn may
// switch the thread's namespaces; it reports through restored whether it
// switched the thread back. If it did not, the thread stays locked and
// the runtime discards it when the goroutine ends, so no other goroutine
// ever runs in the wrong namespace.
//
// fn never runs on the process's main thread: the runtime cannot discard
// that one (it parks it for good instead, in whatever namespaces fn left
// it), and /proc/self describes it. A goroutine that lands there keeps it
// locked, so that nothing else runs on it, while fn runs on another
// thread. So no program that uses this package needs to lock its main
// goroutine to the main thread.
func onThread(fn func() (restored bool, err error)) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			errc <- onThread(fn)
			runtime.UnlockOSThread() // never switched
			return
		}
		restored, err := fn()
		if restored {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
