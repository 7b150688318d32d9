// Package e2e holds the end-to-end tests: the local cloud with its change events wired to the real
// function binaries (the Lambda bootstrap under a local Runtime API, the Azure custom handler under a
// Functions host stand-in, the GCP function served by the Functions Framework and pushed to by the Pub/Sub
// emulator), exercised with the official SDKs.
package e2e
