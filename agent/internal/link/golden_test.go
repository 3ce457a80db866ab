package link_test

import (
	"testing"

	"ferry.dev/shared/protocol/protocoltest"
)

// TestGoldenFiles checks this module's protocol types against the golden
// frames shared by both modules; see protocoltest.CheckGolden.
func TestGoldenFiles(t *testing.T) {
	protocoltest.CheckGolden(t, "../../../shared/protocol/testdata")
}
