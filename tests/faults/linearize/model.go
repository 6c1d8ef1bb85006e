package main

import (
	"fmt"
	"hash/fnv"

	"github.com/anishathalye/porcupine"
)

// A claim is one operation of the history: "Node leads with Epoch", as the node itself said
// it (its log line, a GetLeader answer, its writer's check).
type claim struct {
	Node  string
	Epoch int64
}

// A term is the state of the register: the newest term claimed so far.
type term struct {
	Epoch int64
	Node  string
}

// legal is the register of terms' one rule: a claim either opens a newer term, which then
// holds, or repeats the term that holds. An older epoch, or the same epoch by another node,
// is not a leader the history can have had at that point.
func legal(state term, c claim) (bool, term) {
	switch {
	case c.Epoch > state.Epoch:
		return true, term{Epoch: c.Epoch, Node: c.Node}
	case c.Epoch == state.Epoch && c.Node == state.Node:
		return true, state
	default:
		return false, state
	}
}

// termsModel is the register of terms as a Porcupine model. One register, so no partitions:
// every claim constrains every other.
var termsModel = porcupine.Model{
	Init: func() interface{} { return term{} },
	Step: func(state, input, _ interface{}) (bool, interface{}) {
		return legal(state.(term), input.(claim))
	},
	Equal: func(a, b interface{}) bool { return a.(term) == b.(term) },
	Hash: func(state interface{}) uint64 {
		s := state.(term)
		h := fnv.New64a()
		fmt.Fprintf(h, "%d/%s", s.Epoch, s.Node)
		return h.Sum64()
	},
	DescribeOperation: func(input, _ interface{}) string {
		c := input.(claim)
		return fmt.Sprintf("%s leads, epoch %d", c.Node, c.Epoch)
	},
	DescribeState: func(state interface{}) string {
		s := state.(term)
		if s.Node == "" {
			return "no term yet"
		}
		return fmt.Sprintf("epoch %d: %s", s.Epoch, s.Node)
	},
	DescribeOperationMetadata: func(info interface{}) string {
		if info == nil {
			return ""
		}
		return info.(string)
	},
}
