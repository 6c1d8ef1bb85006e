//go:build !linux

package electd

import "testing"

func blackHole(t *testing.T) string {
	t.Skip("the black-holed listener needs Linux (a full accept queue drops SYNs)")
	return ""
}
