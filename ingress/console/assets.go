package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
)

// web holds the console's pages: index.html (the shell), the application's
// ES modules and stylesheet, and web/vendor (Preact, htm and uPlot as
// published on npm, pinned and checked by vendor.sh and TestVendored).
//
//go:embed web
var web embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body, gz    []byte // gz is nil when compression does not pay
	contentType string
	etag        string
}

// assets are the embedded files by path under web/, served under
// /console/assets/<build>/, where build is a hash of them all: a page
// loaded from one build keeps loading that build's modules, and each file
// is cached for good.
type assets struct {
	files map[string]*asset
	build string
	// index is the shell page; its inline import map is allowed by its
	// hash in the Content-Security-Policy.
	index *asset
	csp   string
}

// importMap maps the bare module names the vendored modules import to
// their files (hooks.mjs imports "preact").
var importMap = map[string]string{
	"preact":       "vendor/preact.mjs",
	"preact/hooks": "vendor/hooks.mjs",
	"htm":          "vendor/htm.mjs",
}

func loadAssets() (*assets, error) {
	a := &assets{files: map[string]*asset{}}
	var names []string
	err := fs.WalkDir(web, "web", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names = append(names, strings.TrimPrefix(p, "web/"))
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	all := sha256.New()
	for _, name := range names {
		b, err := web.ReadFile("web/" + name)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(all, "%s %d\n", name, len(b))
		all.Write(b)
		if name != "index.html" {
			a.files[name] = newAsset(b, contentType(name))
		}
	}
	a.build = hex.EncodeToString(all.Sum(nil))[:16]

	page, err := web.ReadFile("web/index.html")
	if err != nil {
		return nil, err
	}
	base := basePath + "/assets/" + a.build + "/"
	imports := map[string]string{}
	for name, file := range importMap {
		if a.files[file] == nil {
			return nil, fmt.Errorf("console: import map names %s, which is not embedded", file)
		}
		imports[name] = base + file
	}
	im, err := json.Marshal(map[string]any{"imports": imports})
	if err != nil {
		return nil, err
	}
	script := string(im)
	sum := sha256.Sum256([]byte(script))
	page = bytes.ReplaceAll(page, []byte("{{importmap}}"), []byte(script))
	page = bytes.ReplaceAll(page, []byte("{{base}}"), []byte(base))
	a.index = newAsset(page, "text/html; charset=utf-8")
	a.csp = strings.Join([]string{
		"default-src 'none'",
		"script-src 'self' 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'",
		"style-src 'self'",
		"img-src 'self' data:",
		"connect-src 'self'",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
	}, "; ")
	return a, nil
}

func newAsset(b []byte, ct string) *asset {
	sum := sha256.Sum256(b)
	a := &asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	if buf.Len() < len(b)*9/10 {
		a.gz = buf.Bytes()
	}
	return a
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	}
	return "text/plain; charset=utf-8"
}

// serve writes an asset, compressed when the client accepts gzip.
func (a *asset) serve(w http.ResponseWriter, r *http.Request, cache string) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", cache)
	h.Set("ETag", a.etag)
	h.Set("Vary", "Accept-Encoding")
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if a.gz != nil && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
