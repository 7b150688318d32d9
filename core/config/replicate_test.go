package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/keyferry/keyferry/core/replicate"
)

const twoStores = "stores:\n  aws: {type: aws-secretsmanager, region: eu-west-1}\n  gcp: {type: gcp-secretmanager, project: kf-prod}\n  azure: {type: azure-keyvault, vault: https://kf-prod.vault.azure.net}\n"

func TestReplicateSection(t *testing.T) {
	cfg, err := Parse("keyferry.yaml", []byte(twoStores+doc(`
replicate:
  - name: prod-dr
    from:
      store: aws
      match: ["prod/**"]
      exclude: "*-local"
      tags: {replicate: "true"}
      exclude_tags: {no-sync: "true"}
    to:
      - {store: azure, name: "{{ .Base | lower }}", tags: {propagate: true, exclude: [cost-center], rename: {team: owner}, set: {managed-by: keyferry}}}
      - gcp
    on_conflict: overwrite
    delete: propagate
  - name: back
    from: gcp
    to: [{store: aws, tags: true}]
    granularity: keys
    keys: [username, password]
`)))
	if err != nil {
		t.Fatal(err)
	}
	want := []replicate.Rule{
		{Name: "prod-dr", Line: 6, OnConflict: replicate.ConflictOverwrite, Delete: replicate.DeletePropagate, Granularity: replicate.WholeValue,
			From: replicate.Source{Store: "aws", Match: []string{"prod/**"}, Exclude: []string{"*-local"},
				Tags: map[string]string{"replicate": "true"}, ExcludeTags: map[string]string{"no-sync": "true"}},
			To: []replicate.Target{
				{Store: "azure", Name: "{{ .Base | lower }}", Tags: replicate.TagPolicy{Propagate: true, Exclude: []string{"cost-center"},
					Rename: map[string]string{"team": "owner"}, Set: map[string]string{"managed-by": "keyferry"}}},
				{Store: "gcp"},
			}},
		{Name: "back", Line: 18, OnConflict: replicate.ConflictAlert, Delete: replicate.DeleteKeep, Granularity: replicate.JSONKeys,
			Keys: []string{"username", "password"}, From: replicate.Source{Store: "gcp"},
			To: []replicate.Target{{Store: "aws", Tags: replicate.TagPolicy{Propagate: true}}}},
	}
	if !reflect.DeepEqual(cfg.Replicate, want) {
		t.Errorf("rules:\n got %+v\nwant %+v", cfg.Replicate, want)
	}
}

func TestReplicateErrors(t *testing.T) {
	cases := []struct {
		name, input string
		wants       []want
	}{
		{"not-a-list", "replicate: {a: 1}\n", []want{w("5:1", "replicate", "must be a list of rules")}},
		{"missing-fields", "replicate:\n  - on_conflict: alert\n", []want{
			w("6:5", "replicate[0]", "name is required"),
			w("6:5", "replicate[0]", "from is required"),
			w("6:5", "replicate[0]", "to is required"),
		}},
		{"unknown-store", "replicate:\n  - name: r\n    from: {store: asw}\n    to: [gpc]\n", []want{
			w("7:12", "replicate[0].from.store", `there is no store named "asw"`, `did you mean "aws"?`, "the stores are: aws, azure, gcp"),
			w("8:10", "replicate[0].to[0]", `there is no store named "gpc"`, `did you mean "gcp"?`),
		}},
		{"self-loop", "replicate:\n  - name: r\n    from: aws\n    to: [aws]\n", []want{
			w("8:10", "replicate[0].to[0]", "cannot copy a secret onto itself")}},
		{"bad-enum", "replicate:\n  - name: r\n    from: aws\n    to: [gcp]\n    on_conflict: overwite\n    delete: maybe\n", []want{
			w("9:5", "replicate[0].on_conflict", "must be one of overwrite, skip, alert", `did you mean "overwrite"?`),
			w("10:5", "replicate[0].delete", "must be one of propagate, keep"),
		}},
		{"bad-glob-and-template", "replicate:\n  - name: r\n    from: {store: aws, match: [\"prod/[\"]}\n    to: [{store: gcp, name: \"{{ .Name\"}]\n", []want{
			w("7:32", "replicate[0].from.match[0]", "is not a valid name glob"),
			w("8:23", "replicate[0].to[0].name", "the name template does not parse"),
		}},
		{"keys-without-granularity", "replicate:\n  - name: r\n    from: aws\n    to: [gcp]\n    keys: [a]\n", []want{
			w("9:5", "replicate[0].keys", "only used with `granularity: keys`")}},
		{"duplicate-name", "replicate:\n  - {name: r, from: aws, to: [gcp]}\n  - {name: r, from: gcp, to: [aws]}\n", []want{
			w("7:5", "replicate[1].name", "is used twice (first at line 6)")}},
		{"reserved-tag", "replicate:\n  - name: r\n    from: aws\n    to: [{store: gcp, tags: {set: {keyferry-x: y}}}]\n", []want{
			w("8:30", "replicate[0].to[0].tags.set", "keyferry-")}},
		{"credential-in-rule", "replicate:\n  - name: r\n    from: aws\n    to: [gcp]\n    password: hunter2hunter2\n", []want{
			w("9:5", "replicate[0].password", "static credentials are not allowed")}},
		{"duplicate-target", "replicate:\n  - name: r\n    from: aws\n    to: [gcp, {store: gcp}]\n", []want{
			w("8:15", "replicate[0].to[1]", "is a target twice")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			input := twoStores + c.input
			cfg, err := Parse("keyferry.yaml", []byte(input))
			if cfg != nil {
				t.Fatal("a configuration with errors was returned")
			}
			checkErrors(t, input, err, c.wants)
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatal("a credential was repeated")
			}
		})
	}
}

func TestNotifySection(t *testing.T) {
	cfg, err := Parse("keyferry.yaml", []byte(twoStores+doc(`
notify:
  - {type: sns, topic: "arn:aws:sns:eu-west-1:123456789012:keyferry-alerts", kinds: [replication.conflict]}
  - {type: eventbridge, region: us-east-1}
  - {type: eventgrid, topic: "https://kf-alerts.westeurope-1.eventgrid.azure.net/api/events"}
  - {type: pubsub, topic: projects/kf-prod/topics/keyferry-alerts}
  - {type: log}
`)))
	if err != nil {
		t.Fatal(err)
	}
	routes := []NotifyRoute{
		{Type: "sns", Topic: "arn:aws:sns:eu-west-1:123456789012:keyferry-alerts", Region: "eu-west-1", Kinds: []string{"replication.conflict"}, Line: 6},
		{Type: "eventbridge", Bus: "default", Region: "us-east-1", Line: 7},
		{Type: "eventgrid", Topic: "https://kf-alerts.westeurope-1.eventgrid.azure.net/api/events", Line: 8},
		{Type: "pubsub", Topic: "projects/kf-prod/topics/keyferry-alerts", Line: 9},
		{Type: "log", Line: 10},
	}
	if !reflect.DeepEqual(cfg.Notify, routes) {
		t.Errorf("routes:\n got %+v\nwant %+v", cfg.Notify, routes)
	}
	for _, c := range []struct {
		name, input string
		wants       []want
	}{
		{"bad-type", "notify:\n  - {type: slack}\n", []want{w("6:6", "notify[0].type", "must be one of sns, eventbridge")}},
		{"sns-no-topic", "notify:\n  - {type: sns}\n", []want{w("6:6", "notify[0]", "topic is required for sns routes")}},
		{"bad-arn", "notify:\n  - {type: sns, topic: arn:aws:sqs:eu-west-1:123456789012:q}\n", []want{w("6:17", "notify[0].topic", "is not an SNS topic ARN")}},
		{"endpoint-not-local", "notify:\n  - {type: pubsub, topic: projects/kf-prod/topics/topic1, endpoint: \"http://127.0.0.1:1\"}\n", []want{
			w("6:59", "notify[0].endpoint", "only for routes of the local cloud")}},
		{"bad-kind", "notify:\n  - {type: log, kinds: [everything]}\n", []want{w("6:25", "notify[0].kinds[0]", "is not a notification kind")}},
		{"eventgrid-http", "notify:\n  - {type: eventgrid, topic: \"http://kf.westeurope-1.eventgrid.azure.net/api/events\"}\n", []want{
			w("6:23", "notify[0].topic", "must be an https URL")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("keyferry.yaml", []byte(twoStores+c.input))
			checkErrors(t, twoStores+c.input, err, c.wants)
		})
	}
}
