//go:build tools

// Package tools pins the commands built by hack/build-tools.
package tools

import (
	_ "sigs.k8s.io/cri-tools/cmd/crictl"
)
