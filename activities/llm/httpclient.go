package llm

import (
	"net"
	"net/http"
	"time"
)

// NewHTTPClient returns the client the gateway should share for every
// provider call: one tuned transport with keep-alive and a large idle pool
// per host (model traffic goes to few hosts, many calls in parallel), HTTP/2
// when the provider offers it, and no client-wide timeout (each attempt has
// its own deadline, and streams may legitimately run for minutes).
func NewHTTPClient() *http.Client {
	return &http.Client{Transport: NewTransport()}
}

// NewTransport returns the tuned transport used by NewHTTPClient.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ReadBufferSize:        32 << 10,
		WriteBufferSize:       32 << 10,
	}
}
