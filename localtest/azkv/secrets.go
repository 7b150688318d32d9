package azkv

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// secretPayload is what a secret version holds beyond the common attributes and tags.
type secretPayload struct {
	Value       string
	ContentType string
}

type attributesIn struct {
	Enabled   *bool  `json:"enabled"`
	NotBefore *int64 `json:"nbf"`
	Expires   *int64 `json:"exp"`
}

type attributesOut struct {
	Enabled         bool   `json:"enabled"`
	NotBefore       *int64 `json:"nbf,omitempty"`
	Expires         *int64 `json:"exp,omitempty"`
	Created         int64  `json:"created"`
	Updated         int64  `json:"updated"`
	RecoveryLevel   string `json:"recoveryLevel"`
	RecoverableDays int    `json:"recoverableDays"`
}

// secretJSON is a SecretBundle, a SecretItem, a DeletedSecretBundle or a DeletedSecretItem, depending
// on which fields are set.
type secretJSON struct {
	Value              *string           `json:"value,omitempty"`
	ID                 string            `json:"id"`
	ContentType        string            `json:"contentType,omitempty"`
	Attributes         attributesOut     `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        int64             `json:"deletedDate,omitempty"`
	ScheduledPurgeDate int64             `json:"scheduledPurgeDate,omitempty"`
}

type listJSON struct {
	Value    []secretJSON `json:"value"`
	NextLink *string      `json:"nextLink"`
}

func (s *Server) recoveryLevel() string {
	level := "Recoverable"
	if s.opts.RecoverableDays < 90 {
		level = "CustomizedRecoverable"
	}
	if !s.opts.PurgeProtection {
		level += "+Purgeable"
	}
	return level
}

func (s *Server) attrsOut(a attributes) attributesOut {
	return attributesOut{Enabled: a.Enabled, NotBefore: a.NotBefore, Expires: a.Expires, Created: a.Created,
		Updated: a.Updated, RecoveryLevel: s.recoveryLevel(), RecoverableDays: s.opts.RecoverableDays}
}

// secretJSON renders a version; withVersion puts the version in the id (bundles and version items),
// withValue includes the value (only Get and Set answers carry it).
func (s *Server) secretJSON(o *object[secretPayload], v *version[secretPayload], withVersion, withValue bool) secretJSON {
	out := secretJSON{ID: s.baseURL + "/secrets/" + o.Name, ContentType: v.Payload.ContentType,
		Attributes: s.attrsOut(v.Attrs), Tags: copyTags(v.Tags)}
	if withVersion {
		out.ID += "/" + v.ID
	}
	if withValue {
		val := v.Payload.Value
		out.Value = &val
	}
	if d := o.Deleted; d != nil {
		out.RecoveryID = s.baseURL + "/deletedsecrets/" + o.Name
		out.DeletedDate, out.ScheduledPurgeDate = d.Date, d.ScheduledPurge
	}
	return out
}

func copyTags(t map[string]string) map[string]string {
	if len(t) == 0 {
		return nil
	}
	out := make(map[string]string, len(t))
	for k, v := range t {
		out[k] = v
	}
	return out
}

// The service's not-found and conflict answers (verified against recorded responses unless noted).
func secretNotFound(w http.ResponseWriter, nameOrID string) {
	writeError(w, http.StatusNotFound, "SecretNotFound", "",
		"A secret with (name/id) %s was not found in this key vault. If you recently deleted this secret you may be able "+
			"to recover it using the correct recovery command. For help resolving this issue, please see "+
			"https://go.microsoft.com/fwlink/?linkid=2125182", nameOrID)
}

func deletedSecretNotFound(w http.ResponseWriter, name string) {
	writeError(w, http.StatusNotFound, "SecretNotFound", "", "Deleted Secret not found: %s", name)
}

func conflictDeletedButRecoverable(w http.ResponseWriter, name string) {
	writeError(w, http.StatusConflict, "Conflict", "ObjectIsDeletedButRecoverable",
		"Secret %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, "+
			"the secret can only be recovered or purged.", name)
}

func conflictBeingDeleted(w http.ResponseWriter) {
	writeError(w, http.StatusConflict, "Conflict", "ObjectIsBeingDeleted", "Secret is currently being deleted.")
}

func conflictBeingRecovered(w http.ResponseWriter, name string) {
	writeError(w, http.StatusConflict, "Conflict", "ObjectIsBeingRecovered",
		"Secret %s is currently being recovered and cannot be re-created; retry later.", name)
}

func badName(w http.ResponseWriter, name string) {
	writeError(w, http.StatusBadRequest, "BadParameter", "", "The request URI contains an invalid name: %s", name)
}

func (s *Server) routeSecrets(w http.ResponseWriter, r *http.Request, rest []string) {
	if len(rest) == 0 || len(rest) == 1 && rest[0] == "" {
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r)
			return
		}
		if s.authorize(w, r, ActionReadMetadata) {
			s.listSecrets(w, r)
		}
		return
	}
	name := rest[0]
	if strings.EqualFold(name, "restore") && r.Method == http.MethodPost {
		writeError(w, http.StatusNotImplemented, "NotImplemented", "", "The local Key Vault emulator does not implement backup and restore.")
		return
	}
	if !validName(name) {
		badName(w, name)
		return
	}
	switch {
	case len(rest) == 1:
		switch r.Method {
		case http.MethodPut:
			if s.authorize(w, r, ActionSetSecret) {
				s.setSecret(w, r, name)
			}
		case http.MethodGet:
			if s.authorize(w, r, ActionGetSecret) {
				s.getSecret(w, name, "")
			}
		case http.MethodPatch:
			if s.authorize(w, r, ActionUpdateSecret) {
				s.updateSecret(w, r, name, "")
			}
		case http.MethodDelete:
			if s.authorize(w, r, ActionDeleteSecret) {
				s.deleteSecret(w, name)
			}
		default:
			methodNotAllowed(w, r)
		}
	case len(rest) == 2 && rest[1] == "versions" && r.Method == http.MethodGet:
		if s.authorize(w, r, ActionReadMetadata) {
			s.listVersions(w, r, name)
		}
	case len(rest) == 2 && strings.EqualFold(rest[1], "backup") && r.Method == http.MethodPost:
		writeError(w, http.StatusNotImplemented, "NotImplemented", "", "The local Key Vault emulator does not implement backup and restore.")
	case len(rest) == 2:
		switch r.Method {
		case http.MethodGet:
			if s.authorize(w, r, ActionGetSecret) {
				s.getSecret(w, name, rest[1])
			}
		case http.MethodPatch:
			if s.authorize(w, r, ActionUpdateSecret) {
				s.updateSecret(w, r, name, rest[1])
			}
		default:
			methodNotAllowed(w, r)
		}
	default:
		secretNotFound(w, strings.Join(rest, "/"))
	}
}

func (s *Server) routeDeletedSecrets(w http.ResponseWriter, r *http.Request, rest []string) {
	s.routeDeleted(w, r, rest, deletedRoutes{
		read: ActionReadMetadata, purge: ActionPurgeSecret, recover: ActionRecoverSecret,
		list: s.listDeleted, get: s.getDeleted, doPurge: s.purge, doRecover: s.recover,
		notFound: deletedSecretNotFound,
	})
}

type setRequest struct {
	Value       *string           `json:"value"`
	ContentType *string           `json:"contentType"`
	Tags        map[string]string `json:"tags"`
	Attributes  *attributesIn     `json:"attributes"`
}

type updateRequest struct {
	ContentType *string           `json:"contentType"`
	Tags        map[string]string `json:"tags"`
	Attributes  *attributesIn     `json:"attributes"`
}

func decodeBody(w http.ResponseWriter, r *http.Request, dst any) bool {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "", "The request body is too large.")
			return false
		}
		writeError(w, http.StatusBadRequest, "BadParameter", "", "The request body could not be read.")
		return false
	}
	if len(body) == 0 {
		writeError(w, http.StatusBadRequest, "BadParameter", "", "The request body is empty.")
		return false
	}
	if err := json.Unmarshal(body, dst); err != nil {
		writeError(w, http.StatusBadRequest, "BadParameter", "", "The request body is not valid JSON for this operation.")
		return false
	}
	return true
}

// utf16Len counts characters as the service does (UTF-16 code units).
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

func checkTagsAndContentType(w http.ResponseWriter, tags map[string]string, contentType *string) bool {
	if len(tags) > maxTags {
		writeError(w, http.StatusBadRequest, "BadParameter", "",
			"The number of tags (%d) exceeds the maximum of %d.", len(tags), maxTags)
		return false
	}
	for k, v := range tags {
		if k == "" || utf16Len(k) > maxTagLen {
			writeError(w, http.StatusBadRequest, "BadParameter", "", "Tag names must be 1-%d characters long.", maxTagLen)
			return false
		}
		if utf16Len(v) > maxTagLen {
			writeError(w, http.StatusBadRequest, "BadParameter", "", "The value of tag %q exceeds %d characters.", k, maxTagLen)
			return false
		}
	}
	if contentType != nil && utf16Len(*contentType) > maxContentTypeLen {
		writeError(w, http.StatusBadRequest, "BadParameter", "", "The content type exceeds %d characters.", maxContentTypeLen)
		return false
	}
	return true
}

func (s *Server) setSecret(w http.ResponseWriter, r *http.Request, name string) {
	var req setRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Value == nil {
		writeError(w, http.StatusBadRequest, "BadParameter", "", "The secret value is required.")
		return
	}
	if utf16Len(*req.Value) > MaxSecretValueChars {
		// verified (message and inner code)
		writeError(w, http.StatusBadRequest, "BadParameter", "SecretTooLarge",
			"Secret is beyond the maximum permitted length of %d characters.", MaxSecretValueChars)
		return
	}
	if !checkTagsAndContentType(w, req.Tags, req.ContentType) {
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st := s.secrets.get(name, now)
	switch st {
	case stateRecovering:
		conflictBeingRecovered(w, o.Name)
		return
	case stateDeleting, statePurging:
		conflictBeingDeleted(w)
		return
	case stateDeleted:
		conflictDeletedButRecoverable(w, o.Name)
		return
	}
	v := &version[secretPayload]{ID: newVersionID(), Tags: copyTags(req.Tags),
		Attrs:   attributes{Enabled: true, Created: now.Unix(), Updated: now.Unix()},
		Payload: secretPayload{Value: *req.Value}}
	if req.ContentType != nil {
		v.Payload.ContentType = *req.ContentType
	}
	if a := req.Attributes; a != nil {
		if a.Enabled != nil {
			v.Attrs.Enabled = *a.Enabled
		}
		v.Attrs.NotBefore, v.Attrs.Expires = a.NotBefore, a.Expires
	}
	o = s.secrets.addVersion(name, v)
	writeJSON(w, http.StatusOK, s.secretJSON(o, v, true, true))
	s.publish("SecretNewVersionCreated", o.Name, v)
}

func (s *Server) getSecret(w http.ResponseWriter, name, ver string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st := s.secrets.get(name, time.Now())
	if st != stateActive {
		secretNotFound(w, name)
		return
	}
	v := o.latest()
	if ver != "" {
		if v = o.Versions[strings.ToLower(ver)]; v == nil {
			secretNotFound(w, name+"/"+ver)
			return
		}
	}
	if !v.Attrs.Enabled {
		// verified (message and inner code)
		writeError(w, http.StatusForbidden, "Forbidden", "SecretDisabled", "Operation get is not allowed on a disabled secret.")
		return
	}
	writeJSON(w, http.StatusOK, s.secretJSON(o, v, true, true))
}

func (s *Server) updateSecret(w http.ResponseWriter, r *http.Request, name, ver string) {
	var req updateRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if !checkTagsAndContentType(w, req.Tags, req.ContentType) {
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st := s.secrets.get(name, now)
	if st != stateActive {
		secretNotFound(w, name)
		return
	}
	v := o.latest()
	if ver != "" {
		if v = o.Versions[strings.ToLower(ver)]; v == nil {
			secretNotFound(w, name+"/"+ver)
			return
		}
	}
	if req.ContentType != nil {
		v.Payload.ContentType = *req.ContentType
	}
	if req.Tags != nil {
		v.Tags = copyTags(req.Tags)
	}
	if a := req.Attributes; a != nil {
		if a.Enabled != nil {
			v.Attrs.Enabled = *a.Enabled
		}
		if a.NotBefore != nil {
			v.Attrs.NotBefore = a.NotBefore
		}
		if a.Expires != nil {
			v.Attrs.Expires = a.Expires
		}
	}
	v.Attrs.Updated = now.Unix()
	writeJSON(w, http.StatusOK, s.secretJSON(o, v, true, false))
}

func (s *Server) deleteSecret(w http.ResponseWriter, name string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st := s.secrets.get(name, now)
	switch st {
	case stateActive:
	case stateRecovering:
		conflictBeingRecovered(w, o.Name)
		return
	default:
		secretNotFound(w, name)
		return
	}
	o.Deleted = &deletion{Date: now.Unix(), ScheduledPurge: now.Add(time.Duration(s.opts.RecoverableDays) * 24 * time.Hour).Unix(),
		ReadyAt: now.Add(s.opts.TransitionDelay)}
	writeJSON(w, http.StatusOK, s.secretJSON(o, o.latest(), true, false))
}

func (s *Server) getDeleted(w http.ResponseWriter, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st := s.secrets.get(name, time.Now())
	if st != stateDeleted {
		deletedSecretNotFound(w, name)
		return
	}
	writeJSON(w, http.StatusOK, s.secretJSON(o, o.latest(), true, false))
}

func (s *Server) purge(w http.ResponseWriter, name string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st := s.secrets.get(name, now)
	switch st {
	case stateDeleted:
	case stateDeleting:
		conflictBeingDeleted(w)
		return
	default:
		deletedSecretNotFound(w, name)
		return
	}
	if s.opts.PurgeProtection {
		writeError(w, http.StatusForbidden, "Forbidden", "",
			"Operation \"purge\" is not allowed because purge protection is enabled for this vault. Key Vault service will "+
				"automatically purge it after the retention period has passed.")
		return
	}
	if s.opts.TransitionDelay <= 0 {
		delete(s.secrets.objects, strings.ToLower(name))
	} else {
		o.Deleted.PurgeDoneAt = now.Add(s.opts.TransitionDelay)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) recover(w http.ResponseWriter, name string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st := s.secrets.get(name, now)
	switch st {
	case stateDeleted:
	case stateDeleting:
		conflictBeingDeleted(w)
		return
	default:
		deletedSecretNotFound(w, name)
		return
	}
	o.Deleted = nil
	o.RecoverDoneAt = now.Add(s.opts.TransitionDelay)
	writeJSON(w, http.StatusOK, s.secretJSON(o, o.latest(), true, false))
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	pg, ok := readPage(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	objs := s.secrets.inState(stateActive, time.Now())
	out := listJSON{Value: []secretJSON{}}
	var last string
	for _, o := range objs {
		key := strings.ToLower(o.Name)
		if key <= pg.marker {
			continue
		}
		if len(out.Value) == pg.max {
			out.NextLink = s.nextLink(r, pg, last)
			break
		}
		out.Value = append(out.Value, s.secretJSON(o, o.latest(), false, false))
		last = key
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request, name string) {
	pg, ok := readPage(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st := s.secrets.get(name, time.Now())
	if st != stateActive {
		secretNotFound(w, name)
		return
	}
	out := listJSON{Value: []secretJSON{}}
	var last string
	for _, v := range sortedVersions(o) {
		if v.ID <= pg.marker {
			continue
		}
		if len(out.Value) == pg.max {
			out.NextLink = s.nextLink(r, pg, last)
			break
		}
		out.Value = append(out.Value, s.secretJSON(o, v, true, false))
		last = v.ID
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listDeleted(w http.ResponseWriter, r *http.Request) {
	pg, ok := readPage(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := listJSON{Value: []secretJSON{}}
	var last string
	for _, o := range s.secrets.inState(stateDeleted, time.Now()) {
		key := strings.ToLower(o.Name)
		if key <= pg.marker {
			continue
		}
		if len(out.Value) == pg.max {
			out.NextLink = s.nextLink(r, pg, last)
			break
		}
		out.Value = append(out.Value, s.secretJSON(o, o.latest(), false, false))
		last = key
	}
	writeJSON(w, http.StatusOK, out)
}

// page is a listing request's paging state: maxresults and the continuation marker from $skiptoken.
type page struct {
	max        int
	explicit   bool // maxresults was given (and is echoed in nextLink)
	marker     string
	apiVersion string
}

type skipToken struct {
	NextMarker string `json:"NextMarker"`
}

func readPage(w http.ResponseWriter, r *http.Request) (page, bool) {
	q := r.URL.Query()
	pg := page{max: defaultPageSize, apiVersion: q.Get("api-version")}
	if v := q.Get("maxresults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			writeError(w, http.StatusBadRequest, "BadParameter", "",
				"invalid maxresults: the value must be between 1 and %d.", maxPageSize)
			return pg, false
		}
		pg.max, pg.explicit = n, true
	}
	if t := q.Get("$skiptoken"); t != "" {
		raw, err := base64.RawURLEncoding.DecodeString(t)
		var st skipToken
		if err != nil || json.Unmarshal(raw, &st) != nil || st.NextMarker == "" {
			writeError(w, http.StatusBadRequest, "BadParameter", "", "The skip token is invalid.")
			return pg, false
		}
		pg.marker = st.NextMarker
	}
	return pg, true
}

// nextLink is the URL of the page after marker, in the service's form:
// <vault>/<path>?api-version=V&$skiptoken=T[&maxresults=N].
func (s *Server) nextLink(r *http.Request, pg page, marker string) *string {
	tok, _ := json.Marshal(skipToken{NextMarker: marker})
	link := fmt.Sprintf("%s%s?api-version=%s&$skiptoken=%s", s.baseURL, r.URL.EscapedPath(),
		url.QueryEscape(pg.apiVersion), base64.RawURLEncoding.EncodeToString(tok))
	if pg.explicit {
		link += "&maxresults=" + strconv.Itoa(pg.max)
	}
	return &link
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

func principalFrom(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}

func unescape(s string) (string, error) { return url.PathUnescape(s) }
