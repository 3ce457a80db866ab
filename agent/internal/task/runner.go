package task

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/agent/internal/apim"
	"ferry.dev/agent/internal/authn"
	"ferry.dev/agent/internal/taskstore"
	"ferry.dev/shared/protocol"
)

// Hub is the agent's link to the hub. *link.Client implements it.
type Hub interface {
	// Call sends a command to the hub and decodes the reply body into out.
	// Errors are *protocol.Error when the hub (or the link) classified them.
	Call(ctx context.Context, op protocol.Op, body, out any) error
	// Hello returns the hub's last hello reply, or nil before the first.
	Hello() *protocol.HelloReply
}

// APIM is the local management API. *apim.Client implements it.
type APIM interface {
	ListAPIs(ctx context.Context) ([]apim.API, error)
	GetAPI(ctx context.Context, apiID string) (apim.API, error)
	// FindByCrossID may answer from an index (see apim.Client);
	// FindByCrossIDFresh always asks APIM.
	FindByCrossID(ctx context.Context, crossID string) (apim.API, bool, error)
	FindByCrossIDFresh(ctx context.Context, crossID string) (apim.API, bool, error)
	Export(ctx context.Context, apiID string) ([]byte, error)
	ImportCreate(ctx context.Context, def []byte) (apim.API, error)
	ImportUpdate(ctx context.Context, apiID string, def []byte) (apim.API, error)
}

// Store is the durable local state. *taskstore.Store implements it.
type Store interface {
	AddTask(ctx context.Context, t taskstore.Task) (bool, error)
	Task(ctx context.Context, id string) (taskstore.Task, error)
	Tasks(ctx context.Context, state taskstore.State) ([]taskstore.Task, error)
	CountTasks(ctx context.Context, state taskstore.State) (int, error)
	BeginAccept(ctx context.Context, id, actor string, sess authn.Token, at time.Time) (taskstore.Task, error)
	MarkCreateAttempt(ctx context.Context, id string, at time.Time) error
	Cancel(ctx context.Context, id, reason string, at time.Time) (bool, error)
	Decide(ctx context.Context, d taskstore.Decision, from taskstore.State, at time.Time) error
	Decision(ctx context.Context, promotionID string) (taskstore.Decision, error)
	LastAcceptedAPI(ctx context.Context, crossID string) (string, bool, error)
	Unreported(ctx context.Context) ([]taskstore.Decision, error)
	MarkReported(ctx context.Context, promotionID string, at time.Time) error
	MarkAbandoned(ctx context.Context, promotionID, why string) error
	ReportFailed(ctx context.Context, promotionID, why string) error
	UpsertPromotions(ctx context.Context, ps ...taskstore.Promotion) error
	Promotions(ctx context.Context, f taskstore.PromotionFilter) ([]taskstore.Promotion, error)
}

var (
	_ APIM  = (*apim.Client)(nil)
	_ Store = (*taskstore.Store)(nil)
)

// Config configures a Runner. Store, APIM, Hub and Logger are required; zero
// durations take the defaults in parentheses.
type Config struct {
	Store  Store
	APIM   APIM
	Hub    Hub
	Logger *slog.Logger
	// Registerer receives the metrics; nil means a private registry.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ReportInterval is how often unreported decisions are retried and
	// interrupted accepts resumed (2s).
	ReportInterval time.Duration
	// MaxReportBackoff caps the wait between reports of one decision (1m).
	MaxReportBackoff time.Duration
	// ApplyTimeout bounds one accept's work against APIM (5m).
	ApplyTimeout time.Duration
	// HubTimeout bounds each call to the hub made in the background (30s).
	HubTimeout time.Duration
}

// Runner runs the agent's promotion work. Create it with New; Run starts its
// background work.
type Runner struct {
	store    Store
	apim     APIM
	hub      Hub
	log      *slog.Logger
	m        *metrics
	now      func() time.Time
	interval time.Duration
	maxWait  time.Duration
	applyTO  time.Duration
	hubTO    time.Duration

	life context.Context // ends when Run returns; bounds accepts detached from requests
	stop context.CancelFunc

	wake      chan struct{} // capacity 1: flush the outbox now
	connected chan struct{} // capacity 1: reconcile, then flush with backoff reset

	wg sync.WaitGroup // resumed accepts started by Run

	mu     sync.Mutex           // guards the fields below
	busy   map[string]bool      // task ids being accepted in this process
	nextAt map[string]time.Time // promotion id → earliest next report
	tries  map[string]int       // promotion id → consecutive failed reports
}

// New builds a Runner. It starts nothing.
func New(cfg Config) (*Runner, error) {
	if cfg.Store == nil || cfg.APIM == nil || cfg.Hub == nil || cfg.Logger == nil {
		return nil, errors.New("task: store, APIM client, hub and logger are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ReportInterval, 2*time.Second)
	def(&cfg.MaxReportBackoff, time.Minute)
	def(&cfg.ApplyTimeout, 5*time.Minute)
	def(&cfg.HubTimeout, 30*time.Second)
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	life, stop := context.WithCancel(context.Background())
	return &Runner{
		store: cfg.Store, apim: cfg.APIM, hub: cfg.Hub,
		log: cfg.Logger.With("component", "task"), m: m, now: cfg.Now,
		interval: cfg.ReportInterval, maxWait: cfg.MaxReportBackoff, applyTO: cfg.ApplyTimeout, hubTO: cfg.HubTimeout,
		life: life, stop: stop,
		wake: make(chan struct{}, 1), connected: make(chan struct{}, 1),
		busy: map[string]bool{}, nextAt: map[string]time.Time{}, tries: map[string]int{},
	}, nil
}

// Connected tells the Runner that the link to the hub is (re)connected: Run
// reconciles with the hub and reports pending decisions at once. It has the
// shape of a link OnConnect hook and never blocks.
func (r *Runner) Connected(*protocol.HelloReply) {
	select {
	case r.connected <- struct{}{}:
	default:
	}
}

// kick asks Run to flush the outbox soon. It never blocks.
func (r *Runner) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run resumes interrupted accepts, then reports decisions and reconciles with
// the hub until ctx ends. It returns nil when ctx ends, after its goroutines
// have exited. Accepts in progress are interrupted and resumed on the next
// start.
func (r *Runner) Run(ctx context.Context) error {
	defer r.wg.Wait()
	defer r.stop()
	stopLife := context.AfterFunc(ctx, r.stop)
	defer stopLife()

	r.resume(ctx)
	r.refreshGauges(ctx)
	r.flush(ctx)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.connected:
			r.resetBackoff()
			r.reconcile(ctx)
			r.flush(ctx)
		case <-r.wake:
			r.flush(ctx)
		case <-t.C:
			r.resume(ctx)
			r.flush(ctx)
		}
	}
}

// resume restarts, each in a goroutine owned by Run, the accepts left
// ACCEPTING that no one in this process is working on.
func (r *Runner) resume(ctx context.Context) {
	list, err := r.store.Tasks(ctx, taskstore.StateAccepting)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Error("could not list interrupted accepts", "err", err)
		}
		return
	}
	for _, t := range list {
		if !r.claim(t.ID) {
			continue
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer r.release(t.ID)
			r.log.Info("resuming an interrupted accept", "task_id", t.ID, "cross_id", t.CrossID)
			full, err := r.store.Task(ctx, t.ID)
			if err != nil {
				r.log.Error("could not read the task to resume", "task_id", t.ID, "err", err)
				return
			}
			actx, cancel := r.applyContext(ctx)
			defer cancel()
			if _, err := r.apply(actx, full); err != nil && actx.Err() == nil {
				r.log.Error("resumed accept did not finish; it will be retried", "task_id", t.ID, "err", err)
			}
		}()
	}
}

// claim marks a task as being accepted by this process; false if it already
// is.
func (r *Runner) claim(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy[id] {
		return false
	}
	r.busy[id] = true
	return true
}

func (r *Runner) release(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.busy, id)
}

// applyContext detaches an accept from its caller (an HTTP request may go
// away; the import must not stop half-way because of it) and bounds it by
// ApplyTimeout and the Runner's life.
func (r *Runner) applyContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), r.applyTO)
	stop := context.AfterFunc(r.life, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// refreshGauges sets the pending-task and pending-report gauges from the
// store.
func (r *Runner) refreshGauges(ctx context.Context) {
	if n, err := r.store.CountTasks(ctx, taskstore.StatePending); err == nil {
		r.m.tasksPending.Set(float64(n))
	}
	if ds, err := r.store.Unreported(ctx); err == nil {
		r.m.reportsPending.Set(float64(len(ds)))
	}
}

// storeErr turns a store failure into an error for a caller outside the
// package, logging it: the store is local, so its failure needs a human.
func (r *Runner) storeErr(op string, err error) error {
	var se *taskstore.StateError
	switch {
	case errors.As(err, &se):
		return protocol.Errorf(protocol.CodeInvalidState, fmt.Sprintf("task %s is %s, not pending", se.ID, stateWord(se.State)))
	case errors.Is(err, taskstore.ErrNotFound):
		return protocol.Errorf(protocol.CodeNotFound, "no such task")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	r.log.Error("local task store failed", "op", op, "err", err)
	return protocol.Errorf(protocol.CodeUnavailable, "the agent's local store failed; retry shortly (the agent logged the details)")
}

func stateWord(s taskstore.State) string {
	switch s {
	case taskstore.StateAccepting:
		return "being accepted"
	case taskstore.StateDecided:
		return "already decided"
	case taskstore.StateCancelled:
		return "cancelled"
	}
	return string(s)
}
