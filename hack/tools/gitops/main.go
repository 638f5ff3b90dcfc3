// Command tideserve-health reads InferenceService bodies (JSON files) and prints how
// Argo CD and Flux (kstatus) would judge each one, so the tests can pin both on real
// status bodies captured from the test bed.
//
// Argo CD: the Lua health script runs in gopher-lua exactly as Argo CD runs a
// resource.customizations health script (util/lua/lua.go): open libraries skipped, then
// only package, base and table opened (Argo CD also opens a restricted os library; the
// script does not use it, so calling os here fails loudly), `obj` set from the JSON
// object decoded as client-go decodes it (integers int64) with numbers as Lua numbers, a one-second timeout, and the returned table's
// status checked against Argo CD's health codes.
//
// Flux: sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute, the library Flux's
// kustomize-controller and helm-controller (and `kubectl`-style waiters) use.
//
// Usage: tideserve-health -lua health.lua body.json ...   (one JSON line per body)
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type result struct {
	File    string   `json:"file"`
	ArgoCD  *verdict `json:"argocd,omitempty"`
	Kstatus *verdict `json:"kstatus,omitempty"`
	Error   string   `json:"error,omitempty"`
}

var argoCodes = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

// decode mirrors Argo CD's decodeValue: numbers (int64 from the API's JSON decoding,
// float64 otherwise) -> LNumber.
func decode(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []interface{}:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decode(l, item))
		}
		return arr
	case map[string]interface{}:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decode(l, item))
		}
		return tbl
	}
	return lua.LNil
}

func argo(obj map[string]interface{}, script string) (*verdict, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, pair := range []struct {
		n string
		f lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(pair.f), NRet: 0, Protect: true},
			lua.LString(pair.n)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decode(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	ret := l.Get(-1)
	tbl, ok := ret.(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	out := &verdict{}
	if s, ok := tbl.RawGetString("status").(lua.LString); ok {
		out.Status = string(s)
	}
	if m, ok := tbl.RawGetString("message").(lua.LString); ok {
		out.Message = string(m)
	}
	if !argoCodes[out.Status] {
		return &verdict{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return out, nil
}

func kstatus(obj map[string]interface{}) (*verdict, error) {
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		return nil, err
	}
	return &verdict{Status: res.Status.String(), Message: res.Message}, nil
}

func main() {
	scriptPath := flag.String("lua", "", "Argo CD health script (Lua)")
	flag.Parse()
	script := ""
	if *scriptPath != "" {
		raw, err := os.ReadFile(*scriptPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		script = string(raw)
	}
	enc := json.NewEncoder(os.Stdout)
	failed := false
	for _, path := range flag.Args() {
		res := result{File: path}
		raw, err := os.ReadFile(path)
		obj := map[string]interface{}{}
		if err == nil {
			// As client-go decodes objects: integers become int64 (kstatus needs them).
			err = utiljson.Unmarshal(raw, &obj)
		}
		if err == nil && script != "" {
			res.ArgoCD, err = argo(obj, script)
		}
		if err == nil {
			res.Kstatus, err = kstatus(obj)
		}
		if err != nil {
			res.Error = err.Error()
			failed = true
		}
		_ = enc.Encode(res)
	}
	if failed {
		os.Exit(1)
	}
}
