package apimsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// handleList serves listApis: one page of the environment's APIs, in
// creation order.
func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, err := positiveParam(q, "page", 1)
	if err != nil {
		writeError(w, *err)
		return
	}
	perPage, err := positiveParam(q, "perPage", 10)
	if err != nil {
		writeError(w, *err)
		return
	}
	envID := r.PathValue("envId")

	s.mu.Lock()
	var recs []*record
	if e := s.envs[envID]; e != nil {
		for _, id := range e.order {
			recs = append(recs, e.apis[id])
		}
	}
	s.mu.Unlock()

	total := len(recs)
	pageCount := (total + perPage - 1) / perPage
	if total > 0 && page > pageCount {
		writeError(w, apiError{
			status:  http.StatusBadRequest,
			message: fmt.Sprintf("Pagination is not valid: page %d of %d", page, pageCount),
			code:    "pagination.invalid",
		})
		return
	}
	start := min((page-1)*perPage, total)
	end := min(start+perPage, total)
	// Records are immutable once stored, so their encoded api objects can
	// be sent as they are.
	data := make([]json.RawMessage, 0, end-start)
	for _, rec := range recs[start:end] {
		data = append(data, rec.api)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"data": data,
		"pagination": map[string]any{
			"page":           page,
			"perPage":        perPage,
			"pageCount":      pageCount,
			"pageItemsCount": len(data),
			"totalCount":     total,
		},
		"links": pageLinks(r, page, perPage, pageCount),
	})
}

// handleGet serves getApi.
func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	_, doc, err := s.lookup(r.PathValue("envId"), r.PathValue("apiId"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, doc["api"])
}

// handleExport serves exportApiDefinition. Without excludeAdditionalData
// the export is complete, as APIM's; unknown values are ignored.
func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) {
	rec, doc, err := s.lookup(r.PathValue("envId"), r.PathValue("apiId"))
	if err != nil {
		s.fail(w, err)
		return
	}
	exclude := map[string]bool{}
	for _, v := range r.URL.Query()["excludeAdditionalData"] {
		for _, item := range strings.Split(v, ",") {
			exclude[strings.TrimSpace(item)] = true
		}
	}
	out := exportDoc(doc, exclude, s.opts.Now())
	w.Header().Set("Content-Disposition", "attachment;filename="+exportFileName(rec.name, rec.apiVersion))
	writeJSON(w, http.StatusOK, out)
}

// handleImportCreate serves createApiWithImportDefinition.
func (s *Server) handleImportCreate(w http.ResponseWriter, r *http.Request) {
	doc, err := s.readDefinition(w, r)
	if err != nil {
		s.fail(w, err)
		return
	}
	a, err := s.create(r.PathValue("envId"), doc)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.answerImport(w, r, http.StatusCreated, a)
}

// handleImportUpdate serves updateApiWithDefinition.
func (s *Server) handleImportUpdate(w http.ResponseWriter, r *http.Request) {
	envID, apiID := r.PathValue("envId"), r.PathValue("apiId")
	if _, _, err := s.lookup(envID, apiID); err != nil {
		s.fail(w, err) // 404 before reading the body, as APIM
		return
	}
	doc, err := s.readDefinition(w, r)
	if err != nil {
		s.fail(w, err)
		return
	}
	a, err := s.update(envID, apiID, doc)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.answerImport(w, r, http.StatusOK, a)
}

// answerImport writes the ApiV4 of an applied import, unless a
// DropResponseAfterApply fault says to hang up instead.
func (s *Server) answerImport(w http.ResponseWriter, r *http.Request, status int, a API) {
	if s.takeDrop() {
		s.log.Info("dropping the response to an applied import", slog.String("api_id", a.ID), slog.String("method", r.Method))
		panic(http.ErrAbortHandler) // net/http closes the connection without answering
	}
	_, doc, err := s.lookup(a.EnvID, a.ID)
	if err != nil {
		s.internal(w, err)
		return
	}
	writeJSON(w, status, doc["api"])
}

// readDefinition reads and checks an import body.
func (s *Server) readDefinition(w http.ResponseWriter, r *http.Request) (map[string]any, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, apiError{
			status:  http.StatusUnsupportedMediaType,
			message: fmt.Sprintf("Content-Type must be application/json, not %q", r.Header.Get("Content-Type")),
			code:    "unsupportedMediaType",
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, apiError{
				status:  http.StatusRequestEntityTooLarge,
				message: fmt.Sprintf("The definition is larger than %d bytes", s.opts.MaxBodyBytes),
				code:    "payload.tooLarge",
			}
		}
		return nil, badRequest("Cannot read the body: %v", err)
	}
	return parseDefinition(body)
}

// fail answers err: an apiError as itself, anything else as a 500.
func (s *Server) fail(w http.ResponseWriter, err error) {
	var ae apiError
	if errors.As(err, &ae) {
		writeError(w, ae)
		return
	}
	s.internal(w, err)
}

func (s *Server) internal(w http.ResponseWriter, err error) {
	s.log.Error("internal error", slog.Any("error", err))
	writeError(w, apiError{status: http.StatusInternalServerError, message: err.Error(), code: "internal"})
}

// positiveParam reads an integer query parameter of at least 1.
func positiveParam(q url.Values, name string, def int) (int, *apiError) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, &apiError{
			status:  http.StatusBadRequest,
			message: fmt.Sprintf("Query parameter %s must be a positive integer, not %q", name, v),
			code:    "pagination.invalid",
		}
	}
	return n, nil
}

// pageLinks builds the links object of a paginated response.
func pageLinks(r *http.Request, page, perPage, pageCount int) map[string]any {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	at := func(p int) string {
		u := url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path}
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("perPage", strconv.Itoa(perPage))
		u.RawQuery = q.Encode()
		return u.String()
	}
	links := map[string]any{"self": at(page)}
	if pageCount == 0 {
		return links
	}
	links["first"], links["last"] = at(1), at(pageCount)
	if page > 1 {
		links["previous"] = at(page - 1)
	}
	if page < pageCount {
		links["next"] = at(page + 1)
	}
	return links
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// exportFileName is the Content-Disposition file name of an export.
func exportFileName(name, version string) string {
	base := strings.Trim(unsafeFileChars.ReplaceAllString(strings.ToLower(name+"-"+version), "-"), "-")
	if base == "" {
		base = "api"
	}
	return base + ".json"
}
