# The two commands a newcomer needs:
#   make run    start the whole system on embedded defaults (gateflow dev)
#   make test   vet, lint, unit tests (-race) and integration tests on the real stack
GO          ?= go
STATICCHECK ?= staticcheck
# helm: on PATH, else where .ci/run installs it (go install into GOPATH/bin).
HELM        ?= $(shell command -v helm 2>/dev/null || echo $$($(GO) env GOPATH)/bin/helm)
CHART       := deploy/cluster/helm/gateflow
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo devel)
LDFLAGS     := -X main.version=$(VERSION)
export GOFLAGS ?= -buildvcs=false

.PHONY: run build test vet lint chart unit integration fuzz clean

run: build
	./bin/gateflow dev

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/gateflow ./cmd/gateflow

test: vet lint chart unit integration

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./...

lint:
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags integration ./...
	$(GO) run go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0 ./workflows/...

# The Helm chart: lint and render with every values example (the Go tests
# then check the renders against the real flags and the committed
# Kustomize files against the chart).
chart:
	@test -x "$(HELM)" || { echo "helm not found: go install helm.sh/helm/v4/cmd/helm@v4.3.2 (see .ci/run)"; exit 1; }
	@for v in $(CHART)/examples/values-*.yaml; do \
		$(HELM) lint --strict --quiet $(CHART) -f $$v >/dev/null || { $(HELM) lint --strict $(CHART) -f $$v; exit 1; }; \
		$(HELM) template gateflow $(CHART) -f $$v >/dev/null || exit 1; \
		echo "helm lint + template: $$v"; \
	done

# Unit tests run under -race, except in the few packages whose test binary
# links the Temporal server (its race build alone takes ~10 min cold).
unit:
	$(GO) test -race -count=1 -timeout 20m $$(.ci/unit-packages race)
	$(GO) test -count=1 -timeout 20m $$(.ci/unit-packages norace)

# Integration tests use a real Temporal server, kfake and the ClickHouse child.
integration:
	$(GO) test -tags integration -count=1 -timeout 45m -p 2 ./...

clean:
	rm -rf bin
