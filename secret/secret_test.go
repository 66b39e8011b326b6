package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestValueNeverPrints(t *testing.T) {
	v := New("s3cr3t-value", true, "/var/secret/KEY")
	for _, s := range []string{
		fmt.Sprint(v), fmt.Sprintf("%v %s %q %#v %+v", v, v, v, v, v),
		fmt.Sprintf("%v", struct{ K Value }{v}),
	} {
		if strings.Contains(s, "s3cr3t") {
			t.Errorf("leaked: %s", s)
		}
	}
	b, _ := json.Marshal(map[string]Value{"k": v})
	if strings.Contains(string(b), "s3cr3t") {
		t.Errorf("json leaked: %s", b)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "v", v)
	if strings.Contains(buf.String(), "s3cr3t") {
		t.Errorf("slog leaked: %s", buf.String())
	}
	if v.Reveal() != "s3cr3t-value" || Plain("abc").String() != "abc" {
		t.Error("Reveal/Plain")
	}
}

func TestScrub(t *testing.T) {
	New("tok/en+with spaces", true, "").Reveal()
	got := Scrub(`GET https://user:pa55word@host/x failed: token "tok/en+with spaces" or tok%2Fen%2Bwith+spaces; see https://host/y`)
	for _, bad := range []string{"pa55word", "tok/en", "tok%2F"} {
		if strings.Contains(got, bad) {
			t.Errorf("Scrub left %q in %s", bad, got)
		}
	}
	if !strings.Contains(got, "https://user:[redacted]@host/x") || !strings.Contains(got, "https://host/y") {
		t.Errorf("Scrub mangled URLs: %s", got)
	}
	if got := Scrub("clone ssh://git@host:22/r.git and https://tok3n@host/r"); got != "clone ssh://git@host:22/r.git and https://[redacted]@host/r" {
		t.Errorf("userinfo: %s", got)
	}
	if got := Scrub("use wasbs://container@account.blob.core.windows.net/path"); got != "use wasbs://container@account.blob.core.windows.net/path" {
		t.Errorf("wasbs container: %s", got)
	}
	if got := Scrub("url=abfss://data@acct.dfs.core.windows.net/a"); got != "url=abfss://data@acct.dfs.core.windows.net/a" {
		t.Errorf("abfss container: %s", got)
	}
	// A password with a / ? or #: the last @ of the URL ends it; a port
	// and an @ in a path are left alone.
	for in, want := range map[string]string{
		`bucket "s3://AKIA:wJal/K7MD/bPx@my-bucket/train"`: `bucket "s3://AKIA:[redacted]@my-bucket/train"`,
		"https://user:pa?ss#w@host/p and more":             "https://user:[redacted]@host/p and more",
		"see https://host:8080/people/a@example.com":       "see https://host:8080/people/a@example.com",
		"see https://host/people/a@example.com":            "see https://host/people/a@example.com",
	} {
		if got := Scrub(in); got != want {
			t.Errorf("Scrub(%q) = %q, want %q", in, got, want)
		}
	}
	// A multi-line secret (a PEM key): a line of its body printed alone is
	// blanked; its armour is not a secret.
	New("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEF\nAASCBKcwggSjAgEAAoIBAQC7=\n-----END PRIVATE KEY-----\n", true, "").Reveal()
	if got := Scrub("line 2: MIIEvQIBADANBgkqhkiG9w0BAQEF; line 3: AASCBKcwggSjAgEAAoIBAQC7=; -----BEGIN PRIVATE KEY-----"); got != "line 2: [redacted]; line 3: [redacted]; -----BEGIN PRIVATE KEY-----" {
		t.Errorf("a line of a multi-line secret: %s", got)
	}
	// An .env file and a .pgpass line: the password's value, and the
	// lines that hold it, are blanked; the other settings are not.
	New("DB_HOST=db.internal\nDB_USER=analyst\nDB_PASSWORD=S3cure-Passw0rd!2024\ndb.internal:5432:mydb:analyst:pgpass123\n", true, "").Reveal()
	if got := Scrub("DB_HOST=db.internal; pw S3cure-Passw0rd!2024; DB_PASSWORD=S3cure-Passw0rd!2024; db.internal:5432:mydb:analyst:pgpass123"); got != "DB_HOST=db.internal; pw [redacted]; [redacted]; [redacted]" {
		t.Errorf("an .env file's parts: %s", got)
	}
	// More of what users mount: an .env with export and comments, a
	// .netrc, htpasswd, an AWS credentials file, a Docker config, a
	// kubeconfig's exec env. What is secret is blanked where printed
	// alone; the public parts are not.
	New(strings.Join([]string{
		"# production settings",
		"export DB_PASSWORD=Xk9pLmQ2rT",
		`DB_PASS="Hunter2Secret" # rotated 2024`,
		"AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey=Zm9vYmFyWm9vYmFyWm9vYmFyQUJD==;EndpointSuffix=core.windows.net",
		"SLACK_WEBHOOK_URL=https://hooks.slack.com/services/T0123ABCD/B0123ABCD/abcdefXYZ1234567890abcde",
		"MYSQL_ROOT_PW=RootPw12345",
		"S3_KEY_PREFIX=datasets/train",
		"machine github.com login octocat password ghp_R4nd0mT0kenValue",
		"  password GlSecretPw99",
		"admin:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/",
		"[default]",
		"aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
		"aws_secret_access_key = wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
		`"credsStore": "desktop",`,
		`"token_uri": "https://oauth2.googleapis.com/token",`,
		"      - name: AWS_SECRET_ACCESS_KEY",
		"        value: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	}, "\n")+"\n", true, "").Reveal()
	for _, leak := range []string{"Xk9pLmQ2rT", "Hunter2Secret", "Zm9vYmFyWm9vYmFyWm9vYmFyQUJD", "abcdefXYZ1234567890abcde", "RootPw12345",
		"ghp_R4nd0mT0kenValue", "GlSecretPw99", "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/", "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"} {
		if got := Scrub("printed: " + leak); got != "printed: [redacted]" {
			t.Errorf("a secret printed alone: %s", got)
		}
	}
	for _, public := range []string{"# production settings", "[default]", "desktop", "https://oauth2.googleapis.com/token", "datasets/train", "AKIAIOSFODNN7EXAMPLE", "github.com", "octocat"} {
		if got := Scrub("printed: " + public); got != "printed: "+public {
			t.Errorf("public structure scrubbed: %s", got)
		}
	}
	// A kubeconfig: its token and key data are blanked where printed
	// alone, its structure is not.
	New("apiVersion: v1\nclusters:\n- cluster:\n    server: https://ABCDEF0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com\n  name: ProductionClusterAdmin2024\nusers:\n- name: default\n  user:\n    token: eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlMTIz\n", true, "").Reveal()
	in := "apiVersion: v1; name: ProductionClusterAdmin2024; server: https://ABCDEF0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com; got eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlMTIz"
	if got := Scrub(in); got != "apiVersion: v1; name: ProductionClusterAdmin2024; server: https://ABCDEF0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com; got [redacted]" {
		t.Errorf("a kubeconfig's parts: %s", got)
	}
	// A JSON key file: the private key's lines, written with \n escapes.
	New("{\n  \"type\": \"service_account\",\n  \"private_key_id\": \"0123456789abcdef0123456789abcdef01234567\",\n  \"private_key\": \"-----BEGIN PRIVATE KEY-----\\nMIIEvgIBADANBgkqhkiG9w0BAQ\\n-----END PRIVATE KEY-----\\n\"\n}\n", true, "").Reveal()
	if got := Scrub(`"type": "service_account" id 0123456789abcdef0123456789abcdef01234567 body MIIEvgIBADANBgkqhkiG9w0BAQ`); got != `"type": "service_account" id 0123456789abcdef0123456789abcdef01234567 body [redacted]` {
		t.Errorf("a JSON key's parts: %s", got)
	}
	if got := Scrub("true false 1234"); got != "true false 1234" {
		t.Errorf("short words scrubbed: %s", got)
	}
}

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://u:p@h.com/org/repo.git": "https://h.com/org/repo.git",
		"https://token@h.com/r":          "https://h.com/r",
		"git@github.com:org/repo.git":    "git@github.com:org/repo.git",
		"s3://bucket/prefix":             "s3://bucket/prefix",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHandlerScrubs(t *testing.T) {
	New("handler-secret-xyz", true, "").Reveal()
	var buf bytes.Buffer
	log := slog.New(Handler(slog.NewTextHandler(&buf, nil))).With("url", "https://a:handler-secret-xyz@h/")
	log.Info("using handler-secret-xyz", "err", errors.New("bad handler-secret-xyz"), slog.Group("g", "k", "handler-secret-xyz"))
	if strings.Contains(buf.String(), "handler-secret-xyz") {
		t.Errorf("leaked: %s", buf.String())
	}
}

// A user name or key ID is shown wherever its text appears; one that looks
// like a token is blanked as any secret.
func TestNameNotScrubbed(t *testing.T) {
	New("acme-ml-team", true, "f").Name()
	New("ghp_0123456789abcdefghijklmnopqrstuvwxyz", true, "f").Name()
	if got := Scrub("https://git.example/acme-ml-team/repo.git"); got != "https://git.example/acme-ml-team/repo.git" {
		t.Errorf("a user name was blanked: %q", got)
	}
	if got := Scrub("token ghp_0123456789abcdefghijklmnopqrstuvwxyz"); got != "token "+Redacted {
		t.Errorf("a token in a user name's field was shown: %q", got)
	}
}

// A piece of a key cut short (an error quoting its first bytes, a line cut
// by a script) is blanked; what is no key material is not.
func TestScrubPiecesOfKeys(t *testing.T) {
	pemKey := "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7Xq3vK9zPqR4m\nT2yLwN8cVb5sHjE1uD6oFa0gRiMk7WnY3pZxQ5tCe9HdUlKs2JvBf4XrAy1OiGqP\n-----END PRIVATE KEY-----\n"
	Register(pemKey)
	Register("tok-SECRETVALUE-1234abcdefXYZ789")
	Register("{\n  \"type\": \"service_account\",\n  \"private_key_id\": \"0a1b2c3d4e5f60718293a4b5c6d7e8f901234567\",\n  \"token_uri\": \"https://oauth2.googleapis.com/token\",\n  \"private_key\": \"Zk9vQmFyQmF6UXV4MTIzNDU2Nzg5MEFCQ0RFRkdI\"\n}")
	for _, leak := range []string{
		"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSj",                       // a line cut at 40
		"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCB", // head -c of the file
		"tok-SECRETVALUE-1234",                                           // a token cut at 20
		"Zk9vQmFyQmF6UXV4MTIzNDU2Nzg5",                                   // a piece of a JSON key's private_key
	} {
		got := Scrub("error: " + leak + " rest")
		if strings.Contains(got, leak[len(leak)-20:]) || !strings.Contains(got, Redacted) {
			t.Errorf("Scrub(%q) = %q", leak, got)
		}
	}
	for _, keep := range []string{
		"Post https://oauth2.googleapis.com/token: refused",
		"key id 0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
		"type service_account",
	} {
		if got := Scrub(keep); got != keep {
			t.Errorf("Scrub(%q) = %q: not key material", keep, got)
		}
	}
}

// A JSON key on one line: its public fields stay readable, its key is
// blanked, whole or in pieces.
func TestScrubOneLineJSONKey(t *testing.T) {
	Register(`{"type": "service_account", "private_key_id": "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432", "private_key": "-----BEGIN PRIVATE KEY-----\nQmFzZTY0S2V5TWF0ZXJpYWwxMjM0NTY3ODlBQkNERUZHSElKS0xN\n-----END PRIVATE KEY-----\n", "client_email": "sa@proj.iam.gserviceaccount.com"}`)
	if got := Scrub("key 9f8e7d6c5b4a39281706f5e4d3c2b1a098765432 of sa@proj.iam.gserviceaccount.com"); strings.Contains(got, Redacted) {
		t.Errorf("public fields blanked: %q", got)
	}
	if got := Scrub("bad key QmFzZTY0S2V5TWF0ZXJpYWwxMjM0NTY3"); strings.Contains(got, "S2V5TWF0ZXJpYWwxMjM0NTY3") {
		t.Errorf("a piece of the key printed: %q", got)
	}
}

// A one-line JSON secret: a password with characters JSON escapes is
// blanked alone; numbers, booleans and public settings are not.
func TestScrubOneLineJSONSettings(t *testing.T) {
	Register(`{"user":"u","password":"Xr0ub4dor&3xyzQ<>","flags":[false,false,true],"ports":[443443,808080]}`)
	if got := Scrub("password is Xr0ub4dor&3xyzQ<>"); strings.Contains(got, "Xr0ub4dor") {
		t.Errorf("password printed: %q", got)
	}
	if got := Scrub(`{"strict":false, "uploads":443443}`); strings.Contains(got, Redacted) {
		t.Errorf("plain values blanked: %q", got)
	}
}

// A one-line JSON secret holding a file in a value (a .netrc), or a crypt
// hash under a plain name: those parts are blanked alone too.
func TestScrubOneLineJSONEmbeddedFiles(t *testing.T) {
	Register(`{"netrc":"machine h login u password hunter2hunter\n","users":{"admin":"$apr1$abcdefgh$ijklmnopqrstuvwxyzABCD"}}`)
	for _, leak := range []string{"hunter2hunter", "$apr1$abcdefgh$ijklmnopqrstuvwxyzABCD"} {
		if got := Scrub("printed: " + leak); strings.Contains(got, leak) {
			t.Errorf("printed: %q", got)
		}
	}
}

// Prose in a one-line JSON secret's plain field blanks nothing.
func TestScrubOneLineJSONProse(t *testing.T) {
	Register(`{"type":"basic","note":"password rotated monthly, see the vault","username":"svc","password":"Xq9vLm2Tr7"}`)
	if got := Scrub("keys rotated monthly"); got != "keys rotated monthly" {
		t.Errorf("prose blanked: %q", got)
	}
	if got := Scrub("pw Xq9vLm2Tr7"); strings.Contains(got, "Xq9vLm2Tr7") {
		t.Errorf("password printed: %q", got)
	}
}
