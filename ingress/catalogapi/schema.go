package catalogapi

import (
	"encoding/json"
	"reflect"
	"strings"
	"time"

	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/workflows/wire"
)

// The OpenAPI schemas of the catalogue's bodies are derived from the wire
// types themselves (their JSON tags), so the document cannot drift from
// what the handlers decode and answer. Every named struct becomes a
// component referred to by name.

type schemaSet map[string]any

var (
	timeType     = reflect.TypeOf(time.Time{})
	rawType      = reflect.TypeOf(json.RawMessage{})
	approvalType = reflect.TypeOf(wire.SubscriptionApproval{})
)

// add registers t (a struct) and everything it refers to, and returns a
// reference to it.
func (s schemaSet) add(t reflect.Type) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawType:
		return map[string]any{"description": "Any JSON value."}
	case t == approvalType:
		if _, ok := s["SubscriptionApproval"]; !ok {
			s["SubscriptionApproval"] = nil // reserve against recursion
			obj := s.object(t)
			obj["description"] = `Who approves subscriptions (quorum, timeout, escalation as in approval steps), or "none": granted at once.`
			s["SubscriptionApproval"] = map[string]any{"oneOf": []any{map[string]any{"type": "string", "enum": []any{"none"}}, obj}}
		}
		return api.Ref("SubscriptionApproval")
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": s.add(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": s.add(t.Elem())}
	case reflect.Struct:
		name := t.Name()
		if _, ok := s[name]; !ok {
			s[name] = nil
			s[name] = s.object(t)
		}
		return api.Ref(name)
	}
	return map[string]any{}
}

// object is the schema of a struct's JSON fields (embedded structs
// flattened); fields without omitempty are required.
func (s schemaSet) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []any
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			name, opts, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				walk(f.Type)
				continue
			}
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = s.add(f.Type)
			if !strings.Contains(opts, "omitempty") && f.Type.Kind() != reflect.Pointer {
				required = append(required, name)
			}
		}
	}
	walk(t)
	out := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

// schemas returns the components of the catalogue group.
func schemas() map[string]any {
	s := schemaSet{}
	for _, v := range []any{wire.APIList{}, wire.APIDetail{}, wire.API{}, wire.Subscriptions{}, wire.Subscription{}, wire.CreateAPIRequest{},
		wire.UpdateAPIRequest{}, wire.APIVersionSpec{}, wire.TransitionRequest{}, wire.SubscribeRequest{}, wire.EndSubscriptionRequest{},
		wire.CatalogCall{}} {
		s.add(reflect.TypeOf(v))
	}
	out := map[string]any{}
	for name, sc := range s {
		if name == "Approvers" || name == "Identity" || name == "Vote" {
			continue // the ingress's own components
		}
		out[name] = sc
	}
	return out
}
