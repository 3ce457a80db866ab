package testbed

import (
	"bytes"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a running binary whose output is kept for failure reports.
type Proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

// Start runs bin with args and the test's environment plus env. At the
// end of the test it kills the process if it still runs and, when the
// test failed, logs its output under name.
func Start(t testing.TB, name, bin string, env []string, args ...string) *Proc {
	t.Helper()
	p := &Proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", name, p.Output())
		}
	})
	return p
}

// Write keeps b as output of the process.
func (p *Proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// Output returns the process's output so far, stdout and stderr mixed.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Terminate sends SIGTERM and waits up to grace for the process to exit;
// then it kills it. It reports whether the process exited within grace
// (or had already exited).
func (p *Proc) Terminate(grace time.Duration) bool {
	select {
	case <-p.done:
		return true
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
		p.Kill()
		return false
	}
}

// Stop is Terminate that fails the test unless the process exits within
// grace of SIGTERM.
func (p *Proc) Stop(t testing.TB, grace time.Duration) {
	t.Helper()
	if !p.Terminate(grace) {
		t.Errorf("%s did not stop within %v of SIGTERM", p.name, grace)
	}
}

// Kill sends SIGKILL, unless the process has exited, and waits for the
// exit.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Signal sends s to the process.
func (p *Proc) Signal(s syscall.Signal) { _ = p.cmd.Process.Signal(s) }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }
