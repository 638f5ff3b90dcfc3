//go:build tools

// Package tools pins the commands built by hack/build-tools.
package tools

import (
	_ "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)
