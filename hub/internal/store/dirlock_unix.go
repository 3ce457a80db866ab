//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive advisory lock on dir's hub.lock file, so that
// two hubs never share one embedded store: the store relies on being the
// only writer (a promotion lock without its promotion is a crash's
// leftover, see recoverPromotionLocks). The kernel releases the lock when
// the process dies; closing the returned file releases it too.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "hub.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("the data directory %s is in use by another ferry-hub; stop it, or give this one another --data-dir (several hubs share a MongoDB store, not an embedded one)", dir)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}
