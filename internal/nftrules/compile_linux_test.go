package nftrules

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// Every topology in testdata is resolved and each node with a firewall or
// NAT compiled; the messages, decoded into a readable form, must be the
// golden file's. No kernel and no root: Compile only encodes. A change of
// the rules nslab writes shows here as a diff; rewrite the files with
// `go test ./internal/nftrules -update` once the new rules are right (and
// checked against a kernel: the integration tests apply them).
func TestCompileGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.toml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".toml"), func(t *testing.T) {
			top, err := topo.LoadFile(file)
			require.NoError(t, err)
			plan, err := topo.Resolve(top)
			require.NoError(t, err)
			var out bytes.Buffer
			for _, n := range plan.Nodes {
				msgs, err := Compile(Table(plan.Lab), n.NAT, n.Firewall)
				require.NoError(t, err)
				if n.NAT == nil && n.Firewall == nil {
					require.Nil(t, msgs, "node %s has neither NAT nor firewall", n.Name)
					continue
				}
				fmt.Fprintf(&out, "# node %s\n", n.Name)
				for _, m := range msgs {
					out.WriteString(render(t, m))
				}
			}
			golden := strings.TrimSuffix(file, ".toml") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, out.Bytes(), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "no golden file: run go test ./internal/nftrules -update")
			require.Equal(t, string(want), out.String())
		})
	}
}

// Compiling is deterministic: the same node gives the same bytes twice,
// set IDs included (google/nftables numbers sets from a global counter
// unless given one).
func TestCompileDeterministic(t *testing.T) {
	top, err := topo.LoadFile("testdata/port_restricted.toml")
	require.NoError(t, err)
	plan, err := topo.Resolve(top)
	require.NoError(t, err)
	gw := plan.Node("gw")
	a, err := Compile("t", gw.NAT, gw.Firewall)
	require.NoError(t, err)
	b, err := Compile("t", gw.NAT, gw.Firewall)
	require.NoError(t, err)
	require.Equal(t, a, b)
}

var msgNames = map[int]string{
	unix.NFT_MSG_NEWTABLE: "table", unix.NFT_MSG_NEWCHAIN: "chain", unix.NFT_MSG_NEWRULE: "rule",
	unix.NFT_MSG_NEWSET: "set", unix.NFT_MSG_NEWSETELEM: "setelem",
}

var familyNames = map[byte]string{unix.NFPROTO_INET: "inet", unix.NFPROTO_IPV4: "ip", unix.NFPROTO_IPV6: "ip6"}

// attrNames names the attributes of each message, by message type; nested
// attributes of a name ending in "{" are named by the entry of that name.
var attrNames = map[string]map[uint16]string{
	"table": {unix.NFTA_TABLE_NAME: "name", unix.NFTA_TABLE_FLAGS: "flags"},
	"chain": {unix.NFTA_CHAIN_TABLE: "table", unix.NFTA_CHAIN_NAME: "name", unix.NFTA_CHAIN_HOOK: "hook{",
		unix.NFTA_CHAIN_POLICY: "policy", unix.NFTA_CHAIN_TYPE: "type"},
	"hook{": {unix.NFTA_HOOK_HOOKNUM: "hooknum", unix.NFTA_HOOK_PRIORITY: "priority"},
	"set": {unix.NFTA_SET_TABLE: "table", unix.NFTA_SET_NAME: "name", unix.NFTA_SET_FLAGS: "flags",
		unix.NFTA_SET_KEY_TYPE: "key_type", unix.NFTA_SET_KEY_LEN: "key_len", unix.NFTA_SET_DATA_TYPE: "data_type",
		unix.NFTA_SET_DATA_LEN: "data_len", unix.NFTA_SET_ID: "id", unix.NFTA_SET_TIMEOUT: "timeout_ms",
		unix.NFTA_SET_DESC: "desc{", unix.NFTA_SET_USERDATA: "userdata"},
	"desc{":   {unix.NFTA_SET_DESC_SIZE: "size", 2: "concat{"},
	"concat{": {unix.NFTA_LIST_ELEM: "elem{"},
	"elem{":   {1: "len"},
	"rule":    {unix.NFTA_RULE_TABLE: "table", unix.NFTA_RULE_CHAIN: "chain"},
}

// render turns one message into lines: the message type, family and
// flags, its attributes by name, and for a rule each expression as
// google/nftables decodes it.
func render(t *testing.T, m netlink.Message) string {
	t.Helper()
	var b strings.Builder
	kind := msgNames[int(m.Header.Type)&0xff]
	if kind == "" {
		kind = fmt.Sprintf("msg%d", m.Header.Type&0xff)
	}
	require.Equal(t, netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8), m.Header.Type&0xff00, "an nftables message")
	fmt.Fprintf(&b, "%s %s flags=%#x\n", kind, familyNames[m.Data[0]], uint16(m.Header.Flags))
	renderAttrs(t, &b, kind, m.Data[4:], m.Data[0], "  ")
	return b.String()
}

func renderAttrs(t *testing.T, b *strings.Builder, kind string, data []byte, family byte, indent string) {
	t.Helper()
	ad, err := netlink.NewAttributeDecoder(data)
	require.NoError(t, err)
	for ad.Next() {
		typ := ad.Type() &^ unix.NLA_F_NESTED
		if kind == "rule" && typ == unix.NFTA_RULE_EXPRESSIONS {
			renderExprs(t, b, ad.Bytes(), family, indent)
			continue
		}
		name := attrNames[kind][typ]
		if name == "" {
			name = fmt.Sprintf("attr%d", typ)
		}
		if strings.HasSuffix(name, "{") {
			fmt.Fprintf(b, "%s%s\n", indent, strings.TrimSuffix(name, "{"))
			renderAttrs(t, b, name, ad.Bytes(), family, indent+"  ")
			continue
		}
		v := value(ad.Bytes())
		if name == "priority" && len(ad.Bytes()) == 4 {
			v = fmt.Sprint(int32(binary.BigEndian.Uint32(ad.Bytes()))) // signed: dstnat is -100
		}
		fmt.Fprintf(b, "%s%s %s\n", indent, name, v)
	}
	require.NoError(t, ad.Err())
}

// value shows a NUL-terminated string as a quoted string, 4 and 8 bytes as
// big-endian numbers, anything else in hex.
func value(v []byte) string {
	if n := len(v); n > 1 && v[n-1] == 0 && bytes.IndexByte(v[:n-1], 0) < 0 && printable(v[:n-1]) {
		return fmt.Sprintf("%q", v[:n-1])
	}
	switch len(v) {
	case 4:
		return fmt.Sprint(binary.BigEndian.Uint32(v))
	case 8:
		return fmt.Sprint(binary.BigEndian.Uint64(v))
	}
	return fmt.Sprintf("%x", v)
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// exprTypes are the expressions nslab writes, by their kernel names.
var exprTypes = map[string]reflect.Type{
	"meta": reflect.TypeOf(expr.Meta{}), "cmp": reflect.TypeOf(expr.Cmp{}), "payload": reflect.TypeOf(expr.Payload{}),
	"immediate": reflect.TypeOf(expr.Immediate{}), "bitwise": reflect.TypeOf(expr.Bitwise{}), "ct": reflect.TypeOf(expr.Ct{}),
	"nat": reflect.TypeOf(expr.NAT{}), "masq": reflect.TypeOf(expr.Masq{}), "lookup": reflect.TypeOf(expr.Lookup{}),
	"dynset": reflect.TypeOf(expr.Dynset{}), "reject": reflect.TypeOf(expr.Reject{}),
}

func renderExprs(t *testing.T, b *strings.Builder, data []byte, family byte, indent string) {
	t.Helper()
	ad, err := netlink.NewAttributeDecoder(data)
	require.NoError(t, err)
	for ad.Next() {
		e, err := netlink.NewAttributeDecoder(ad.Bytes())
		require.NoError(t, err)
		var name string
		var body []byte
		for e.Next() {
			switch e.Type() &^ unix.NLA_F_NESTED {
			case unix.NFTA_EXPR_NAME:
				name = e.String()
			case unix.NFTA_EXPR_DATA:
				body = e.Bytes()
			}
		}
		require.NoError(t, e.Err())
		if name == "ct" {
			// Decoded here: google/nftables v0.3.0 reads the direction as
			// 32 bits and the kernel's is 8 (see ctAddr).
			fmt.Fprintf(b, "%sct {%s}\n", indent, ctFields(t, body))
			continue
		}
		typ, ok := exprTypes[name]
		require.True(t, ok, "an expression nslab does not write: %q", name)
		x := reflect.New(typ).Interface().(expr.Any)
		require.NoError(t, expr.Unmarshal(family, body, x), "expression %s", name)
		// A verdict is an immediate into the verdict register.
		if imm, ok := x.(*expr.Immediate); ok && imm.Register == unix.NFT_REG_VERDICT && len(imm.Data) == 0 {
			x = &expr.Verdict{}
			require.NoError(t, expr.Unmarshal(family, body, x))
			name = "verdict"
		}
		fmt.Fprintf(b, "%s%s {%s}\n", indent, name, fields(reflect.ValueOf(x).Elem()))
	}
	require.NoError(t, ad.Err())
}

// fields shows a struct's non-zero fields as Name:value; byte slices as an
// interface name when they are one (printable, NUL-padded to 16 bytes),
// else in hex.
func fields(v reflect.Value) string {
	var out []string
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if !v.Type().Field(i).IsExported() || f.IsZero() {
			continue
		}
		s := fmt.Sprint(f.Interface())
		if bs, ok := f.Interface().([]byte); ok {
			s = "0x" + hex(bs)
			if name := bytes.TrimRight(bs, "\x00"); len(bs) == 16 && len(name) > 0 && printable(name) {
				s = fmt.Sprintf("%q", name)
			}
		}
		out = append(out, v.Type().Field(i).Name+":"+s)
	}
	return strings.Join(out, " ")
}

func hex(b []byte) string { return fmt.Sprintf("%x", b) }

// ctFields shows a ct expression's attributes: key, registers, direction.
func ctFields(t *testing.T, body []byte) string {
	t.Helper()
	ad, err := netlink.NewAttributeDecoder(body)
	require.NoError(t, err)
	var out []string
	for ad.Next() {
		v := ad.Bytes()
		switch ad.Type() {
		case unix.NFTA_CT_KEY:
			out = append(out, fmt.Sprintf("Key:%d", binary.BigEndian.Uint32(v)))
		case unix.NFTA_CT_DREG:
			out = append(out, fmt.Sprintf("Register:%d", binary.BigEndian.Uint32(v)))
		case unix.NFTA_CT_SREG:
			out = append(out, fmt.Sprintf("SourceRegister:%d", binary.BigEndian.Uint32(v)))
		case unix.NFTA_CT_DIRECTION:
			out = append(out, fmt.Sprintf("Direction:%d/%dbytes", v[0], len(v)))
		default:
			out = append(out, fmt.Sprintf("attr%d:%x", ad.Type(), v))
		}
	}
	require.NoError(t, ad.Err())
	return strings.Join(out, " ")
}
