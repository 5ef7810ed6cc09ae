// Package composetest checks docker-compose.yml: Compose validates it, and
// TestComposeUp brings the whole stack up from the images that
// scripts/deploy-images.sh builds (no registry) and invokes a function through it.
package composetest
