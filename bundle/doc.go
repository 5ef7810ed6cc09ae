// Package bundle is the part of the function contract that does not depend
// on how functions run: a code bundle's safe unpacking (Unpack) and its
// deploy-time check (Validate), the handler syntax and source file naming of
// each runtime (CheckHandler, SourceFileName), and the env names Ferry
// reserves (ReservedEnv). The API uses it to refuse bad deploys, the worker to
// unpack code; the Docker executor (package runtimes) uses the same rules.
package bundle
