package link

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"ferry.dev/shared/protocol"
)

// Registry maps installation ids to their primary connection.
type Registry struct {
	mu    sync.RWMutex
	conns map[string]*Conn // installation id → primary connection; guarded by mu
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{conns: make(map[string]*Conn)}
}

// add makes c the primary connection of its installation and returns the
// connection it superseded, if any. The caller closes the old one.
func (r *Registry) add(c *Conn) (old *Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old = r.conns[c.peer.InstallationID]
	r.conns[c.peer.InstallationID] = c
	return old
}

// remove deletes c if it is still the primary connection and reports
// whether it was.
func (r *Registry) remove(c *Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns[c.peer.InstallationID] != c {
		return false
	}
	delete(r.conns, c.peer.InstallationID)
	return true
}

// Get returns the installation's primary connection.
func (r *Registry) Get(installationID string) (*Conn, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.conns[installationID]
	return c, ok
}

// Len returns the number of connected installations.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.conns)
}

// Each calls f for a snapshot of the connections, without holding the lock.
func (r *Registry) Each(f func(*Conn)) {
	r.mu.RLock()
	snap := make([]*Conn, 0, len(r.conns))
	for _, c := range r.conns {
		snap = append(snap, c)
	}
	r.mu.RUnlock()
	for _, c := range snap {
		f(c)
	}
}

// Call sends a command to an installation and decodes the reply body into
// out (which may be nil). It fails with protocol.CodeUnavailable when the
// installation is not connected to this hub.
func (r *Registry) Call(ctx context.Context, installationID string, op protocol.Op, body, out any) error {
	c, ok := r.Get(installationID)
	if !ok {
		return protocol.Errorf(protocol.CodeUnavailable, fmt.Sprintf("installation %s is not connected", installationID))
	}
	raw, err := c.Call(ctx, op, body)
	if err != nil {
		return err
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("decode %s reply: %w", op, err)
		}
	}
	return nil
}
