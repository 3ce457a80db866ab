package authn

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"ferry.dev/shared/protocol"
	"ferry.dev/shared/session"
)

// Token is a session token. It is a secret: it prints, logs and marshals as
// "REDACTED". Reveal returns its value.
type Token string

const redacted = "REDACTED"

// Reveal returns the token itself, for the wire to the hub only.
func (t Token) Reveal() string { return string(t) }

// LogValue implements slog.LogValuer.
func (Token) LogValue() slog.Value { return slog.StringValue(redacted) }

// String implements fmt.Stringer.
func (Token) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (Token) GoString() string { return redacted }

// MarshalJSON keeps the token out of any JSON by mistake.
func (Token) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

var (
	_ slog.LogValuer = Token("")
	_ fmt.Stringer   = Token("")
)

// maxActorBytes bounds User.Actor; the task store and the wire accept 256.
const maxActorBytes = 256

// User is an authenticated caller: the verified claims of their session and
// the session token, which travels to the hub with what they request or
// decide so that the hub can check again.
type User struct {
	Claims session.Claims
	Token  Token
}

// ID is the user's id at the hub (the session's subject).
func (u User) ID() string { return u.Claims.Subject }

// Actor is how the user is recorded as the requester of a promotion or the
// decider of a task: "Name (id)", or the id alone when the session carries
// no name.
func (u User) Actor() string {
	id := u.Claims.Subject
	name := strings.TrimSpace(u.Claims.Name)
	if name == "" {
		return clip(id, maxActorBytes)
	}
	if room := maxActorBytes - len(id) - 3; room > 0 {
		return clip(name, room) + " (" + id + ")"
	}
	return clip(id, maxActorBytes)
}

// ExpiresAt is when the session expires.
func (u User) ExpiresAt() time.Time {
	if u.Claims.ExpiresAt == nil {
		return time.Time{}
	}
	return u.Claims.ExpiresAt.Time
}

// RequireEnv returns nil when the user holds every one of ps on environment
// envID, and otherwise a forbidden error naming the missing permissions and
// the environment (envName, or envID when empty), e.g. "needs
// ENVIRONMENT_API[CREATE,UPDATE] on Prod".
func (u User) RequireEnv(envID, envName string, ps ...session.Permission) error {
	var missing []session.Permission
	for _, p := range ps {
		if !u.Claims.CanEnv(envID, p) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return protocol.Errorf(protocol.CodeForbidden, "needs "+Describe(missing...)+" on "+orID(envName, envID))
}

// RequireAPI returns nil when the user holds every one of ps on the API
// crossID of environment envID (through an API role, an environment role or
// as organization admin), and otherwise a forbidden error naming the missing
// permissions, e.g. "needs API_DEFINITION[UPDATE] on API Orders
// (crossId 7f0…) in Dev".
func (u User) RequireAPI(envID, envName, crossID, apiName string, ps ...session.Permission) error {
	var missing []session.Permission
	for _, p := range ps {
		if !u.Claims.CanAPI(envID, crossID, p) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	api := "crossId " + crossID
	if apiName != "" {
		api = apiName + " (crossId " + crossID + ")"
	}
	return protocol.Errorf(protocol.CodeForbidden, "needs "+Describe(missing...)+" on API "+api+" in "+orID(envName, envID))
}

// Describe writes permissions in Gravitee's style, grouped by resource:
// "ENVIRONMENT_API[CREATE,UPDATE]", "A[X] and B[Y]".
func Describe(ps ...session.Permission) string {
	var resources []string
	actions := map[string][]string{}
	for _, p := range ps {
		res, act, ok := strings.Cut(string(p), ":")
		if !ok {
			res, act = string(p), ""
		}
		if _, seen := actions[res]; !seen {
			resources = append(resources, res)
		}
		if act != "" && !slices.Contains(actions[res], act) {
			actions[res] = append(actions[res], act)
		}
	}
	parts := make([]string, 0, len(resources))
	for _, r := range resources {
		if len(actions[r]) == 0 {
			parts = append(parts, r)
			continue
		}
		parts = append(parts, r+"["+strings.Join(actions[r], ",")+"]")
	}
	return strings.Join(parts, " and ")
}

func orID(name, id string) string {
	if name != "" {
		return name
	}
	return id
}

// clip shortens s to at most n bytes without splitting a rune.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
