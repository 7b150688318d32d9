package azkv

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyferry/keyferry/localtest/fault"
	"github.com/keyferry/keyferry/localtest/oidc"
)

var versionID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestChallengeThenSetAndGet(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client(t, nil) // managed identity, as in Azure Functions

	r1 := set(t, c, "db-password", "s3cr3t-one", azsecrets.SetSecretParameters{
		ContentType: ptr("text/plain"), Tags: map[string]*string{"team": ptr("payments")}})
	if got := e.srv.StatusCount(http.StatusUnauthorized); got != 1 {
		t.Fatalf("401 challenges = %d, want exactly 1 (the client's first request)", got)
	}
	if e.iss.Issued() != 1 {
		t.Fatalf("tokens issued = %d, want 1", e.iss.Issued())
	}
	v1 := r1.ID.Version()
	if !versionID.MatchString(v1) || r1.ID.Name() != "db-password" {
		t.Fatalf("id %q: want name db-password and a 32-hex version", *r1.ID)
	}
	if r1.Value == nil || *r1.Value != "s3cr3t-one" {
		t.Fatal("SetSecret does not echo the value as the service does")
	}
	a := r1.Attributes
	if !*a.Enabled || a.Created == nil || a.Updated == nil || *a.RecoveryLevel != "Recoverable+Purgeable" || *a.RecoverableDays != 90 {
		t.Fatalf("attributes %+v", *a)
	}

	r2 := set(t, c, "db-password", "s3cr3t-two", azsecrets.SetSecretParameters{})
	v2 := r2.ID.Version()
	if v2 == v1 || !versionID.MatchString(v2) {
		t.Fatalf("second version %q (first %q): want a new 32-hex version", v2, v1)
	}

	// Latest, case-insensitive name, and by version.
	got, err := c.GetSecret(ctxT(t), "DB-PASSWORD", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Value != "s3cr3t-two" || got.ID.Version() != v2 || got.ID.Name() != "db-password" {
		t.Fatalf("latest: version %q name %q", got.ID.Version(), got.ID.Name())
	}
	old, err := c.GetSecret(ctxT(t), "db-password", v1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *old.Value != "s3cr3t-one" || *old.ContentType != "text/plain" || *old.Tags["team"] != "payments" {
		t.Fatalf("version 1: contentType %v tags %v", old.ContentType, old.Tags)
	}

	_, err = c.GetSecret(ctxT(t), "db-password", strings.Repeat("0", 32), nil)
	respErr(t, err, 404, "SecretNotFound")
	_, err = c.GetSecret(ctxT(t), "nothing-here", "", nil)
	respErr(t, err, 404, "SecretNotFound")
	if !strings.Contains(errMessage(t, err), "A secret with (name/id) nothing-here was not found in this key vault") {
		t.Fatalf("message %q", errMessage(t, err))
	}
	if e.srv.StatusCount(http.StatusUnauthorized) != 1 {
		t.Fatal("the client was challenged again: the challenge must be cached per client")
	}
}

func TestTokenRejections(t *testing.T) {
	e := newEnv(t, Options{})
	forger, err := oidc.Start(oidc.Options{KeyID: e.iss.KeyID()})
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Close()
	stranger, err := oidc.Start(oidc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	now := time.Now()
	forged := map[string]any{"iss": e.iss.Issuer()}

	cases := []struct {
		name string
		cred azcore.TokenCredential
		msg  string
	}{
		{"wrong audience", mintCred{e.iss, map[string]any{"aud": "https://management.azure.com/"}},
			"AKV10022: Invalid audience. Expected https://vault.azure.net, found: https://management.azure.com/."},
		{"audience with trailing slash", mintCred{e.iss, map[string]any{"aud": "https://vault.azure.net/"}}, "AKV10022"},
		{"wrong issuer", mintCred{e.iss, map[string]any{"iss": "https://sts.windows.net/another-tenant/"}},
			"AKV10032: Invalid issuer. Expected one of " + e.iss.Issuer() + ", found https://sts.windows.net/another-tenant/."},
		{"expired", mintCred{e.iss, map[string]any{"exp": now.Add(-time.Hour), "nbf": now.Add(-2 * time.Hour)}}, "expired"},
		{"not yet valid", mintCred{e.iss, map[string]any{"nbf": now.Add(time.Hour)}}, "Token not yet valid"},
		{"bad signature", mintCred{forger, forged}, "signature is invalid"},
		{"unknown signing key", mintCred{stranger, forged}, "AKV10046: Unable to resolve the key used for signature validation."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.client(t, tc.cred)
			_, err := c.GetSecret(ctxT(t), "anything", "", nil)
			respErr(t, err, 401, "Unauthorized")
			var re *azcore.ResponseError
			errors.As(err, &re)
			if re.RawResponse.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("a 401 without the challenge header")
			}
			if msg := errMessage(t, err); !strings.Contains(msg, tc.msg) {
				t.Fatalf("message %q, want it to contain %q", msg, tc.msg)
			}
		})
	}
}

func TestMissingTokenGetsTheChallenge(t *testing.T) {
	e := newEnv(t, Options{})
	resp, err := e.srv.HTTPClient().Get(e.srv.URL() + "/secrets?api-version=2026-04-01")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := `Bearer authorization="` + e.iss.Authority() + `", resource="https://vault.azure.net"`
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != want {
		t.Fatalf("HTTP %d, WWW-Authenticate %q, want 401 and %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}
}

func TestAPIVersionIsRequired(t *testing.T) {
	e := newEnv(t, Options{})
	for _, q := range []string{"", "?api-version=", "?api-version=latest"} {
		resp, body := e.raw(t, http.MethodGet, "/secrets"+q)
		if resp.StatusCode != 400 || !strings.Contains(string(body), `"code":"BadParameter"`) {
			t.Errorf("GET /secrets%s: HTTP %d %s, want 400 BadParameter", q, resp.StatusCode, body)
		}
	}
	for _, v := range []string{"7.4", "2026-04-01", "7.6-preview.2"} {
		if resp, body := e.raw(t, http.MethodGet, "/secrets?api-version="+v); resp.StatusCode != 200 {
			t.Errorf("api-version %s: HTTP %d %s", v, resp.StatusCode, body)
		}
	}
}

func TestNameRules(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client(t, mintCred{e.iss, nil})
	for _, name := range []string{"under_score", "dot.name", "spa ce", "slash/name", strings.Repeat("a", 128), "ünï"} {
		_, err := c.SetSecret(ctxT(t), name, azsecrets.SetSecretParameters{Value: ptr("v")}, nil)
		respErr(t, err, 400, "BadParameter")
		if msg := errMessage(t, err); !strings.HasPrefix(msg, "The request URI contains an invalid name: ") {
			t.Errorf("%q: message %q", name, msg)
		}
	}
	for _, name := range []string{"a", "0-leading-digit", "-", strings.Repeat("Z", 127)} {
		set(t, c, name, "v", azsecrets.SetSecretParameters{})
	}
}

func TestValueSizeLimit(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client(t, mintCred{e.iss, nil})
	set(t, c, "max-ascii", strings.Repeat("x", MaxSecretValueChars), azsecrets.SetSecretParameters{})
	// The service counts UTF-16 code units: an emoji is two.
	set(t, c, "max-emoji", strings.Repeat("🔑", MaxSecretValueChars/2), azsecrets.SetSecretParameters{})
	for name, v := range map[string]string{
		"over-ascii": strings.Repeat("x", MaxSecretValueChars+1),
		"over-emoji": strings.Repeat("🔑", MaxSecretValueChars/2) + "x",
	} {
		_, err := c.SetSecret(ctxT(t), name, azsecrets.SetSecretParameters{Value: &v}, nil)
		if inner := respErr(t, err, 400, "BadParameter"); inner != "SecretTooLarge" {
			t.Fatalf("%s: inner error %q, want SecretTooLarge", name, inner)
		}
		if msg := errMessage(t, err); msg != "Secret is beyond the maximum permitted length of 25600 characters." {
			t.Fatalf("message %q", msg)
		}
	}
}

func TestTagAndContentTypeLimits(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client(t, mintCred{e.iss, nil})
	tags := func(n int) map[string]*string {
		m := map[string]*string{}
		for i := 0; i < n; i++ {
			m[fmt.Sprintf("t%d", i)] = ptr("v")
		}
		return m
	}
	set(t, c, "fifteen", "v", azsecrets.SetSecretParameters{Tags: tags(15)})
	long := strings.Repeat("k", 512)
	set(t, c, "long-tag", "v", azsecrets.SetSecretParameters{Tags: map[string]*string{long: ptr(long)},
		ContentType: ptr(strings.Repeat("c", 255))})
	for label, p := range map[string]azsecrets.SetSecretParameters{
		"sixteen tags":     {Tags: tags(16)},
		"tag key 513":      {Tags: map[string]*string{long + "k": ptr("v")}},
		"tag value 513":    {Tags: map[string]*string{"k": ptr(long + "v")}},
		"content type 256": {ContentType: ptr(strings.Repeat("c", 256))},
	} {
		p.Value = ptr("v")
		_, err := c.SetSecret(ctxT(t), "rejected", p, nil)
		if err == nil {
			t.Fatalf("%s: accepted", label)
		}
		respErr(t, err, 400, "BadParameter")
	}
}

func TestUpdatePropertiesAndDisabledVersions(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client(t, mintCred{e.iss, nil})
	v1 := set(t, c, "app-key", "first", azsecrets.SetSecretParameters{Tags: map[string]*string{"a": ptr("1")}}).ID.Version()
	v2 := set(t, c, "app-key", "second", azsecrets.SetSecretParameters{ContentType: ptr("text/plain")}).ID.Version()

	up, err := c.UpdateSecretProperties(ctxT(t), "app-key", v2, azsecrets.UpdateSecretPropertiesParameters{
		Tags: map[string]*string{"owner": ptr("sec")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if up.Value != nil {
		t.Fatal("UpdateSecretProperties answered with the value")
	}
	if up.ID.Version() != v2 || *up.ContentType != "text/plain" || len(up.Tags) != 1 || *up.Tags["owner"] != "sec" {
		t.Fatalf("update: version %q contentType %v tags %v", up.ID.Version(), up.ContentType, up.Tags)
	}
	// Clearing tags with an empty map.
	up, err = c.UpdateSecretProperties(ctxT(t), "app-key", v2, azsecrets.UpdateSecretPropertiesParameters{Tags: map[string]*string{}}, nil)
	if err != nil || len(up.Tags) != 0 {
		t.Fatalf("clearing tags: %v, %v", err, up.Tags)
	}

	// Disable the latest version: reading it is 403 Forbidden/SecretDisabled; older versions stay readable.
	if _, err := c.UpdateSecretProperties(ctxT(t), "app-key", v2, azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetSecret(ctxT(t), "app-key", "", nil)
	if inner := respErr(t, err, 403, "Forbidden"); inner != "SecretDisabled" {
		t.Fatalf("inner %q", inner)
	}
	if msg := errMessage(t, err); msg != "Operation get is not allowed on a disabled secret." {
		t.Fatalf("message %q", msg)
	}
	if got, err := c.GetSecret(ctxT(t), "app-key", v1, nil); err != nil || *got.Value != "first" {
		t.Fatalf("old version: %v", err)
	}
	// Versions are listed with their attributes, and no version was added by the updates.
	var n int
	for pager := c.NewListSecretPropertiesVersionsPager("app-key", nil); pager.More(); {
		pg, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pg.Value {
			n++
			if p.ID.Version() == v2 && *p.Attributes.Enabled {
				t.Fatal("the disabled version is listed as enabled")
			}
		}
	}
	if n != 2 {
		t.Fatalf("%d versions, want 2", n)
	}
	_, err = c.UpdateSecretProperties(ctxT(t), "missing", v1, azsecrets.UpdateSecretPropertiesParameters{Tags: map[string]*string{}}, nil)
	respErr(t, err, 404, "SecretNotFound")
}

func TestListPaging(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client(t, mintCred{e.iss, nil})
	var want []string
	for i := 0; i < 30; i++ {
		n := fmt.Sprintf("list-%02d", i)
		want = append(want, n)
		set(t, c, n, "v", azsecrets.SetSecretParameters{Tags: map[string]*string{"i": ptr(fmt.Sprint(i))}})
	}
	collect := func(c *azsecrets.Client) (names []string, pages []int) {
		for pager := c.NewListSecretPropertiesPager(nil); pager.More(); {
			pg, err := pager.NextPage(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			pages = append(pages, len(pg.Value))
			for _, p := range pg.Value {
				if p.ID.Version() != "" {
					t.Fatalf("list item id %q carries a version", *p.ID)
				}
				if p.Tags["i"] == nil {
					t.Fatal("list item without the current version's tags")
				}
				names = append(names, p.ID.Name())
			}
		}
		return names, pages
	}
	names, pages := collect(c)
	if !slices.Equal(names, want) || !slices.Equal(pages, []int{25, 5}) {
		t.Fatalf("default paging: pages %v names %v", pages, names)
	}
	before := e.srv.Faults().Count("keyvault:ListSecrets")
	names, pages = collect(e.client(t, mintCred{e.iss, nil}, maxResults(7)))
	if !slices.Equal(names, want) || !slices.Equal(pages, []int{7, 7, 7, 7, 2}) {
		t.Fatalf("maxresults=7: pages %v", pages)
	}
	if calls := e.srv.Faults().Count("keyvault:ListSecrets") - before; calls != 6 { // 5 pages + 1 challenge
		t.Fatalf("fault layer counted %d list calls, want 6", calls)
	}

	for _, q := range []string{"&maxresults=0", "&maxresults=26", "&maxresults=x", "&$skiptoken=not-a-token"} {
		if resp, body := e.raw(t, http.MethodGet, "/secrets?api-version=7.4"+q); resp.StatusCode != 400 {
			t.Errorf("%s: HTTP %d %s, want 400", q, resp.StatusCode, body)
		}
	}

	// Versions come in version-id order (as the service lists them), not in creation order.
	var created []string
	for i := 0; i < 4; i++ {
		created = append(created, set(t, c, "many-versions", fmt.Sprint(i), azsecrets.SetSecretParameters{}).ID.Version())
	}
	var listed []string
	for pager := e.client(t, mintCred{e.iss, nil}, maxResults(3)).NewListSecretPropertiesVersionsPager("many-versions", nil); pager.More(); {
		pg, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pg.Value {
			listed = append(listed, p.ID.Version())
		}
	}
	sorted := slices.Sorted(slices.Values(created))
	if !slices.Equal(listed, sorted) {
		t.Fatalf("versions listed %v, want sorted by id %v", listed, sorted)
	}
	_, err := c.NewListSecretPropertiesVersionsPager("no-such-secret", nil).NextPage(ctxT(t))
	respErr(t, err, 404, "SecretNotFound")
}

// TestSoftDeleteLifecycle walks delete → recover → delete → purge with asynchronous transitions.
func TestSoftDeleteLifecycle(t *testing.T) {
	const delay = 300 * time.Millisecond
	e := newEnv(t, Options{TransitionDelay: delay, RecoverableDays: 7})
	c := e.client(t, mintCred{e.iss, nil})
	v1 := set(t, c, "doomed", "keep-me", azsecrets.SetSecretParameters{Tags: map[string]*string{"x": ptr("y")}}).ID.Version()

	del, err := c.DeleteSecret(ctxT(t), "doomed", nil)
	if err != nil {
		t.Fatal(err)
	}
	if del.Value != nil || *del.RecoveryID != e.srv.URL()+"/deletedsecrets/doomed" || del.ID.Version() != v1 {
		t.Fatalf("delete answer: recoveryId %v id %v", del.RecoveryID, *del.ID)
	}
	if got := del.ScheduledPurgeDate.Sub(*del.DeletedDate); got != 7*24*time.Hour {
		t.Fatalf("scheduledPurgeDate - deletedDate = %v, want 7 days", got)
	}
	if *del.Attributes.RecoveryLevel != "CustomizedRecoverable+Purgeable" {
		t.Fatalf("recoveryLevel %q", *del.Attributes.RecoveryLevel)
	}

	// While the delete completes: gone from reads, deleted entry not yet visible, writes conflict.
	_, err = c.GetSecret(ctxT(t), "doomed", "", nil)
	respErr(t, err, 404, "SecretNotFound")
	_, err = c.GetDeletedSecret(ctxT(t), "doomed", nil)
	respErr(t, err, 404, "SecretNotFound")
	_, err = c.SetSecret(ctxT(t), "doomed", azsecrets.SetSecretParameters{Value: ptr("x")}, nil)
	if inner := respErr(t, err, 409, "Conflict"); inner != "ObjectIsBeingDeleted" {
		t.Fatalf("write while deleting: inner %q", inner)
	}
	_, err = c.PurgeDeletedSecret(ctxT(t), "doomed", nil)
	if inner := respErr(t, err, 409, "Conflict"); inner != "ObjectIsBeingDeleted" {
		t.Fatalf("purge while deleting: inner %q", inner)
	}

	time.Sleep(delay)
	ds, err := c.GetDeletedSecret(ctxT(t), "DOOMED", nil)
	if err != nil {
		t.Fatalf("GetDeletedSecret after the delete completed: %v", err)
	}
	if ds.Value != nil || *ds.Tags["x"] != "y" {
		t.Fatal("deleted bundle: carries a value, or lost its tags")
	}
	var deleted []string
	for pager := c.NewListDeletedSecretPropertiesPager(nil); pager.More(); {
		pg, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pg.Value {
			deleted = append(deleted, p.ID.Name())
		}
	}
	if !slices.Equal(deleted, []string{"doomed"}) {
		t.Fatalf("deleted list %v", deleted)
	}
	_, err = c.SetSecret(ctxT(t), "doomed", azsecrets.SetSecretParameters{Value: ptr("x")}, nil)
	if inner := respErr(t, err, 409, "Conflict"); inner != "ObjectIsDeletedButRecoverable" {
		t.Fatalf("write to a soft-deleted name: inner %q", inner)
	}
	if msg := errMessage(t, err); !strings.Contains(msg, "deleted but recoverable state") {
		t.Fatalf("message %q", msg)
	}
	for pager := c.NewListSecretPropertiesPager(nil); pager.More(); {
		pg, _ := pager.NextPage(ctxT(t))
		if len(pg.Value) != 0 {
			t.Fatal("a soft-deleted secret is still listed")
		}
	}

	// Recover: asynchronous too.
	rec, err := c.RecoverDeletedSecret(ctxT(t), "doomed", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Value != nil || rec.ID.Version() != v1 {
		t.Fatal("recover answer carries a value or names another version")
	}
	_, err = c.GetSecret(ctxT(t), "doomed", "", nil)
	respErr(t, err, 404, "SecretNotFound")
	_, err = c.SetSecret(ctxT(t), "doomed", azsecrets.SetSecretParameters{Value: ptr("x")}, nil)
	if inner := respErr(t, err, 409, "Conflict"); inner != "ObjectIsBeingRecovered" {
		t.Fatalf("write while recovering: inner %q", inner)
	}
	time.Sleep(delay)
	got, err := c.GetSecret(ctxT(t), "doomed", "", nil)
	if err != nil || *got.Value != "keep-me" || got.ID.Version() != v1 {
		t.Fatalf("after recover: %v", err)
	}

	// Delete again and purge.
	if _, err := c.DeleteSecret(ctxT(t), "doomed", nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(delay)
	if _, err := c.PurgeDeletedSecret(ctxT(t), "doomed", nil); err != nil {
		t.Fatalf("purge: %v", err)
	}
	_, err = c.GetDeletedSecret(ctxT(t), "doomed", nil)
	respErr(t, err, 404, "SecretNotFound")
	_, err = c.SetSecret(ctxT(t), "doomed", azsecrets.SetSecretParameters{Value: ptr("x")}, nil)
	if inner := respErr(t, err, 409, "Conflict"); inner != "ObjectIsBeingDeleted" {
		t.Fatalf("write while purging: inner %q", inner)
	}
	time.Sleep(delay)
	reborn := set(t, c, "doomed", "new life", azsecrets.SetSecretParameters{})
	if reborn.ID.Version() == v1 {
		t.Fatal("the purged secret came back")
	}
	_, err = c.GetSecret(ctxT(t), "doomed", v1, nil)
	respErr(t, err, 404, "SecretNotFound")

	_, err = c.RecoverDeletedSecret(ctxT(t), "never-deleted", nil)
	respErr(t, err, 404, "SecretNotFound")
	_, err = c.DeleteSecret(ctxT(t), "never-existed", nil)
	respErr(t, err, 404, "SecretNotFound")
}

func TestPurgeProtection(t *testing.T) {
	e := newEnv(t, Options{PurgeProtection: true})
	c := e.client(t, mintCred{e.iss, nil})
	r := set(t, c, "protected", "v", azsecrets.SetSecretParameters{})
	if *r.Attributes.RecoveryLevel != "Recoverable" {
		t.Fatalf("recoveryLevel %q", *r.Attributes.RecoveryLevel)
	}
	if _, err := c.DeleteSecret(ctxT(t), "protected", nil); err != nil {
		t.Fatal(err)
	}
	_, err := c.PurgeDeletedSecret(ctxT(t), "protected", nil)
	respErr(t, err, 403, "Forbidden")
}

func TestRBAC(t *testing.T) {
	e := newEnv(t, Options{Authorize: func(p Principal, action string) bool {
		return action != ActionGetSecret
	}})
	c := e.client(t, mintCred{e.iss, nil})
	set(t, c, "readable-metadata", "v", azsecrets.SetSecretParameters{})
	_, err := c.GetSecret(ctxT(t), "readable-metadata", "", nil)
	if inner := respErr(t, err, 403, "Forbidden"); inner != "ForbiddenByRbac" {
		t.Fatalf("inner %q", inner)
	}
	if msg := errMessage(t, err); !strings.Contains(msg, "Action: '"+ActionGetSecret+"'") || !strings.Contains(msg, "oid="+e.iss.PrincipalID()) {
		t.Fatalf("message %q", msg)
	}
}

func TestFaultLayerInFront(t *testing.T) {
	faults := fault.New(1, 3)
	e := newEnv(t, Options{Faults: faults})
	c := e.client(t, mintCred{e.iss, nil}) // MaxRetries 3
	set(t, c, "counted", "v", azsecrets.SetSecretParameters{})
	if got := faults.Count("keyvault:SetSecret"); got != 2 { // challenge + the authorized request
		t.Fatalf("keyvault:SetSecret calls = %d, want 2", got)
	}
	faults.SetRules(fault.Rule{API: "keyvault:GetSecret", Throttle: 1, RetryAfter: 7 * time.Millisecond})
	_, err := c.GetSecret(ctxT(t), "counted", "", nil)
	respErr(t, err, 429, "Throttled")
	var re *azcore.ResponseError
	errors.As(err, &re)
	if re.RawResponse.Header.Get("Retry-After") != "1" || re.RawResponse.Header.Get("retry-after-ms") != "7" {
		t.Fatalf("Retry-After %q retry-after-ms %q", re.RawResponse.Header.Get("Retry-After"), re.RawResponse.Header.Get("retry-after-ms"))
	}
	if got := faults.InjectedCount("keyvault:GetSecret"); got != 4 { // first try + 3 retries
		t.Fatalf("injected %d throttles, want 4", got)
	}
	faults.SetRules()
	if _, err := c.GetSecret(ctxT(t), "counted", "", nil); err != nil {
		t.Fatal(err)
	}
	if e.srv.StatusCount(429) != 4 {
		t.Fatalf("status counter saw %d 429s", e.srv.StatusCount(429))
	}
}

func TestLogsAreRequestLinesOnly(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.client(t, nil)
	const value = "kfcanary-log-check-0123456789"
	set(t, c, "logged", value, azsecrets.SetSecretParameters{Tags: map[string]*string{"tagvalue": ptr("kfcanary-tag")}})
	if _, err := c.GetSecret(ctxT(t), "logged", "", nil); err != nil {
		t.Fatal(err)
	}
	logs := e.srv.Logs() + e.iss.Logs()
	for _, leak := range []string{value, "kfcanary-tag", e.iss.IdentityHeader(), "eyJ", "api-version"} {
		if strings.Contains(logs, leak) {
			t.Fatalf("logs contain %q:\n%s", leak, logs)
		}
	}
	for _, line := range []string{"PUT /secrets/logged 401", "PUT /secrets/logged 200", "GET /secrets/logged/ 200"} {
		if !strings.Contains(logs, line) {
			t.Fatalf("logs lack %q:\n%s", line, logs)
		}
	}
}
