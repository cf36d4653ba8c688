package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxBody bounds a request body of the demo services.
const maxBody = 1 << 20

// about answers GET / of every demo service, so that whoever finds one
// running knows what it is.
func about(mux *http.ServeMux, name, what string) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"service": name,
			"demo":    true,
			"about":   what + " A canned stand-in started by `gateflow dev` (turn off with --demo-services=false).",
		})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// readJSON decodes a JSON request body (at most maxBody) into v.
func readJSON(w http.ResponseWriter, r *http.Request, v any) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body above %d bytes", maxBody))
		} else {
			writeError(w, http.StatusBadRequest, "bad_body", err.Error())
		}
		return nil, false
	}
	if err := json.Unmarshal(body, v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_json", "body: "+err.Error())
		return nil, false
	}
	return body, true
}

// shortHash is a stable id fragment of s.
func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:6])
}

// newEcho: POST /echo answers the JSON body it received. Every answer
// names the instance (X-Demo-Instance), GET /instance too, and the gateway
// demo can make an instance fail: POST /demo/fail answers 503 to every
// call (and to GET /health) until POST /demo/recover.
func newEcho(instance string) http.Handler {
	var failing atomic.Bool
	mux := http.NewServeMux()
	about(mux, Echo, "POST /echo answers the JSON body it receives.")
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		var v json.RawMessage
		body, ok := readJSON(w, r, &v)
		if !ok {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(bytes.TrimSpace(body))
	})
	mux.HandleFunc("GET /instance", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		writeJSON(w, http.StatusOK, map[string]any{"instance": instance, "path": r.URL.Path, "tenant": r.Header.Get("Gateflow-Tenant")})
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("POST /demo/fail", func(w http.ResponseWriter, _ *http.Request) {
		failing.Store(true)
		writeJSON(w, http.StatusOK, map[string]any{"instance": instance, "failing": true})
	})
	mux.HandleFunc("POST /demo/recover", func(w http.ResponseWriter, _ *http.Request) {
		failing.Store(false)
		writeJSON(w, http.StatusOK, map[string]any{"instance": instance, "failing": false})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Demo-Instance", instance)
		if failing.Load() && !strings.HasPrefix(r.URL.Path, "/demo/") {
			writeError(w, http.StatusServiceUnavailable, "demo_failure", "instance "+instance+" fails on purpose (POST /demo/recover)")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// Item is a line of a reservation.
type Item struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

// OutOfStockPrefix marks SKUs the demo inventory has none of: reserving
// one answers 409 (the order example then fails and compensates nothing).
const OutOfStockPrefix = "OUT-"

// Stock is the demo inventory's stock of a SKU: 0 for SKUs starting with
// OutOfStockPrefix, else a stable number between 100 and 999.
func Stock(sku string) int {
	if strings.HasPrefix(strings.ToUpper(sku), OutOfStockPrefix) {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(sku))
	return 100 + int(h.Sum32()%900)
}

// newInventory: reservations (create, release) and stock by SKU. Ids are
// derived from the request, so a retried or replayed call (a workflow
// resumed after a restart) gets the same answer.
func newInventory() http.Handler {
	mux := http.NewServeMux()
	about(mux, Inventory, "POST /reservations {reference, items: [{sku, qty}]}, DELETE /reservations/{id}, GET /stock/{sku}. "+
		"SKUs starting with "+OutOfStockPrefix+" are out of stock (409).")
	mux.HandleFunc("POST /reservations", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Reference string `json:"reference"`
			Items     []Item `json:"items"`
		}
		if _, ok := readJSON(w, r, &in); !ok {
			return
		}
		if in.Reference == "" || len(in.Items) == 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "reference and at least one item are required")
			return
		}
		for i, it := range in.Items {
			if it.SKU == "" || it.Qty < 1 {
				writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("items[%d]: sku and qty >= 1 are required", i))
				return
			}
			if it.Qty > Stock(it.SKU) {
				writeJSON(w, http.StatusConflict, map[string]any{"error": map[string]any{
					"code": "insufficient_stock", "message": fmt.Sprintf("only %d of %s in stock", Stock(it.SKU), it.SKU), "sku": it.SKU}})
				return
			}
		}
		writeJSON(w, http.StatusCreated, map[string]any{
			"id": "res-" + in.Reference, "reference": in.Reference, "items": in.Items, "status": "reserved"})
	})
	mux.HandleFunc("DELETE /reservations/{id}", func(w http.ResponseWriter, r *http.Request) {
		// Releasing is idempotent: an unknown or released id is fine too.
		writeJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "status": "released"})
	})
	mux.HandleFunc("GET /stock/{sku}", func(w http.ResponseWriter, r *http.Request) {
		sku := r.PathValue("sku")
		writeJSON(w, http.StatusOK, map[string]any{"sku": sku, "stock": Stock(sku), "warehouse": "demo"})
	})
	return mux
}

// DeclineAbove is the amount above which the demo payments service
// declines a charge (402), to show a failing step and its compensations.
const DeclineAbove = 100000

// maxIdempotencyKeys bounds the demo payments' memory of keys.
const maxIdempotencyKeys = 10000

// payments remembers charges by idempotency key, so that a repeated
// request with the same key returns the first charge (200 instead of 201)
// and one with another body is refused (409), as real payment APIs do.
type payments struct {
	mu    sync.Mutex
	byKey map[string]paymentEntry
	order []string
}

type paymentEntry struct {
	bodyHash string
	charge   map[string]any
}

func newPayments() http.Handler {
	p := &payments{byKey: map[string]paymentEntry{}}
	mux := http.NewServeMux()
	about(mux, Payments, "POST /charges {amount, customer} with Authorization: Bearer <any token> and an optional "+
		"Idempotency-Key (honoured), POST /refunds {charge}. Amounts above 100000 are declined (402).")
	mux.HandleFunc("POST /charges", p.charge)
	mux.HandleFunc("POST /refunds", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(w, r) {
			return
		}
		var in struct {
			Charge string `json:"charge"`
		}
		if _, ok := readJSON(w, r, &in); !ok {
			return
		}
		if in.Charge == "" {
			writeError(w, http.StatusBadRequest, "bad_request", "charge is required")
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"id": "re_" + strings.TrimPrefix(in.Charge, "ch_"), "charge": in.Charge, "status": "refunded"})
	})
	return mux
}

func authorized(w http.ResponseWriter, r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		writeError(w, http.StatusUnauthorized, "unauthorized", "Authorization: Bearer <token> is required (any token in the demo)")
		return false
	}
	return true
}

func (p *payments) charge(w http.ResponseWriter, r *http.Request) {
	if !authorized(w, r) {
		return
	}
	var in struct {
		Amount   *float64 `json:"amount"`
		Customer string   `json:"customer"`
	}
	body, ok := readJSON(w, r, &in)
	if !ok {
		return
	}
	if in.Amount == nil || *in.Amount < 0 || in.Customer == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "amount >= 0 and customer are required")
		return
	}
	key := r.Header.Get("Idempotency-Key")
	canon, _ := json.Marshal(in)
	bodyHash := shortHash(string(canon))
	if key != "" {
		p.mu.Lock()
		prev, seen := p.byKey[key]
		p.mu.Unlock()
		if seen {
			if prev.bodyHash != bodyHash {
				writeError(w, http.StatusConflict, "idempotency_conflict", "this Idempotency-Key was used with another body")
				return
			}
			w.Header().Set("Idempotent-Replayed", "true")
			writeJSON(w, http.StatusOK, prev.charge)
			return
		}
	}
	if *in.Amount > DeclineAbove {
		writeError(w, http.StatusPaymentRequired, "card_declined", fmt.Sprintf("the demo declines amounts above %d", DeclineAbove))
		return
	}
	seed := key
	if seed == "" {
		seed = string(body) // without a key the id still depends only on the request
	}
	charge := map[string]any{"id": "ch_" + shortHash(seed), "amount": *in.Amount, "customer": in.Customer, "status": "succeeded"}
	if key != "" {
		p.mu.Lock()
		if _, raced := p.byKey[key]; !raced {
			p.byKey[key] = paymentEntry{bodyHash: bodyHash, charge: charge}
			p.order = append(p.order, key)
			if len(p.order) > maxIdempotencyKeys {
				delete(p.byKey, p.order[0])
				p.order = p.order[1:]
			}
		}
		p.mu.Unlock()
	}
	writeJSON(w, http.StatusCreated, charge)
}

// newShipping: POST /shipments creates a shipment label.
func newShipping() http.Handler {
	mux := http.NewServeMux()
	about(mux, Shipping, "POST /shipments {reference, approved_by} creates a shipment; POST /pickups {order_id, callback_url} books a pickup and confirms it a second later by POSTing to callback_url.")
	mux.HandleFunc("POST /pickups", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			OrderID     string `json:"order_id"`
			CallbackURL string `json:"callback_url"`
		}
		if _, ok := readJSON(w, r, &in); !ok {
			return
		}
		if in.OrderID == "" || in.CallbackURL == "" {
			writeError(w, http.StatusBadRequest, "bad_request", "order_id and callback_url are required")
			return
		}
		// Asynchronous like a real carrier: accepted now, confirmed
		// through the callback URL later.
		go confirmPickup(in.CallbackURL, in.OrderID)
		writeJSON(w, http.StatusAccepted, map[string]any{"order_id": in.OrderID, "status": "booking"})
	})
	mux.HandleFunc("POST /shipments", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Reference  string `json:"reference"`
			ApprovedBy any    `json:"approved_by"`
		}
		if _, ok := readJSON(w, r, &in); !ok {
			return
		}
		if in.Reference == "" {
			writeError(w, http.StatusBadRequest, "bad_request", "reference is required")
			return
		}
		id := "shp-" + in.Reference
		writeJSON(w, http.StatusCreated, map[string]any{
			"id": id, "reference": in.Reference, "carrier": "demo-post", "status": "label_created",
			"tracking_url": "https://tracking.example.com/" + id,
		})
	})
	return mux
}

// confirmPickup completes a pickup booking through its callback URL, a
// second after the call, retrying a few times.
func confirmPickup(callbackURL, orderID string) {
	body, _ := json.Marshal(map[string]any{"output": map[string]any{
		"pickup_id": "pck-" + shortHash(orderID), "order_id": orderID, "carrier": "demo-post", "window": "tomorrow 9-12",
	}})
	client := &http.Client{Timeout: 5 * time.Second}
	for attempt := range 5 {
		time.Sleep(time.Duration(attempt+1) * time.Second)
		resp, err := client.Post(callbackURL, "application/json", bytes.NewReader(body))
		if err != nil {
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode < 500 {
			return
		}
	}
}

// maxNotifications is how many notifications GET /notifications keeps.
const maxNotifications = 50

// notifications accepts messages and shows the last ones, so a newcomer
// can read what an orchestration sent.
type notifications struct {
	mu   sync.Mutex
	last []map[string]any
}

func newNotifications() http.Handler {
	n := &notifications{}
	mux := http.NewServeMux()
	about(mux, Notifications, "POST /notifications/{id} {to, text} accepts a message; GET /notifications lists the last 50.")
	mux.HandleFunc("POST /notifications/{id}", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			To   string `json:"to"`
			Text string `json:"text"`
		}
		if _, ok := readJSON(w, r, &in); !ok {
			return
		}
		if in.To == "" {
			writeError(w, http.StatusBadRequest, "bad_request", "to is required")
			return
		}
		msg := map[string]any{"id": "ntf-" + r.PathValue("id"), "to": in.To, "text": in.Text, "status": "queued"}
		n.mu.Lock()
		n.last = append(n.last, msg)
		if len(n.last) > maxNotifications {
			n.last = n.last[len(n.last)-maxNotifications:]
		}
		n.mu.Unlock()
		writeJSON(w, http.StatusAccepted, msg)
	})
	mux.HandleFunc("GET /notifications", func(w http.ResponseWriter, _ *http.Request) {
		n.mu.Lock()
		items := append([]map[string]any{}, n.last...)
		n.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"items": items})
	})
	return mux
}
