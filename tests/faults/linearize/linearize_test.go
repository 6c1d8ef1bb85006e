package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// at is a claim by node of epoch over [call, return], both in seconds.
func at(client int, node string, epoch int64, call, ret float64) op {
	return op{Client: client, Node: node, Epoch: epoch, Call: int64(call * 1e9), Return: int64(ret * 1e9)}
}

func result(t *testing.T, ops []op) verdict {
	t.Helper()
	v := check(ops, 10*time.Second)
	t.Log(v.Summary)
	return v
}

func TestLegalHistory(t *testing.T) {
	ops := []op{
		at(0, "n1", 5, 1.0, 1.1),
		at(0, "n1", 5, 2.0, 2.1),
		at(0, "n1", 5, 4.0, 6.0), // overlaps n2's first claim: n1's may come first
		at(1, "n2", 9, 5.0, 5.5),
		at(1, "n2", 9, 7.0, 7.0),  // a log line: one instant
		at(2, "n3", 12, 7.0, 7.0), // same instant as n2's last: closed intervals, concurrent
		at(2, "n3", 12, 8.0, 8.2),
		at(0, "n1", 20, 9.0, 9.1), // n1 again, a newer term
	}
	v := result(t, ops)
	if v.Result != porcupine.Ok {
		t.Fatalf("want linearizable, got %s: %s", v.Result, v.Summary)
	}
	if v.Summary != "linearizable: 8 claims, 4 terms" {
		t.Fatalf("summary %q", v.Summary)
	}
}

func TestEmptyHistoryIsLinearizable(t *testing.T) {
	if v := result(t, nil); v.Result != porcupine.Ok {
		t.Fatalf("want linearizable, got %s", v.Result)
	}
}

func TestOverlappingTermsAreIllegal(t *testing.T) {
	// n1's term runs from its first claim to its last: its last claim began after n2's first
	// had returned, so n1 still believed it led while n2 already did.
	ops := []op{
		at(0, "n1", 5, 1.0, 1.1),
		at(1, "n2", 9, 2.0, 2.1),
		at(0, "n1", 5, 3.0, 3.1),
		at(1, "n2", 9, 4.0, 4.1),
	}
	v := result(t, ops)
	if v.Result != porcupine.Illegal {
		t.Fatalf("want not linearizable, got %s: %s", v.Result, v.Summary)
	}
	for _, want := range []string{"not linearizable: 4 claims, 2 terms", "n1's claim of epoch 5 [3.000, 3.100]",
		"epoch 9: n2", "it began after n2 epoch 9 returned at 2.100"} {
		if !strings.Contains(v.Summary, want) {
			t.Errorf("summary %q lacks %q", v.Summary, want)
		}
	}
}

func TestNewerBeforeOlderIsIllegal(t *testing.T) {
	ops := []op{
		at(1, "n2", 9, 1.0, 1.1),
		at(0, "n1", 5, 2.0, 2.1),
	}
	v := result(t, ops)
	if v.Result != porcupine.Illegal {
		t.Fatalf("want not linearizable, got %s: %s", v.Result, v.Summary)
	}
	if !strings.Contains(v.Summary, "n1's claim of epoch 5") {
		t.Errorf("summary %q does not name n1's claim", v.Summary)
	}
	// The same claims, concurrent, are legal: n1's may take effect first.
	ops[1] = at(0, "n1", 5, 0.5, 2.1)
	if v := result(t, ops); v.Result != porcupine.Ok {
		t.Fatalf("concurrent: want linearizable, got %s", v.Result)
	}
}

func TestSameEpochTwoNodesIsIllegal(t *testing.T) {
	for name, ops := range map[string][]op{
		"in turn":    {at(0, "n1", 5, 1.0, 1.1), at(1, "n2", 5, 2.0, 2.1)},
		"concurrent": {at(0, "n1", 5, 1.0, 3.0), at(1, "n2", 5, 1.0, 3.0)},
	} {
		t.Run(name, func(t *testing.T) {
			v := result(t, ops)
			if v.Result != porcupine.Illegal {
				t.Fatalf("want not linearizable, got %s: %s", v.Result, v.Summary)
			}
			if !strings.Contains(v.Summary, "cannot follow the term epoch 5: n") {
				t.Errorf("summary %q", v.Summary)
			}
		})
	}
}

// Why the Python side keeps two claims per term (its first and its last) rather than one
// operation spanning them: Porcupine places an operation at one instant of its interval, so
// a term as one long operation could be placed at its start, and an overlap would go unseen.
func TestOneOperationPerTermWouldHideAnOverlap(t *testing.T) {
	spans := []op{at(0, "n1", 5, 1.0, 3.1), at(1, "n2", 9, 2.0, 4.1)}
	if v := result(t, spans); v.Result != porcupine.Ok {
		t.Fatalf("one span per term: want linearizable (the overlap is lost), got %s", v.Result)
	}
	ends := []op{at(0, "n1", 5, 1.0, 1.1), at(0, "n1", 5, 3.0, 3.1), at(1, "n2", 9, 2.0, 2.1), at(1, "n2", 9, 4.0, 4.1)}
	if v := result(t, ends); v.Result != porcupine.Illegal {
		t.Fatalf("first and last claim per term: want not linearizable, got %s", v.Result)
	}
}

func writeOps(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ops.json")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runCommand(args ...string) (int, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String()
}

func oneLine(t *testing.T, out string) {
	t.Helper()
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("want exactly one summary line, got %q", out)
	}
}

func TestCommandExitCodesAndVisualisation(t *testing.T) {
	good := writeOps(t, `[{"client": 0, "node": "n1", "epoch": 5, "call": 1000, "return": 2000, "source": "log"},
		{"client": 1, "node": "n2", "epoch": 9, "call": 3000, "return": 3000}]`)
	html := filepath.Join(t.TempDir(), "history.html")
	code, out := runCommand("-html", html, good)
	oneLine(t, out)
	if code != 0 || !strings.HasPrefix(out, "linearizable: 2 claims, 2 terms") {
		t.Fatalf("exit %d, %q", code, out)
	}
	if _, err := os.Stat(html); !os.IsNotExist(err) {
		t.Fatalf("a linearizable history wrote a visualisation (%v)", err)
	}

	bad := writeOps(t, `[{"client": 1, "node": "n2", "epoch": 9, "call": 1000, "return": 2000},
		{"client": 0, "node": "n1", "epoch": 5, "call": 3000, "return": 4000, "source": "probe"}]`)
	code, out = runCommand("-html", html, bad)
	oneLine(t, out)
	if code != 1 || !strings.HasPrefix(out, "not linearizable: 2 claims, 2 terms") || !strings.Contains(out, html) {
		t.Fatalf("exit %d, %q", code, out)
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<html", "n1 leads, epoch 5", "n2 leads, epoch 9"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("the visualisation lacks %q", want)
		}
	}
}

func TestCommandRejectsBadInput(t *testing.T) {
	for name, text := range map[string]string{
		"not JSON":        `{"client": 0`,
		"not a list":      `{"client": 0, "node": "n1", "epoch": 5, "call": 1, "return": 2}`,
		"unknown field":   `[{"client": 0, "node": "n1", "epoch": 5, "call": 1, "return": 2, "term": 3}]`,
		"no node":         `[{"client": 0, "epoch": 5, "call": 1, "return": 2}]`,
		"epoch zero":      `[{"client": 0, "node": "n1", "epoch": 0, "call": 1, "return": 2}]`,
		"negative client": `[{"client": -1, "node": "n1", "epoch": 5, "call": 1, "return": 2}]`,
		"return < call":   `[{"client": 0, "node": "n1", "epoch": 5, "call": 2, "return": 1}]`,
		"trailing data":   `[] []`,
	} {
		t.Run(name, func(t *testing.T) {
			code, out := runCommand(writeOps(t, text))
			oneLine(t, out)
			if code != 2 || !strings.HasPrefix(out, "bad input: ") {
				t.Fatalf("exit %d, %q", code, out)
			}
		})
	}
	code, out := runCommand(filepath.Join(t.TempDir(), "missing.json"))
	oneLine(t, out)
	if code != 2 {
		t.Fatalf("missing file: exit %d, %q", code, out)
	}
	code, out = runCommand()
	oneLine(t, out)
	if code != 2 {
		t.Fatalf("no argument: exit %d, %q", code, out)
	}
}
