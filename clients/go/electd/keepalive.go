package electd

import (
	"time"
	_ "unsafe" // for go:linkname

	_ "google.golang.org/grpc" // initialises the variable linked below
)

// minKeepaliveTime is the shortest keepalive interval the client uses: electd
// nodes accept a ping every second (grpc.http2.min_recv_ping_interval_without_data_ms).
const minKeepaliveTime = time.Second

// grpcKeepaliveMinPingTime is grpc-go's internal.KeepaliveMinPingTime.
//
// The contract's 3 s keepalive (a frozen node is left within 6 s) cannot be
// asked of grpc-go through its public API: grpc.WithKeepaliveParams raises
// every interval below this variable, 10 s, to 10 s (a frozen node would then
// be left only after 10 s + timeout). grpc-go has no option to lower it, so
// this package lowers it to minKeepaliveTime once, when it is initialised
// (before any goroutine of the program can dial, so without a data race).
// That lowers the floor for the whole process: other grpc-go clients in the
// same program that ask for an interval below 10 s get it (down to 1 s)
// instead of 10 s. Nothing else changes for them.
//
// The linkname is checked at build time (the build fails if the variable is
// gone); TestKeepaliveLeavesFrozenWatchNode and TestKeepaliveProbesIdleConnection
// fail if grpc-go stops honouring it. Review it when upgrading grpc-go.
//
//go:linkname grpcKeepaliveMinPingTime google.golang.org/grpc/internal.KeepaliveMinPingTime
var grpcKeepaliveMinPingTime time.Duration

func init() {
	if grpcKeepaliveMinPingTime > minKeepaliveTime {
		grpcKeepaliveMinPingTime = minKeepaliveTime
	}
}
