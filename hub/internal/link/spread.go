package link

import (
	"encoding/json"
	"time"

	"ferry.dev/shared/protocol"
)

// DefaultReconnectRate is Config.ReconnectRate's default: the redials per
// second the hub asks its agents for after it restarts. 50/s spreads 500
// agents over 10 s, which keeps every 1-second window of a hub restart
// under 20 % of the redials (catalogue row B3).
const DefaultReconnectRate = 50

// The bounds of the reconnect spread the hub advertises. The floor keeps a
// small fleet's redials apart; the ceiling is the catalogue's 60 s for a
// whole fleet to return (B3). An agent cannot tell its own link being cut
// from the hub going away, so a lone agent whose link was cut also waits
// up to the spread: within 2 s up to 100 agents at the default rate
// (catalogue row A3 asks ≤ 5 s), up to 10 s at 500, up to 60 s from
// 3,000. A larger fleet trades that wait for a hub that survives its own
// restart; raise --reconnect-rate if the hub can take more.
const (
	MinReconnectSpread = 2 * time.Second
	MaxReconnectSpread = 60 * time.Second
)

// reconnectSpread is the window over which n agents spread their first
// redial for about rate of them to arrive each second: n/rate seconds,
// within [MinReconnectSpread, MaxReconnectSpread].
func reconnectSpread(n int, rate float64) time.Duration {
	if rate <= 0 {
		rate = DefaultReconnectRate
	}
	s := float64(n) / rate * float64(time.Second)
	if s >= float64(MaxReconnectSpread) {
		return MaxReconnectSpread
	}
	return max(time.Duration(s), MinReconnectSpread)
}

// readvertiseGrowth is how much the reconnect spread for the agents
// connected now may exceed the one every agent was last told before the
// hub tells them all again: agents then hold at least 4/5 of the current
// figure.
const readvertiseGrowth = 1.25

// readvertise keeps the agents' reconnect spreads sized to the fleet as it
// grows. Each hello reply carries the spread for the agents connected at
// that moment, so agents that said hello while the fleet was smaller (all
// of them, in turn, as they return after a restart) would otherwise keep a
// spread sized for fewer agents, and the next restart would bring most of
// them back in its first seconds. When the spread for the agents connected
// now reaches readvertiseGrowth times the last one sent to all, it is sent
// to all in a settings message. Shrinking is not sent: agents learn the
// smaller figure at their next hello and meanwhile err on the hub's side;
// the figure to compare against follows the fleet down, so that growing
// again is sent. Called after every registry change.
func (e *Endpoint) readvertise() {
	e.spreadMu.Lock()
	defer e.spreadMu.Unlock()
	// Counted under spreadMu, so that the figures compared come in the
	// order of the registry's changes.
	d := reconnectSpread(e.registry.Len(), e.cfg.ReconnectRate)
	if d < e.sentSpread {
		e.sentSpread = d
		return
	}
	if float64(d) < readvertiseGrowth*float64(e.sentSpread) {
		return
	}
	e.sentSpread = d
	env, err := protocol.New(protocol.TypeSettings, "", "", &protocol.Settings{ReconnectSpreadMs: d.Milliseconds()})
	if err != nil {
		e.log.Error("encode settings", "err", err)
		return
	}
	b, err := json.Marshal(env)
	if err != nil {
		e.log.Error("encode settings", "err", err)
		return
	}
	// Under spreadMu, so that two of these never interleave and leave an
	// agent with the older figure; offer never blocks.
	sent := 0
	e.registry.Each(func(c *Conn) {
		if c.offer(b) {
			sent++
		}
	})
	e.m.messages.WithLabelValues(string(protocol.TypeSettings), "out").Add(float64(sent))
	e.log.Debug("advertised a larger reconnect spread", "reconnect_spread", d, "agents", sent)
}
