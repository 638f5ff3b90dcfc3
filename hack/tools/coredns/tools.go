//go:build tools

// Package tools pins the commands built by hack/build-tools.
package tools

import (
	_ "github.com/coredns/coredns/coremain"
)
