package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ferry.dev/hub/internal/agenttest"
	"ferry.dev/hub/internal/audit"
	"ferry.dev/hub/internal/link"
	"ferry.dev/hub/internal/state"
	"ferry.dev/shared/protocol"
)

// WebSocket numbers (RFC 6455) used below; the server package does not
// import gorilla (see deptest).
const (
	lhClosePolicy = 1008 // close code: policy violation
	lhTextMessage = 1    // gorilla's TextMessage, as agenttest.Conn.SendRaw takes it
)

// lhSessions authenticates one credential as a fixed peer.
type lhSessions struct {
	cred string
	peer link.Peer
}

var _ link.Sessions = (*lhSessions)(nil)

func (s *lhSessions) AuthenticateAgent(_ context.Context, cred string) (link.Peer, error) {
	if cred != s.cred {
		return link.Peer{}, protocol.Errorf(protocol.CodeUnauthorized, "unknown installation credential")
	}
	return s.peer, nil
}

func (s *lhSessions) Hello(_ context.Context, p link.Peer, _ *protocol.Hello) (*protocol.HelloReply, error) {
	return &protocol.HelloReply{InstallationID: p.InstallationID, OrgID: p.OrgID, Status: protocol.InstallationAccepted}, nil
}

func (s *lhSessions) Connected(context.Context, *link.Conn) {}
func (s *lhSessions) Disconnected(*link.Conn, bool)         {}

// lhLink serves a real link endpoint with the hub's link operations (and
// their audit wiring) for installation p, and returns its URL.
func (h *testHub) lhLink(t *testing.T, cred string, p link.Peer) string {
	t.Helper()
	ep, err := link.New(link.Config{}, &lhSessions{cred: cred, peer: p}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h.ops.register(ep)
	mux := http.NewServeMux()
	mux.Handle(agenttest.LinkPath, ep)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ep.Shutdown(ctx)
		srv.Close()
	})
	return srv.URL
}

// TestLinkViolationsAudited checks that the link's own violations reach the
// audit trail like the operations' refusals (TestLinkViolations): a message
// type only the hub sends (direction, twice) and a reply to a command never
// sent are each audited as ACCESS_DENIED for the installation, the third
// closing the link with 1008, while a duplicated command counts nothing; a
// flood (D6/W25) is audited as it closes the link.
func TestLinkViolationsAudited(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	acme := h.newOrg("acme")
	peer := acme.peer("Dev")
	url := h.lhLink(t, "cred-dev", peer)

	t.Run("direction, duplicate, unknown reply", func(t *testing.T) {
		before := h.auditMark(acme)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		c, err := (&agenttest.Agent{Credential: "cred-dev"}).Dial(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// 1. An operation only the hub sends.
		r, err := c.Call(ctx, protocol.OpExportAPI, protocol.ExportRequest{APIID: "api-1"})
		if err != nil || r.Error == nil || r.Error.Code != protocol.CodeInvalid {
			t.Fatalf("export from an agent: %+v (%v), want invalid", r, err)
		}
		// 2. A copy of a command already received is no violation (a
		// network duplicate): it gets the first reply and counts nothing.
		cmd, _ := protocol.New(protocol.TypeCommand, "dup1", "", &protocol.Command{Op: protocol.OpListPromotions})
		for range 2 {
			if err := c.Send(cmd); err != nil {
				t.Fatal(err)
			}
		}
		// 3. Another operation only the hub sends.
		if r, err := c.Call(ctx, protocol.OpDeliverPromotion, protocol.Promotion{ID: "prm_x"}); err != nil || r.Error == nil || r.Error.Code != protocol.CodeInvalid {
			t.Fatalf("deliver from an agent: %+v (%v), want invalid", r, err)
		}
		// 4. A reply to a command the hub never sent: the third strike.
		rep, _ := protocol.New(protocol.TypeReply, "x1", "h999", protocol.ErrorReply(protocol.CodeNotFound, "x"))
		if err := c.Send(rep); err != nil {
			t.Fatal(err)
		}
		if code, err := c.Wait(ctx); code != lhClosePolicy {
			t.Errorf("close after three violations = %d (%v), want 1008", code, err)
		}
		es := lhWaitAudits(t, h, acme, before.Audit, 3)
		for i, want := range []string{"link direction violation", "link direction violation", "link unknown_reply violation"} {
			if i >= len(es) {
				break
			}
			e := es[i]
			if e.Event != audit.AccessDenied || e.Actor != "installation:"+peer.InstallationID || !strings.Contains(e.Detail, want) {
				t.Errorf("audit %d = %s by %s: %q, want %s by installation:%s naming %q", i, e.Event, e.Actor, e.Detail, audit.AccessDenied, peer.InstallationID, want)
			}
		}
		if len(es) == 3 && !strings.Contains(es[2].Detail, "link closed") {
			t.Errorf("third violation's audit %q does not say the link was closed", es[2].Detail)
		}
	})

	t.Run("flood", func(t *testing.T) {
		before := h.auditMark(acme)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		c, err := (&agenttest.Agent{Credential: "cred-dev"}).Dial(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		noise := []byte(`{"v":1,"type":"error","payload":{"code":"bad_message"}}`)
		for range 1000 {
			if c.SendRaw(lhTextMessage, noise) != nil {
				break
			}
		}
		if code, err := c.Wait(ctx); code != lhClosePolicy {
			t.Errorf("close after a flood = %d (%v), want 1008", code, err)
		}
		es := lhWaitAudits(t, h, acme, before.Audit, 1)
		if len(es) != 1 || es[0].Event != audit.AccessDenied || !strings.Contains(es[0].Detail, "link flood violation") {
			t.Errorf("audit after a flood = %+v, want one %s naming the flood", es, audit.AccessDenied)
		}
	})
}

// lhWaitAudits waits for n audit entries of o after seq (the link audits
// from its own goroutine) and returns them.
func lhWaitAudits(t *testing.T, h *testHub, o org, after, n int) []state.AuditEntry {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		es := h.audits(o, after)
		if len(es) >= n || time.Now().After(deadline) {
			if len(es) != n {
				t.Errorf("%d audit entries, want %d: %+v", len(es), n, es)
			}
			return es
		}
		time.Sleep(10 * time.Millisecond)
	}
}
