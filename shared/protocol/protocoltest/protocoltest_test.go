package protocoltest_test

import (
	"testing"

	"ferry.dev/shared/protocol/protocoltest"
)

func TestCheckGolden(t *testing.T) {
	protocoltest.CheckGolden(t, "../testdata")
}
