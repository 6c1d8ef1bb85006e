// Command electd-go is the Go example client for electd. It follows the
// contract in clients/README.md:
//
//	electd-go [--json] [TLS flags] leader ADDR [ADDR...]
//	electd-go [--json] [TLS flags] nodes  ADDR [ADDR...]
//	electd-go [--json] [TLS flags] watch  ADDR [ADDR...]
//
// The TLS flags are the electd command line's: --tls-ca FILE, --tls-cert
// FILE, --tls-key FILE, --tls-server-name NAME (also as --flag=VALUE,
// anywhere on the line); any of them turns TLS on (clients/README.md, "TLS").
//
// It uses the library's defaults: a 2 s connect deadline per address, a 2 s
// deadline per call, a 2 s first-message deadline for watch, HTTP/2 keepalive
// every 3 s (3 s timeout). watch logs every failover on stderr and exits 0
// within a second of SIGINT/SIGTERM.
//
// Exit codes: 0 on success (and for watch on SIGINT/SIGTERM), 1 when no
// address answered or a call failed, 2 for bad usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/electd/electd/clients/go/electd"
	"github.com/electd/electd/clients/go/electdpb"
)

const usage = `usage: electd-go [--json] COMMAND ADDR [ADDR...]

Commands:
  leader   print the current leader and its fencing epoch
  nodes    list the live members in election order (leader first)
  watch    print the leader now and on every change, until SIGINT/SIGTERM
           (each failover to another address is logged on stderr)

ADDR is the HOST:PORT of an electd node; any node answers for the cluster.

Options (before or after COMMAND):
  --json                  print one JSON object per line instead
  --tls-ca FILE           PEM CA certificates to verify the nodes with (TLS on;
                          default with TLS: the system's roots)
  --tls-cert FILE         PEM client certificate chain for mutual TLS (with --tls-key)
  --tls-key FILE          PEM private key of --tls-cert
  --tls-server-name NAME  name the nodes' certificates must carry (and SNI),
                          instead of each ADDR's host
Any --tls-* flag turns TLS on; without them the client speaks plaintext.
`

// usageError is bad usage: the usage text goes to stderr and the exit code is 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	a, err := parseArgs(args)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "electd-go: %v\n\n%s", err, usage)
		return 2
	}
	client, err := electd.New(a.addrs, a.tls.options()...)
	if err != nil {
		// A bad option: a TLS file that cannot be read or used.
		fmt.Fprintf(stderr, "electd-go: %v\n", a.tls.flagNames(err.Error()))
		return 2
	}
	defer client.Close()

	out := &printer{w: stdout, json: a.json}
	switch a.cmd {
	case "leader":
		err = leader(client, out)
	case "nodes":
		err = nodes(client, out)
	case "watch":
		err = watch(client, out, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "electd-go: %v\n", err)
		return 1
	}
	return 0
}

var errHelp = errors.New("help requested")

// cliArgs is a parsed command line.
type cliArgs struct {
	cmd   string
	addrs []string
	json  bool
	tls   tlsFlags
}

// tlsFlags are the --tls-* flags, named as the electd command line's.
type tlsFlags struct {
	ca, cert, key, serverName string
}

// tlsFlagNames maps each flag to the library option it sets.
var tlsFlagNames = []struct{ flag, option string }{
	{"--tls-ca", "WithTLSCA"},
	{"--tls-cert", "WithTLSCert"},
	{"--tls-key", "WithTLSKey"},
	{"--tls-server-name", "WithTLSServerName"},
}

func (t *tlsFlags) field(flag string) *string {
	switch flag {
	case "--tls-ca":
		return &t.ca
	case "--tls-cert":
		return &t.cert
	case "--tls-key":
		return &t.key
	case "--tls-server-name":
		return &t.serverName
	}
	return nil
}

// options are the library options of the flags given.
func (t tlsFlags) options() []electd.Option {
	var opts []electd.Option
	if t.ca != "" {
		opts = append(opts, electd.WithTLSCA(t.ca))
	}
	if t.cert != "" {
		opts = append(opts, electd.WithTLSCert(t.cert))
	}
	if t.key != "" {
		opts = append(opts, electd.WithTLSKey(t.key))
	}
	if t.serverName != "" {
		opts = append(opts, electd.WithTLSServerName(t.serverName))
	}
	return opts
}

// flagNames puts the flags' names for the library's option names in msg.
func (tlsFlags) flagNames(msg string) string {
	msg = strings.TrimPrefix(msg, "electd: ")
	for _, n := range tlsFlagNames { // no option name is a prefix of another
		msg = strings.ReplaceAll(msg, n.option, n.flag)
	}
	return msg
}

func parseArgs(args []string) (a cliArgs, err error) {
	for i := 0; i < len(args); i++ {
		arg := args[i]
		name, value, hasValue := strings.Cut(arg, "=")
		if p := a.tls.field(name); p != nil && strings.HasPrefix(arg, "--") {
			if !hasValue {
				if i+1 >= len(args) {
					return cliArgs{}, usageError{fmt.Sprintf("%s needs a value", name)}
				}
				i++
				value = args[i]
			}
			if value == "" {
				return cliArgs{}, usageError{fmt.Sprintf("%s: empty value", name)}
			}
			*p = value
			continue
		}
		switch {
		case arg == "--json" || arg == "-json":
			a.json = true
		case arg == "-h" || arg == "--help" || arg == "help":
			return cliArgs{}, errHelp
		case strings.HasPrefix(arg, "-"):
			return cliArgs{}, usageError{fmt.Sprintf("unknown option %q", arg)}
		case a.cmd == "":
			a.cmd = arg
		default:
			a.addrs = append(a.addrs, arg)
		}
	}
	switch a.cmd {
	case "leader", "nodes", "watch":
	case "":
		return cliArgs{}, usageError{"missing command"}
	default:
		return cliArgs{}, usageError{fmt.Sprintf("unknown command %q", a.cmd)}
	}
	if len(a.addrs) == 0 {
		return cliArgs{}, usageError{"no address given"}
	}
	for _, addr := range a.addrs {
		if err := electd.ValidateAddress(addr); err != nil {
			return cliArgs{}, usageError{strings.TrimPrefix(err.Error(), "electd: ")}
		}
	}
	switch {
	case a.tls.cert != "" && a.tls.key == "":
		return cliArgs{}, usageError{"--tls-cert: needs --tls-key too"}
	case a.tls.key != "" && a.tls.cert == "":
		return cliArgs{}, usageError{"--tls-key: needs --tls-cert too"}
	}
	return a, nil
}

func leader(c *electd.ElectionClient, out *printer) error {
	resp, err := c.GetLeader(context.Background())
	if err != nil {
		return err
	}
	return out.leader(resp.GetLeader(), "answered by "+resp.GetResponderId())
}

func nodes(c *electd.ElectionClient, out *printer) error {
	resp, err := c.ListNodes(context.Background(), nil)
	if err != nil {
		return err
	}
	return out.nodes(resp)
}

func watch(c *electd.ElectionClient, out *printer, stderr io.Writer) error {
	// SIGINT/SIGTERM cancel the context, which ends the watch at once (the
	// open stream, a pending connection attempt or a backoff pause); that is
	// a normal end of a watch, so it exits 0.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Each failover is logged on stderr (stdout carries only leaders).
	hook := electd.WithFailoverHook(func(addr, reason string) {
		fmt.Fprintf(stderr, "electd-go: watch: left %s: %s\n", addr, reason)
	})
	err := c.WatchLeader(ctx, func(l *electdpb.Leader) error {
		return out.leader(l, time.Now().Format(time.RFC3339Nano))
	}, hook)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// printer writes either lines for people or the contract's JSON lines.
// os.Stdout is unbuffered in Go, so every line is flushed at once.
type printer struct {
	w    io.Writer
	json bool
}

// The JSON shapes of clients/README.md. Struct field order is the key order;
// int64 fields are printed as exact integers.
type leaderJSON struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Epoch   int64  `json:"epoch"`
}

type nodeJSON struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Sequence int64  `json:"sequence"`
	IsLeader bool   `json:"is_leader"`
	Watches  string `json:"watches"`
}

func (p *printer) writeJSON(v any) error {
	enc := json.NewEncoder(p.w) // Encode adds the newline
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func (p *printer) leader(l *electdpb.Leader, note string) error {
	n := l.GetNode()
	if p.json {
		return p.writeJSON(leaderJSON{ID: n.GetId(), Address: n.GetAddress(), Epoch: l.GetEpoch()})
	}
	_, err := fmt.Fprintf(p.w, "leader %s at %s, epoch %d (%s)\n", n.GetId(), n.GetAddress(), l.GetEpoch(), note)
	return err
}

func (p *printer) nodes(resp *electdpb.ListNodesResponse) error {
	if p.json {
		for _, n := range resp.GetNodes() {
			err := p.writeJSON(nodeJSON{ID: n.GetId(), Address: n.GetAddress(), Sequence: n.GetSequence(),
				IsLeader: n.GetIsLeader(), Watches: n.GetWatches()})
			if err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tSEQUENCE\tLEADER\tWATCHES\tVERSION")
	for _, n := range resp.GetNodes() {
		lead := ""
		if n.GetIsLeader() {
			lead = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", n.GetId(), n.GetAddress(), n.GetSequence(), lead, n.GetWatches(), n.GetVersion())
	}
	fmt.Fprintf(tw, "(epoch %d, answered by %s)\n", resp.GetEpoch(), resp.GetResponderId())
	return tw.Flush()
}
