// Command apim-sim serves apimsim, Ferry's in-memory stand-in for Gravitee
// APIM's Management API v2, for local runs and demos.
//
//	apim-sim --listen 127.0.0.1:8083 --seed deploy/seed/dev --user admin
//
// Besides the Management API it serves GET /_sim/stats, the creates and
// updates per crossId and requests per operation as JSON, unauthenticated,
// so that process-level tests can count side effects.
//
// The password comes from APIM_SIM_PASSWORD; --password also works but shows
// in the process list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"ferry.dev/agent/apimsim"
)

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "apim-sim:", err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string, stdout, stderr *os.File) error {
	fs := flag.NewFlagSet("apim-sim", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8083", "address to listen on")
	seed := fs.String("seed", "", "folder of ExportApiV4 *.json files to load into environment DEFAULT")
	user := fs.String("user", "", "require HTTP Basic auth with this user")
	password := fs.String("password", "", "password for --user (prefer APIM_SIM_PASSWORD)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var logger *slog.Logger
	switch *logFormat {
	case "text":
		logger = slog.New(slog.NewTextHandler(stderr, hopts))
	case "json":
		logger = slog.New(slog.NewJSONHandler(stderr, hopts))
	default:
		return fmt.Errorf("--log-format must be text or json, not %q", *logFormat)
	}

	pass := getenv("APIM_SIM_PASSWORD")
	if *password != "" {
		logger.Warn("--password is visible in the process list; prefer APIM_SIM_PASSWORD")
		pass = *password
	}
	switch {
	case *user != "" && pass == "":
		return errors.New("--user needs a password: set APIM_SIM_PASSWORD")
	case *user == "" && pass != "":
		logger.Warn("a password is set but no --user: serving without authentication")
		pass = ""
	}

	sim := apimsim.New(apimsim.Options{User: *user, Password: pass, Logger: logger})
	if *seed != "" {
		if err := sim.Seed(*seed); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	// The stats are read-only test counters, kept off the /management/v2 tree.
	mux := http.NewServeMux()
	mux.Handle(apimsim.StatsPath, sim.StatsHandler())
	mux.Handle("/", sim)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	fmt.Fprintf(stdout, "apim-sim listening on http://%s/management/v2\n", ln.Addr())
	logger.Info("apim-sim started", slog.String("addr", ln.Addr().String()), slog.Bool("auth", *user != ""))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("apim-sim shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
