//go:build tools

// Package tools pins versitygw, the S3-compatible object store the test bed serves models
// from (POSIX backend: a bucket is a directory; SigV4 requests are verified).
package tools

import _ "github.com/versity/versitygw/cmd/versitygw"
