package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// PublishProductsTool is the catalog tool the catalog-enrichment example
// calls.
const PublishProductsTool = "publish_products"

// maxPublish bounds one publish_products call.
const maxPublish = 1000

// CatalogProduct is one product given to publish_products. Stock and tags
// are taken as they come (the example passes the inventory's answer and
// the model's tags, which may be missing when a model answered badly).
type CatalogProduct struct {
	SKU   string `json:"sku" jsonschema:"the product's SKU"`
	Stock any    `json:"stock,omitempty" jsonschema:"stock information (any JSON)"`
	Tags  any    `json:"tags,omitempty" jsonschema:"tags: a list of strings (a comma-separated string is accepted too)"`
}

// PublishInput is publish_products' input.
type PublishInput struct {
	Products []CatalogProduct `json:"products" jsonschema:"the products to publish"`
}

// PublishedProduct is one product as published.
type PublishedProduct struct {
	SKU  string   `json:"sku"`
	URL  string   `json:"url"`
	Tags []string `json:"tags"`
}

// PublishOutput is publish_products' structured result.
type PublishOutput struct {
	Published int                `json:"published"`
	Products  []PublishedProduct `json:"products"`
}

// newCatalog is an MCP server (the official SDK, stateless streamable
// HTTP at /mcp) with the publish_products tool.
func newCatalog(log *slog.Logger) http.Handler {
	srv := mcp.NewServer(&mcp.Implementation{Name: "catalog", Title: "Demo catalog (gateflow dev)", Version: "1"}, &mcp.ServerOptions{
		Instructions: "A canned demo catalog started by gateflow dev: publish_products answers with product URLs and stores nothing.",
	})
	mcp.AddTool(srv, &mcp.Tool{
		Name:        PublishProductsTool,
		Title:       "Publish products",
		Description: "Publish products to the (demo) catalogue; answers each product's URL and tags.",
	}, publishProducts)
	mux := http.NewServeMux()
	about(mux, Catalog, "An MCP server (streamable HTTP) at /mcp with the tool "+PublishProductsTool+".")
	mux.Handle("/mcp", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true, Logger: log}))
	return mux
}

func publishProducts(_ context.Context, _ *mcp.CallToolRequest, in PublishInput) (*mcp.CallToolResult, PublishOutput, error) {
	switch {
	case len(in.Products) == 0:
		return nil, PublishOutput{}, errors.New("products: at least one product is required")
	case len(in.Products) > maxPublish:
		return nil, PublishOutput{}, fmt.Errorf("products: at most %d per call", maxPublish)
	}
	out := PublishOutput{Products: make([]PublishedProduct, 0, len(in.Products))}
	for i, p := range in.Products {
		if strings.TrimSpace(p.SKU) == "" {
			return nil, PublishOutput{}, fmt.Errorf("products[%d].sku: required", i)
		}
		out.Products = append(out.Products, PublishedProduct{
			SKU:  p.SKU,
			URL:  "https://catalog.example.com/p/" + p.SKU,
			Tags: tagList(p.Tags),
		})
	}
	out.Published = len(out.Products)
	return nil, out, nil
}

// tagList accepts tags as a list of strings (other items are printed) or a
// comma-separated string.
func tagList(v any) []string {
	out := []string{}
	switch t := v.(type) {
	case []any:
		for _, x := range t {
			if s, ok := x.(string); ok {
				out = append(out, s)
			} else if x != nil {
				out = append(out, fmt.Sprint(x))
			}
		}
	case string:
		for s := range strings.SplitSeq(t, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}
