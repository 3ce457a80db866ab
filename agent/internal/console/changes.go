package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"ferry.dev/agent/internal/definition"
	"ferry.dev/shared/webconsole"
)

// Exporter reads an API's export document from the local APIM.
// *apim.Client implements it.
type Exporter interface {
	Export(ctx context.Context, apiID string) ([]byte, error)
}

// Changes is GET /console/changes/{id}: what accepting a task does.
type Changes struct {
	// Action is create, update or unknown (the task's plan).
	Action          string `json:"action"`
	ExistingAPIID   string `json:"existingApiId,omitempty"`
	ExistingAPIName string `json:"existingApiName,omitempty"`
	MatchedBy       string `json:"matchedBy,omitempty"`
	// Detail says why the action is unknown or why no diff could be made.
	Detail string `json:"detail,omitempty"`
	// Summary is the incoming definition's main fields.
	Summary []Field `json:"summary"`
	// Changes is the per-field diff of the existing API's definition and
	// the incoming one, for an update; empty for a create. Timestamps are
	// left out.
	Changes []Change `json:"changes"`
	// Omitted counts changes left out past maxChanges.
	Omitted int `json:"omitted,omitempty"`
	// ETag is the task's plan ETag: the page sends it as If-Match when
	// accepting, so that an accept after the target API changed under the
	// admin's eyes is refused (412) instead of applied unseen.
	ETag string `json:"etag,omitempty"`
}

// Field is a labelled value.
type Field struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

// Change is one field that differs. Before and After are compact JSON,
// clipped; Kind is added, removed or changed.
type Change struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"`
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
}

const (
	maxChanges    = 300
	maxValueBytes = 400
)

// ignoredKeys change on every import or export and say nothing about the
// API: timestamps anywhere, and the export document's own metadata.
var ignoredKeys = map[string]bool{"createdAt": true, "updatedAt": true, "deployedAt": true}

// ignoredRootKeys are ignored at the top of the export document only.
var ignoredRootKeys = map[string]bool{"export": true}

// taskDetail is the part of GET /api/v1/tasks/{id} the preview uses.
type taskDetail struct {
	CrossID    string          `json:"crossId"`
	Definition json.RawMessage `json:"definition"`
	Plan       *struct {
		Action          string `json:"action"`
		ExistingAPIID   string `json:"existingApiId"`
		ExistingAPIName string `json:"existingApiName"`
		MatchedBy       string `json:"matchedBy"`
		Detail          string `json:"detail"`
		ETag            string `json:"etag"`
	} `json:"plan"`
}

func (h *Handler) changes(w http.ResponseWriter, r *http.Request) {
	c, err := h.api.Call(r.Context(), r, http.MethodGet, "/api/v1/tasks/"+url.PathEscape(r.PathValue("id")), nil)
	if err != nil {
		return
	}
	if c.Status != http.StatusOK {
		c.Relay(w)
		return
	}
	var td taskDetail
	if err := json.Unmarshal(c.Body.Bytes(), &td); err != nil {
		webconsole.Problem(w, http.StatusBadGateway, "upstream", "the task could not be read: "+err.Error())
		return
	}
	out := Changes{Action: "unknown", Summary: summarize(td.Definition), Changes: []Change{}}
	if td.Plan == nil {
		out.Detail = "the task is no longer pending"
		h.writeJSON(w, http.StatusOK, out)
		return
	}
	out.Action, out.ExistingAPIID, out.ExistingAPIName, out.MatchedBy, out.Detail, out.ETag =
		td.Plan.Action, td.Plan.ExistingAPIID, td.Plan.ExistingAPIName, td.Plan.MatchedBy, td.Plan.Detail, td.Plan.ETag
	if out.Action == "update" && out.ExistingAPIID != "" {
		switch {
		case h.exporter == nil:
			out.Detail = "this agent cannot read the existing API, so only the incoming definition is shown"
		default:
			if err := h.diffExisting(r.Context(), &out, td); err != nil {
				h.log.Warn("change preview: export existing API", "api_id", out.ExistingAPIID, "err", err)
				out.Detail = "could not compare with the existing API: " + clip(err.Error(), maxValueBytes)
			}
		}
	}
	h.writeJSON(w, http.StatusOK, out)
}

// diffExisting exports the existing API, sanitizes it like an incoming
// definition (so members, groups and ids do not show as changes) and diffs.
func (h *Handler) diffExisting(ctx context.Context, out *Changes, td taskDetail) error {
	raw, err := h.exporter.Export(ctx, out.ExistingAPIID)
	if err != nil {
		return err
	}
	san, err := definition.Sanitize(raw, td.CrossID)
	if err != nil {
		return err
	}
	before, err := decodeJSON(san.JSON)
	if err != nil {
		return err
	}
	// The incoming definition was sanitized when it arrived; doing it
	// again (it is idempotent) makes both sides alike whatever the source.
	in, err := definition.Sanitize(td.Definition, td.CrossID)
	if err != nil {
		return err
	}
	after, err := decodeJSON(in.JSON)
	if err != nil {
		return err
	}
	var all []Change
	diff("", before, after, &all)
	if len(all) > maxChanges {
		out.Omitted = len(all) - maxChanges
		all = all[:maxChanges]
	}
	out.Changes = all
	return nil
}

func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode definition: %w", err)
	}
	return v, nil
}

// Diff appends to out the differences between a and b below path: objects
// key by key, arrays of objects by their name, key, crossId or id (the first
// that every element has, distinct; names read best in a path), other arrays
// by index.
func diff(path string, a, b any, out *[]Change) {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := make([]string, 0, len(av)+len(bv))
		for k := range av {
			keys = append(keys, k)
		}
		for k := range bv {
			if _, ok := av[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			if ignoredKeys[k] || path == "" && ignoredRootKeys[k] {
				continue
			}
			x, inA := av[k]
			y, inB := bv[k]
			p := join(path, k)
			switch {
			case !inA:
				*out = append(*out, Change{Path: p, Kind: "added", After: render(y)})
			case !inB:
				*out = append(*out, Change{Path: p, Kind: "removed", Before: render(x)})
			default:
				diff(p, x, y, out)
			}
		}
		return
	case []any:
		bv, ok := b.([]any)
		if !ok {
			break
		}
		if key := matchKey(av, bv); key != "" {
			diffKeyed(path, key, av, bv, out)
			return
		}
		for i := 0; i < max(len(av), len(bv)); i++ {
			p := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case i >= len(av):
				*out = append(*out, Change{Path: p, Kind: "added", After: render(bv[i])})
			case i >= len(bv):
				*out = append(*out, Change{Path: p, Kind: "removed", Before: render(av[i])})
			default:
				diff(p, av[i], bv[i], out)
			}
		}
		return
	}
	if !equalJSON(a, b) {
		*out = append(*out, Change{Path: orRoot(path), Kind: "changed", Before: render(a), After: render(b)})
	}
}

func diffKeyed(path, key string, a, b []any, out *[]Change) {
	idx := func(list []any) (map[string]any, []string) {
		m, order := map[string]any{}, []string{}
		for _, e := range list {
			k := e.(map[string]any)[key].(string)
			m[k] = e
			order = append(order, k)
		}
		return m, order
	}
	am, aOrder := idx(a)
	bm, bOrder := idx(b)
	for _, k := range aOrder {
		p := fmt.Sprintf("%s[%s=%s]", path, key, k)
		if y, ok := bm[k]; ok {
			diff(p, am[k], y, out)
		} else {
			*out = append(*out, Change{Path: p, Kind: "removed", Before: render(am[k])})
		}
	}
	for _, k := range bOrder {
		if _, ok := am[k]; !ok {
			*out = append(*out, Change{Path: fmt.Sprintf("%s[%s=%s]", path, key, k), Kind: "added", After: render(bm[k])})
		}
	}
}

// matchKey returns the field that identifies the elements of both arrays,
// or "" when they are not objects with a distinct string value of one.
func matchKey(a, b []any) string {
	for _, key := range []string{"name", "key", "crossId", "id"} {
		if distinctKey(a, key) && distinctKey(b, key) && len(a)+len(b) > 0 {
			return key
		}
	}
	return ""
}

func distinctKey(list []any, key string) bool {
	seen := map[string]bool{}
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return false
		}
		s, ok := m[key].(string)
		if !ok || s == "" || seen[s] {
			return false
		}
		seen[s] = true
	}
	return true
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func orRoot(p string) string {
	if p == "" {
		return "(definition)"
	}
	return p
}

func render(v any) string {
	b, _ := json.Marshal(v)
	return clip(string(b), maxValueBytes)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// summarize lists the main fields of an export document.
func summarize(raw json.RawMessage) []Field {
	var doc struct {
		API struct {
			Name        string `json:"name"`
			APIVersion  string `json:"apiVersion"`
			Description string `json:"description"`
			Type        string `json:"type"`
			Visibility  string `json:"visibility"`
			Listeners   []struct {
				Paths []struct {
					Path string `json:"path"`
				} `json:"paths"`
				Hosts []string `json:"hosts"`
			} `json:"listeners"`
			EndpointGroups []struct {
				Name      string `json:"name"`
				Endpoints []struct {
					Name          string `json:"name"`
					Configuration struct {
						Target string `json:"target"`
					} `json:"configuration"`
				} `json:"endpoints"`
			} `json:"endpointGroups"`
		} `json:"api"`
		Plans []struct {
			Name     string `json:"name"`
			Status   string `json:"status"`
			Security struct {
				Type string `json:"type"`
			} `json:"security"`
		} `json:"plans"`
		Pages []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"pages"`
	}
	if json.Unmarshal(raw, &doc) != nil {
		return []Field{}
	}
	var paths, targets, plans, pages []string
	for _, l := range doc.API.Listeners {
		for _, p := range l.Paths {
			paths = append(paths, p.Path)
		}
		paths = append(paths, l.Hosts...)
	}
	for _, g := range doc.API.EndpointGroups {
		for _, e := range g.Endpoints {
			if e.Configuration.Target != "" {
				targets = append(targets, e.Configuration.Target)
			} else {
				targets = append(targets, e.Name)
			}
		}
	}
	for _, p := range doc.Plans {
		s := p.Name
		var extra []string
		if p.Security.Type != "" {
			extra = append(extra, p.Security.Type)
		}
		if p.Status != "" {
			extra = append(extra, p.Status)
		}
		if len(extra) > 0 {
			s += " (" + strings.Join(extra, ", ") + ")"
		}
		plans = append(plans, s)
	}
	for _, p := range doc.Pages {
		if p.Type != "ROOT" && p.Type != "FOLDER" {
			pages = append(pages, p.Name)
		}
	}
	out := []Field{{"Name", doc.API.Name}, {"Version", doc.API.APIVersion}}
	add := func(label string, v []string) {
		if len(v) > 0 {
			out = append(out, Field{label, strings.Join(slices.Compact(v), ", ")})
		}
	}
	if doc.API.Description != "" {
		out = append(out, Field{"Description", clip(doc.API.Description, maxValueBytes)})
	}
	if doc.API.Type != "" {
		out = append(out, Field{"Type", doc.API.Type})
	}
	add("Context paths", paths)
	add("Endpoints", targets)
	add("Plans", plans)
	add("Documentation pages", pages)
	out = append(out, Field{"Members and groups", "not promoted: this environment keeps its own"})
	return out
}
