//go:build tools

// Package tools pins the commands built by hack/build-tools: KEDA's operator and
// its metrics adapter (the external.metrics.k8s.io API server).
package tools

import (
	_ "github.com/kedacore/keda/v2/cmd/adapter"
	_ "github.com/kedacore/keda/v2/cmd/operator"
)
