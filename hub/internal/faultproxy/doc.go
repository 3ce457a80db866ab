// Package faultproxy is a TCP proxy for tests that stands between two
// processes (an agent and the hub) and injects network faults on command:
// close every connection (Cut), reset every connection with an RST (Reset),
// blackhole the link (Hang: accept and hold, forward nothing, until Heal),
// add latency (SetDelay), cap throughput (SetThrottle) and split the stream
// into small segments (SetSlice).
//
// It works on bytes, not on WebSocket frames, so it cannot duplicate frames;
// tests that need that decode frames themselves.
//
// A Proxy is safe for concurrent use. Listen starts its accept loop; Close
// stops it, closes every connection and waits for every goroutine it
// started.
package faultproxy
