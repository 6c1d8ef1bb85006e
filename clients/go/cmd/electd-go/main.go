// Command electd-go is the Go example client for electd. It follows the
// contract in clients/README.md:
//
//	electd-go [--json] [TLS flags] leader ADDR [ADDR...]    [--election NAME]
//	electd-go [--json] [TLS flags] nodes  ADDR [ADDR...]    [--election NAME]
//	electd-go [--json] [TLS flags] watch  ADDR [ADDR...]    [--election NAME]
//	electd-go [TLS flags] campaign ELECTION ID ADDR [ADDR...] [--value V] [--priority N]
//	          [--label K=V]... [--never-lead] [--stop-on-loss]
//	electd-go [--json] [TLS flags] resign ELECTION EPOCH ADDR [ADDR...]
//	electd-go [--json] [TLS flags] elections ADDR [ADDR...]
//
// campaign prints one line per event, flushed: "queued position=P",
// "leading epoch=E", "lost epoch=E reason=R", "stopped"; while leading it
// appends "E ID" every 100 ms to the file named by $ELECTD_CAMPAIGN_LOG (when
// set); on SIGINT/SIGTERM it resigns and exits 0.
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
// Exit codes: 0 on success (and for watch and campaign on SIGINT/SIGTERM, and
// campaign --stop-on-loss after a loss), 1 when no address answered or a call
// failed, 2 for bad usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/electd/electd/clients/go/electd"
	"github.com/electd/electd/clients/go/electdpb"
)

const usage = `usage: electd-go [--json] COMMAND ADDR [ADDR...]

       electd-go campaign ELECTION ID ADDR [ADDR...]
       electd-go [--json] resign ELECTION EPOCH ADDR [ADDR...]

Commands:
  leader     print the current leader and its fencing epoch
  nodes      list the live members in election order (leader first)
  watch      print the leader now and on every change, until SIGINT/SIGTERM
             (each failover to another address is logged on stderr)
  campaign   campaign as candidate ID in the named ELECTION until SIGINT/SIGTERM
             (then resign); prints "queued position=P", "leading epoch=E",
             "lost epoch=E reason=R", "stopped"; while leading appends "E ID"
             every 100 ms to the file $ELECTD_CAMPAIGN_LOG names, if set
  resign     end the term EPOCH of the named ELECTION (an operator's resign)
  elections  list the named elections and their numbers of candidates

ADDR is the HOST:PORT of an electd node; any node answers for the cluster.

Options (before or after COMMAND):
  --json                  print one JSON object per line instead
  --election NAME         leader, nodes, watch: read the named election NAME
  --value V               campaign: the candidate's value
  --priority N            campaign: the candidate's priority (default 0)
  --label K=V             campaign: a label of the candidate (repeatable)
  --never-lead            campaign: a member that never leads
  --stop-on-loss          campaign: end (exit 0) when a term is lost, instead
                          of campaigning again
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
		err = leader(client, a, out)
	case "nodes":
		err = nodes(client, a, out)
	case "watch":
		err = watch(client, a, out, stderr)
	case "campaign":
		err = campaign(client, a, stdout, stderr)
	case "resign":
		err = resign(client, a, out)
	case "elections":
		err = elections(client, out)
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

	election   string            // --election; campaign's and resign's ELECTION
	id         string            // campaign's ID
	epoch      int64             // resign's EPOCH
	value      string            // --value
	priority   int32             // --priority
	labels     map[string]string // --label
	neverLead  bool              // --never-lead
	stopOnLoss bool              // --stop-on-loss
}

// valueFlags are the flags that take a value (other than the TLS ones).
var valueFlags = map[string]bool{"--election": true, "--value": true, "--priority": true, "--label": true}

// setValue sets the value of a flag of valueFlags.
func (a *cliArgs) setValue(name, value string) error {
	switch name {
	case "--election":
		a.election = value
	case "--value":
		a.value = value
	case "--priority":
		p, err := strconv.ParseInt(value, 10, 32)
		if err != nil {
			return usageError{fmt.Sprintf("--priority: not a 32-bit integer: %q", value)}
		}
		a.priority = int32(p)
	case "--label":
		k, v, ok := strings.Cut(value, "=")
		if !ok || k == "" {
			return usageError{fmt.Sprintf("--label: want KEY=VALUE, got %q", value)}
		}
		if a.labels == nil {
			a.labels = map[string]string{}
		}
		a.labels[k] = v
	}
	return nil
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
	var positional []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		name, value, hasValue := strings.Cut(arg, "=")
		if valueFlags[name] {
			if !hasValue {
				if i+1 >= len(args) {
					return cliArgs{}, usageError{fmt.Sprintf("%s needs a value", name)}
				}
				i++
				value = args[i]
			}
			if err := a.setValue(name, value); err != nil {
				return cliArgs{}, err
			}
			continue
		}
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
		case arg == "--never-lead":
			a.neverLead = true
		case arg == "--stop-on-loss":
			a.stopOnLoss = true
		case arg == "-h" || arg == "--help" || arg == "help":
			return cliArgs{}, errHelp
		case strings.HasPrefix(arg, "-"):
			return cliArgs{}, usageError{fmt.Sprintf("unknown option %q", arg)}
		case a.cmd == "":
			a.cmd = arg
		default:
			positional = append(positional, arg)
		}
	}
	campaignOnly := a.value != "" || a.priority != 0 || a.labels != nil || a.neverLead || a.stopOnLoss
	switch a.cmd {
	case "leader", "nodes", "watch", "elections":
		if a.cmd == "elections" && a.election != "" {
			return cliArgs{}, usageError{"--election: not an option of elections"}
		}
		a.addrs = positional
	case "campaign":
		if a.election != "" {
			return cliArgs{}, usageError{"campaign: the election is the first argument, not --election"}
		}
		if len(positional) < 2 {
			return cliArgs{}, usageError{"campaign: want ELECTION ID ADDR [ADDR...]"}
		}
		a.election, a.id, a.addrs = positional[0], positional[1], positional[2:]
		campaignOnly = false
	case "resign":
		if a.election != "" {
			return cliArgs{}, usageError{"resign: the election is the first argument, not --election"}
		}
		if len(positional) < 2 {
			return cliArgs{}, usageError{"resign: want ELECTION EPOCH ADDR [ADDR...]"}
		}
		e, err := strconv.ParseInt(positional[1], 10, 64)
		if err != nil || e <= 0 {
			return cliArgs{}, usageError{fmt.Sprintf("resign: EPOCH must be a positive integer, got %q", positional[1])}
		}
		a.election, a.epoch, a.addrs = positional[0], e, positional[2:]
	case "":
		return cliArgs{}, usageError{"missing command"}
	default:
		return cliArgs{}, usageError{fmt.Sprintf("unknown command %q", a.cmd)}
	}
	if campaignOnly {
		return cliArgs{}, usageError{fmt.Sprintf("--value, --priority, --label, --never-lead and --stop-on-loss are options of campaign, not %s", a.cmd)}
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

func leader(c *electd.ElectionClient, a cliArgs, out *printer) error {
	resp, err := c.GetLeader(context.Background(), electd.InElection(a.election))
	if err != nil {
		return err
	}
	return out.leader(resp.GetLeader(), "answered by "+resp.GetResponderId())
}

func nodes(c *electd.ElectionClient, a cliArgs, out *printer) error {
	resp, err := c.ListNodes(context.Background(), nil, electd.InElection(a.election))
	if err != nil {
		return err
	}
	return out.nodes(resp)
}

func watch(c *electd.ElectionClient, a cliArgs, out *printer, stderr io.Writer) error {
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
	}, hook, electd.InElection(a.election))
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// campaignLogEnv names the file a leading campaign appends "EPOCH ID" lines to.
const campaignLogEnv = "ELECTD_CAMPAIGN_LOG"

// campaignLogEvery is how often a leading campaign appends its line.
const campaignLogEvery = 100 * time.Millisecond

func campaign(c *electd.ElectionClient, a cliArgs, stdout, stderr io.Writer) error {
	// SIGINT/SIGTERM cancel the context: the helper stops the work, resigns
	// and Campaign returns; that is a normal end, so it exits 0.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hook := func(ev electd.CampaignEvent) {
		switch ev.Kind {
		case electd.EventQueued:
			fmt.Fprintf(stdout, "queued position=%d\n", ev.Position)
		case electd.EventLeading:
			fmt.Fprintf(stdout, "leading epoch=%d\n", ev.Epoch)
		case electd.EventLost:
			fmt.Fprintf(stdout, "lost epoch=%d reason=%s\n", ev.Epoch, ev.Reason)
		case electd.EventStopped:
			fmt.Fprintln(stdout, "stopped")
		case electd.EventFailover:
			fmt.Fprintf(stderr, "electd-go: campaign: left %s: %s\n", ev.Addr, ev.Detail)
		case electd.EventRefused:
			fmt.Fprintf(stderr, "electd-go: campaign: %s refused by %s: %s\n", ev.Reason, ev.Addr, ev.Detail)
		}
	}
	opts := []electd.CampaignOption{electd.WithCampaignHook(hook), electd.WithPriority(a.priority)}
	if a.value != "" {
		opts = append(opts, electd.WithValue([]byte(a.value)))
	}
	if a.labels != nil {
		opts = append(opts, electd.WithLabels(a.labels))
	}
	if a.neverLead {
		opts = append(opts, electd.NeverLead())
	}
	if a.stopOnLoss {
		opts = append(opts, electd.OnLoss(electd.LossStop))
	}
	err := c.Campaign(ctx, a.election, a.id, func(wctx context.Context, term electd.Term) error {
		return leaderLog(wctx, os.Getenv(campaignLogEnv), fmt.Sprintf("%d %s\n", term.Epoch, a.id))
	}, opts...)
	var lost *electd.LostError
	if ctx.Err() != nil || (a.stopOnLoss && errors.As(err, &lost)) {
		return nil
	}
	return err
}

// leaderLog is the campaign's work: until ctx is done, append line to the
// file at path every 100 ms (just wait when path is empty). It returns
// ctx.Err(), or the error of a write (which ends the campaign).
func leaderLog(ctx context.Context, path, line string) error {
	if path == "" {
		<-ctx.Done()
		return ctx.Err()
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("$%s: %w", campaignLogEnv, err)
	}
	defer f.Close()
	tick := time.NewTicker(campaignLogEvery)
	defer tick.Stop()
	for {
		// Checked right before each write: no line after the term ended.
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := f.WriteString(line); err != nil { // one write, O_APPEND: never torn
			return fmt.Errorf("$%s: %w", campaignLogEnv, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func resign(c *electd.ElectionClient, a cliArgs, out *printer) error {
	resp, err := c.Resign(context.Background(), a.election, a.epoch)
	if err != nil {
		return err
	}
	return out.leader(resp.GetLeader(), "resigned, answered by "+resp.GetResponderId())
}

func elections(c *electd.ElectionClient, out *printer) error {
	resp, err := c.ListElections(context.Background())
	if err != nil {
		return err
	}
	return out.elections(resp)
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

type electionJSON struct {
	Name       string `json:"name"`
	Candidates int32  `json:"candidates"`
}

func (p *printer) elections(resp *electdpb.ListElectionsResponse) error {
	if p.json {
		for _, e := range resp.GetElections() {
			if err := p.writeJSON(electionJSON{Name: e.GetName(), Candidates: e.GetCandidates()}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ELECTION\tCANDIDATES")
	for _, e := range resp.GetElections() {
		fmt.Fprintf(tw, "%s\t%d\n", e.GetName(), e.GetCandidates())
	}
	fmt.Fprintf(tw, "(answered by %s)\n", resp.GetResponderId())
	return tw.Flush()
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
