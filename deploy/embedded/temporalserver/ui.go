package temporalserver

import (
	"errors"
	"log/slog"
)

// uiServer serves the Temporal Web UI.
type uiServer struct{}

func startUI(host string, port int, frontend string, log *slog.Logger) (*uiServer, error) {
	return nil, errors.New("Temporal Web UI not available in this build")
}

func (u *uiServer) stop() {}
