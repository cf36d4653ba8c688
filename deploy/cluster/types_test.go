package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
)

// kubeTypes maps apiVersion/kind to a new value of its Kubernetes API type
// (k8s.io/api, the version the module graph already has).
var kubeTypes = map[string]func() any{
	"apps/v1/Deployment":                      func() any { return new(appsv1.Deployment) },
	"apps/v1/StatefulSet":                     func() any { return new(appsv1.StatefulSet) },
	"v1/Service":                              func() any { return new(corev1.Service) },
	"v1/ConfigMap":                            func() any { return new(corev1.ConfigMap) },
	"v1/Secret":                               func() any { return new(corev1.Secret) },
	"v1/ServiceAccount":                       func() any { return new(corev1.ServiceAccount) },
	"policy/v1/PodDisruptionBudget":           func() any { return new(policyv1.PodDisruptionBudget) },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"monitoring.coreos.com/v1/ServiceMonitor": nil, // a CRD: no type here; TestChartExamples checks it
}

// TestManifestsDecodeStrictly decodes every document of the committed
// manifests and of every values example rendered by Helm into its
// Kubernetes API type, refusing unknown fields and wrong types: a
// misspelled field (which an API server would drop, or refuse with
// strict field validation) or a string where a number belongs fails here,
// without an API server. Kustomize patches decode too (they are partial
// objects of the same types). What only an API server checks (names,
// ranges, immutable fields, admission) is not covered.
func TestManifestsDecodeStrictly(t *testing.T) {
	docs := loadDocs(t, "kubernetes")
	for _, rendered := range renderExamples(t) {
		docs = append(docs, rendered...)
	}
	n := 0
	for _, d := range docs {
		if isKustomization(d) {
			continue
		}
		key := str(d.m, "apiVersion") + "/" + d.kind()
		newObj, known := kubeTypes[key]
		if !known {
			t.Errorf("%s: no Kubernetes type known for %s (add it to kubeTypes)", d, key)
			continue
		}
		if newObj == nil {
			continue
		}
		if err := decodeStrict(d.m, newObj()); err != nil {
			t.Errorf("%s: %v", d, err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no document decoded")
	}
	t.Logf("%d documents decoded into their Kubernetes types", n)

	// The check itself: a misspelled field deep in a pod and a string
	// where a number belongs are refused.
	for _, bad := range []map[string]any{
		{"apiVersion": "apps/v1", "kind": "Deployment", "spec": map[string]any{"template": map[string]any{
			"spec": map[string]any{"containers": []any{map[string]any{"name": "x", "imagePullPolicyy": "Always"}}}}}},
		{"apiVersion": "apps/v1", "kind": "Deployment", "spec": map[string]any{"replicas": "two"}},
	} {
		if err := decodeStrict(bad, new(appsv1.Deployment)); err == nil {
			t.Errorf("decodeStrict accepted %v", bad)
		}
	}
}

// decodeStrict decodes m (a parsed YAML document) into obj through JSON, as
// the API server reads it, refusing unknown fields.
func decodeStrict(m map[string]any, obj any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("to JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(obj)
}
