package proxy

import (
	"net"
	"net/http"
	"slices"
	"strings"
)

// Header hygiene, written once for requests and answers.

// Identity headers the gateway adds to every forwarded request; whatever a
// client sends under these names is dropped first, so an upstream can
// trust them.
const (
	HeaderTenant     = "Gateflow-Tenant"
	HeaderConsumer   = "Gateflow-Consumer"
	HeaderAPI        = "Gateflow-Api"
	HeaderAPIVersion = "Gateflow-Api-Version"
	HeaderRequestID  = "X-Request-Id"
	// HeaderCacheStatus (RFC 9211) says what the cache did.
	HeaderCacheStatus = "Cache-Status"
)

// isHopHeader reports the hop-by-hop fields of RFC 9110 7.6.1 (canonical
// names), which belong to one connection and are never forwarded.
func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// connectionTokens returns the fields named in Connection (also
// hop-by-hop), or nil.
func connectionTokens(h http.Header) []string {
	var out []string
	for _, v := range h["Connection"] {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, http.CanonicalHeaderKey(t))
			}
		}
	}
	return out
}

func listed(names []string, k string) bool {
	for _, n := range names {
		if n == k {
			return true
		}
	}
	return false
}

// dropRequestHeader reports the client fields that never reach an
// upstream: hop-by-hop, the caller's credential, forwarding fields (the
// gateway writes its own) and the gateway's identity fields.
func dropRequestHeader(k string) bool {
	if isHopHeader(k) {
		return true
	}
	switch k {
	case "Authorization", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", HeaderRequestID:
		return true
	}
	return len(k) > 9 && k[:9] == "Gateflow-"
}

// outboundHeader builds the header of the forwarded request from the
// client's: dropped fields removed, values shared (never mutated).
// Upgrade requests keep Connection: Upgrade and Upgrade; "Te: trailers"
// is kept (it asks for trailers, which the gateway passes on).
func outboundHeader(in http.Header, extra int) http.Header {
	conn := connectionTokens(in)
	out := make(http.Header, len(in)+extra)
	for k, vs := range in {
		if dropRequestHeader(k) || (conn != nil && listed(conn, k)) {
			continue
		}
		out[k] = vs
	}
	if te := in["Te"]; len(te) > 0 && strings.Contains(strings.ToLower(strings.Join(te, ",")), "trailers") {
		out["Te"] = []string{"trailers"}
	}
	if up := upgradeType(in); up != "" {
		out["Connection"] = []string{"Upgrade"}
		out["Upgrade"] = []string{up}
	}
	return out
}

// upgradeType returns the protocol a request asks to switch to, or "".
func upgradeType(h http.Header) string {
	if !headerHasToken(h, "Connection", "upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h[name] {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// setForwarded writes Forwarded (RFC 7239) and the X-Forwarded-* fields
// describing the client's hop to the gateway.
func setForwarded(out http.Header, r *http.Request) {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	forIP := ip
	if strings.Contains(ip, ":") {
		forIP = `"[` + ip + `]"`
	}
	out["Forwarded"] = []string{"for=" + forIP + ";host=" + quoteIfNeeded(r.Host) + ";proto=" + proto}
	out["X-Forwarded-For"] = []string{ip}
	out["X-Forwarded-Host"] = []string{r.Host}
	out["X-Forwarded-Proto"] = []string{proto}
}

func quoteIfNeeded(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
		}
	}
	return s
}

// copyResponseHeader copies an upstream answer's fields to the client's
// answer, without hop-by-hop fields (the value slices are shared).
func copyResponseHeader(dst, src http.Header) {
	conn := connectionTokens(src)
	for k, vs := range src {
		if isHopHeader(k) || (conn != nil && listed(conn, k)) {
			continue
		}
		dst[k] = vs
	}
}

// keepTargetLinks puts the Access's Link values (a deprecated version's
// successor and catalogue entry) back next to an upstream answer's own
// Link values, which replaced them when the answer's fields were copied:
// Link is a list (RFC 8288) and both belong in the answer. The upstream's
// slice is never appended to (it may be a stored cache entry's).
func keepTargetLinks(dst, upstream http.Header, t Target) {
	if len(upstream["Link"]) == 0 {
		return
	}
	for _, h := range t.Headers {
		if http.CanonicalHeaderKey(h.Name) == "Link" {
			dst["Link"] = append(slices.Clip(dst["Link"]), h.Value)
		}
	}
}
