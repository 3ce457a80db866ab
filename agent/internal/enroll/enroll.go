// Package enroll gets the agent its installation credential: it reads the
// one kept in the data directory or, on first start, trades the one-time link
// token for one at the hub and keeps it (0600, written atomically). Save
// keeps the new credential the hub sends when it rotates the old one.
package enroll

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CredentialFile is the credential's file name inside the data directory.
const CredentialFile = "credential"

// ErrRefused means the hub refused the link token; a new one is needed.
var ErrRefused = errors.New("the hub refused the link token")

// Request describes an enrollment.
type Request struct {
	HubURL       string
	DataDir      string
	LinkToken    string
	AgentVersion string
	Hostname     string
	HTTPClient   *http.Client // defaults to a client with a 15s timeout
}

// Credential returns the installation credential, enrolling first if the data
// directory holds none. Network failures and hub errors are retried until ctx
// ends; a refused token is not.
func Credential(ctx context.Context, r Request, log *slog.Logger) (string, error) {
	path := filepath.Join(r.DataDir, CredentialFile)
	if b, err := os.ReadFile(path); err == nil {
		if cred := strings.TrimSpace(string(b)); cred != "" {
			return cred, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read credential: %w", err)
	}
	if r.LinkToken == "" {
		return "", errors.New("this agent is not linked yet: start it once with --link-token (create one at the hub for this environment)")
	}
	if r.HTTPClient == nil {
		r.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	wait := time.Second
	for {
		cred, err := enrollOnce(ctx, r)
		if err == nil {
			if err := writeFile(path, cred); err != nil {
				return "", err
			}
			log.Info("agent linked to the hub; credential kept", "path", path)
			return cred, nil
		}
		if errors.Is(err, ErrRefused) {
			return "", err
		}
		log.Warn("could not reach the hub to link this agent; retrying", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

type enrollResponse struct {
	InstallationID string `json:"installationId"`
	Credential     string `json:"credential"`
}

func enrollOnce(ctx context.Context, r Request) (string, error) {
	body, _ := json.Marshal(map[string]string{"agentVersion": r.AgentVersion, "hostname": r.Hostname})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(r.HubURL, "/")+"/api/v1/link/enroll", bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("build enroll request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+r.LinkToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("enroll: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusCreated:
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusBadRequest:
		var p struct {
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(b, &p)
		return "", fmt.Errorf("%w: %s", ErrRefused, p.Detail)
	default:
		return "", fmt.Errorf("enroll: hub answered %s", resp.Status)
	}
	var er enrollResponse
	if err := json.Unmarshal(b, &er); err != nil || er.Credential == "" {
		return "", fmt.Errorf("enroll: unreadable answer from hub")
	}
	return er.Credential, nil
}

// Save keeps cred as the installation credential in dataDir, durably: it
// has reached the disk when Save returns nil, and a crash at any point
// leaves either the old credential or the new one, whole. Saving the
// credential already kept is harmless.
func Save(dataDir, cred string) error {
	if cred == "" || strings.TrimSpace(cred) != cred || strings.ContainsAny(cred, "\r\n") {
		return errors.New("write credential: a credential is one line without surrounding spaces")
	}
	return writeFile(filepath.Join(dataDir, CredentialFile), cred)
}

// writeFile writes the credential durably: temp file, fsync, rename, fsync
// of the directory (which makes the rename itself survive a power loss).
func writeFile(path, cred string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".credential-*")
	if err != nil {
		return fmt.Errorf("write credential: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write credential: %w", err)
	}
	if _, err := tmp.WriteString(cred + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("write credential: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write credential: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write credential: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write credential: %w", err)
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("write credential: %w", err)
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("write credential: sync directory: %w", err)
	}
	return nil
}
