package activities

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/gateflow/gateflow/analytics/record"
)

// Outbound call rules shared by the HTTP and MCP activities: which
// addresses a connection may reach, which redirects are followed, and
// which paths are sent. docs/SECURITY.md describes them for operators.

// addrClass is how a special-purpose address range is treated.
type addrClass int

const (
	// addrPublic: any other address.
	addrPublic addrClass = iota
	// addrLoopback: 127.0.0.0/8 and ::1. Registered services and MCP
	// servers may use it; URL steps only for a tenant allowed the address
	// (allow_loopback, the dev tenant).
	addrLoopback
	// addrInternal: private networks (RFC 1918), CGNAT (100.64.0.0/10),
	// unique-local IPv6 (fc00::/7), local-use NAT64. Registered services
	// and MCP servers may use them; URL steps only when the tenant lists
	// the address itself in allowed_hosts.
	addrInternal
	// addrNever: addresses no outbound call has a reason to reach, cloud
	// metadata (link-local 169.254.0.0/16) first among them. Never dialled.
	addrNever
)

// specialRange is one row of the table of special-purpose ranges (IANA's
// IPv4 and IPv6 special-purpose address registries).
type specialRange struct {
	prefix netip.Prefix
	class  addrClass
	name   string
	// embedded is where an IPv4 address sits inside an IPv6 one (the byte
	// offset), for forms classified by the IPv4 address they carry; -1
	// when none.
	embedded int
}

func rng(prefix string, class addrClass, name string) specialRange {
	return specialRange{prefix: netip.MustParsePrefix(prefix), class: class, name: name, embedded: -1}
}

func carrier(prefix string, offset int, name string) specialRange {
	return specialRange{prefix: netip.MustParsePrefix(prefix), class: addrPublic, name: name, embedded: offset}
}

// specialRanges is the one table of special-purpose ranges; the longest
// matching prefix wins. IPv4-mapped addresses (::ffff:0:0/96) are unmapped
// before the lookup, so every IPv4 row covers its mapped form too; NAT64
// and 6to4 addresses take the class of the IPv4 address they carry.
var specialRanges = []specialRange{
	rng("0.0.0.0/8", addrNever, `"this network" (0.0.0.0/8)`),
	rng("10.0.0.0/8", addrInternal, "private (10.0.0.0/8)"),
	rng("100.64.0.0/10", addrInternal, "shared address space, CGNAT (100.64.0.0/10)"),
	rng("127.0.0.0/8", addrLoopback, "loopback (127.0.0.0/8)"),
	rng("169.254.0.0/16", addrNever, "link-local, cloud metadata (169.254.0.0/16)"),
	rng("172.16.0.0/12", addrInternal, "private (172.16.0.0/12)"),
	rng("192.0.0.0/24", addrNever, "IETF protocol assignments (192.0.0.0/24)"),
	rng("192.0.2.0/24", addrNever, "documentation (192.0.2.0/24)"),
	rng("192.88.99.0/24", addrNever, "6to4 relay anycast (192.88.99.0/24)"),
	rng("192.168.0.0/16", addrInternal, "private (192.168.0.0/16)"),
	rng("198.18.0.0/15", addrNever, "benchmarking (198.18.0.0/15)"),
	rng("198.51.100.0/24", addrNever, "documentation (198.51.100.0/24)"),
	rng("203.0.113.0/24", addrNever, "documentation (203.0.113.0/24)"),
	rng("224.0.0.0/4", addrNever, "multicast (224.0.0.0/4)"),
	rng("240.0.0.0/4", addrNever, "reserved and broadcast (240.0.0.0/4)"),

	rng("::/128", addrNever, "unspecified (::)"),
	rng("::1/128", addrLoopback, "loopback (::1)"),
	rng("::/96", addrNever, "IPv4-compatible, deprecated (::/96)"),
	carrier("64:ff9b::/96", 12, "NAT64 (64:ff9b::/96)"),
	rng("64:ff9b:1::/48", addrInternal, "local-use NAT64 (64:ff9b:1::/48)"),
	rng("100::/64", addrNever, "discard-only (100::/64)"),
	rng("2001::/23", addrNever, "IETF protocol assignments (2001::/23)"),
	rng("2001:db8::/32", addrNever, "documentation (2001:db8::/32)"),
	carrier("2002::/16", 2, "6to4 (2002::/16)"),
	rng("3fff::/20", addrNever, "documentation (3fff::/20)"),
	rng("5f00::/16", addrNever, "segment routing SIDs (5f00::/16)"),
	rng("fc00::/7", addrInternal, "unique-local (fc00::/7)"),
	rng("fe80::/10", addrNever, "link-local (fe80::/10)"),
	rng("fec0::/10", addrNever, "site-local, deprecated (fec0::/10)"),
	rng("ff00::/8", addrNever, "multicast (ff00::/8)"),
}

// classifyAddr returns the class of ip, the range's name ("" for public)
// and the address to check allow-lists with (the IPv4 address an
// IPv4-mapped, NAT64 or 6to4 address carries, else ip).
func classifyAddr(ip netip.Addr) (addrClass, string, netip.Addr) {
	ip = ip.Unmap().WithZone("")
	for range 2 { // a carrier's IPv4 address is classified once more
		var best *specialRange
		for i := range specialRanges {
			r := &specialRanges[i]
			if r.prefix.Contains(ip) && (best == nil || r.prefix.Bits() > best.prefix.Bits()) {
				best = r
			}
		}
		switch {
		case best == nil:
			return addrPublic, "", ip
		case best.embedded >= 0:
			b := ip.As16()
			ip = netip.AddrFrom4([4]byte(b[best.embedded : best.embedded+4]))
			continue
		}
		return best.class, best.name, ip
	}
	return addrPublic, "", ip
}

// errAddrRefused is wrapped by dial refusals; the message names the range,
// never a credential.
var errAddrRefused = errors.New("address refused")

// dialPolicy decides, at dial time (after name resolution, before any
// packet), whether a connection may reach an address; allow is asked
// about loopback and internal addresses and may be nil (refuse them).
type dialPolicy struct {
	// internalOK lets loopback and internal addresses through (registered
	// services and MCP servers); URL steps ask allow instead.
	internalOK bool
	allow      func(ctx context.Context, ip netip.Addr, port string) error
}

func (p dialPolicy) check(ctx context.Context, address string) error {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %s is not an IP address", errAddrRefused, host)
	}
	class, name, canon := classifyAddr(ip)
	switch class {
	case addrPublic:
		return nil
	case addrNever:
		// The range, not the address: a message must not tell where a
		// name resolves (issue 10 item 9).
		return &notAllowedError{err: fmt.Errorf("%w: the host's address is in a range no call may reach: %s", errAddrRefused, name)}
	}
	if p.internalOK {
		return nil
	}
	if p.allow != nil {
		if err := p.allow(ctx, canon, port); err == nil {
			return nil
		}
	}
	return &notAllowedError{err: fmt.Errorf("%w: the host's address is in a range not allowed for the tenant: %s", errAddrRefused, name)}
}

// newTransport returns a pooled transport suited to many concurrent calls
// to few hosts, whose dialer applies policy to every address it connects
// to. proxy is the transport's proxy function: nil for URL steps, whose
// address check a proxy would bypass.
func newTransport(policy dialPolicy, proxy func(*http.Request) (*url.URL, error)) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = proxy
	t.MaxIdleConns = 512
	t.MaxIdleConnsPerHost = 128
	t.IdleConnTimeout = 90 * time.Second
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := *dialer
		d.ControlContext = func(ctx context.Context, _, address string, _ syscall.RawConn) error {
			return policy.check(ctx, address)
		}
		return d.DialContext(ctx, network, addr)
	}
	return t
}

// origin is a URL's scheme://host:port, the port made explicit, so that
// http://a and http://a:80 are one origin.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// sameOriginRedirects is the CheckRedirect of clients that carry
// configured credentials (registered services, MCP servers): a redirect is
// followed only within the origin of the first request, so credentials
// never reach another origin.
func sameOriginRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if from, to := origin(via[0].URL), origin(req.URL); from != to {
		// Neither origin is named: the service's is operator
		// configuration, the other one comes from the server.
		return &notAllowedError{err: errors.New("redirect to another origin refused: registered services and MCP servers are followed within their origin only")}
	}
	return nil
}

// errUnsafePath is wrapped by path refusals.
var errUnsafePath = errors.New("unsafe path")

// checkPath refuses a request path holding a dot segment ("." or "..",
// also percent-encoded or between backslashes), which would leave the
// service's base path. Workflows escape interpolated path values since
// path escaping was versioned in; this check also covers runs rendered
// before, and literal paths.
func checkPath(p string) error {
	if p == "" {
		return nil
	}
	path, _, _ := strings.Cut(p, "?")
	path, _, _ = strings.Cut(path, "#")
	if dec, err := url.PathUnescape(path); err == nil {
		path = dec
	}
	for _, seg := range strings.FieldsFunc(path, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == "." || seg == ".." {
			return fmt.Errorf("%w: path %q has a %q segment", errUnsafePath, record.Truncate(p, 200), seg)
		}
	}
	return nil
}
