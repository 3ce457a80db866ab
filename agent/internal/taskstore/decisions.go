package taskstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"ferry.dev/agent/internal/authn"
)

// Outcome is what became of a task. The values match the wire protocol's
// decision outcomes.
type Outcome string

// Outcomes.
const (
	OutcomeAccepted Outcome = "ACCEPTED"
	OutcomeRejected Outcome = "REJECTED"
	OutcomeFailed   Outcome = "ERROR"
)

// ReportState is where a decision is in the outbox.
type ReportState string

// Report states.
const (
	// ReportPending: not yet acknowledged by the hub.
	ReportPending ReportState = "PENDING"
	// ReportDone: the hub acknowledged it.
	ReportDone ReportState = "REPORTED"
	// ReportAbandoned: the hub refused it for good (e.g. the promotion was
	// cancelled meanwhile); it is kept for the record but not retried.
	ReportAbandoned ReportState = "ABANDONED"
)

// Decision is the final outcome of a task, and the outbox entry that
// reports it to the hub.
type Decision struct {
	// PromotionID is the task's id.
	PromotionID string
	CrossID     string
	Outcome     Outcome
	Actor       string
	// TargetAPIID is the API created or updated; set when accepted.
	TargetAPIID string
	// Created is true when the import created the API.
	Created bool
	// Reason is the reject reason or the import error.
	Reason    string
	DecidedAt time.Time
	// Session is the decider's session token, sent with the report so that
	// the hub can check the permission again. It is erased once the hub
	// acknowledged or refused the report; empty when there is none.
	Session authn.Token

	ReportState ReportState
	// Attempts counts failed reports.
	Attempts   int
	LastError  string
	ReportedAt time.Time
}

const decisionColumns = `promotion_id, cross_id, outcome, actor, target_api_id, created, reason, decided_at,
	report_state, attempts, last_error, reported_at, session`

func scanDecision(sc interface{ Scan(...any) error }) (Decision, error) {
	var d Decision
	var created int
	var dec, rep int64
	var sess string
	if err := sc.Scan(&d.PromotionID, &d.CrossID, &d.Outcome, &d.Actor, &d.TargetAPIID, &created, &d.Reason, &dec,
		&d.ReportState, &d.Attempts, &d.LastError, &rep, &sess); err != nil {
		return Decision{}, err
	}
	d.Created, d.DecidedAt, d.ReportedAt, d.Session = created == 1, fromNanos(dec), fromNanos(rep), authn.Token(sess)
	return d, nil
}

// Decide stores d and marks its task DECIDED, in one transaction. The task
// must be in state from (PENDING for a reject, ACCEPTING for an accept's
// outcome); otherwise Decide gives a *StateError and stores nothing. at is
// the time of the change. The session token moves from the task to the
// decision: the task's copy is erased.
func (s *Store) Decide(ctx context.Context, d Decision, from State, at time.Time) error {
	switch d.Outcome {
	case OutcomeAccepted, OutcomeRejected, OutcomeFailed:
	default:
		return fmt.Errorf("decide task %s: unknown outcome %q", d.PromotionID, d.Outcome)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		st, err := stateLocked(ctx, tx, d.PromotionID)
		if err != nil {
			return err
		}
		if st != from {
			return &StateError{ID: d.PromotionID, State: st}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO decisions (promotion_id, cross_id, outcome, actor, target_api_id,
			created, reason, decided_at, report_state, session) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', ?)`,
			d.PromotionID, d.CrossID, d.Outcome, d.Actor, d.TargetAPIID, boolInt(d.Created), d.Reason, nanos(d.DecidedAt),
			d.Session.Reveal()); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE tasks SET state = 'DECIDED', actor = ?, session = '', decided_at = ?, updated_at = ? WHERE id = ?`,
			d.Actor, nanos(d.DecidedAt), nanos(at), d.PromotionID)
		return err
	})
	if err != nil {
		return fmt.Errorf("decide task %s: %w", d.PromotionID, err)
	}
	return nil
}

// Decision returns the decision on a task, or ErrNotFound.
func (s *Store) Decision(ctx context.Context, promotionID string) (Decision, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+decisionColumns+` FROM decisions WHERE promotion_id = ?`, promotionID)
	d, err := scanDecision(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Decision{}, fmt.Errorf("decision %s: %w", promotionID, ErrNotFound)
	}
	if err != nil {
		return Decision{}, fmt.Errorf("read decision %s: %w", promotionID, err)
	}
	return d, nil
}

// LastAcceptedAPI returns the target API id recorded by the latest accepted
// decision for crossID, and false when there is none.
func (s *Store) LastAcceptedAPI(ctx context.Context, crossID string) (string, bool, error) {
	var id string
	err := s.db.QueryRowContext(ctx, `SELECT target_api_id FROM decisions
		WHERE cross_id = ? AND outcome = 'ACCEPTED' AND target_api_id != ''
		ORDER BY decided_at DESC LIMIT 1`, crossID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("find earlier promotion of %s: %w", crossID, err)
	}
	return id, true, nil
}

// Unreported returns the decisions the hub has not acknowledged, oldest
// first.
func (s *Store) Unreported(ctx context.Context) ([]Decision, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+decisionColumns+` FROM decisions
		WHERE report_state = 'PENDING' ORDER BY decided_at, promotion_id`)
	if err != nil {
		return nil, fmt.Errorf("list unreported decisions: %w", err)
	}
	defer rows.Close()
	var out []Decision
	for rows.Next() {
		d, err := scanDecision(rows)
		if err != nil {
			return nil, fmt.Errorf("list unreported decisions: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list unreported decisions: %w", err)
	}
	return out, nil
}

// MarkReported records the hub's acknowledgement of a decision and erases
// its session token.
func (s *Store) MarkReported(ctx context.Context, promotionID string, at time.Time) error {
	return s.setReport(ctx, promotionID, `report_state = 'REPORTED', reported_at = ?, session = ''`, nanos(at))
}

// MarkAbandoned stops reporting a decision the hub refused for good and
// erases its session token.
func (s *Store) MarkAbandoned(ctx context.Context, promotionID, why string) error {
	return s.setReport(ctx, promotionID, `report_state = 'ABANDONED', last_error = ?, session = ''`, why)
}

// ReportFailed counts a failed report of a decision.
func (s *Store) ReportFailed(ctx context.Context, promotionID, why string) error {
	return s.setReport(ctx, promotionID, `attempts = attempts + 1, last_error = ?`, why)
}

func (s *Store) setReport(ctx context.Context, promotionID, set string, arg any) error {
	res, err := s.db.ExecContext(ctx, `UPDATE decisions SET `+set+` WHERE promotion_id = ? AND report_state = 'PENDING'`, arg, promotionID)
	if err != nil {
		return fmt.Errorf("update report of %s: %w", promotionID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("update report of %s: %w", promotionID, ErrNotFound)
	}
	return nil
}
