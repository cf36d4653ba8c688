package llm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// DefaultAWSCredentials resolves credentials with the AWS SDK's default
// chain (aws-sdk-go-v2/config.LoadDefaultConfig) for region.
func DefaultAWSCredentials(ctx context.Context, region string) (aws.CredentialsProvider, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return nil, err
	}
	if cfg.Credentials == nil {
		return nil, errors.New("no AWS credentials found")
	}
	return cfg.Credentials, nil
}

// CloudPlatformScope is the OAuth2 scope of Vertex AI calls.
const CloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"

// DefaultGoogleTokenSource reads Application Default Credentials with
// golang.org/x/oauth2/google. Token refreshes outlive any one call, so
// they do not use the caller's context.
func DefaultGoogleTokenSource(context.Context) (oauth2.TokenSource, error) {
	return google.DefaultTokenSource(context.Background(), CloudPlatformScope)
}

// authorizer puts a provider's credential on a request that is otherwise
// complete (body and headers set). It returns the secret it used, so that
// the gateway can redact it from provider error messages.
type authorizer interface {
	authorize(ctx context.Context, r *http.Request, body []byte) (secret string, err error)
}

// headerAuth sends an API key in a header: "Authorization: Bearer <key>"
// (prefix "Bearer "), Azure's "api-key", Anthropic's "x-api-key",
// Google's "x-goog-api-key". A provider without a configured key (a local
// server) sends nothing.
type headerAuth struct {
	cred   *credential
	header string
	prefix string
}

func (a headerAuth) authorize(_ context.Context, r *http.Request, _ []byte) (string, error) {
	key, err := a.cred.get()
	if err != nil {
		return "", err
	}
	if key != "" {
		r.Header.Set(a.header, a.prefix+key)
	}
	return key, nil
}

// AWSCredentialsFunc returns the credentials provider of an AWS region.
// The default (DefaultAWSCredentials) follows the SDK's usual chain:
// environment, shared config and credentials files (profiles, SSO), web
// identity (EKS), ECS and EC2 instance roles.
type AWSCredentialsFunc func(ctx context.Context, region string) (aws.CredentialsProvider, error)

// sigv4Auth signs Bedrock requests with AWS Signature Version 4, using the
// AWS SDK's signer and credentials chain. Credentials are resolved on the
// first call (not at configuration time: a process without AWS access
// still starts) and cached by the SDK until they expire.
type sigv4Auth struct {
	region  string
	service string
	signer  *v4.Signer
	load    AWSCredentialsFunc
	now     func() time.Time

	mu    sync.Mutex
	creds aws.CredentialsProvider
}

func newSigV4Auth(region, service string, load AWSCredentialsFunc, now func() time.Time) *sigv4Auth {
	return &sigv4Auth{region: region, service: service, signer: v4.NewSigner(), load: load, now: now}
}

func (a *sigv4Auth) provider(ctx context.Context) (aws.CredentialsProvider, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.creds != nil {
		return a.creds, nil
	}
	p, err := a.load(ctx, a.region)
	if err != nil {
		return nil, fmt.Errorf("AWS credentials: %w", err)
	}
	a.creds = p
	return p, nil
}

func (a *sigv4Auth) authorize(ctx context.Context, r *http.Request, body []byte) (string, error) {
	p, err := a.provider(ctx)
	if err != nil {
		return "", err
	}
	creds, err := p.Retrieve(ctx)
	if err != nil {
		// The SDK's messages name the sources it tried, never a secret.
		return "", fmt.Errorf("AWS credentials: %w", err)
	}
	sum := sha256.Sum256(body)
	if err := a.signer.SignHTTP(ctx, creds, r, hex.EncodeToString(sum[:]), a.service, a.region, a.now()); err != nil {
		return "", fmt.Errorf("sign request: %w", err)
	}
	return creds.SecretAccessKey, nil
}

// GoogleTokenSourceFunc returns the OAuth2 token source of Vertex AI
// calls. The default (DefaultGoogleTokenSource) reads Application Default
// Credentials: GOOGLE_APPLICATION_CREDENTIALS, gcloud's user credentials,
// or the metadata server on Google Cloud.
type GoogleTokenSourceFunc func(ctx context.Context) (oauth2.TokenSource, error)

// oauthAuth sends a Bearer access token from a token source (refreshed by
// the source before it expires).
type oauthAuth struct {
	load GoogleTokenSourceFunc

	mu  sync.Mutex
	src oauth2.TokenSource
}

func (a *oauthAuth) source(ctx context.Context) (oauth2.TokenSource, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.src != nil {
		return a.src, nil
	}
	src, err := a.load(ctx)
	if err != nil {
		return nil, fmt.Errorf("application default credentials: %w", err)
	}
	a.src = oauth2.ReuseTokenSource(nil, src)
	return a.src, nil
}

func (a *oauthAuth) authorize(ctx context.Context, r *http.Request, _ []byte) (string, error) {
	src, err := a.source(ctx)
	if err != nil {
		return "", err
	}
	tok, err := src.Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			// The token endpoint's body may echo request parameters; keep
			// only the status and error code.
			status := 0
			if re.Response != nil {
				status = re.Response.StatusCode
			}
			return "", fmt.Errorf("access token: %q (HTTP %d)", re.ErrorCode, status)
		}
		return "", fmt.Errorf("access token: %w", err)
	}
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return tok.AccessToken, nil
}
