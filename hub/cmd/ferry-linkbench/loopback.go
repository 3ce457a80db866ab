package main

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// loopbackURL parses a hub URL and refuses anything but a loopback host:
// this tool opens thousands of connections and must not aim them elsewhere.
func loopbackURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", raw, err)
	}
	switch u.Scheme {
	case "http", "ws":
	default:
		return nil, fmt.Errorf("URL %q: want http:// or ws:// on a loopback address", raw)
	}
	if err := checkLoopbackHost(u.Hostname()); err != nil {
		return nil, fmt.Errorf("URL %q: %w", raw, err)
	}
	return u, nil
}

// checkLoopbackAddr refuses listen addresses that are not loopback.
func checkLoopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: want host:port", addr)
	}
	return checkLoopbackHost(host)
}

func checkLoopbackHost(host string) error {
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("host %q is not a loopback address", host)
	}
	return nil
}
