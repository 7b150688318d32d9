// Command cdk is the AWS CDK app deploying keyferry into an AWS account from keyferry.yaml: the Lambda
// function, its EventBridge rules and schedules, least-privilege IAM derived from the replication rules, the
// roles the Azure and GCP functions assume, and alarms. See README.md.
//
// It is its own Go module so that keyferry's main module never depends on the CDK.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

func main() {
	os.Exit(run())
}

func run() int {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	dir, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := LoadSettings(appContext(app), dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	NewKeyferryStack(app, s)
	app.Synth(nil)
	return 0
}

// appContext reads the app's context (cdk.json, `-c key=value`).
func appContext(app awscdk.App) Context {
	return func(key string) (string, bool) {
		v := app.Node().TryGetContext(jsii.String(key))
		if v == nil {
			return "", false
		}
		if s, ok := v.(string); ok {
			return s, true
		}
		if f, ok := v.(float64); ok && f == float64(int64(f)) {
			return fmt.Sprint(int64(f)), true
		}
		return fmt.Sprint(v), true
	}
}
