package faultproxy

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// echo serves an echo server until the test ends and returns its address.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func start(t *testing.T) (*Proxy, net.Conn) {
	t.Helper()
	p, err := Listen("127.0.0.1:0", echo(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c
}

func roundTrip(t *testing.T, c net.Conn, msg []byte, within time.Duration) error {
	t.Helper()
	if _, err := c.Write(msg); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(within))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo changed the bytes")
	}
	return nil
}

func TestForwardSliceDelay(t *testing.T) {
	p, c := start(t)
	msg := bytes.Repeat([]byte("0123456789abcdef"), 1024)
	if err := roundTrip(t, c, msg, 5*time.Second); err != nil {
		t.Fatalf("plain: %v", err)
	}
	p.SetSlice(16)
	if err := roundTrip(t, c, msg, 10*time.Second); err != nil {
		t.Fatalf("sliced: %v", err)
	}
	p.SetSlice(0)
	p.SetDelay(100 * time.Millisecond)
	start := time.Now()
	if err := roundTrip(t, c, []byte("x"), 5*time.Second); err != nil {
		t.Fatalf("delayed: %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("round trip took %v with 100ms each way", d)
	}
}

func TestResetAndCut(t *testing.T) {
	for name, fault := range map[string]func(*Proxy) int{"reset": (*Proxy).Reset, "cut": (*Proxy).Cut} {
		t.Run(name, func(t *testing.T) {
			p, c := start(t)
			if err := roundTrip(t, c, []byte("hello"), 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if n := fault(p); n != 1 {
				t.Errorf("%s closed %d connections, want 1", name, n)
			}
			if err := roundTrip(t, c, []byte("again"), 5*time.Second); err == nil {
				t.Errorf("the connection still works after %s", name)
			}
			c2, err := net.Dial("tcp", p.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			if err := roundTrip(t, c2, []byte("new"), 5*time.Second); err != nil {
				t.Errorf("a new connection after %s: %v", name, err)
			}
		})
	}
}

func TestHangHeal(t *testing.T) {
	p, c := start(t)
	p.Hang()
	if err := roundTrip(t, c, []byte("held"), 300*time.Millisecond); err == nil {
		t.Fatal("bytes went through a hung proxy")
	}
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatalf("a hung proxy must still accept: %v", err)
	}
	defer c2.Close()
	p.Heal()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "held" {
		t.Fatalf("after Heal: %q, %v", got, err)
	}
	if err := roundTrip(t, c2, []byte("late"), 5*time.Second); err != nil {
		t.Errorf("a connection accepted while hung, after Heal: %v", err)
	}
}

func TestThrottle(t *testing.T) {
	p, c := start(t)
	p.SetThrottle(16 << 10)
	p.SetSlice(1024)
	begin := time.Now()
	if err := roundTrip(t, c, bytes.Repeat([]byte("t"), 4<<10), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// 4 KiB at 16 KiB/s is 250ms one way, less the pause after the last
	// segment (up to 1 KiB: 62ms); the two directions overlap.
	if d := time.Since(begin); d < 180*time.Millisecond {
		t.Errorf("4 KiB through a 16 KiB/s proxy took %v", d)
	}
}
