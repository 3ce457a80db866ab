package server

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"ferry.dev/hub/internal/state"
)

// connLog writes installations' connection events to the store in the
// order they happen, off the link's path: one goroutine drains a bounded
// queue, so a slow store delays the history, never a link. When the queue
// is full (a reconnect herd against a stalled store) an event is dropped
// and logged; the link itself is unaffected.
type connLog struct {
	store state.Store
	log   *slog.Logger

	mu      sync.Mutex // guards closed and sends on ch
	closed  bool
	ch      chan state.ConnectionEvent
	done    chan struct{}
	abandon atomic.Bool // set by close when its time is up: drop the rest

	dropped  int       // events dropped on a full queue; guarded by mu
	lastWarn time.Time // when a drop was last logged; guarded by mu
}

// connLogQueue bounds the events waiting to be written.
const connLogQueue = 4096

func newConnLog(st state.Store, log *slog.Logger) *connLog {
	l := &connLog{store: st, log: log, ch: make(chan state.ConnectionEvent, connLogQueue), done: make(chan struct{})}
	go l.run()
	return l
}

// add queues e; it never blocks.
func (l *connLog) add(e state.ConnectionEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	select {
	case l.ch <- e:
	default:
		// Logged at most once a minute: a herd of thousands of agents
		// would otherwise log a line each.
		l.dropped++
		if now := time.Now(); now.Sub(l.lastWarn) >= time.Minute {
			l.lastWarn = now
			l.log.Warn("connection history is behind the store; events are not being recorded", "dropped_so_far", l.dropped, "queue", cap(l.ch))
		}
	}
}

func (l *connLog) run() {
	defer close(l.done)
	for e := range l.ch {
		if l.abandon.Load() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := l.store.RecordConnection(ctx, e); err != nil {
			l.log.Warn("could not record a connection event; the history misses it", "agent_id", e.InstallationID, "event", e.Event, "err", err)
		}
		cancel()
	}
}

// close writes what is queued, for up to wait (a hub closing thousands of
// links must still stop in time), drops the rest and stops; later events
// are dropped.
func (l *connLog) close(wait time.Duration) {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.ch)
	}
	l.mu.Unlock()
	select {
	case <-l.done:
		return
	case <-time.After(wait):
	}
	l.abandon.Store(true)
	l.log.Warn("stopping with connection events not recorded; the history misses the last closings", "events", len(l.ch))
	<-l.done
}
