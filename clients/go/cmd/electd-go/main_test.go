package main

import (
	"bytes"
	"testing"

	"github.com/electd/electd/clients/go/electdpb"
)

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{}, {"--json"}, {"leader"}, {"bogus", "127.0.0.1:1"}, {"leader", "--verbose", "127.0.0.1:1"},
		{"nodes", "no-port"}, {"watch", "127.0.0.1:99999"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 || !bytes.Contains(errOut.Bytes(), []byte("usage:")) {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut.String())
		}
	}
}

func TestJSONFlagBeforeOrAfterCommand(t *testing.T) {
	for _, args := range [][]string{
		{"--json", "leader", "127.0.0.1:1", "127.0.0.1:2"},
		{"leader", "--json", "127.0.0.1:1", "127.0.0.1:2"},
		{"leader", "127.0.0.1:1", "127.0.0.1:2", "--json"},
	} {
		a, err := parseArgs(args)
		if err != nil || a.cmd != "leader" || len(a.addrs) != 2 || !a.json {
			t.Errorf("%q: %+v %v", args, a, err)
		}
	}
}

func TestJSONLines(t *testing.T) {
	var buf bytes.Buffer
	p := &printer{w: &buf, json: true}
	l := &electdpb.Leader{Node: &electdpb.Node{Id: "n1", Address: "127.0.0.1:7001"}, Epoch: 9223372036854775807}
	if err := p.leader(l, ""); err != nil {
		t.Fatal(err)
	}
	err := p.nodes(&electdpb.ListNodesResponse{Nodes: []*electdpb.Node{
		{Id: "n1", Address: "127.0.0.1:7001", Sequence: 0, IsLeader: true},
		{Id: "n<2>", Address: "127.0.0.1:7002", Sequence: 1, Watches: "electd-x-0000000000"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"n1","address":"127.0.0.1:7001","epoch":9223372036854775807}
{"id":"n1","address":"127.0.0.1:7001","sequence":0,"is_leader":true,"watches":""}
{"id":"n<2>","address":"127.0.0.1:7002","sequence":1,"is_leader":false,"watches":"electd-x-0000000000"}
`
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestTLSFlags(t *testing.T) {
	a, err := parseArgs([]string{"--tls-ca", "ca.pem", "leader", "--tls-cert=c.pem", "127.0.0.1:1",
		"--tls-key", "c.key", "--tls-server-name=node.example", "--json"})
	want := tlsFlags{ca: "ca.pem", cert: "c.pem", key: "c.key", serverName: "node.example"}
	if err != nil || a.tls != want || a.cmd != "leader" || len(a.addrs) != 1 || !a.json {
		t.Fatalf("%+v %v", a, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"leader", "127.0.0.1:1", "--tls-cert", "c.pem"}, "--tls-cert: needs --tls-key too"},
		{[]string{"leader", "127.0.0.1:1", "--tls-key=c.key"}, "--tls-key: needs --tls-cert too"},
		{[]string{"leader", "127.0.0.1:1", "--tls-ca"}, "--tls-ca needs a value"},
		{[]string{"leader", "127.0.0.1:1", "--tls-ca", "/nonexistent/ca.pem"}, "--tls-ca: cannot read /nonexistent/ca.pem"},
	} {
		var out, errOut bytes.Buffer
		if code := run(tc.args, &out, &errOut); code != 2 || !bytes.Contains(errOut.Bytes(), []byte(tc.want)) {
			t.Errorf("%q: exit %d, stderr %q, want %q", tc.args, code, errOut.String(), tc.want)
		}
	}
}
