// Command ferry-hub runs the Ferry hub: organizations, environments,
// installations, promotions and the agents' WebSocket links.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"ferry.dev/hub/internal/config"
	"ferry.dev/hub/internal/server"
)

func main() {
	cfg, err := config.Load(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferry-hub:", err)
		os.Exit(2)
	}
	if cfg.CheckConfig {
		fmt.Println("ferry-hub: configuration OK")
		return
	}
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	log := slog.New(h)
	srv, err := server.New(cfg, log)
	if err != nil {
		log.Error("invalid configuration", "err", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Run(ctx); err != nil {
		log.Error("hub stopped with an error", "err", err)
		os.Exit(1)
	}
}
