package store

import "testing"

// The default Azure credential's failure, summed up one clause per source
// it tried, without the HTTP response it quotes.
func TestAttempted(t *testing.T) {
	msg := "DefaultAzureCredential: failed to acquire a token.\nAttempted credentials:\n" +
		"\tEnvironmentCredential: missing environment variable AZURE_TENANT_ID\n" +
		"\tWorkloadIdentityCredential: no client ID specified. Check pod configuration or set ClientID in the options\n" +
		"\tManagedIdentityCredential authentication failed. \n\t\tGET http://169.254.169.254/metadata/identity/oauth2/token\n" +
		"--------------------------------------------------------------------------------\nRESPONSE 403: 403 Forbidden\n" +
		"ERROR CODE UNAVAILABLE\n--------------------------------------------------------------------------------\n" +
		"Response contained no body\n--------------------------------------------------------------------------------\n" +
		"To troubleshoot, visit https://aka.ms/azsdk/go/identity/troubleshoot#managed-id"
	want := "EnvironmentCredential: missing environment variable AZURE_TENANT_ID; WorkloadIdentityCredential: no client ID specified; " +
		"ManagedIdentityCredential: authentication failed"
	if got := attempted(msg); got != want {
		t.Errorf("attempted:\n%s\nwant\n%s", got, want)
	}
}
