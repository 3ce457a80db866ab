package link_test

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"ferry.dev/hub/internal/agenttest"
	"ferry.dev/hub/internal/link"
	"ferry.dev/shared/protocol"
)

// BenchmarkLinkMemory reports what an idle link retains after a GC, hub and
// agent ends together (the agents are small in-process gorilla clients; run
// scripts/bench-link for the hub alone). Set LINK_HEAP_PROFILE=file to write
// a heap profile while the links are open:
//
//	LINK_HEAP_PROFILE=/tmp/heap.prof go test -run - -bench LinkMemory ./hub/internal/link
//	go tool pprof -sample_index=inuse_space -top /tmp/heap.prof
func BenchmarkLinkMemory(b *testing.B) {
	const links = 500
	stop := make(chan struct{})
	b.Cleanup(func() { close(stop) }) // after the hub's own cleanup
	h := newTestHub(b, link.Config{}, nil)
	h.sess.mu.Lock()
	for i := range links {
		cred := fmt.Sprintf("bench-%d", i)
		h.sess.peers[cred] = link.Peer{InstallationID: cred, OrgID: "org_1", EnvIDs: []string{"env_dev"}}
	}
	h.sess.mu.Unlock()
	go func() {
		for {
			select {
			case <-h.sess.connected:
			case <-h.sess.disconnected:
			case <-stop:
				return
			}
		}
	}()
	url := "ws" + strings.TrimPrefix(h.srv.URL, "http") + agenttest.LinkPath
	dialer := websocket.Dialer{ReadBufferSize: 256, WriteBufferSize: 256, Subprotocols: []string{protocol.Subprotocol}}
	hello := []byte(`{"v":1,"type":"hello","id":"a1","payload":{"agent_version":"bench"}}`)

	var heap, stack float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		conns := make([]*websocket.Conn, 0, links)
		for i := range links {
			ws, _, err := dialer.Dial(url, http.Header{"Authorization": {fmt.Sprintf("Bearer bench-%d", i)}})
			if err != nil {
				b.Fatal(err)
			}
			if err := ws.WriteMessage(websocket.TextMessage, hello); err != nil {
				b.Fatal(err)
			}
			if _, _, err := ws.ReadMessage(); err != nil {
				b.Fatal(err)
			}
			conns = append(conns, ws)
		}
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap += float64(after.HeapInuse) - float64(before.HeapInuse)
		stack += float64(after.StackInuse) - float64(before.StackInuse)
		if path := os.Getenv("LINK_HEAP_PROFILE"); path != "" {
			writeHeapProfile(b, path)
		}
		for _, ws := range conns {
			ws.Close()
		}
		for h.ep.Registry().Len() > 0 {
			runtime.Gosched()
		}
	}
	n := float64(b.N * links)
	b.ReportMetric(heap/n, "heap-B/link")
	b.ReportMetric(stack/n, "stack-B/link")
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}
