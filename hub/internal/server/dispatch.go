package server

import (
	"context"
	"sync"

	"ferry.dev/hub/internal/link"
	"ferry.dev/hub/internal/promotion"
	"ferry.dev/shared/protocol"
)

// envIndex routes commands to the agent serving an environment. It is fed by
// link connect/disconnect events.
type envIndex struct {
	reg *link.Registry

	mu    sync.Mutex                     // guards byEnv
	byEnv map[string]map[string]struct{} // environment id → connected installation ids
}

var _ promotion.Dispatcher = (*envIndex)(nil)

func newEnvIndex() *envIndex { return &envIndex{byEnv: map[string]map[string]struct{}{}} }

func (x *envIndex) add(p link.Peer) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, e := range p.EnvIDs {
		if x.byEnv[e] == nil {
			x.byEnv[e] = map[string]struct{}{}
		}
		x.byEnv[e][p.InstallationID] = struct{}{}
	}
}

func (x *envIndex) remove(p link.Peer) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, e := range p.EnvIDs {
		delete(x.byEnv[e], p.InstallationID)
		if len(x.byEnv[e]) == 0 {
			delete(x.byEnv, e)
		}
	}
}

func (x *envIndex) installations(envID string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]string, 0, len(x.byEnv[envID]))
	for id := range x.byEnv[envID] {
		out = append(out, id)
	}
	return out
}

// Online reports whether an agent serving envID is connected to this hub.
func (x *envIndex) Online(envID string) bool { return len(x.installations(envID)) > 0 }

// CallEnv sends a command to an agent serving envID.
func (x *envIndex) CallEnv(ctx context.Context, envID string, op protocol.Op, body, out any) error {
	ids := x.installations(envID)
	if len(ids) == 0 {
		return protocol.Errorf(protocol.CodeUnavailable, "no agent of this environment is connected")
	}
	var err error
	for _, id := range ids {
		if err = x.reg.Call(ctx, id, op, body, out); err == nil || !protocol.CodeOf(err).Temporary() {
			return err
		}
	}
	return err
}
