// Command function serves keyferry's Cloud Function locally with the Functions Framework, on 127.0.0.1:$PORT,
// the way the Cloud Functions runtime serves it: every path reaches SecretEvents, and Pub/Sub push
// requests are converted into messagePublished CloudEvents.
package main

import (
	"log"
	"os"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	"github.com/keyferry/keyferry/functions/gcp"
)

func main() {
	if os.Getenv("FUNCTION_TARGET") == "" {
		_ = os.Setenv("FUNCTION_TARGET", gcpfn.FunctionName)
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if err := funcframework.StartHostPort("127.0.0.1", port); err != nil {
		log.Fatalf("functions framework: %v", err)
	}
}
