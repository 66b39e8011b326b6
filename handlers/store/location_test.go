package store

import (
	"strings"
	"testing"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
)

func TestParseLocation(t *testing.T) {
	tests := []struct {
		kind    connections.Kind
		raw     string
		want    location
		display string
	}{
		{connections.S3, "s3://b", location{Scheme: "s3", Bucket: "b"}, "s3://b"},
		{connections.S3, "s3://b/", location{Scheme: "s3", Bucket: "b"}, "s3://b"},
		{connections.S3, "s3://b/deep/prefix/", location{Scheme: "s3", Bucket: "b", Prefix: "deep/prefix"}, "s3://b/deep/prefix"},
		{connections.S3, "S3://b//p//", location{Scheme: "s3", Bucket: "b", Prefix: "p"}, "s3://b/p"},
		{connections.S3, "s3://b/with space/ü%20x", location{Scheme: "s3", Bucket: "b", Prefix: "with space/ü%20x"}, "s3://b/with space/ü%20x"},
		{connections.GCS, "gs://b/p", location{Scheme: "gs", Bucket: "b", Prefix: "p"}, "gs://b/p"},
		{connections.GCS, "gcs://b/p/q/", location{Scheme: "gcs", Bucket: "b", Prefix: "p/q"}, "gcs://b/p/q"},
		{connections.GCS, "gs://b", location{Scheme: "gs", Bucket: "b"}, "gs://b"},
		{connections.WASB, "wasbs://container@account.blob.core.windows.net/p",
			location{Scheme: "wasbs", Bucket: "container", Prefix: "p", Account: "account", Host: "account.blob.core.windows.net", Service: "https://account.blob.core.windows.net"},
			"wasbs://container@account.blob.core.windows.net/p"},
		{connections.WASB, "wasb://c@acc.blob.core.windows.net/",
			location{Scheme: "wasb", Bucket: "c", Account: "acc", Host: "acc.blob.core.windows.net", Service: "https://acc.blob.core.windows.net"},
			"wasb://c@acc.blob.core.windows.net"},
		{connections.WASB, "wasbs://c@acc.blob.core.chinacloudapi.cn/a/b",
			location{Scheme: "wasbs", Bucket: "c", Prefix: "a/b", Account: "acc", Host: "acc.blob.core.chinacloudapi.cn", Service: "https://acc.blob.core.chinacloudapi.cn"},
			"wasbs://c@acc.blob.core.chinacloudapi.cn/a/b"},
		{connections.WASB, "https://account.blob.core.windows.net/container/p",
			location{Scheme: "https", Bucket: "container", Prefix: "p", Account: "account", Host: "account.blob.core.windows.net", Service: "https://account.blob.core.windows.net"},
			"https://account.blob.core.windows.net/container/p"},
		{connections.WASB, "https://account.blob.core.windows.net/container",
			location{Scheme: "https", Bucket: "container", Account: "account", Host: "account.blob.core.windows.net", Service: "https://account.blob.core.windows.net"},
			"https://account.blob.core.windows.net/container"},
		{connections.WASB, "https://127.0.0.1:10000/devstoreaccount1/container/p/",
			location{Scheme: "https", Bucket: "container", Prefix: "p", Account: "devstoreaccount1", Host: "127.0.0.1:10000", Service: "https://127.0.0.1:10000/devstoreaccount1"},
			"https://127.0.0.1:10000/devstoreaccount1/container/p"},
		{connections.WASB, "az://container/p", location{Scheme: "az", Bucket: "container", Prefix: "p"}, "az://container/p"},
		{connections.WASB, "abfs://container/p/q", location{Scheme: "abfs", Bucket: "container", Prefix: "p/q"}, "abfs://container/p/q"},
		{connections.WASB, "abfss://container@acc.dfs.core.windows.net/p",
			location{Scheme: "abfss", Bucket: "container", Prefix: "p", Account: "acc", Host: "acc.dfs.core.windows.net", Service: "https://acc.blob.core.windows.net"},
			"abfss://container@acc.dfs.core.windows.net/p"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := parseLocation(tt.kind, tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			if got.Scheme != tt.want.Scheme || got.Bucket != tt.want.Bucket || got.Prefix != tt.want.Prefix ||
				got.Account != tt.want.Account || got.Host != tt.want.Host || got.Service != tt.want.Service || got.SAS != nil {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
			if d := got.display(); d != tt.display {
				t.Errorf("display = %q, want %q", d, tt.display)
			}
		})
	}
}

func TestParseLocationSAS(t *testing.T) {
	loc, err := parseLocation(connections.WASB, "https://acc.blob.core.windows.net/c/p?sv=2022-11-02&sp=rl&sig=c2VjcmV0")
	if err != nil {
		t.Fatal(err)
	}
	if loc.Bucket != "c" || loc.Prefix != "p" || loc.SAS.Get("sig") != "c2VjcmV0" {
		t.Fatalf("got %+v", loc)
	}
	if d := loc.display(); d != "https://acc.blob.core.windows.net/c/p" {
		t.Errorf("display %q shows the SAS token", d)
	}
}

func TestParseLocationErrors(t *testing.T) {
	tests := []struct {
		kind connections.Kind
		raw  string
	}{
		{connections.S3, "b/p"},
		{connections.S3, "s3://"},
		{connections.S3, "s3:///p"},
		{connections.S3, "gs://b"},
		{connections.S3, "s3://my bucket/p"},
		{connections.S3, "s3://user:pass@b/p"},
		{connections.GCS, "s3://b"},
		{connections.WASB, "wasbs://container/p"},
		{connections.WASB, "wasbs://container@example.com/p"},
		{connections.WASB, "wasbs://@acc.blob.core.windows.net/p"},
		{connections.WASB, "https://acc.blob.core.windows.net/"},
		{connections.WASB, "https://acc.blob.core.windows.net/c?x=1"},
		{connections.WASB, "https://127.0.0.1:10000/devstoreaccount1"},
		{connections.WASB, "s3://b"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			_, err := parseLocation(tt.kind, tt.raw)
			if err == nil {
				t.Fatal("no error")
			}
			if c := fault.ClassOf(err); c != fault.Usage {
				t.Errorf("class %v, want usage: %v", c, err)
			}
		})
	}
}

// Errors about a bucket URL quote it without its credentials or SAS token.
func TestParseLocationErrorsHideSecrets(t *testing.T) {
	for kind, raw := range map[connections.Kind]string{
		connections.S3:   "s3://AKIAEXAMPLE:SuperSecretValue123@data/prefix",
		connections.GCS:  "gs://user:SuperSecretValue123@b",
		connections.WASB: "https://acc.blob.core.windows.net/c/p?sv=1&sig=SuperSecretValue123%zz",
	} {
		_, err := parseLocation(kind, raw)
		if err == nil {
			t.Fatalf("%s: no error", raw)
		}
		if strings.Contains(err.Error(), "SuperSecretValue123") {
			t.Errorf("the error quotes the secret: %v", err)
		}
	}
}
