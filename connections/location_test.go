package connections

import (
	"strings"
	"testing"

	"github.com/initializer/initializer/fault"
)

func TestParseLocation(t *testing.T) {
	tests := []struct {
		kind    Kind
		raw     string
		want    Location
		display string
	}{
		{S3, "s3://b", Location{Scheme: "s3", Bucket: "b"}, "s3://b"},
		{S3, "s3://b/", Location{Scheme: "s3", Bucket: "b"}, "s3://b"},
		{S3, "s3://b/deep/prefix/", Location{Scheme: "s3", Bucket: "b", Prefix: "deep/prefix", Dir: true}, "s3://b/deep/prefix"},
		{S3, "S3://b//p//", Location{Scheme: "s3", Bucket: "b", Prefix: "p", Dir: true}, "s3://b/p"},
		{S3, "s3://b/with space/ü%20x", Location{Scheme: "s3", Bucket: "b", Prefix: "with space/ü%20x"}, "s3://b/with space/ü%20x"},
		{GCS, "gs://b/p", Location{Scheme: "gs", Bucket: "b", Prefix: "p"}, "gs://b/p"},
		{GCS, "gcs://b/p/q/", Location{Scheme: "gcs", Bucket: "b", Prefix: "p/q", Dir: true}, "gcs://b/p/q"},
		{GCS, "gs://b", Location{Scheme: "gs", Bucket: "b"}, "gs://b"},
		{WASB, "wasbs://container@account.blob.core.windows.net/p",
			Location{Scheme: "wasbs", Bucket: "container", Prefix: "p", Account: "account", Host: "account.blob.core.windows.net", Service: "https://account.blob.core.windows.net"},
			"wasbs://container@account.blob.core.windows.net/p"},
		{WASB, "wasb://c@acc.blob.core.windows.net/",
			Location{Scheme: "wasb", Bucket: "c", Account: "acc", Host: "acc.blob.core.windows.net", Service: "https://acc.blob.core.windows.net"},
			"wasb://c@acc.blob.core.windows.net"},
		{WASB, "wasbs://c@acc.blob.core.chinacloudapi.cn/a/b",
			Location{Scheme: "wasbs", Bucket: "c", Prefix: "a/b", Account: "acc", Host: "acc.blob.core.chinacloudapi.cn", Service: "https://acc.blob.core.chinacloudapi.cn"},
			"wasbs://c@acc.blob.core.chinacloudapi.cn/a/b"},
		{WASB, "https://account.blob.core.windows.net/container/p",
			Location{Scheme: "https", Bucket: "container", Prefix: "p", Account: "account", Host: "account.blob.core.windows.net", Service: "https://account.blob.core.windows.net"},
			"https://account.blob.core.windows.net/container/p"},
		{WASB, "https://account.blob.core.windows.net/container/with%20space/f%25%C3%BC.txt",
			Location{Scheme: "https", Bucket: "container", Prefix: "with space/f%ü.txt", Account: "account", Host: "account.blob.core.windows.net", Service: "https://account.blob.core.windows.net"},
			"https://account.blob.core.windows.net/container/with%20space/f%25%C3%BC.txt"},
		{WASB, "https://account.blob.core.windows.net/container",
			Location{Scheme: "https", Bucket: "container", Account: "account", Host: "account.blob.core.windows.net", Service: "https://account.blob.core.windows.net"},
			"https://account.blob.core.windows.net/container"},
		{WASB, "https://127.0.0.1:10000/devstoreaccount1/container/p/",
			Location{Scheme: "https", Bucket: "container", Prefix: "p", Dir: true, Account: "devstoreaccount1", Host: "127.0.0.1:10000", Service: "https://127.0.0.1:10000/devstoreaccount1"},
			"https://127.0.0.1:10000/devstoreaccount1/container/p"},
		{WASB, "az://container/p", Location{Scheme: "az", Bucket: "container", Prefix: "p"}, "az://container/p"},
		{WASB, "abfs://container/p/q", Location{Scheme: "abfs", Bucket: "container", Prefix: "p/q"}, "abfs://container/p/q"},
		{WASB, "abfss://container@acc.dfs.core.windows.net/p",
			Location{Scheme: "abfss", Bucket: "container", Prefix: "p", Account: "acc", Host: "acc.dfs.core.windows.net", Service: "https://acc.blob.core.windows.net"},
			"abfss://container@acc.dfs.core.windows.net/p"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := ParseLocation(tt.kind, tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			if got.Scheme != tt.want.Scheme || got.Bucket != tt.want.Bucket || got.Prefix != tt.want.Prefix ||
				got.Account != tt.want.Account || got.Host != tt.want.Host || got.Service != tt.want.Service || got.SAS != nil ||
				got.Dir != tt.want.Dir {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
			if d := got.Display(); d != tt.display {
				t.Errorf("display = %q, want %q", d, tt.display)
			}
		})
	}
}

func TestParseLocationSAS(t *testing.T) {
	loc, err := ParseLocation(WASB, "https://acc.blob.core.windows.net/c/p?sv=2022-11-02&sp=rl&sig=c2VjcmV0")
	if err != nil {
		t.Fatal(err)
	}
	if loc.Bucket != "c" || loc.Prefix != "p" || loc.SAS.Get("sig") != "c2VjcmV0" {
		t.Fatalf("got %+v", loc)
	}
	if d := loc.Display(); d != "https://acc.blob.core.windows.net/c/p" {
		t.Errorf("display %q shows the SAS token", d)
	}
}

func TestParseLocationErrors(t *testing.T) {
	tests := []struct {
		kind Kind
		raw  string
	}{
		{S3, "b/p"},
		{S3, "s3://"},
		{S3, "s3:///p"},
		{S3, "gs://b"},
		{S3, "s3://my bucket/p"},
		{S3, "s3://user:pass@b/p"},
		{GCS, "s3://b"},
		{WASB, "wasbs://container/p"},
		{WASB, "wasbs://container@example.com/p"},
		{WASB, "wasbs://@acc.blob.core.windows.net/p"},
		{WASB, "https://acc.blob.core.windows.net/"},
		{WASB, "https://acc.blob.core.windows.net/c?x=1"},
		{WASB, "https://127.0.0.1:10000/devstoreaccount1"},
		{WASB, "s3://b"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			_, err := ParseLocation(tt.kind, tt.raw)
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
	for kind, raw := range map[Kind]string{
		S3:   "s3://AKIAEXAMPLE:SuperSecretValue123@data/prefix",
		GCS:  "gs://user:SuperSecretValue123@b",
		WASB: "https://acc.blob.core.windows.net/c/p?sv=1&sig=SuperSecretValue123%zz",
	} {
		_, err := ParseLocation(kind, raw)
		if err == nil {
			t.Fatalf("%s: no error", raw)
		}
		if strings.Contains(err.Error(), "SuperSecretValue123") {
			t.Errorf("the error quotes the secret: %v", err)
		}
	}
}

func TestShownURL(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{"s3://bucket/prefix", "s3://bucket/prefix"},
		{"s3://bucket/people/a@example.com/x", "s3://bucket/people/a@example.com/x"},
		{"s3://AKIAEXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY@my-bucket/prefix", "s3://[redacted]@my-bucket/prefix"},
		{"s3://TOKEN@bucket/p", "s3://[redacted]@bucket/p"},
		{"gs://user:pa/ss@bucket", "gs://[redacted]@bucket"},
		{"wasbs://container@acct.blob.core.windows.net/p", "wasbs://container@acct.blob.core.windows.net/p"},
		{"wasbs://container:pa/ss@acct.blob.core.windows.net/p", "wasbs://container:[redacted]@acct.blob.core.windows.net/p"},
		{"https://acct.blob.core.windows.net/c/p?sv=1&sig=SECRET", "https://acct.blob.core.windows.net/c/p?[redacted]"},
		{"no-scheme", "no-scheme"},
		{"s3://AKIAEXAMPLE:Sup3r?S3cret@data/ds", "s3://[redacted]@data/ds"},
		{" s3://AKIAEXAMPLE:Sup3rS3cret@data/ds", "s3://[redacted]@data/ds"},
		{"s3://bucket/p?x=1", "s3://bucket/p?[redacted]"},
	} {
		if got := shownURL(tt.raw); got != tt.want {
			t.Errorf("shownURL(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
	// Through the catalog's validation, which quotes the URL.
	_, err := Parse([]byte(`[{"name":"a","kind":"s3","schema":{"bucket":"s3://AKIAKEYID:se/cr/et@b/p"}}]`), "doc")
	if err == nil || strings.Contains(err.Error(), "se/cr/et") || strings.Contains(err.Error(), "AKIAKEYID") || !strings.Contains(err.Error(), "credentials do not belong") {
		t.Errorf("the catalog's error shows the credentials: %v", err)
	}
}
