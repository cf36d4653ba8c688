package activities

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"testing"

	"github.com/gateflow/gateflow/activities/tracing"
)

func TestClassifyAddr(t *testing.T) {
	tests := []struct {
		addr  string
		class addrClass
	}{
		{"8.8.8.8", addrPublic},
		{"2606:4700::1111", addrPublic},
		{"127.0.0.1", addrLoopback},
		{"::1", addrLoopback},
		{"10.1.2.3", addrInternal},
		{"172.31.0.1", addrInternal},
		{"192.168.1.1", addrInternal},
		{"100.64.0.1", addrInternal},
		{"100.127.255.254", addrInternal},
		{"fd00::1", addrInternal},
		{"169.254.169.254", addrNever},
		{"fe80::1", addrNever},
		{"fe80::1%eth0", addrNever},
		{"0.0.0.0", addrNever},
		{"0.1.2.3", addrNever},
		{"::", addrNever},
		{"192.0.0.170", addrNever},
		{"192.0.2.1", addrNever},
		{"198.51.100.7", addrNever},
		{"203.0.113.9", addrNever},
		{"198.18.0.1", addrNever},
		{"198.19.255.255", addrNever},
		{"224.0.0.1", addrNever},
		{"255.255.255.255", addrNever},
		{"ff02::1", addrNever},
		{"2001:db8::1", addrNever},
		{"3fff::1", addrNever},
		{"2001::1", addrNever}, // Teredo
		// IPv4-mapped forms take the class of the IPv4 address.
		{"::ffff:169.254.169.254", addrNever},
		{"::ffff:127.0.0.1", addrLoopback},
		{"::ffff:10.0.0.1", addrInternal},
		{"::ffff:100.64.0.1", addrInternal},
		{"::ffff:8.8.8.8", addrPublic},
		// NAT64 and 6to4 carry an IPv4 address too.
		{"64:ff9b::a9fe:a9fe", addrNever}, // 169.254.169.254
		{"64:ff9b::a00:1", addrInternal},  // 10.0.0.1
		{"64:ff9b::808:808", addrPublic},  // 8.8.8.8
		{"64:ff9b:1::1", addrInternal},
		{"2002:a9fe:a9fe::1", addrNever}, // 6to4 of 169.254.169.254
		{"2002:7f00:1::1", addrLoopback}, // 6to4 of 127.0.0.1
		{"::a9fe:a9fe", addrNever},       // IPv4-compatible
	}
	for _, tt := range tests {
		got, name, _ := classifyAddr(netip.MustParseAddr(tt.addr))
		if got != tt.class {
			t.Errorf("%s: class %d (%s), want %d", tt.addr, got, name, tt.class)
		}
	}
}

func TestDialPolicy(t *testing.T) {
	allowListed := func(_ context.Context, ip netip.Addr, _ string) error {
		if ip == netip.MustParseAddr("10.0.0.5") {
			return nil
		}
		return errors.New("not listed")
	}
	url := dialPolicy{allow: allowListed}
	service := dialPolicy{internalOK: true}
	tests := []struct {
		policy  dialPolicy
		address string
		ok      bool
	}{
		{url, "93.184.215.14:443", true},
		{url, "10.0.0.5:80", true},          // listed
		{url, "[::ffff:10.0.0.5]:80", true}, // listed, mapped form
		{url, "10.0.0.6:80", false},         // not listed
		{url, "100.64.1.1:80", false},       // CGNAT
		{url, "127.0.0.1:80", false},        // loopback not allowed
		{url, "169.254.169.254:80", false},  // metadata
		{url, "[::ffff:169.254.169.254]:80", false},
		{service, "10.0.0.6:80", true},
		{service, "127.0.0.1:8080", true},
		{service, "169.254.169.254:80", false},
		{service, "[fe80::1]:80", false},
		{service, "[64:ff9b::a9fe:a9fe]:80", false},
	}
	for _, tt := range tests {
		err := tt.policy.check(context.Background(), tt.address)
		if (err == nil) != tt.ok {
			t.Errorf("%s (internalOK %v): %v, want ok %v", tt.address, tt.policy.internalOK, err, tt.ok)
		}
		var na *notAllowedError
		if err != nil && (!errors.As(err, &na) || !errors.Is(err, errAddrRefused)) {
			t.Errorf("%s: %v is not a refusal", tt.address, err)
		}
	}
}

// TestURLCallsIgnoreProxyEnvironment: a proxy would hide the address from
// the dial-time check, so URL steps never use HTTP(S)_PROXY.
func TestURLCallsIgnoreProxyEnvironment(t *testing.T) {
	a := NewHTTPActivity(nil, nil, HTTPOptions{})
	if tr := a.urlClient.Transport.(*tracing.TracedTransport).Base.(*http.Transport); tr.Proxy != nil {
		t.Error("the URL transport has a proxy function")
	}
}

func TestCheckPath(t *testing.T) {
	for _, p := range []string{"/orders/1", "/a/b.c/..d", "/x?to=../y", "/.well-known/x", ""} {
		if err := checkPath(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range []string{"/orders/../admin", "../x", "/a/./b", "/a/%2e%2e/b", `/a\..\b`, "/a/..", "/a%2F..%2Fb"} {
		if err := checkPath(p); !errors.Is(err, errUnsafePath) {
			t.Errorf("%q: %v, want a refusal", p, err)
		}
	}
}
