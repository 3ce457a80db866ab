package taskstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"ferry.dev/agent/internal/authn"
)

// State is a task's local state.
type State string

// Task states. DECIDED and CANCELLED are final.
const (
	// StatePending waits for the environment's admin.
	StatePending State = "PENDING"
	// StateAccepting means the admin accepted and the import is under way
	// (or was interrupted and will be resumed).
	StateAccepting State = "ACCEPTING"
	// StateDecided means a decision is stored (see Decision).
	StateDecided State = "DECIDED"
	// StateCancelled means the hub withdrew the promotion before a decision.
	StateCancelled State = "CANCELLED"
)

// Task is a promotion delivered to this environment.
type Task struct {
	// ID is the promotion's id at the hub.
	ID    string
	State State

	OrgID         string
	SourceEnvID   string
	SourceEnvName string
	TargetEnvID   string
	TargetEnvName string
	// APIID is the API's id in the source APIM.
	APIID      string
	CrossID    string
	APIName    string
	APIVersion string
	Requester  string
	// Definition is the sanitized export to import. Empty in lists.
	Definition []byte

	RequestedAt time.Time // the promotion's creation at the hub
	ReceivedAt  time.Time
	UpdatedAt   time.Time

	// Actor is who accepted or rejected; empty while pending.
	Actor string
	// DecidedAt is when the admin decided; zero while pending.
	DecidedAt time.Time
	// Reason is why the task was cancelled; empty otherwise.
	Reason string
	// CreateAttempted is true once an import to create the API was sent for
	// this task, so that a resumed accept that finds the API by crossId
	// knows this task created it.
	CreateAttempted bool
	// Session is the accepting user's session token, kept while the task
	// is ACCEPTING so that a resumed accept reports it; empty otherwise.
	Session authn.Token
}

const taskColumns = `id, state, org_id, source_env_id, source_env_name, target_env_id, target_env_name,
	api_id, cross_id, api_name, api_version, requester, requested_at, received_at, updated_at,
	actor, decided_at, reason, create_attempted, session`

func scanTask(sc interface{ Scan(...any) error }, withDef bool) (Task, error) {
	var t Task
	var req, rec, upd, dec int64
	var attempted int
	var sess string
	dst := []any{&t.ID, &t.State, &t.OrgID, &t.SourceEnvID, &t.SourceEnvName, &t.TargetEnvID, &t.TargetEnvName,
		&t.APIID, &t.CrossID, &t.APIName, &t.APIVersion, &t.Requester, &req, &rec, &upd,
		&t.Actor, &dec, &t.Reason, &attempted, &sess}
	if withDef {
		dst = append(dst, &t.Definition)
	}
	if err := sc.Scan(dst...); err != nil {
		return Task{}, err
	}
	t.RequestedAt, t.ReceivedAt, t.UpdatedAt, t.DecidedAt = fromNanos(req), fromNanos(rec), fromNanos(upd), fromNanos(dec)
	t.CreateAttempted, t.Session = attempted == 1, authn.Token(sess)
	return t, nil
}

// AddTask stores t as PENDING unless a task with its ID exists. It reports
// whether t was inserted; a duplicate delivery inserts nothing.
func (s *Store) AddTask(ctx context.Context, t Task) (bool, error) {
	if t.ID == "" || t.CrossID == "" || t.TargetEnvID == "" || len(t.Definition) == 0 {
		return false, errors.New("add task: id, cross id, target environment and definition are required")
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO tasks (id, state, org_id, source_env_id, source_env_name,
		target_env_id, target_env_name, api_id, cross_id, api_name, api_version, requester, definition,
		requested_at, received_at, updated_at)
		VALUES (?, 'PENDING', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`,
		t.ID, t.OrgID, t.SourceEnvID, t.SourceEnvName, t.TargetEnvID, t.TargetEnvName, t.APIID, t.CrossID,
		t.APIName, t.APIVersion, t.Requester, t.Definition, nanos(t.RequestedAt), nanos(t.ReceivedAt), nanos(t.ReceivedAt))
	if err != nil {
		return false, fmt.Errorf("add task %s: %w", t.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("add task %s: %w", t.ID, err)
	}
	return n == 1, nil
}

// Task returns the task with its definition, or ErrNotFound.
func (s *Store) Task(ctx context.Context, id string) (Task, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+taskColumns+`, definition FROM tasks WHERE id = ?`, id)
	t, err := scanTask(row, true)
	if errors.Is(err, sql.ErrNoRows) {
		return Task{}, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Task{}, fmt.Errorf("read task %s: %w", id, err)
	}
	return t, nil
}

// Tasks returns the tasks in state, oldest first, without definitions.
func (s *Store) Tasks(ctx context.Context, state State) ([]Task, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+taskColumns+` FROM tasks WHERE state = ? ORDER BY received_at, id`, state)
	if err != nil {
		return nil, fmt.Errorf("list %s tasks: %w", state, err)
	}
	defer rows.Close()
	out := []Task{}
	for rows.Next() {
		t, err := scanTask(rows, false)
		if err != nil {
			return nil, fmt.Errorf("list %s tasks: %w", state, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s tasks: %w", state, err)
	}
	return out, nil
}

// CountTasks returns the number of tasks in state.
func (s *Store) CountTasks(ctx context.Context, state State) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM tasks WHERE state = ?`, state).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s tasks: %w", state, err)
	}
	return n, nil
}

// stateLocked reads a task's state inside tx.
func stateLocked(ctx context.Context, tx *sql.Tx, id string) (State, error) {
	var st State
	err := tx.QueryRowContext(ctx, `SELECT state FROM tasks WHERE id = ?`, id).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("read task %s: %w", id, err)
	}
	return st, nil
}

// StateError is the ErrConflict returned when a task is not in the state a
// change needs. errors.Is(err, ErrConflict) holds.
type StateError struct {
	ID    string
	State State // the task's current state
}

func (e *StateError) Error() string {
	return fmt.Sprintf("task %s is %s", e.ID, e.State)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *StateError) Is(target error) bool { return target == ErrConflict }

// BeginAccept records the admin's intent to accept: PENDING → ACCEPTING with
// actor, the actor's session token (empty when none) and time. It returns
// the task with its definition. A task in any other state gives a
// *StateError.
func (s *Store) BeginAccept(ctx context.Context, id, actor string, sess authn.Token, at time.Time) (Task, error) {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		st, err := stateLocked(ctx, tx, id)
		if err != nil {
			return err
		}
		if st != StatePending {
			return &StateError{ID: id, State: st}
		}
		_, err = tx.ExecContext(ctx, `UPDATE tasks SET state = 'ACCEPTING', actor = ?, session = ?, decided_at = ?, updated_at = ? WHERE id = ?`,
			actor, sess.Reveal(), nanos(at), nanos(at), id)
		return err
	})
	if err != nil {
		return Task{}, fmt.Errorf("accept task %s: %w", id, err)
	}
	return s.Task(ctx, id)
}

// Cancel withdraws a pending task: PENDING → CANCELLED. Cancelling a
// cancelled task succeeds and changes nothing; a task that is ACCEPTING or
// DECIDED gives a *StateError. It reports whether the task changed.
func (s *Store) Cancel(ctx context.Context, id, reason string, at time.Time) (bool, error) {
	changed := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		st, err := stateLocked(ctx, tx, id)
		if err != nil {
			return err
		}
		switch st {
		case StateCancelled:
			return nil
		case StatePending:
		default:
			return &StateError{ID: id, State: st}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tasks SET state = 'CANCELLED', reason = ?, updated_at = ? WHERE id = ?`,
			reason, nanos(at), id); err != nil {
			return err
		}
		changed = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("cancel task %s: %w", id, err)
	}
	return changed, nil
}

// MarkCreateAttempt records, before an import to create is sent, that this
// accepting task may create the API. The task must be ACCEPTING.
func (s *Store) MarkCreateAttempt(ctx context.Context, id string, at time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		st, err := stateLocked(ctx, tx, id)
		if err != nil {
			return err
		}
		if st != StateAccepting {
			return &StateError{ID: id, State: st}
		}
		_, err = tx.ExecContext(ctx, `UPDATE tasks SET create_attempted = 1, updated_at = ? WHERE id = ?`, nanos(at), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("record create attempt for task %s: %w", id, err)
	}
	return nil
}
