//go:build !unix

package store

import "os"

// lockDir is a no-op where flock is unavailable: run one hub per data
// directory.
func lockDir(string) (*os.File, error) { return nil, nil }
