package link_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ferry.dev/hub/internal/agenttest"
	"ferry.dev/hub/internal/link"
	"ferry.dev/shared/protocol"
)

// TestHelloAdvertisesReconnectSpread: each hello reply advertises the
// reconnect spread for the agents connected at that moment, the new one
// included: n / ReconnectRate seconds within [2 s, 60 s] (rows A3 and B3:
// a lone agent returns quickly, a large fleet spreads its return).
func TestHelloAdvertisesReconnectSpread(t *testing.T) {
	tests := []struct {
		rate float64
		want []time.Duration // advertised to the 1st, 2nd, ... agent
	}{
		// Below the floor, then n seconds.
		{1, []time.Duration{2 * time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second}},
		// 20 s per agent, up to the ceiling.
		{0.05, []time.Duration{20 * time.Second, 40 * time.Second, 60 * time.Second, 60 * time.Second}},
		// The default rate, 50/s: a handful of agents get the floor.
		{0, []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("rate %g", tt.rate), func(t *testing.T) {
			h := newTestHub(t, link.Config{ReconnectRate: tt.rate}, nil)
			var conns []*agenttest.Conn
			for i, want := range tt.want {
				c, _ := h.connect(t, &agenttest.Agent{Credential: h.addPeer(i)})
				conns = append(conns, c)
				if got := time.Duration(c.HelloReply().ReconnectSpreadMs) * time.Millisecond; got != want {
					t.Errorf("agent %d of %d connected: advertised spread %v, want %v", i+1, i+1, got, want)
				}
			}
			if tt.rate != 1 {
				return
			}
			// The count is of connected agents: after two leave, the next
			// hello is sized for four (4 s), not for the six seen.
			for _, c := range conns[:2] {
				c.Close()
				h.waitDisconnected(t, 5*time.Second)
			}
			c, _ := h.connect(t, &agenttest.Agent{Credential: h.addPeer(len(tt.want))})
			if got := time.Duration(c.HelloReply().ReconnectSpreadMs) * time.Millisecond; got != 4*time.Second {
				t.Errorf("3 agents connected, a 4th says hello: advertised spread %v, want 4s", got)
			}
		})
	}
}

// addPeer adds installation i to the fake inventory and returns its
// credential.
func (h *testHub) addPeer(i int) string {
	cred, id := fmt.Sprintf("cred-spread-%d", i), fmt.Sprintf("ins_spread_%d", i)
	h.sess.mu.Lock()
	defer h.sess.mu.Unlock()
	h.sess.peers[cred] = link.Peer{InstallationID: id, OrgID: "org_1", EnvIDs: []string{"env_" + id}}
	return cred
}

// TestSettingsReadvertiseSpread: agents that said hello while the fleet was
// smaller (as every agent does in turn when a restarted hub's fleet comes
// back) are told the larger spread in a settings message once it has grown
// by a quarter since the last one, so that the next restart finds them all
// with a spread sized to the whole fleet (row B3). Shrinking is not sent,
// and growing again after it is.
func TestSettingsReadvertiseSpread(t *testing.T) {
	h := newTestHub(t, link.Config{ReconnectRate: 1}, nil)
	var conns []*agenttest.Conn
	for i := range 7 {
		c, _ := h.connect(t, &agenttest.Agent{Credential: h.addPeer(i)})
		conns = append(conns, c)
	}
	// 1 agent/s: n agents, n seconds from 2 s. Sent at 3 (≥ 2.5), 4 (≥
	// 3.75), 5 (≥ 5) and 7 agents (≥ 6.25), not at 6.
	if diff := cmp.Diff([]int64{3000, 4000, 5000, 7000}, settingsN(t, conns[0], 4)); diff != "" {
		t.Errorf("spreads sent to the first agent (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{7000}, settingsN(t, conns[6], 1)); diff != "" {
		t.Errorf("spreads sent to the seventh agent (-want +got):\n%s", diff)
	}
	// Down to 2 agents: nothing is sent. A third is sent again (3 s ≥
	// 2.5 s), to both that stayed, as the only message since the 7 s.
	for _, c := range conns[2:] {
		c.Close()
		h.waitDisconnected(t, 5*time.Second)
	}
	h.connect(t, &agenttest.Agent{Credential: h.addPeer(7)})
	if diff := cmp.Diff([]int64{3000, 4000, 5000, 7000, 3000}, settingsN(t, conns[0], 5)); diff != "" {
		t.Errorf("spreads sent to the first agent after the fleet shrank and grew (-want +got):\n%s", diff)
	}
	if got := metric(t, h.reg, "ferry_hub_link_messages_total", "type", "settings", "direction", "out"); got != 3+4+5+7+3 {
		t.Errorf("settings messages sent = %v, want %d", got, 3+4+5+7+3)
	}
}

// settingsN waits until c has received n settings messages and returns
// the spreads they advertise, in order.
func settingsN(t *testing.T, c *agenttest.Conn, n int) []int64 {
	t.Helper()
	var got []int64
	// WaitFrame shows each frame to match once, in order.
	_, err := c.WaitFrame(ctxTimeout(t, 5*time.Second), func(env *protocol.Envelope) bool {
		var s protocol.Settings
		if env.Type != protocol.TypeSettings || env.DecodePayload(&s) != nil {
			return false
		}
		got = append(got, s.ReconnectSpreadMs)
		return len(got) == n
	})
	if err != nil {
		t.Fatalf("%d settings messages %v, want %d: %v", len(got), got, n, err)
	}
	return got
}
