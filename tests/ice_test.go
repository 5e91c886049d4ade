package tests

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/emulator/nslabtest"
	"github.com/pion/ice/v4"
	"github.com/pion/stun/v4"
	"github.com/stretchr/testify/require"
)

// A real ICE implementation (pion/ice, a test-only dependency) against the
// hole-punch grid: for pairs of NAT presets, two ICE agents, one in alice
// and one in bob, with host and server-reflexive candidates (a STUN server
// on the rendezvous node) and no relay, connect exactly when nslab's own
// punch says they do.
func TestICEAgreesWithPunch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b   string
		direct bool
	}{
		{"full-cone", "full-cone", true},
		{"port-restricted", "port-restricted", true},
		{"symmetric", "full-cone", true},
		{"symmetric", "restricted-cone", true},
		{"symmetric", "port-restricted", false},
		{"symmetric", "symmetric", false},
	} {
		t.Run(tc.a+"+"+tc.b, func(t *testing.T) {
			t.Parallel()
			lab := nslabtest.Start(t, p2pTopology(tc.a, tc.b))
			stunAddr := serveSTUN(t, lab)
			connected, detail := iceConnect(t, lab, stunAddr)
			t.Logf("ICE: %s", detail)
			require.Equal(t, tc.direct, connected, "ICE: %s", detail)
			p, err := lab.Engine().Punch(context.Background(), "alice", "bob", emulator.PunchOptions{Via: "rendezvous"})
			require.NoError(t, err)
			require.Equal(t, connected, p.Direct, "nslab punch disagrees with ICE (%s):\n%s", detail, p)
		})
	}
}

// serveSTUN answers STUN binding requests on the rendezvous node (UDP
// 3479) until the test ends, and returns its address.
func serveSTUN(t *testing.T, lab *nslabtest.Lab) netip.AddrPort {
	t.Helper()
	addr, err := lab.Engine().AddrOf("rendezvous", 4, 3479)
	require.NoError(t, err)
	pc, err := lab.Engine().ListenUDP("rendezvous", addr)
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if m.Decode() != nil || m.Type != stun.BindingRequest {
				continue
			}
			resp, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
				&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())}, stun.Fingerprint)
			if err == nil {
				pc.WriteToUDPAddrPort(resp.Raw, from)
			}
		}
	}()
	return addr
}

// iceAgent is one agent's child process and what it said.
type iceAgent struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

// iceConnect runs an ICE agent in alice (controlling) and one in bob,
// relays their credentials and candidates (the signalling channel, outside
// the lab network) and reports whether they connected and exchanged data.
func iceConnect(t *testing.T, lab *nslabtest.Lab, stunAddr netip.AddrPort) (bool, string) {
	t.Helper()
	agents := map[string]*iceAgent{}
	for _, node := range []string{"alice", "bob"} {
		role := "controlled"
		if node == "alice" {
			role = "controlling"
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "NSLAB_CHILD=ice-agent", "NSLAB_ICE_ROLE="+role, "NSLAB_ICE_STUN="+stunAddr.String())
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		require.NoError(t, err)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, lab.Engine().Start(node, cmd))
		a := &iceAgent{cmd: cmd, in: in, lines: make(chan string, 64)}
		go func() {
			defer close(a.lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				a.lines <- sc.Text()
			}
		}()
		agents[node] = a
		t.Cleanup(func() {
			in.Close()
			cmd.Process.Kill()
			cmd.Wait()
		})
	}
	// Gather: each agent says its credentials and candidates, then
	// "gathered".
	said := map[string][]string{}
	for node, a := range agents {
		for l := range waitLines(t, a, 10*time.Second, "gathered") {
			said[node] = append(said[node], l)
		}
	}
	for node, other := range map[string]string{"alice": "bob", "bob": "alice"} {
		for _, l := range said[other] {
			if strings.HasPrefix(l, "cred ") || strings.HasPrefix(l, "cand ") {
				fmt.Fprintln(agents[node].in, l)
			}
		}
		fmt.Fprintln(agents[node].in, "go")
	}
	var mu sync.Mutex
	result := map[string]string{}
	var wg sync.WaitGroup
	for node, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := ""
			for l := range waitLines(t, a, 15*time.Second, "data ok", "failed") {
				last = l
			}
			mu.Lock()
			result[node] = last
			mu.Unlock()
		}()
	}
	wg.Wait()
	detail := fmt.Sprintf("alice: %s; bob: %s; candidates alice %q, bob %q", result["alice"], result["bob"], said["alice"], said["bob"])
	return result["alice"] == "data ok" && result["bob"] == "data ok", detail
}

// waitLines yields an agent's lines up to and including the first that
// starts with one of ends.
func waitLines(t *testing.T, a *iceAgent, within time.Duration, ends ...string) func(func(string) bool) {
	return func(yield func(string) bool) {
		deadline := time.After(within)
		for {
			select {
			case l, ok := <-a.lines:
				if !ok {
					t.Fatalf("ICE agent ended before saying %q", ends)
				}
				if !yield(l) {
					return
				}
				for _, e := range ends {
					if strings.HasPrefix(l, e) {
						return
					}
				}
			case <-deadline:
				t.Fatalf("ICE agent said nothing like %q within %s", ends, within)
			}
		}
	}
}

// iceAgentMain is the child process: one pion/ice agent, running inside a
// lab node (its sockets and interfaces are the node's). It speaks lines on
// stdout (cred, cand, gathered, then connected/failed and data ok) and
// takes the other agent's cred and cand lines, then "go", on stdin.
func iceAgentMain() int {
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	controlling := os.Getenv("NSLAB_ICE_ROLE") == "controlling"
	uri, err := stun.ParseURI("stun:" + os.Getenv("NSLAB_ICE_STUN"))
	if err != nil {
		say("failed %v", err)
		return 1
	}
	check, failed, disc := 20*time.Millisecond, 2*time.Second, time.Second
	a, err := ice.NewAgent(&ice.AgentConfig{
		Urls:                []*stun.URI{uri},
		NetworkTypes:        []ice.NetworkType{ice.NetworkTypeUDP4},
		CandidateTypes:      []ice.CandidateType{ice.CandidateTypeHost, ice.CandidateTypeServerReflexive},
		MulticastDNSMode:    ice.MulticastDNSModeDisabled,
		CheckInterval:       &check,
		FailedTimeout:       &failed,
		DisconnectedTimeout: &disc,
	})
	if err != nil {
		say("failed %v", err)
		return 1
	}
	defer a.Close()
	ufrag, pwd, _ := a.GetLocalUserCredentials()
	say("cred %s %s", ufrag, pwd)
	a.OnCandidate(func(c ice.Candidate) {
		if c == nil {
			say("gathered")
			return
		}
		say("cand %s", c.Marshal())
	})
	if err := a.GatherCandidates(); err != nil {
		say("failed %v", err)
		return 1
	}
	var ru, rp string
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "cred "):
			f := strings.Fields(l)
			ru, rp = f[1], f[2]
		case strings.HasPrefix(l, "cand "):
			c, err := ice.UnmarshalCandidate(strings.TrimPrefix(l, "cand "))
			if err == nil {
				err = a.AddRemoteCandidate(c)
			}
			if err != nil {
				say("failed remote candidate %q: %v", l, err)
				return 1
			}
		}
		if l == "go" {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var conn *ice.Conn
	if controlling {
		conn, err = a.Dial(ctx, ru, rp)
	} else {
		conn, err = a.Accept(ctx, ru, rp)
	}
	if err != nil {
		say("failed to connect: %v", err)
		return 0
	}
	if p, err := a.GetSelectedCandidatePair(); err == nil {
		say("connected %s", p)
	}
	buf := make([]byte, 64)
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if controlling {
		conn.Write([]byte("hello"))
		if n, err := conn.Read(buf); err != nil || string(buf[:n]) != "hello back" {
			say("failed data: %v", err)
			return 0
		}
	} else {
		n, err := conn.Read(buf)
		if err != nil || string(buf[:n]) != "hello" {
			say("failed data: %v", err)
			return 0
		}
		conn.Write([]byte("hello back"))
		time.Sleep(200 * time.Millisecond) // let the answer leave
	}
	say("data ok")
	return 0
}
