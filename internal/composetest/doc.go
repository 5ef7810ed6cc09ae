// Package composetest checks docker-compose.yml and the Dockerfile: they cannot
// run where no image registry is reachable, but Compose can still validate them.
package composetest
