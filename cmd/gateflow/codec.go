package main

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/codecapi"
	"github.com/gateflow/gateflow/workflows/payloadcodec"
)

// payloadCodec loads --payload-key-file: nil when payloads are not
// encrypted. Every process of a deployment (ingress, worker, dev) must load
// the same file, or one cannot read what another wrote.
func (c temporalConfig) payloadCodec() (*payloadcodec.Codec, error) {
	if c.PayloadKeyFile == "" {
		return nil, nil
	}
	codec, err := payloadcodec.LoadFile(c.PayloadKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--payload-key-file: %w", err)
	}
	return codec, nil
}

// codecGroups returns the codec endpoint for the Temporal Web UI and CLI
// when payloads are encrypted and --codec-tenant names the operators'
// tenant, whose admin keys may use it.
func codecGroups(cfg ingressConfig, codec *payloadcodec.Codec) ([]api.Group, error) {
	if codec == nil || cfg.CodecTenant == "" {
		return nil, nil
	}
	g, err := codecapi.Routes(codec, codecapi.Options{Tenant: cfg.CodecTenant, AllowedOrigin: cfg.CodecUIOrigin})
	if err != nil {
		return nil, err
	}
	return []api.Group{g}, nil
}

// validateCodec checks the codec endpoint's flags.
func (c ingressConfig) validateCodec() error {
	var errs []error
	if c.CodecTenant != "" && c.Temporal.PayloadKeyFile == "" {
		errs = append(errs, errors.New("--codec-tenant: the codec endpoint needs --payload-key-file"))
	}
	if c.CodecUIOrigin != "" {
		u, err := url.Parse(c.CodecUIOrigin)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("--codec-ui-origin %q: want scheme://host[:port] (the Web UI's origin)", c.CodecUIOrigin))
		}
		if c.CodecTenant == "" {
			errs = append(errs, errors.New("--codec-ui-origin: set --codec-tenant too (the endpoint is off without it)"))
		}
	}
	return errors.Join(errs...)
}
