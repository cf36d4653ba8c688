package definition

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/gateflow/gateflow/activities/calls"
)

// HTTPMethods are the methods an http step may use.
var HTTPMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

// httpKind calls a registered service, or a URL when the tenant allows it.
var httpKind = stepKind{
	name: KindHTTP,
	fields: []field{
		{name: "service", typ: tName, desc: "Registered service name."},
		{name: "url", typ: tTemplateString, desc: "Absolute http(s) URL, when the tenant allows URLs."},
		{name: "method", typ: tString, enum: HTTPMethods, desc: "Default GET."},
		{name: "path", typ: tTemplateString, desc: "Path appended to the service's base URL."},
		{name: "headers", typ: tTemplateMap},
		{name: "query", typ: tTemplateMap},
		{name: "body", typ: tTemplate, desc: "JSON body."},
		{name: "success_statuses", typ: tList, elem: &statusBounds, desc: "Statuses that count as success; default 2xx."},
		timeoutField,
		retryField,
	},
	oneOf:        []string{"service", "url"},
	compensation: true,
	check:        (*validator).httpStep,
}

func (v *validator) httpStep(s *Step, path string, ctx exprCtx) {
	switch {
	case s.Service == "" && s.URL == "":
		v.errorf(path+".service", "an http step needs service or url")
	case s.Service != "" && s.URL != "":
		v.errorf(path+".url", "set service or url, not both")
	}
	if s.Service != "" {
		v.name(path+".service", s.Service)
		if v.cat != nil && !strings.Contains(s.Service, "${{") && !v.cat.HasService(s.Service) {
			v.errorf(path+".service", "unknown service %q", s.Service)
		}
	}
	if s.URL != "" {
		if err := checkStepURL(s.URL); err != nil {
			v.errorf(path+".url", "%v", err)
		}
		v.templateString(path+".url", s.URL, ctx)
		if s.Path != "" {
			v.errorf(path+".path", "only with service (put the path in url)")
		}
	}
	if s.Method != "" && !slices.Contains(HTTPMethods, strings.ToUpper(s.Method)) {
		v.errorf(path+".method", "must be one of %s", strings.Join(HTTPMethods, ", "))
	}
	if s.Path != "" {
		if !strings.HasPrefix(s.Path, "/") && !strings.HasPrefix(s.Path, "${{") {
			v.errorf(path+".path", "must start with /")
		}
		v.templateString(path+".path", s.Path, ctx)
	}
	for _, k := range sortedKeys(s.Headers) {
		p := joinPath(path+".headers", k)
		if !headerNamePattern.MatchString(k) {
			v.errorf(p, "not a valid header name")
		} else if calls.IsReservedHeader(k) {
			v.errorf(p, "%s* headers are set by the gateway (who the call is for); a step may not set them", calls.ReservedHeaderPrefix)
		}
		v.templateString(p, s.Headers[k], ctx)
	}
	for _, k := range sortedKeys(s.Query) {
		v.templateString(joinPath(path+".query", k), s.Query[k], ctx)
	}
	if s.Body != nil {
		v.template(path+".body", s.Body, ctx)
	}
	for i, st := range s.SuccessStatuses {
		v.bounds(fmt.Sprintf("%s.success_statuses[%d]", path, i), &statusBounds, float64(st))
	}
}

// checkStepURL requires an absolute http(s) URL whose scheme and host are
// literal (the host is checked against the tenant's allow-list at run time).
func checkStepURL(raw string) error {
	lit := raw
	if i := strings.Index(raw, "${{"); i >= 0 {
		lit = raw[:i]
	}
	u, err := url.Parse(lit)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an absolute http:// or https:// URL")
	}
	if lit != raw && (u.Path == "" && u.RawQuery == "" && !strings.HasSuffix(lit, "/")) {
		return errors.New("the scheme and host must be literal (expressions may follow in the path or query)")
	}
	if u.User != nil {
		return errors.New("must not hold credentials (use a service with secret headers instead)")
	}
	return nil
}

// HTTPMethod is the method of an http step, upper case, GET by default.
func (s *Step) HTTPMethod() string {
	if s.Method == "" {
		return "GET"
	}
	return strings.ToUpper(s.Method)
}
