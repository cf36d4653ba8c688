package main

import (
	"strings"
	"testing"
)

func TestClickHouseDSNErrorsHideThePassword(t *testing.T) {
	for _, dsn := range []string{
		"clickhouse://user:s3cr3t-pw@127.0.0.1:9000/db?dial_timeout=notaduration",
		"clickhouse://user:s3cr3t-pw@127.0.0.1:9000/db?max_open_conns=x",
		"clickhouse://user:s3cr3t%2Dpw@127.0.0.1:9000/db?read_timeout=soon",
	} {
		err := clickhouseConfig{DSN: dsn}.validate()
		if err == nil {
			t.Errorf("%s: accepted", dsn)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error shows the password: %v", err)
		}
		if !strings.Contains(err.Error(), "--clickhouse-dsn") {
			t.Errorf("error does not name the flag: %v", err)
		}
	}
	if err := (clickhouseConfig{DSN: "clickhouse://u:p@127.0.0.1:9000/db"}).validate(); err != nil {
		t.Fatal(err)
	}
}
