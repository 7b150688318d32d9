package event

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"time"
)

// Decoded is what a decoder found: exactly one of its fields is set.
type Decoded struct {
	Change   *Change
	Schedule *Schedule
	Rotation *RotationStep
}

// RotationStep is one step of Secrets Manager's rotation protocol, as it invokes a rotation function.
type RotationStep struct {
	Step               string // createSecret, setSecret, testSecret or finishSecret
	SecretID           string // as Secrets Manager gave it (an ARN)
	ClientRequestToken string // the new version's id
	RotationToken      string
}

// Rotation steps, as normalised by DecodeAWS.
const (
	StepCreate = "createSecret"
	StepSet    = "setSecret"
	StepTest   = "testSecret"
	StepFinish = "finishSecret"
)

// MaxEventBytes bounds every payload a decoder accepts (EventBridge and Event Grid cap events at 1 MB,
// Pub/Sub messages at 10 MB; keyferry's are far smaller).
const MaxEventBytes = 1 << 20

type envelope struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       time.Time       `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

type cloudTrail struct {
	EventSource         string          `json:"eventSource"`
	EventName           string          `json:"eventName"`
	EventType           string          `json:"eventType"`
	AWSRegion           string          `json:"awsRegion"`
	ErrorCode           string          `json:"errorCode"`
	RequestParameters   json.RawMessage `json:"requestParameters"`
	ResponseElements    json.RawMessage `json:"responseElements"`
	AdditionalEventData json.RawMessage `json:"additionalEventData"`
	ServiceEventDetails json.RawMessage `json:"serviceEventDetails"`
}

// DecodeAWS decodes what EventBridge, EventBridge Scheduler or Secrets Manager rotation hands the Lambda.
func DecodeAWS(raw []byte) (Decoded, error) {
	const what = "AWS event"
	top, err := object(raw, what)
	if err != nil {
		return Decoded{}, err
	}
	switch {
	case has(top, "Step") && has(top, "SecretId"):
		return decodeRotation(raw)
	case has(top, "detail-type"):
		return decodeEnvelope(raw)
	case has(top, "job") || has(top, "scheduleArn") || has(top, "scheduledTime"):
		var in struct {
			Job           string `json:"job"`
			ScheduledTime string `json:"scheduledTime"`
		}
		if err := json.Unmarshal(raw, &in); err != nil {
			return Decoded{}, &DecodeError{Source: "EventBridge Scheduler input", Reason: jsonReason(err)}
		}
		s := &Schedule{Job: in.Job}
		s.Time, _ = time.Parse(time.RFC3339, in.ScheduledTime)
		return Decoded{Schedule: s}, nil
	}
	return Decoded{}, &DecodeError{Source: what, Reason: "neither an EventBridge event (detail-type), a scheduler input (job) nor a rotation step (Step, SecretId)"}
}

func decodeRotation(raw []byte) (Decoded, error) {
	var in struct {
		Step, SecretId, ClientRequestToken, RotationToken string
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return Decoded{}, &DecodeError{Source: "rotation step", Reason: jsonReason(err)}
	}
	norm := strings.ToLower(strings.ReplaceAll(in.Step, "_", ""))
	step := ""
	for _, s := range []string{StepCreate, StepSet, StepTest, StepFinish} {
		if strings.ToLower(s) == norm {
			step = s
		}
	}
	if step == "" {
		return Decoded{}, &DecodeError{Source: "rotation step", Reason: "unknown step (want createSecret, setSecret, testSecret or finishSecret)"}
	}
	if in.SecretId == "" || in.ClientRequestToken == "" {
		return Decoded{}, &DecodeError{Source: "rotation step", Reason: "SecretId and ClientRequestToken are required"}
	}
	return Decoded{Rotation: &RotationStep{Step: step, SecretID: in.SecretId, ClientRequestToken: in.ClientRequestToken,
		RotationToken: in.RotationToken}}, nil
}

func decodeEnvelope(raw []byte) (Decoded, error) {
	const what = "EventBridge event"
	var e envelope
	if err := json.Unmarshal(raw, &e); err != nil {
		return Decoded{}, &DecodeError{Source: what, Reason: jsonReason(err)}
	}
	ch := Change{ID: e.ID, Account: e.Account, Region: e.Region, Time: e.Time}
	switch {
	case e.Source == "aws.events" && e.DetailType == "Scheduled Event":
		job := "sweep"
		for _, r := range e.Resources {
			if strings.HasSuffix(r, "deep-sweep") {
				job = "deep-sweep"
			}
		}
		return Decoded{Schedule: &Schedule{Job: job, Time: e.Time}}, nil
	case e.Source == "aws.secretsmanager" && e.DetailType == "Secret Label Updated":
		var d struct {
			Name         string `json:"name"`
			LabelUpdated string `json:"labelUpdated"`
			VersionID    string `json:"versionId"`
		}
		if err := json.Unmarshal(e.Detail, &d); err != nil {
			return Decoded{}, &DecodeError{Source: what, Reason: "detail: " + jsonReason(err)}
		}
		if d.LabelUpdated != "AWSCURRENT" {
			return Decoded{}, Ignored("label %s moved (only AWSCURRENT changes the current value)", safe(d.LabelUpdated))
		}
		ref := d.Name
		if len(e.Resources) > 0 {
			ref = e.Resources[0]
		}
		ch.Service, ch.Name, ch.Version, ch.Kind, ch.Reason = ServiceSecretsManager, SecretName(ref), d.VersionID, KindWrite, "Secret Label Updated"
	case e.Source == "aws.secretsmanager" && strings.HasSuffix(e.DetailType, "via CloudTrail"):
		var d cloudTrail
		if err := json.Unmarshal(e.Detail, &d); err != nil {
			return Decoded{}, &DecodeError{Source: what, Reason: "detail: " + jsonReason(err)}
		}
		if d.ErrorCode != "" {
			return Decoded{}, Ignored("%s failed (%s): nothing changed", safe(d.EventName), safe(d.ErrorCode))
		}
		kind, ok := secretsManagerKinds[d.EventName]
		if !ok {
			return Decoded{}, Ignored("%s does not change a secret's value", safe(d.EventName))
		}
		if d.EventName == "UpdateSecretVersionStage" {
			var p struct {
				VersionStage    string `json:"versionStage"`
				MoveToVersionID string `json:"moveToVersionId"`
			}
			_ = json.Unmarshal(d.RequestParameters, &p)
			if p.VersionStage != "" && p.VersionStage != "AWSCURRENT" {
				return Decoded{}, Ignored("stage %s moved (only AWSCURRENT changes the current value)", safe(p.VersionStage))
			}
			ch.Version = p.MoveToVersionID
		}
		ref := secretRef(d, e.Resources)
		if ref == "" {
			return Decoded{}, &DecodeError{Source: what, Reason: "no secret id in " + safe(d.EventName)}
		}
		if d.AWSRegion != "" && ch.Region == "" {
			ch.Region = d.AWSRegion
		}
		ch.Service, ch.Name, ch.Kind, ch.Reason = ServiceSecretsManager, SecretName(ref), kind, d.EventName
	case e.Source == "aws.ssm" && e.DetailType == "Parameter Store Change":
		var d struct {
			Operation string `json:"operation"`
			Name      string `json:"name"`
		}
		if err := json.Unmarshal(e.Detail, &d); err != nil {
			return Decoded{}, &DecodeError{Source: what, Reason: "detail: " + jsonReason(err)}
		}
		switch d.Operation {
		case "Create", "Update":
			ch.Kind = KindWrite
		case "Delete":
			ch.Kind = KindDelete
		default:
			return Decoded{}, Ignored("parameter operation %s does not change the value", safe(d.Operation))
		}
		if d.Name == "" {
			return Decoded{}, &DecodeError{Source: what, Reason: "Parameter Store Change without a name"}
		}
		ch.Service, ch.Name, ch.Reason = ServiceSSM, d.Name, "Parameter Store "+d.Operation
	default:
		return Decoded{}, Ignored("%s from %s is not an event keyferry handles", safe(e.DetailType), safe(e.Source))
	}
	if ch.Name == "" {
		return Decoded{}, &DecodeError{Source: what, Reason: "no secret name"}
	}
	return Decoded{Change: &ch}, nil
}

var secretsManagerKinds = map[string]Kind{
	"CreateSecret": KindWrite, "PutSecretValue": KindWrite, "UpdateSecret": KindWrite, "RestoreSecret": KindWrite,
	"UpdateSecretVersionStage": KindWrite, "RotationSucceeded": KindWrite, "CancelSecretVersionDelete": KindWrite,
	"DeleteSecret": KindDelete, "EndSecretVersionDelete": KindDelete,
}

// secretRef finds the secret in a CloudTrail detail: the service event's SecretId, then the request's
// secretId or name, then the response's arn (legacy "aRN" matches too: encoding/json ignores case).
func secretRef(d cloudTrail, resources []string) string {
	for _, raw := range []json.RawMessage{d.AdditionalEventData, d.ServiceEventDetails, d.RequestParameters, d.ResponseElements} {
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		var p struct {
			SecretID string `json:"secretId"`
			ARN      string `json:"arn"`
			Name     string `json:"name"`
		}
		if json.Unmarshal(raw, &p) == nil {
			switch {
			case p.SecretID != "":
				return p.SecretID
			case p.ARN != "":
				return p.ARN
			case p.Name != "":
				return p.Name
			}
		}
	}
	if len(resources) > 0 {
		return resources[0]
	}
	return ""
}

var secretARN = regexp.MustCompile(`^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:(.+)-[A-Za-z0-9]{6}$`)

// SecretName turns a Secrets Manager secret reference into the secret's name: an ARN loses its prefix
// and the 6-character suffix Secrets Manager adds; a name stays as it is.
func SecretName(ref string) string {
	if m := secretARN.FindStringSubmatch(ref); m != nil {
		return m[1]
	}
	return ref
}

func object(raw []byte, what string) (map[string]json.RawMessage, error) {
	if len(raw) > MaxEventBytes {
		return nil, &DecodeError{Source: what, Reason: "larger than 1 MiB"}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(bytes.TrimSpace(raw), &top); err != nil || top == nil {
		r := "not a JSON object"
		if err != nil {
			r = jsonReason(err)
		}
		return nil, &DecodeError{Source: what, Reason: r}
	}
	return top, nil
}

func has(m map[string]json.RawMessage, k string) bool { _, ok := m[k]; return ok }

// jsonReason describes a JSON error without quoting the input.
func jsonReason(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case asErr(err, &se):
		return "invalid JSON at byte " + itoa(int(se.Offset))
	case asErr(err, &te):
		return "field " + te.Field + " has the wrong type (" + te.Value + ")"
	}
	return "invalid JSON"
}

var plainWord = regexp.MustCompile(`^[A-Za-z0-9 ._:/-]{0,80}$`)

// safe returns s for a message if it is a plain short word (event names, labels), else a placeholder:
// event payloads are not trusted to be free of sensitive text.
func safe(s string) string {
	if plainWord.MatchString(s) {
		return s
	}
	return "(not shown)"
}
