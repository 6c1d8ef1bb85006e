// Command electd-linearize is the fault suite's outside judge of "one leader": it reads a
// history of self-claims "node N leads with epoch E", each over its real-time interval, and
// asks Porcupine whether the history is linearizable against a register of terms (a claim
// opens a newer term or repeats the current one).
//
//	electd-linearize [-timeout 60s] [-html out.html] ops.json
//
// ops.json is a JSON list of {"client": int, "node": "n1", "epoch": int, "call": ns,
// "return": ns} (optionally "source"). Prints one summary line. Exit status: 0 linearizable,
// 1 not linearizable (the HTML visualisation is written to -html), 2 bad input or no verdict
// within the timeout.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/anishathalye/porcupine"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("electd-linearize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 60*time.Second, "give up (exit 2) after this long")
	html := fs.String("html", "", "where to write Porcupine's visualisation of a failing history")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintln(stdout, "bad input: usage: electd-linearize [-timeout D] [-html PATH] ops.json")
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stdout, "bad input: usage: electd-linearize [-timeout D] [-html PATH] ops.json")
		return 2
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stdout, "bad input: %v\n", err)
		return 2
	}
	defer f.Close()
	ops, err := readOps(f)
	if err != nil {
		fmt.Fprintf(stdout, "bad input: %s: %v\n", fs.Arg(0), err)
		return 2
	}
	v := check(ops, *timeout)
	switch v.Result {
	case porcupine.Ok:
		fmt.Fprintln(stdout, v.Summary)
		return 0
	case porcupine.Illegal:
		if *html != "" {
			if err := porcupine.VisualizePath(termsModel, v.Info, *html); err != nil {
				fmt.Fprintf(stdout, "%s; writing the visualisation failed: %v\n", v.Summary, err)
				return 1
			}
			fmt.Fprintf(stdout, "%s; visualisation: %s\n", v.Summary, *html)
			return 1
		}
		fmt.Fprintln(stdout, v.Summary)
		return 1
	default:
		fmt.Fprintln(stdout, v.Summary)
		return 2
	}
}
