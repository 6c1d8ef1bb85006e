package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// An op is one line of the input: a self-claim over its real-time interval, in nanoseconds
// on the machine's one clock. Source is optional, shown in the visualisation.
type op struct {
	Client int    `json:"client"`
	Node   string `json:"node"`
	Epoch  int64  `json:"epoch"`
	Call   int64  `json:"call"`
	Return int64  `json:"return"`
	Source string `json:"source,omitempty"`
}

func readOps(r io.Reader) ([]op, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var ops []op
	if err := dec.Decode(&ops); err != nil {
		return nil, fmt.Errorf("not a JSON list of operations: %w", err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the list of operations")
	}
	for i, o := range ops {
		switch {
		case o.Node == "":
			return nil, fmt.Errorf("operation %d: no node", i)
		case o.Epoch <= 0:
			return nil, fmt.Errorf("operation %d: epoch %d is not positive", i, o.Epoch)
		case o.Client < 0:
			return nil, fmt.Errorf("operation %d: client %d is negative", i, o.Client)
		case o.Return < o.Call:
			return nil, fmt.Errorf("operation %d: returns (%d) before its call (%d)", i, o.Return, o.Call)
		}
	}
	return ops, nil
}

func history(ops []op) []porcupine.Operation {
	out := make([]porcupine.Operation, len(ops))
	for i, o := range ops {
		meta := fmt.Sprintf("[%s, %s]", seconds(o.Call), seconds(o.Return))
		if o.Source != "" {
			meta = o.Source + " " + meta
		}
		out[i] = porcupine.Operation{
			ClientId: o.Client,
			Input:    claim{Node: o.Node, Epoch: o.Epoch},
			Call:     o.Call,
			Return:   o.Return,
			Metadata: meta,
		}
	}
	return out
}

// A verdict is Porcupine's result on a history, with the one-line summary to print.
type verdict struct {
	Result  porcupine.CheckResult
	Summary string
	Info    porcupine.LinearizationInfo
}

func check(ops []op, timeout time.Duration) verdict {
	hist := history(ops)
	result, info := porcupine.CheckOperationsVerbose(termsModel, hist, timeout)
	v := verdict{Result: result, Info: info}
	switch result {
	case porcupine.Ok:
		v.Summary = fmt.Sprintf("linearizable: %s, %s", count(len(ops), "claim"), count(countTerms(ops), "term"))
	case porcupine.Illegal:
		v.Summary = fmt.Sprintf("not linearizable: %s, %s; %s",
			count(len(ops), "claim"), count(countTerms(ops), "term"), offending(hist, info))
	default:
		v.Summary = fmt.Sprintf("unknown: no verdict within %s (%s)", timeout, count(len(ops), "claim"))
	}
	return v
}

func countTerms(ops []op) int {
	terms := map[claim]bool{}
	for _, o := range ops {
		terms[claim{Node: o.Node, Epoch: o.Epoch}] = true
	}
	return len(terms)
}

// offending names the claims of an illegal history, from Porcupine's longest partial
// linearization: the claim it could not place next (of those left, the one that returned
// first, so every linearization must place it before all that began after), and what made it
// illegal: the newest term placed before it, and the claims that returned before it began.
func offending(hist []porcupine.Operation, info porcupine.LinearizationInfo) string {
	var longest []int
	for _, partition := range info.PartialLinearizations() {
		for _, p := range partition {
			if len(p) > len(longest) {
				longest = p
			}
		}
	}
	placed := make(map[int]bool, len(longest))
	state := term{}
	for _, id := range longest {
		placed[id] = true
		_, state = legal(state, hist[id].Input.(claim))
	}
	stuck := -1
	for id := range hist {
		if !placed[id] && (stuck < 0 || hist[id].Return < hist[stuck].Return) {
			stuck = id
		}
	}
	if stuck < 0 {
		return "Porcupine placed every claim"
	}
	c := hist[stuck].Input.(claim)
	text := fmt.Sprintf("%s's claim of epoch %d [%s, %s] cannot follow the term %s",
		c.Node, c.Epoch, seconds(hist[stuck].Call), seconds(hist[stuck].Return),
		termsModel.DescribeState(state))
	// The claims of other terms that returned before the stuck one began: they are before it
	// in every linearization.
	var earlier []porcupine.Operation
	for _, o := range hist {
		oc := o.Input.(claim)
		if o.Return < hist[stuck].Call && (oc.Epoch > c.Epoch || oc.Epoch == c.Epoch && oc.Node != c.Node) {
			earlier = append(earlier, o)
		}
	}
	sort.SliceStable(earlier, func(i, j int) bool { return earlier[i].Return < earlier[j].Return })
	var before []string
	for _, o := range earlier {
		oc := o.Input.(claim)
		before = append(before, fmt.Sprintf("%s epoch %d returned at %s", oc.Node, oc.Epoch, seconds(o.Return)))
	}
	if len(before) > 3 {
		before = append(before[:3], fmt.Sprintf("%d more", len(before)-3))
	}
	if len(before) > 0 {
		text += " (it began after " + strings.Join(before, ", ") + ")"
	}
	return text
}

// seconds renders a nanosecond timestamp as the checker does: seconds, three decimals.
func seconds(ns int64) string {
	return fmt.Sprintf("%d.%03d", ns/1e9, ns%1e9/1e6)
}

func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
