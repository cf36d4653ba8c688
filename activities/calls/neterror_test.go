package calls

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestDescribeNetError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, refused := http.Get("http://" + addr + "/x")
	if refused == nil {
		t.Fatal("nothing listens, yet the call succeeded")
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{refused, "connection refused"},
		{&url.Error{Op: "Get", URL: "http://db.internal:5432", Err: &net.DNSError{Name: "db.internal", IsNotFound: true}}, "host name not found"},
		{fmt.Errorf("wrapped: %w", errors.New("something 10.1.2.3:80")), "connection failed"},
	} {
		got := DescribeNetError(c.err)
		if got != c.want || strings.Contains(got, "127.0.0.1") || strings.Contains(got, "internal") {
			t.Errorf("%v: %q, want %q", c.err, got, c.want)
		}
	}
}

func TestRedactAddresses(t *testing.T) {
	for in, want := range map[string]string{
		`Post "http://10.0.0.7:8080/v1/x?k=1": dial tcp 10.0.0.7:8080: connect: connection refused`: `Post "[address]": dial tcp [address]: connect: connection refused`,
		`transport: Error while dialing: dial tcp [fd00::1]:7233: i/o timeout`:                      `transport: Error while dialing: dial tcp [address]: i/o timeout`,
		`dial tcp: lookup temporal.internal on 10.96.0.10:53: no such host`:                         `dial tcp: lookup temporal.internal on [address]: no such host`,
		`connect to temporal-frontend.prod.svc:7233 failed`:                                         `connect to [address] failed`,
		`the step took 1.5s at 12:30:45`:                                                            `the step took 1.5s at 12:30:45`,
		`fe80::1%eth0 and 2001:db8::7 refused`:                                                      `[address]%eth0 and [address] refused`,
		`step a: status 500`:                                                                        `step a: status 500`,
	} {
		if got := RedactAddresses(in); got != want {
			t.Errorf("%q:\n got %q\nwant %q", in, got, want)
		}
	}
}
