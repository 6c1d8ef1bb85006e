package electd

// Named elections on the read side and the two unary calls of issue 12:
// InElection (an option of GetLeader, ListNodes and WatchLeader), Resign and
// ListElections. The candidate side is campaign.go.

import (
	"context"
	"fmt"

	"github.com/electd/electd/clients/go/electdpb"
)

// ReadOption configures one GetLeader or ListNodes call: [InElection].
type ReadOption interface{ applyRead(*readOptions) }

type readOptions struct{ election string }

func readOpts(opts []ReadOption) readOptions {
	var o readOptions
	for _, opt := range opts {
		opt.applyRead(&o)
	}
	return o
}

// ElectionOption names a named election; it is both a [ReadOption] and a
// [WatchOption]. Make it with [InElection].
type ElectionOption struct{ name string }

func (e ElectionOption) applyRead(o *readOptions)   { o.election = e.name }
func (e ElectionOption) applyWatch(o *watchOptions) { o.election = e.name }

// InElection has GetLeader, ListNodes or WatchLeader read the named election
// name (see [ElectionClient.Campaign]) instead of the election of the electd
// nodes themselves. The empty name means the nodes' election, as without the
// option. A malformed name is the node's INVALID_ARGUMENT, as an [*Error].
//
//	resp, err := c.GetLeader(ctx, electd.InElection("orders"))
//	err = c.WatchLeader(ctx, fn, electd.InElection("orders"))
func InElection(name string) ElectionOption { return ElectionOption{name: name} }

// Resign ends the current term of the named election on an operator's
// behalf: the node deletes the leader's entry, its candidate is told (Lost,
// reason DELETED) and the next candidate leads once the old one acknowledged
// or its lease ran out. epoch must be the current leader's epoch (as
// GetLeader reports it): the node answers FAILED_PRECONDITION naming the
// current epoch when it is not, NOT_FOUND when the election has no leader.
// Like every unary call it tries each address at most once; a node that
// timed out after it resigned the leader makes the next node answer
// FAILED_PRECONDITION or NOT_FOUND. It fails with an [*Error].
func (c *ElectionClient) Resign(ctx context.Context, election string, epoch int64) (*electdpb.ResignResponse, error) {
	if election == "" {
		return nil, &Error{Err: fmt.Errorf("Resign: election must not be empty")}
	}
	if epoch <= 0 {
		return nil, &Error{Err: fmt.Errorf("Resign: epoch must be positive, got %d", epoch)}
	}
	var resp *electdpb.ResignResponse
	err := c.unary(ctx, func(ctx context.Context, s electdpb.ElectionServiceClient) (err error) {
		resp, err = s.Resign(ctx, &electdpb.ResignRequest{Election: election, Epoch: epoch})
		return err
	})
	return resp, err
}

// ListElections lists the named elections (sorted by name) with how many
// candidates each has, read from ZooKeeper by the node that answers. It fails
// with an [*Error].
func (c *ElectionClient) ListElections(ctx context.Context) (*electdpb.ListElectionsResponse, error) {
	var resp *electdpb.ListElectionsResponse
	err := c.unary(ctx, func(ctx context.Context, s electdpb.ElectionServiceClient) (err error) {
		resp, err = s.ListElections(ctx, &electdpb.ListElectionsRequest{})
		return err
	})
	return resp, err
}
