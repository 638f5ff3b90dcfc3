//go:build tools

// Package tools pins the commands built by hack/build-tools.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
