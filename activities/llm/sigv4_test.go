package llm

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// AWS's published SigV4 vectors (testdata/sigv4, from the
// aws-sig-v4-test-suite), signed by the Bedrock adapter's authorizer:
// the SDK's signer as the gateway calls it.
func TestSigV4TestSuite(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "sigv4", "*.req"))
	if err != nil || len(files) < 5 {
		t.Fatalf("vectors: %v %v", files, err)
	}
	signedAt := time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	creds := aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".req")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(strings.TrimSuffix(f, ".req") + ".authz")
			if err != nil {
				t.Fatal(err)
			}
			req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
			if err != nil {
				t.Fatal(err)
			}
			// ReadRequest makes a server-side request; make it a client one.
			req.RequestURI = ""
			req.URL.Scheme, req.URL.Host = "https", req.Host
			auth := newSigV4Auth("us-east-1", "service",
				func(context.Context, string) (aws.CredentialsProvider, error) {
					return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil }), nil
				},
				func() time.Time { return signedAt })
			secret, err := auth.authorize(context.Background(), req, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := req.Header.Get("Authorization"); got != strings.TrimSpace(string(want)) {
				t.Errorf("Authorization\n got: %s\nwant: %s", got, want)
			}
			if secret != creds.SecretAccessKey {
				t.Error("the secret to redact is not the secret key")
			}
		})
	}
}

// Bedrock model ids hold ':' (and ARNs '/'): the path escapes them as the
// AWS SDKs do.
func TestAWSPathEscape(t *testing.T) {
	cases := map[string]string{
		"anthropic.claude-3-haiku-20240307-v1:0":                "anthropic.claude-3-haiku-20240307-v1%3A0",
		"us.meta.llama4-scout-17b-instruct-v1:0":                "us.meta.llama4-scout-17b-instruct-v1%3A0",
		"arn:aws:bedrock:us-east-1:1:inference-profile/x.y-z~1": "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fx.y-z~1",
	}
	for in, want := range cases {
		if got := awsPathEscape(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}
