package apimsim

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// environment holds the APIs of one envId. Guarded by Server.mu.
type environment struct {
	apis  map[string]*record // by id
	order []string           // ids, in creation order
}

// record is a stored API. Its def is immutable once stored: readers decode
// their own copy.
type record struct {
	id, crossID      string
	name, apiVersion string
	createdAt        time.Time
	updatedAt        time.Time
	paths            []string // HTTP listener host+path keys
	def              []byte   // the full ExportApiV4 document, with ids
	api              []byte   // its "api" object, as listings show it
}

func (r *record) snapshot(envID string) API {
	return API{
		EnvID:      envID,
		ID:         r.id,
		CrossID:    r.crossID,
		Name:       r.name,
		APIVersion: r.apiVersion,
		CreatedAt:  r.createdAt,
		UpdatedAt:  r.updatedAt,
		Definition: append([]byte(nil), r.def...),
	}
}

// envLocked returns the environment, creating it. Call with s.mu held.
func (s *Server) envLocked(envID string) *environment {
	e := s.envs[envID]
	if e == nil {
		e = &environment{apis: make(map[string]*record)}
		s.envs[envID] = e
	}
	return e
}

// lookup returns a copy of a stored API's document, or a 404 apiError.
func (s *Server) lookup(envID, apiID string) (*record, map[string]any, error) {
	s.mu.Lock()
	var rec *record
	if e := s.envs[envID]; e != nil {
		rec = e.apis[apiID]
	}
	s.mu.Unlock()
	if rec == nil {
		return nil, nil, notFound(apiID)
	}
	v, err := decode(rec.def)
	if err != nil {
		return nil, nil, fmt.Errorf("decode stored definition: %w", err)
	}
	return rec, v.(map[string]any), nil
}

// parseDefinition checks an import body: a JSON object in the ExportApiV4
// shape with a V4 api that has a name.
func parseDefinition(body []byte) (map[string]any, error) {
	v, err := decode(body)
	if err != nil {
		return nil, badRequest("Malformed JSON: %v", err)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, badRequest("The definition must be a JSON object")
	}
	if _, legacy := doc["gravitee"]; legacy {
		return nil, badRequest("Only V4 API definitions can be imported; this is a legacy V2 export")
	}
	api, ok := doc["api"].(map[string]any)
	if !ok {
		return nil, badRequest("The definition has no api object")
	}
	if dv := api["definitionVersion"]; dv != "V4" {
		return nil, badRequest("Only V4 API definitions can be imported, not definitionVersion %v", dv)
	}
	if name, _ := api["name"].(string); strings.TrimSpace(name) == "" {
		e := badRequest("Validation error")
		e.details = []errorDetail{{Message: "must not be blank", Location: "api.name"}}
		return nil, e
	}
	for _, key := range []string{"plans", "pages", "members", "metadata"} {
		if x, ok := doc[key]; ok && x != nil {
			if _, ok := x.([]any); !ok {
				return nil, badRequest("%s must be an array", key)
			}
		}
	}
	if _, err := listenerPaths(api); err != nil {
		return nil, err
	}
	return doc, nil
}

// create stores a new API in envID from a parsed definition.
func (s *Server) create(envID string, doc map[string]any) (API, error) {
	api := doc["api"].(map[string]any)
	paths, _ := listenerPaths(api) // checked by parseDefinition
	now := s.opts.Now().UTC()

	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.envLocked(envID)

	crossID, _ := api["crossId"].(string)
	if crossID == "" {
		crossID = randomID()
	} else if other := e.byCrossID(crossID); other != nil {
		return API{}, apiError{
			status:  http.StatusConflict,
			message: fmt.Sprintf("An API with crossId [%s] already exists in environment [%s] (api %s); update it instead (apimsim is stricter than APIM here)", crossID, envID, other.id),
			code:    "apimsim.crossId.duplicate",
			params:  map[string]string{"crossId": crossID},
		}
	}
	if err := e.checkPaths(paths, ""); err != nil {
		return API{}, err
	}

	id := randomID()
	if old, _ := api["id"].(string); old != "" {
		if derived := derivedID(envID, old); e.apis[derived] == nil {
			id = derived
		}
	}
	api["id"], api["crossId"] = id, crossID
	api["createdAt"], api["updatedAt"] = timestamp(now), timestamp(now)
	if _, ok := api["primaryOwner"]; !ok {
		api["primaryOwner"] = s.primaryOwner()
	}
	if members, _ := doc["members"].([]any); len(members) == 0 {
		doc["members"] = []any{s.primaryOwnerMember()}
	}
	assignIDs(doc, id, envID, nil, nil)

	rec, err := newRecord(id, crossID, paths, now, now, doc)
	if err != nil {
		return API{}, err
	}
	e.apis[id] = rec
	e.order = append(e.order, id)
	s.creates[crossID]++
	s.log.Info("API created", slog.String("env_id", envID), slog.String("api_id", id), slog.String("cross_id", crossID))
	return rec.snapshot(envID), nil
}

// update replaces the definition of an existing API.
func (s *Server) update(envID, apiID string, doc map[string]any) (API, error) {
	api := doc["api"].(map[string]any)
	paths, _ := listenerPaths(api) // checked by parseDefinition
	now := s.opts.Now().UTC()

	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.envs[envID]
	var rec *record
	if e != nil {
		rec = e.apis[apiID]
	}
	if rec == nil {
		return API{}, notFound(apiID)
	}
	if crossID, _ := api["crossId"].(string); crossID != "" && crossID != rec.crossID {
		return API{}, badRequest("The definition's crossId [%s] is not the crossId [%s] of api %s (apimsim is stricter than APIM here)", crossID, rec.crossID, apiID)
	}
	if err := e.checkPaths(paths, apiID); err != nil {
		return API{}, err
	}
	v, err := decode(rec.def)
	if err != nil {
		return API{}, fmt.Errorf("decode stored definition: %w", err)
	}
	old := v.(map[string]any)
	oldAPI, _ := old["api"].(map[string]any)

	api["id"], api["crossId"] = apiID, rec.crossID
	api["createdAt"], api["updatedAt"] = timestamp(rec.createdAt), timestamp(now)
	if _, ok := api["primaryOwner"]; !ok && oldAPI["primaryOwner"] != nil {
		api["primaryOwner"] = oldAPI["primaryOwner"]
	}
	if members, _ := doc["members"].([]any); len(members) == 0 {
		doc["members"] = old["members"]
	}
	oldPages := list(old["pages"])
	assignIDs(doc, apiID, envID, byCrossID(oldPages), byCrossID(list(old["plans"])))
	// Pages are upserted: stored pages the import does not mention stay.
	seen := map[string]bool{}
	for _, p := range list(doc["pages"]) {
		seen[str(p["id"])] = true
	}
	pages, _ := doc["pages"].([]any)
	for _, p := range oldPages {
		if !seen[str(p["id"])] {
			pages = append(pages, p)
		}
	}
	if pages != nil {
		doc["pages"] = pages
	}

	next, err := newRecord(apiID, rec.crossID, paths, rec.createdAt, now, doc)
	if err != nil {
		return API{}, err
	}
	e.apis[apiID] = next
	s.updates[rec.crossID]++
	s.log.Info("API updated", slog.String("env_id", envID), slog.String("api_id", apiID), slog.String("cross_id", rec.crossID))
	return next.snapshot(envID), nil
}

func newRecord(id, crossID string, paths []string, created, updated time.Time, doc map[string]any) (*record, error) {
	b, err := encode(doc)
	if err != nil {
		return nil, fmt.Errorf("encode definition: %w", err)
	}
	api := doc["api"].(map[string]any)
	ab, err := encode(api)
	if err != nil {
		return nil, fmt.Errorf("encode api: %w", err)
	}
	return &record{
		id: id, crossID: crossID,
		name: str(api["name"]), apiVersion: str(api["apiVersion"]),
		createdAt: created, updatedAt: updated,
		paths: paths, def: b, api: ab,
	}, nil
}

// assignIDs gives the pages and plans of doc the ids APIM would: the id of
// the stored page or plan with the same crossId (on update), else a new one.
// Page parent links and plan general conditions are remapped from the old
// page ids to the new ones, and dropped when they name no imported page, as
// APIM's ApiIdsCalculatorDomainService does. Pages and plans without a
// crossId get one.
func assignIDs(doc map[string]any, apiID, envID string, oldPages, oldPlans map[string]string) {
	pages := list(doc["pages"])
	newIDs := map[string]string{} // old page id -> new page id
	for _, p := range pages {
		if str(p["crossId"]) == "" {
			p["crossId"] = randomID()
		}
		id := oldPages[str(p["crossId"])]
		if id == "" {
			id = randomID()
		}
		if old := str(p["id"]); old != "" {
			newIDs[old] = id
		}
		p["id"] = id
		p["referenceType"], p["referenceId"] = "API", apiID
	}
	for _, p := range pages {
		remap(p, "parentId", newIDs)
	}
	for _, p := range list(doc["plans"]) {
		if str(p["crossId"]) == "" {
			p["crossId"] = randomID()
		}
		id := oldPlans[str(p["crossId"])]
		if id == "" {
			id = randomID()
		}
		p["id"], p["apiId"] = id, apiID
		remap(p, "generalConditions", newIDs)
		for _, f := range list(p["flows"]) {
			if str(f["id"]) == "" {
				f["id"] = randomID()
			}
		}
	}
	api := doc["api"].(map[string]any)
	for _, f := range list(api["flows"]) {
		if str(f["id"]) == "" {
			f["id"] = randomID()
		}
	}
}

// remap replaces obj[key], a page id, with the page's new id, or removes it.
func remap(obj map[string]any, key string, newIDs map[string]string) {
	old := str(obj[key])
	if old == "" {
		return
	}
	if id, ok := newIDs[old]; ok {
		obj[key] = id
	} else {
		delete(obj, key)
	}
}

// exportDoc builds the export of a stored document, leaving out what
// excludeAdditionalData names. Closed plans are never exported.
func exportDoc(doc map[string]any, exclude map[string]bool, now time.Time) map[string]any {
	out := make(map[string]any, len(doc)+1)
	for k, v := range doc {
		out[k] = v
	}
	out["export"] = map[string]any{"date": timestamp(now), "apimVersion": APIMVersion}
	if exclude["members"] {
		delete(out, "members")
	}
	if exclude["groups"] {
		if api, ok := out["api"].(map[string]any); ok {
			delete(api, "groups")
		}
	}
	if exclude["metadata"] {
		delete(out, "metadata")
	}
	if exclude["pages"] {
		delete(out, "pages")
		delete(out, "apiMedia")
	}
	if exclude["plans"] {
		delete(out, "plans")
	} else if plans, ok := out["plans"].([]any); ok {
		kept := []any{}
		for _, p := range plans {
			if m, ok := p.(map[string]any); !ok || m["status"] != "CLOSED" {
				kept = append(kept, p)
			}
		}
		out["plans"] = kept
	}
	return out
}

// listenerPaths returns the host+path keys of the API's HTTP listeners,
// normalised the way APIM compares them (leading and trailing slash).
func listenerPaths(api map[string]any) ([]string, error) {
	var out []string
	for _, l := range list(api["listeners"]) {
		if l["type"] != "HTTP" {
			continue
		}
		for _, p := range list(l["paths"]) {
			path := str(p["path"])
			if path == "" {
				return nil, badRequest("An HTTP listener path must not be empty")
			}
			if !strings.HasPrefix(path, "/") {
				path = "/" + path
			}
			if !strings.HasSuffix(path, "/") {
				path += "/"
			}
			out = append(out, strings.ToLower(str(p["host"]))+path)
		}
	}
	return out, nil
}

// checkPaths refuses paths already used by another API than except.
func (e *environment) checkPaths(paths []string, except string) error {
	for _, id := range e.order {
		if id == except {
			continue
		}
		for _, theirs := range e.apis[id].paths {
			for _, mine := range paths {
				if mine == theirs {
					return apiError{
						status:  http.StatusBadRequest,
						message: fmt.Sprintf("Path [%s] already exists", mine),
						code:    "api.pathAlreadyExists",
						params:  map[string]string{"path": mine},
					}
				}
			}
		}
	}
	return nil
}

func (e *environment) byCrossID(crossID string) *record {
	for _, id := range e.order {
		if r := e.apis[id]; r.crossID == crossID {
			return r
		}
	}
	return nil
}

func (s *Server) primaryOwner() map[string]any {
	return map[string]any{"id": s.userID(), "displayName": s.userName(), "type": "USER"}
}

func (s *Server) primaryOwnerMember() map[string]any {
	return map[string]any{
		"id":          s.userID(),
		"displayName": s.userName(),
		"roles":       []any{map[string]any{"name": "PRIMARY_OWNER", "scope": "API"}},
	}
}

func (s *Server) userName() string {
	if s.opts.User != "" {
		return s.opts.User
	}
	return "admin"
}

func (s *Server) userID() string { return derivedID("user", s.userName()) }

// byCrossID maps crossId to id for stored pages or plans.
func byCrossID(items []map[string]any) map[string]string {
	out := map[string]string{}
	for _, it := range items {
		if c := str(it["crossId"]); c != "" {
			out[c] = str(it["id"])
		}
	}
	return out
}

// list returns the objects of a JSON array, skipping anything else.
func list(v any) []map[string]any {
	arr, _ := v.([]any)
	out := make([]map[string]any, 0, len(arr))
	for _, item := range arr {
		if m, ok := item.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// timestamp formats t the way APIM does: RFC 3339, milliseconds, UTC.
func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
