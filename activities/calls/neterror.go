package calls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"regexp"
	"syscall"
)

// DescribeNetError says what went wrong with a connection without naming
// any address (issue 10 item 9): Go's network errors quote the URL, the
// resolved IP and port and the host name ("Post \"http://10.0.0.7:8080/x\":
// dial tcp 10.0.0.7:8080: connect: connection refused"), which must not
// reach a client, a workflow status or a call record. Callers keep the
// error itself for their logs.
func DescribeNetError(err error) string {
	var (
		dns     *net.DNSError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		verify  *tls.CertificateVerificationError
		record  tls.RecordHeaderError
		ne      net.Error
	)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return "host name not found"
		}
		return "host name resolution failed"
	case errors.As(err, &unknown), errors.As(err, &host), errors.As(err, &invalid), errors.As(err, &verify):
		return "TLS certificate not accepted"
	case errors.As(err, &record):
		return "TLS handshake failed (is the server speaking TLS?)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by the server"
	case errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return "connection closed"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before the answer was complete"
	}
	return "connection failed"
}

// addressLike matches what RedactAddresses removes: URLs, IPv4 and
// bracketed IPv6 addresses with or without a port, and host:port pairs.
var addressLike = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^\s"'<>]+` +
	`|\[[0-9a-f:.%]+\](?::\d+)?` +
	`|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b` +
	`|\b[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){7}\b` +
	`|\b(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?` +
	`|\b(?:[a-z0-9-]+\.)*[a-z0-9-]*[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)*:\d{1,5}\b`)

// RedactAddresses replaces URLs, IP addresses and host:port pairs in a
// message with "[address]": the last line of defence for messages of
// foreign code (gRPC, SDKs) that reach a client.
func RedactAddresses(msg string) string {
	return addressLike.ReplaceAllString(msg, "[address]")
}
